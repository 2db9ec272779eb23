"""Red-team round 2 (docs/rewriter.md): a rule set that fetch.speculation_rules_local keeps
(relative URLs only) under a <base href> on another origin, one no partner declares. Measured
in Chromium 156 against a TLS server for that origin (Chromium prefetches only https, never
past a proxy: tests/support/tls_partner.py): through the gate (CSP off) Chromium prefetched the
listed URL and the matched link from that origin, with the page as Referer. Closed for a
<base> before the rule set (any unknown host seen before it makes it inert). A <base> after it
(Chromium re-resolved the rules against the new base) and the gate's own banner.css/banner.js
loaded from that origin were closed by the enforced `base-uri 'self'` every rewritten page
carries, CSP off included (middleware/gate/response_headers.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.vector_sites import raw_and_modes
from tests.support.browser import BASE_FLAGS, CHROMIUM_PATH
from tests.support.servers import ServerProcess
from tests.support.tls_partner import TlsPartner

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def unknown_origin() -> Iterator[TlsPartner]:
    with TlsPartner("spec.unknown.example") as server:
        yield server


@pytest.fixture(scope="module")
def base_sites(tmp_path_factory: pytest.TempPathFactory,
               unknown_origin: TlsPartner) -> Iterator[dict[str, ServerProcess]]:
    with raw_and_modes("tests.browser.redteam_site", tmp_path_factory.mktemp("redteam-spec"),
                       ("off",), env={"SPEC_UNKNOWN": unknown_origin.origin}) as servers:
        yield servers


def test_relative_rules_under_another_origins_base_prefetch_there_left_open(
        chromium: Browser, recording_proxy: RecordingProxy, unknown_origin: TlsPartner,
        base_sites: dict[str, ServerProcess]) -> None:
    browser = chromium.browser_type.launch(
        executable_path=CHROMIUM_PATH, headless=True,
        args=[*BASE_FLAGS, recording_proxy.chromium_arg, *unknown_origin.chromium_flags()])
    types = {}
    try:
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.set_default_timeout(10_000)
        # Each page stays open while its prefetches may start: until its two arrived, else
        # (a gated page that must not prefetch) as long as the raw control needed, >= 1 s.
        took = 1.0
        for who in ("raw", "off"):
            for name, prefix in (("spec-base-after", f"/{who}a/"), ("spec-base", f"/{who}/")):
                page.goto(f"{base_sites[who].url}/{who}/{name}", wait_until="load")
                types[(who, "after") if name == "spec-base-after" else who] = page.evaluate(
                    "document.querySelector('script').type")
                started = time.monotonic()
                limit = 10.0 if who == "raw" else took
                while (len([p for p in unknown_origin.paths() if p.startswith(prefix)]) < 2
                       and time.monotonic() < started + limit):
                    page.wait_for_timeout(50)
                if who == "raw":
                    took = max(took, time.monotonic() - started)
    finally:
        browser.close()
    paths = set(unknown_origin.paths())
    assert {"/raw/doclink", "/raw/listed", "/rawa/doclink", "/rawa/listed"} <= paths  # controls
    # A <base> before the rules: another host was named, so the rule set is inert.
    assert types["off"] == "text/plain"
    assert not any(p.startswith("/off/") for p in paths)
    # Closed by the enforced `base-uri 'self'` every rewritten page gets, CSP off included: a
    # <base> after the kept rules is ignored (nothing prefetched from that origin), and the
    # gate's own banner assets never load from a foreign base's origin.
    assert types["off", "after"] == "speculationrules"
    assert not any(p.startswith("/offa/") for p in paths)
    assert not any("banner" in p for p in paths)
    assert not [r.url for r in recording_proxy.requests if "banner" in r.url]
