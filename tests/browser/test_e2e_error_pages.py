"""Japan Talk's 404 page carries the base template's ad tags; /embeds carries every kind of
partner embed. Without consent neither makes Chromium contact a partner host (recorded by the
proxy); with consent the 404 page's ads load like any page's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.test_e2e_japan_talk import (
    ADS,
    ALL,
    JS_BOTH,
    Site,
    banner_visible,
    click_and_load,
    goto,
    js,
    observe,
    start_site,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser
__all__ = ["js"]  # the fixture telling whether the context runs JavaScript

MISSING = "/no-such-page"


@pytest.fixture(scope="module")
def edge_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    s = start_site(tmp_path_factory.mktemp("japan-talk-edges"))
    with s.server:
        yield s


def partner_hosts(site: Site, hosts: set[str]) -> set[str]:
    return {h for h in hosts if site.matcher.partner_for_host(h) is not None}


@JS_BOTH
@pytest.mark.parametrize("path", [MISSING, "/embeds"])
def test_gated_pages_contact_no_partner_without_consent(
        edge_site: Site, page: Page, recording_proxy: RecordingProxy, js: bool, path: str) -> None:
    view = goto(edge_site, page, recording_proxy, path, f"{path}, undecided")
    assert view.response is not None
    assert view.response.status == (404 if path == MISSING else 200)
    assert partner_hosts(edge_site, view.hosts) == set(), view.describe()
    assert not view.unknown, view.describe()
    if js:
        assert banner_visible(page)
    assert view.response.headers.get("content-security-policy")


@pytest.mark.parametrize("context", [{}], indirect=True, ids=["js"])
def test_404_page_ads_load_after_accept(edge_site: Site, page: Page,
                                        recording_proxy: RecordingProxy) -> None:
    goto(edge_site, page, recording_proxy, MISSING, "404, undecided")
    view = observe(edge_site, page, recording_proxy, "404, accepted",
                   lambda: click_and_load(page, '#consent-gate-banner [data-consent-action="accept-all"]'))
    assert view.contacted <= ALL, view.describe()
    assert view.contacted >= ADS, f"the template's ad tags load once consented: {view.describe()}"
