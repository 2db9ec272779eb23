"""Measured in Chromium through the recording proxy: response headers that reach the partner
when served as written (a site CSP's report-uri, Speculation-Rules, a Link imagesrcset), and
pages in charsets the rewriter cannot read (a meta refresh in UTF-16 or ISO-2022-JP, an
ISO-2022-JP comment trick), and not through the gate. Its CSP here is report-only: the
header vectors pass an enforced one too (measured), and a page the gate cannot read gets the
enforced no-partner CSP whatever the mode (a refresh is a navigation no CSP stops)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.browser.header_site import CHARSETS, VECTORS, H
from tests.browser.tabs import TabVisit, visit_in_tabs
from tests.browser.vector_sites import raw_and_gated

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import BrowserContext

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser


def test_header_vectors_reach_the_partner_only_as_written(
        context: BrowserContext, recording_proxy: RecordingProxy, tmp_path: Path) -> None:
    def seen_now() -> set[tuple[str, str]]:
        paths = (r.path.split("/") for r in recording_proxy.requests if r.host == H.decode())
        return {(p[1], p[2]) for p in paths if len(p) > 2}

    names = [*VECTORS, *CHARSETS]
    with raw_and_gated("tests.browser.header_site", tmp_path, csp="report-only") as (raw, gated):
        # Side by side in a few tabs (tests/browser/tabs.py): each gated page watched 0.3 s
        # after its load, each page as written until its fetch arrived (at most 5 s).
        visit_in_tabs(context, [
            visit for name in names for visit in (
                TabVisit(f"{raw.url}/raw/{name}", hold=5.0,
                         until=lambda name=name: ("raw", name) in seen_now()),
                TabVisit(f"{gated.url}/gated/{name}", hold=0.3))])
        recording_proxy.wait_quiet(1.0)
    seen = seen_now()
    assert sorted(name for who, name in seen if who == "gated") == []
    assert [name for name in names if ("raw", name) not in seen] == []
