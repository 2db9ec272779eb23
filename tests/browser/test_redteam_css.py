"""The site's own style sheets in Chromium through the recording proxy (docs/rewriter.md,
"Red-team pass"): a sheet whose @import, url() and image-set() name the partner reached it as
written and, before gate/css.py, through the gate with the CSP off or report-only (only an
enforced CSP stopped it). Now each such fetch is made inert without consent, in one message,
streamed or gzip; with consent it goes out as written after its ledger row, and the sheet is
private: after a withdrawal Chromium asks again and gets the inert one (no partner request).
Pages in tests/browser/css_site.py; the partner is ``*.partner.example``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from middleware import ConsentMiddleware
from tests.asgi_helpers import SECRET, cookie_for
from tests.browser.tabs import TabVisit, visit_in_tabs
from tests.support.config_text import config_text, partner
from tests.support.servers import ServerProcess, start_uvicorn
from tests.test_disclosure import rows

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser

#: The gated servers: [csp] mode off and report-only (a common first deployment).
GATED = ("off", "report-only")


@pytest.fixture(scope="module")
def css_sites(tmp_path_factory: pytest.TempPathFactory,
              ) -> Iterator[tuple[dict[str, ServerProcess], dict[str, tuple[str, str]], Path]]:
    """raw, and the gate with the CSP off and report-only; the consent cookies (granted,
    refused) of the gated ones; the folder of their ledgers."""
    tmp = tmp_path_factory.mktemp("redteam-css")
    cookies: dict[str, tuple[str, str]] = {}
    with contextlib.ExitStack() as stack:
        servers = {"raw": stack.enter_context(
            start_uvicorn("tests.browser.css_site:site", log_level="warning"))}
        for mode in GATED:
            config = tmp / f"{mode}.toml"
            config.write_text(config_text(
                ledger=(tmp / f"{mode}.sqlite3").as_posix(), csp=mode,
                partners={"tracker": partner(["ads"], ["*.partner.example"])}))
            gate = ConsentMiddleware(lambda *a: None, config=str(config), secret=SECRET)
            cookies[mode] = (cookie_for(gate, {"ads"}), cookie_for(gate, set()))
            servers[mode] = stack.enter_context(start_uvicorn(
                "tests.browser.css_site:create_app", extra_args=["--factory"],
                env={"CSS_SITE_CONFIG": str(config), "CONSENT_GATE_SECRET": SECRET},
                log_level="warning"))
        yield servers, cookies, tmp


def _visit(page: Page, url: str) -> None:
    with contextlib.suppress(Exception):  # (a sheet the proxy refuses is no error here)
        page.goto(url, wait_until="load")


#: How long a page is watched after its load event (a raw page that fetches leaves as soon
#: as its fetch arrived).
HOLD = 1.0
#: Distinct partner paths a raw page fetches before it may leave (default 1).
RAW_FETCHES = {"p/css": 3}


def reached(context: BrowserContext, proxy: RecordingProxy, servers: dict[str, ServerProcess],
            paths: list[str], who: tuple[str, ...]) -> dict[str, set[str]]:
    """path ("p/css") -> which of the servers ``who`` made Chromium contact the partner from
    that page, the pages visited side by side in the tab pool (tests/browser/tabs.py)."""
    def host(path: str, w: str) -> str:
        mode, name = path.split("/")
        return f"{name}-{mode}.{w}.partner.example"

    def seen(h: str, n: int) -> Callable[[], bool]:
        return lambda: len({r.path for r in proxy.requests if r.host == h}) >= n

    # A raw page leaves once all its fetches arrived: p/css fetches three ways (@import, url(),
    # image-set()); leaving at the first lost the other two once in CI.
    visit_in_tabs(context, [TabVisit(f"{servers[w].url}/{path}/{w}", HOLD,
                                     seen(host(path, w), RAW_FETCHES.get(path, 1))
                                     if w == "raw" else None)
                            for path in paths for w in who])
    proxy.wait_quiet(0.3)
    hosts = {r.host for r in proxy.requests}
    return {path: {w for w in who if host(path, w) in hosts} for path in paths}


def test_own_style_sheets_reach_the_partner_only_as_written(
        context: BrowserContext, recording_proxy: RecordingProxy,
        css_sites: tuple[dict[str, ServerProcess], dict[str, tuple[str, str]], Path]) -> None:
    """No consent. As written, Chromium fetches the partner's @import, url() and image-set()
    from the site's own sheet; through the gate with the CSP off or report-only it fetches
    none (one message, streamed in odd chunks, gzip), and the rest of the sheet still
    applies (its own rule colours the heading). The same goes for a sheet with no
    Content-Type and one of ``application/x-unknown-content-type``, which Chromium applies
    too (measured)."""
    servers, _, _ = css_sites
    paths = ["p/css", "p/css-chunked", "p/css-gzip", "p/untyped", "p/x-unknown"]
    seen = reached(context, recording_proxy, servers, paths, ("raw", *GATED))
    assert seen == {path: {"raw"} for path in paths}
    raw_paths = sorted(r.path for r in recording_proxy.requests if r.host == "css-p.raw.partner.example")
    assert raw_paths == ["/b.gif", "/i.css", "/s.gif"]  # each of the three ways fetched
    page = context.new_page()
    _visit(page, f"{servers['off'].url}/p/css/off")
    assert page.evaluate("getComputedStyle(document.querySelector('.own')).color") == "rgb(0, 128, 0)"


def test_other_types_are_no_style_sheet_in_standards_mode_but_are_in_quirks_mode(
        context: BrowserContext, recording_proxy: RecordingProxy,
        css_sites: tuple[dict[str, ServerProcess], dict[str, tuple[str, str]], Path]) -> None:
    """Measured, not read by the gate: the same sheet as text/plain, or with no Content-Type
    and ``X-Content-Type-Options: nosniff``, is not applied by a standards-mode page
    (Chromium's MIME type check: nothing fetched, as written or through the gate). A
    quirks-mode page applies a same-origin sheet of any type: text/plain reaches the partner
    as written, and reached it through the gate with the CSP off until the gate read every
    answer to a style sheet request as CSS (``Sec-Fetch-Dest: style``, red-team round 4:
    tests/browser/test_redteam_round4.py); an untyped one is read by the gate (above)."""
    servers, _, _ = css_sites
    paths = ["p/plain", "p/untyped-nosniff", "q/plain", "q/untyped"]
    seen = reached(context, recording_proxy, servers, paths, ("raw", "off"))
    assert seen == {"p/plain": set(), "p/untyped-nosniff": set(), "q/plain": {"raw"},
                    "q/untyped": {"raw"}}


def test_a_consented_sheet_is_recorded_and_never_served_again_after_a_withdrawal(
        context: BrowserContext, recording_proxy: RecordingProxy,
        css_sites: tuple[dict[str, ServerProcess], dict[str, tuple[str, str]], Path]) -> None:
    """With consent the sheet goes out as written after its ledger row (the sheet's own
    page view: the partner gets the visitor's address and the sheet's URL). The app sent it
    cacheable for an hour with an ETag; the gate sends it private, ``Vary: Cookie``, without
    the ETag. After the visitor withdraws, neither a new visit nor a reload gets the cached
    consented sheet: no partner request."""
    servers, cookies, tmp = css_sites
    server = servers["off"]
    granted, refused = cookies["off"]
    page = context.new_page()
    page.set_default_timeout(10_000)
    context.add_cookies([{"name": granted.split("=", 1)[0], "value": granted.split("=", 1)[1],
                          "url": server.url}])
    sheets: list[dict[str, str]] = []
    page.on("response", lambda r: sheets.append(r.headers) if r.url.endswith(".css") and
            "/s/" in r.url else None)
    _visit(page, f"{server.url}/p/css-cache/off")
    recording_proxy.wait_for_hosts({"css-cache-p.off.partner.example"}, timeout=5)
    assert sheets, "the sheet was not loaded"
    headers = sheets[0]
    assert "private" in headers["cache-control"] and "etag" not in headers
    assert "cookie" in headers["vary"].lower()
    recorded = {(r["path"], r["partner"]) for r in rows(tmp / "off.sqlite3")}
    assert ("/s/css-cache/p/off.css", "tracker") in recorded
    context.add_cookies([{"name": refused.split("=", 1)[0], "value": refused.split("=", 1)[1],
                          "url": server.url}])
    recording_proxy.wait_quiet(0.3)
    recording_proxy.clear()
    _visit(page, f"{server.url}/p/css-cache/off")
    with contextlib.suppress(Exception):
        page.reload(wait_until="load")
    page.wait_for_timeout(500)
    recording_proxy.wait_quiet(0.3)
    assert [r.url for r in recording_proxy.requests] == []
