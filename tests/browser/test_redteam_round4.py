"""Red-team round 4 (docs/rewriter.md, "Red-team round 4"): fetches around the gate that no
earlier round checked, in Chromium through the recording proxy, a visitor without consent,
each page visited as written (``raw``: the vector is real) and through the gate with
``[csp] mode`` off, report-only and enforced. Pages in tests/browser/redteam4_site.py; the
partner is ``*.partner.example``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.redteam4_site import HEADERS, MARKUP, QUIRKS, SPECULATION, XML
from tests.browser.tabs import TabVisit, visit_in_tabs
from tests.browser.vector_sites import raw_and_modes
from tests.support.browser import BASE_FLAGS, CHROMIUM_PATH
from tests.support.servers import ServerProcess
from tests.support.tls_partner import TlsPartner

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser

MODES = ("off", "report-only", "enforce")


@pytest.fixture(scope="module")
def tls_partner() -> Iterator[TlsPartner]:
    with TlsPartner("spec.partner.example") as server:
        yield server


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory,
          tls_partner: TlsPartner) -> Iterator[dict[str, ServerProcess]]:
    """raw, and the gate in each [csp] mode (one partner: *.partner.example)."""
    with raw_and_modes("tests.browser.redteam4_site", tmp_path_factory.mktemp("redteam4"),
                       MODES, env={"SPEC_PARTNER": tls_partner.origin}) as servers:
        yield servers


def reached(context: BrowserContext, proxy: RecordingProxy, servers: dict[str, ServerProcess],
            names: list[str], who: tuple[str, ...], hold: float = 1.0) -> dict[str, set[str]]:
    def seen(h: str) -> Callable[[], bool]:
        return lambda: any(r.host.rstrip(".") == h for r in proxy.requests)

    # (a page whose script submits a form at once is awaited in the page: tabs.TabVisit)
    visit_in_tabs(context, [TabVisit(f"{servers[w].url}/{w}/{name}", hold,
                                     seen(f"{name}.{w}.partner.example") if w == "raw" else None,
                                     wait_until="commit" if name in NAVIGATES else "load")
                            for name in names for w in who])
    proxy.wait_quiet(0.4)
    hosts = {r.host.rstrip(".") for r in proxy.requests}
    return {name: {w for w in who if f"{name}.{w}.partner.example" in hosts} for name in names}


#: Pages whose own script navigates away at once (tabs.TabVisit.wait_until).
NAVIGATES = {"form-autosubmit"}
#: Reached the partner through the gate with the CSP off and report-only before this round:
#: an import map's module target (the module fetch is the CSP's only when it is enforced),
#: and a quirks-mode page's same-origin sheet served as text/plain, text/html, JSON,
#: JavaScript, XML or an image (Chromium applies it as CSS; the gate read only text/css).
#: The same in an <svg> (a foreign script's map, closed by the review that found it).
CLOSED = ["importmap", "importmap-svg", "importmap-svg-ref", *QUIRKS]
#: Blocked through the gate in every mode already (the rewriter, or for XML documents the
#: enforced no-partner CSP and the http-equiv respelling): now pinned.
COVERED = [name for name in [*MARKUP, *XML, *HEADERS]
           if name not in ("importmap", "importmap-svg", "importmap-svg-ref", "form-autosubmit")]
#: Fetched nothing as written in Chromium 156 (a srcset candidate after a data: URL with a
#: comma, a cross-origin <track> without CORS, an external <use> sprite, an SMIL set of
#: xlink:href, a modulepreload of a bare specifier, a favicon in headless mode).
NOTHING = ["srcset-data-comma", "video-track", "svg-use-external", "svg-set-xlink",
           "importmap-modulepreload", "link-icon"]
#: Left to the enforced CSP (form-action): a form naming the partner submitted by the site's
#: own script is a navigation the rewriter does not gate (docs/rewriter.md).
FOR_THE_CSP = ["form-autosubmit"]
for _name in NOTHING:
    COVERED.remove(_name)


#: (rows, servers visited, the servers each page must reach the partner from)
GROUPS = {
    "closed": (CLOSED, ("raw", *MODES), {"raw"}),
    "covered": (COVERED, ("raw", *MODES), {"raw"}),
    "nothing": (NOTHING, ("raw", "off"), set()),
    "for-the-csp": (FOR_THE_CSP, ("raw", *MODES), {"raw", "off", "report-only"}),
}


@pytest.mark.parametrize("group", list(GROUPS))
def test_vectors_reach_the_partner_only_as_written(
        context: BrowserContext, recording_proxy: RecordingProxy,
        sites: dict[str, ServerProcess], group: str) -> None:
    """closed: reached the partner through the gate before this round (CSP off and
    report-only); covered: blocked already in every mode; nothing: no fetch even as
    written; for-the-csp: only the enforced CSP stops it (a script's form submission)."""
    names, who, want = GROUPS[group]
    seen = reached(context, recording_proxy, sites, names, who)
    assert {name: sorted(w) for name, w in seen.items() if w != want} == {}


def test_speculation_rules_in_documents_the_gate_cannot_rewrite(
        chromium: Browser, recording_proxy: RecordingProxy, tls_partner: TlsPartner,
        sites: dict[str, ServerProcess]) -> None:
    """An XHTML, an SVG and a UTF-16 HTML document (sent unrewritten behind the enforced
    no-partner CSP) with an inline rule set listing the partner: Chromium 156 prefetched it
    through the gate in every mode, enforced CSP included (no CSP directive governs a
    prefetch). Now every ``speculationrules`` in such a body is respelled: only the raw
    pages prefetch. Chromium refuses a prefetch past a proxy, so this browser reaches the TLS
    partner directly (as test_redteam_vectors.py's rule sets)."""
    browser = chromium.browser_type.launch(
        executable_path=CHROMIUM_PATH, headless=True,
        args=[*BASE_FLAGS, recording_proxy.chromium_arg, *tls_partner.chromium_flags()])
    try:
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.set_default_timeout(10_000)
        raw_took = 1.0
        for name in SPECULATION:
            for who in ("raw", *MODES):
                with contextlib.suppress(Exception):
                    page.goto(f"{sites[who].url}/{who}/{name}", wait_until="load")
                if who == "raw":  # (a gated page is watched as long as the raw one needed)
                    started = time.monotonic()
                    while f"/raw/{name}" not in tls_partner.paths() and time.monotonic() < started + 10:
                        page.wait_for_timeout(50)
                    raw_took = max(raw_took, time.monotonic() - started + 0.5)
                else:
                    page.wait_for_timeout(int(raw_took * 1000))
        page.wait_for_timeout(500)
    finally:
        browser.close()
    assert sorted(tls_partner.paths()) == sorted(f"/raw/{name}" for name in SPECULATION)
    assert recording_proxy.requests == []


def test_every_vector_has_a_row() -> None:
    rows = CLOSED + COVERED + NOTHING + FOR_THE_CSP
    assert sorted(rows) == sorted([*MARKUP, *XML, *HEADERS, *QUIRKS]) and len(set(rows)) == len(rows)
