"""Measured in Chromium through the recording proxy: each hard-coded fetch vector of
tests/browser/fetch_site.py reaches the partner when served as written, and not once the
rewriter has read it (the CSP is off here, so nothing else could stop it)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.fetch_site import BREAKOUTS, CHARREF_CONTROLS, CHARREFS, VECTORS, H
from tests.browser.vector_sites import raw_and_gated
from tests.support.servers import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.support.proxy import RecordingProxy


pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with raw_and_gated("tests.browser.fetch_site", tmp_path_factory.mktemp("fetch-site"),
                       csp="off") as sites:
        yield sites


def visit(page: Page, url: str) -> None:
    with contextlib.suppress(Exception):  # a refresh to the partner fails at the proxy
        page.goto(url, wait_until="load")
    page.wait_for_timeout(300)
    with contextlib.suppress(Exception):
        page.goto("about:blank")


def observe(page: Page, proxy: RecordingProxy, sites: tuple[ServerProcess, ServerProcess],
            names: Iterable[str], title: str) -> set[tuple[str, str]]:
    """Visit each page as written and through the rewriter; (who, name) of every page whose
    partner URL reached the proxy (partner URLs carry /WHO/NAME/, so a late request is still
    put down to its own page). Prints the table (pytest -s)."""
    raw, gated = sites
    for name in names:
        visit(page, f"{raw.url}/raw/{name}")
        visit(page, f"{gated.url}/gated/{name}")
    proxy.wait_quiet(1.0)
    paths = (r.path.split("/") for r in proxy.requests if r.host == H)
    seen = {(p[1], p[2]) for p in paths if len(p) > 2}
    print(f"\n{title:20s} as written  through the rewriter (no consent, no CSP)")
    for name in names:
        print(f"  {name:20s} {'REACHED' if ('raw', name) in seen else 'no fetch':10s}  "
              f"{'REACHED' if ('gated', name) in seen else 'blocked'}")
    return seen


def test_fetch_vectors_in_chromium_reach_the_partner_only_as_written(
        page: Page, recording_proxy: RecordingProxy,
        sites: tuple[ServerProcess, ServerProcess]) -> None:
    seen = observe(page, recording_proxy, sites, VECTORS, "vector")
    assert sorted(name for who, name in seen if who == "gated") == []
    # Each vector is real: Chromium fetches it when the page is served as written.
    assert [name for name in VECTORS if ("raw", name) not in seen] == []


def test_fetch_vectors_after_a_foreign_content_breakout_never_reach_the_partner(
        page: Page, recording_proxy: RecordingProxy,
        sites: tuple[ServerProcess, ServerProcess]) -> None:
    seen = observe(page, recording_proxy, sites, BREAKOUTS, "breakout")
    assert sorted(name for who, name in seen if who == "gated") == []
    # Chromium reads a breakout as the current spec does (the rewriter's reading): the partner
    # tag after </p> or </br> is text; without it, the same tag is live and does fetch.
    assert sorted(name for who, name in seen if who == "raw") == sorted(
        name for name in BREAKOUTS if name.endswith("-control"))


def test_urls_spelled_with_character_references_reach_the_partner_only_as_written(
        page: Page, recording_proxy: RecordingProxy,
        sites: tuple[ServerProcess, ServerProcess]) -> None:
    """A partner URL built with character references (&#x68;ttp, &Tab; or &NewLine; inside the
    scheme, &colon;, &sol;, &period; in the host, &commat; userinfo, in src, srcset, an SVG
    href, a style url() and a meta refresh): Chromium fetches every one as written; the
    rewriter reads each value decoded (C and pure Python alike) and none reaches the partner."""
    seen = observe(page, recording_proxy, sites, {**CHARREFS, **CHARREF_CONTROLS},
                   "character reference")
    assert sorted(name for who, name in seen if who == "gated") == []
    assert sorted(name for who, name in seen if who == "raw") == sorted(CHARREFS)
