"""One Chromium visitor per stance of the README's signals example, behind the recording proxy."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import screenshot, visit

APP = "tests.browser.signals_site:app"
GPT = "securepubads.g.doubleclick.net"
MEASURE = "px.measure.example"
REGION = {"eea": {"CloudFront-Viewer-Country": "DE"},
          "california": {"CloudFront-Viewer-Country": "US", "CloudFront-Viewer-Country-Region": "CA"}}


@pytest.fixture
def site(start_server: Any, tmp_path: Path) -> Any:
    return start_server(APP, env={"CONSENT_GATE_SECRET": secrets.token_urlsafe(32),
                                  "SIGNALS_SITE_LEDGER": str(tmp_path / "ledger.sqlite3")},
                        log_level="warning")


@pytest.mark.parametrize("context", [{"extra_http_headers": REGION["eea"]}], indirect=True)
def test_signals_stance_eea_nothing_before_consent(page: Any, recording_proxy: Any, site: Any) -> None:
    visit(page, recording_proxy, site.url + "/", label="eea first view")
    assert recording_proxy.hosts(section="eea first view") == set()
    assert page.locator("#consent-gate-banner").is_visible()
    assert page.evaluate("typeof window.__gpp") == "undefined"  # GPP is for the US-style regions
    screenshot(page, "signals-eea-banner")


@pytest.mark.parametrize("context", [{"extra_http_headers": {**REGION["california"], "Sec-GPC": "1"}}],
                         indirect=True)
def test_signals_stance_california_gpc_never_contacts_sale_partners(page: Any, recording_proxy: Any,
                                                                    site: Any) -> None:
    visit(page, recording_proxy, site.url + "/", label="ca gpc")
    hosts = recording_proxy.hosts(section="ca gpc")
    assert GPT not in hosts and MEASURE in hosts
    assert page.locator("#consent-gate-gpc-notice").inner_text() == "Opt-out preference signal honored"
    assert page.evaluate("""() => new Promise((r) => __gpp("getField", (v) => r(v), "usnat.SaleOptOut"))""") == 1
    screenshot(page, "signals-california-gpc")


@pytest.mark.parametrize("context", [{"extra_http_headers": REGION["california"],
                                      "java_script_enabled": False}], indirect=True)
def test_signals_stance_california_opt_out_link_works_without_js(page: Any, recording_proxy: Any,
                                                                 site: Any) -> None:
    visit(page, recording_proxy, site.url + "/", label="ca first view")
    # Opt-out: partners run (the pixel loads; without JS the browser fetches no script, but it is there).
    assert MEASURE in recording_proxy.hosts(section="ca first view")
    assert f"https://{GPT}/tag/js/gpt.js" in page.content()
    link = page.locator("#consent-gate-preferences-link")
    assert link.inner_text() == "Do Not Sell or Share My Personal Information"
    recording_proxy.mark("ca opt out")
    link.click()
    page.wait_for_load_state()
    page.locator('button[value="withdraw"]').click()
    page.wait_for_load_state()
    visit(page, recording_proxy, site.url + "/", label="ca after opt-out")
    hosts = recording_proxy.hosts(section="ca after opt-out")
    assert MEASURE not in hosts and GPT not in page.content()
    assert recording_proxy.hosts(section="ca opt out") == set()
