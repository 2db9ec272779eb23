"""Red-team round 3 (docs/rewriter.md): the gate's own banner under `<base href>`s on other
origins (hosts no partner declares), with [csp] mode = "off". Measured in Chromium before the
fix: banner.css and banner.js (injected with relative URLs) were requested from the foreign
base's origin, and the consent form posted there. Now every rewritten page carries an enforced
``Content-Security-Policy: base-uri 'self'`` whatever the mode, so Chromium ignores such a
base: the banner's assets load from the site itself and accepting sets the consent cookie."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from tests.browser.test_redteam_speculation import base_sites, unknown_origin  # noqa: F401
from tests.support.browser import BASE_FLAGS, CHROMIUM_PATH

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from tests.support.proxy import RecordingProxy
    from tests.support.servers import ServerProcess
    from tests.support.tls_partner import TlsPartner

pytestmark = pytest.mark.browser


def test_banner_assets_and_form_stay_on_the_site_under_foreign_bases(
        chromium: Browser, recording_proxy: RecordingProxy, unknown_origin: TlsPartner,  # noqa: F811
        base_sites: dict[str, ServerProcess]) -> None:  # noqa: F811
    browser = chromium.browser_type.launch(
        executable_path=CHROMIUM_PATH, headless=True,
        args=[*BASE_FLAGS, recording_proxy.chromium_arg, *unknown_origin.chromium_flags()])
    seen: list[str] = []
    try:
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on("request", lambda r: seen.append(r.url))
        site = base_sites["off"].url
        with page.expect_response(lambda r: "banner.js" in r.url) as js:
            response = page.goto(f"{site}/off/banner-base-inhead", wait_until="load")
        assert response is not None
        assert response.headers.get("content-security-policy") == "base-uri 'self'"
        assert js.value.ok and urlsplit(js.value.url).hostname == "127.0.0.1"
        assert page.evaluate("document.baseURI").startswith(site)
        before = {c["name"] for c in context.cookies()}
        with page.expect_navigation(wait_until="load"):
            page.click('#consent-gate-banner [data-consent-action="accept-all"]')
        after = {c["name"] for c in context.cookies()}
    finally:
        browser.close()
    assert after - before, "accepting set no consent cookie"
    banner = [u for u in seen if "banner." in u or "/.consent/" in u]
    assert banner and all(urlsplit(u).hostname == "127.0.0.1" for u in banner), banner
    assert not any("unknown.example" in u for u in seen), seen
    assert not [r.url for r in recording_proxy.requests if "banner" in r.url]
    assert not any("/offb/" in p or "banner" in p for p in unknown_origin.paths())
