"""Measured in Chromium through the recording proxy: response headers that reach the partner
when served as written (a site CSP's report-uri, Speculation-Rules, a Link imagesrcset), and
pages in charsets the rewriter cannot read (a meta refresh in UTF-16 or ISO-2022-JP, an
ISO-2022-JP comment trick), and not through the gate. Its CSP here is report-only: the
header vectors pass an enforced one too (measured), and a page the gate cannot read gets the
enforced no-partner CSP whatever the mode (a refresh is a navigation no CSP stops)."""

from __future__ import annotations

import contextlib
import secrets
from typing import TYPE_CHECKING

import pytest

from tests.browser.header_site import CHARSETS, VECTORS, H
from tests.support.servers import start_uvicorn
from tests.support.tracker_config import tracker_config

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Page

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser


def test_header_vectors_reach_the_partner_only_as_written(
        page: Page, recording_proxy: RecordingProxy, tmp_path: Path) -> None:
    config = tmp_path / "partners.toml"
    config.write_text(tracker_config((tmp_path / "ledger.sqlite3").as_posix(), csp="report-only"))
    env = {"FETCH_SITE_CONFIG": str(config), "CONSENT_GATE_SECRET": secrets.token_urlsafe(36)}
    with start_uvicorn("tests.browser.header_site:site", log_level="warning") as raw, \
            start_uvicorn("tests.browser.header_site:create_app", env=env, extra_args=["--factory"],
                          log_level="warning") as gated:
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
