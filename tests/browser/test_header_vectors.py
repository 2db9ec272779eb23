"""Measured in Chromium through the recording proxy: response headers that reach the partner
when served as written (a site CSP's report-uri, Speculation-Rules, a Link imagesrcset), and
pages in charsets the rewriter cannot read (a meta refresh in UTF-16 or ISO-2022-JP, an
ISO-2022-JP comment trick), and not through the gate. Its CSP here is report-only: the
header vectors pass an enforced one too (measured), and a page the gate cannot read gets the
enforced no-partner CSP whatever the mode (a refresh is a navigation no CSP stops)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

import pytest

from tests.browser.header_site import CHARSETS, VECTORS, H
from tests.browser.vector_sites import raw_and_gated

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Page

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser


def test_header_vectors_reach_the_partner_only_as_written(
        page: Page, recording_proxy: RecordingProxy, tmp_path: Path) -> None:
    with raw_and_gated("tests.browser.header_site", tmp_path, csp="report-only") as (raw, gated):
        for name in [*VECTORS, *CHARSETS]:
            for who, server in (("raw", raw), ("gated", gated)):
                with contextlib.suppress(Exception):
                    page.goto(f"{server.url}/{who}/{name}", wait_until="load")
                page.wait_for_timeout(300)
        recording_proxy.wait_quiet(1.0)
    paths = (r.path.split("/") for r in recording_proxy.requests if r.host == H.decode())
    seen = {(p[1], p[2]) for p in paths if len(p) > 2}
    assert sorted(name for who, name in seen if who == "gated") == []
    assert [name for name in [*VECTORS, *CHARSETS] if ("raw", name) not in seen] == []
