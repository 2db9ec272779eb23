"""Measured in Chromium through the recording proxy: each hard-coded fetch vector of
tests/browser/fetch_site.py reaches the partner when served as written, and not once the
rewriter has read it (the CSP is off here, so nothing else could stop it)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.fetch_site import BREAKOUTS, CHARREF_CONTROLS, CHARREFS, VECTORS, H
from tests.browser.tabs import TabVisit, visit_in_tabs
from tests.browser.vector_sites import raw_and_gated
from tests.support.servers import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

    from tests.support.proxy import RecordingProxy


pytestmark = pytest.mark.browser



@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    with raw_and_gated("tests.browser.fetch_site", tmp_path_factory.mktemp("fetch-site"),
                       csp="off") as sites:
        yield sites


def observe(context: BrowserContext, proxy: RecordingProxy,
            sites: tuple[ServerProcess, ServerProcess], names: Iterable[str], title: str,
            reach: Iterable[str]) -> set[tuple[str, str]]:
    """Visit each page as written and through the rewriter, side by side in a few tabs;
    (who, name) of every page whose partner URL reached the proxy (partner URLs carry
    /WHO/NAME/, so a late request is still put down to its own page). A page that must not
    fetch (every gated one, and those as written not in ``reach``) is watched 0.3 s after its
    load, as when they were visited one by one; one in ``reach`` until its fetch arrived (at
    most 5 s). Prints the table (pytest -s)."""
    raw, gated = sites
    names = list(names)
    must = set(reach)

    def seen_now() -> set[tuple[str, str]]:
        paths = (r.path.split("/") for r in proxy.requests if r.host == H)
        return {(p[1], p[2]) for p in paths if len(p) > 2}

    visits = []
    for name in names:
        if name in must:
            visits.append(TabVisit(f"{raw.url}/raw/{name}", hold=5.0,
                                   until=lambda name=name: ("raw", name) in seen_now()))
        else:
            visits.append(TabVisit(f"{raw.url}/raw/{name}", hold=0.3))
        visits.append(TabVisit(f"{gated.url}/gated/{name}", hold=0.3))
    visit_in_tabs(context, visits)
    proxy.wait_quiet(1.0)
    seen = seen_now()
    print(f"\n{title:20s} as written  through the rewriter (no consent, no CSP)")
    for name in names:
        print(f"  {name:20s} {'REACHED' if ('raw', name) in seen else 'no fetch':10s}  "
              f"{'REACHED' if ('gated', name) in seen else 'blocked'}")
    return seen


def test_fetch_vectors_in_chromium_reach_the_partner_only_as_written(
        context: BrowserContext, recording_proxy: RecordingProxy,
        sites: tuple[ServerProcess, ServerProcess]) -> None:
    seen = observe(context, recording_proxy, sites, VECTORS, "vector", reach=VECTORS)
    assert sorted(name for who, name in seen if who == "gated") == []
    # Each vector is real: Chromium fetches it when the page is served as written.
    assert [name for name in VECTORS if ("raw", name) not in seen] == []


def test_fetch_vectors_after_a_foreign_content_breakout_never_reach_the_partner(
        context: BrowserContext, recording_proxy: RecordingProxy,
        sites: tuple[ServerProcess, ServerProcess]) -> None:
    seen = observe(context, recording_proxy, sites, BREAKOUTS, "breakout",
                   reach=[name for name in BREAKOUTS if name.endswith("-control")])
    assert sorted(name for who, name in seen if who == "gated") == []
    # Chromium reads a breakout as the current spec does (the rewriter's reading): the partner
    # tag after </p> or </br> is text; without it, the same tag is live and does fetch.
    assert sorted(name for who, name in seen if who == "raw") == sorted(
        name for name in BREAKOUTS if name.endswith("-control"))


def test_urls_spelled_with_character_references_reach_the_partner_only_as_written(
        context: BrowserContext, recording_proxy: RecordingProxy,
        sites: tuple[ServerProcess, ServerProcess]) -> None:
    """A partner URL built with character references (&#x68;ttp, &Tab; or &NewLine; inside the
    scheme, &colon;, &sol;, &period; in the host, &commat; userinfo, in src, srcset, an SVG
    href, a style url() and a meta refresh): Chromium fetches every one as written; the
    rewriter reads each value decoded (C and pure Python alike) and none reaches the partner."""
    seen = observe(context, recording_proxy, sites, {**CHARREFS, **CHARREF_CONTROLS},
                   "character reference", reach=CHARREFS)
    assert sorted(name for who, name in seen if who == "gated") == []
    assert sorted(name for who, name in seen if who == "raw") == sorted(CHARREFS)
