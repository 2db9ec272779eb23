"""The red-team pass in Chromium through the recording proxy (docs/rewriter.md, "Red-team
pass"): one parametrised row per vector of tests/browser/redteam_site.py, each visited as
written (it must reach the partner: the vector is real), through the gate with the CSP off
(the rewriter and header gating alone) and, where the CSP is the answer, with it enforced.
A visitor without consent; the partner is ``*.partner.example``."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.redteam_site import MARKUP, OTHER
from tests.browser.vector_sites import raw_and_modes
from tests.support.browser import BASE_FLAGS, CHROMIUM_PATH
from tests.support.servers import ServerProcess
from tests.support.tls_partner import TlsPartner

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser

#: Reached the partner through the gate before this pass, CSP off and enforced alike (the
#: header ones) or CSP off (the SVG style's @import, a javascript: frame's document): closed.
CLOSED = ["svg-style-import", "text-link", "text-refresh", "json-link", "text-spec", "gif-link",
          "js-iframe", "js-iframe-refresh", "own-css", "meta-zeros", "meta-zeros-split",
          "meta-spaces"]
#: Already closed before the pass (each blocked through the gate), now proven in Chromium.
COVERED = ["svg-style-after-tag", "svg-style-after-comment", "dsd", "data-iso2022", "modulepreload",
           "preload-imagesrcset", "srcset-comma", "srcset-nospace", "picture", "raw-tab-host",
           "raw-backslash", "upper", "port", "trailing-dot", "pct-host", "img-slash", "img-formfeed",
           "srcdoc-base", "html-206", "long-charref", "link-dictionary", "text-dictionary"]
#: Fetched nothing as written (round 2): Chromium 156 headless did not fetch an OpenSearch
#: description named by <link rel=search>.
NOTHING = ["link-search"]
#: Fetched only by a browser without scripts.
NOSCRIPT = ["noscript-img", "noscript-link", "noscript-style-import", "noscript-svg-style"]
#: Left to the enforced CSP: none here now (the site's own style sheet is read by the gate
#: since gate/css.py: test_redteam_css.py; a form submitted by script: test_csp_leaks.py
#: form-post).
FOR_THE_CSP: list[str] = []


@pytest.fixture(scope="module")
def tls_partner() -> Iterator[TlsPartner]:
    with TlsPartner("spec.partner.example") as partner_server:
        yield partner_server


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory,
          tls_partner: TlsPartner) -> Iterator[dict[str, ServerProcess]]:
    """raw, gated with the CSP off, gated with it enforced (one partner: *.partner.example)."""
    with raw_and_modes("tests.browser.redteam_site", tmp_path_factory.mktemp("redteam"),
                       ("off", "enforce"), env={"SPEC_PARTNER": tls_partner.origin}) as servers:
        yield servers


def reached(page: Page, proxy: RecordingProxy, sites: dict[str, ServerProcess],
            names: list[str], who: tuple[str, ...]) -> dict[str, set[str]]:
    """name -> which of the servers ``who`` made Chromium contact the partner with that page
    (by host, so a late request is still put down to its own page)."""
    for name in names:
        lag = 0.0
        for w in who:  # raw first: how long after "load" its fetch came is how long to wait
            with contextlib.suppress(Exception):  # a navigation to the partner fails at the proxy
                page.goto(f"{sites[w].url}/{w}/{name}", wait_until="load")
            loaded = time.monotonic()
            if w == "raw":
                with contextlib.suppress(TimeoutError):  # (a Refresh fires after load)
                    proxy.wait_for_hosts({f"{name}.raw.partner.example"}, timeout=3)
                lag = time.monotonic() - loaded
            elif lag > 0.01:
                page.wait_for_timeout(lag * 1000 + 50)
    proxy.wait_quiet(0.4)
    hosts = {r.host.rstrip(".") for r in proxy.requests}  # (a trailing dot is sent as written)
    return {name: {w for w in who if f"{name}.{w}.partner.example" in hosts} for name in names}


#: (rows, servers visited, the servers each page must reach the partner from)
GROUPS = {
    "closed": (CLOSED, ("raw", "off", "enforce"), {"raw"}),
    "covered": (COVERED, ("raw", "off"), {"raw"}),
    "nothing": (NOTHING, ("raw", "off"), set()),
}


@pytest.mark.parametrize("group", list(GROUPS))
def test_vectors_reach_the_partner_only_as_written(
        page: Page, recording_proxy: RecordingProxy, sites: dict[str, ServerProcess],
        group: str) -> None:
    """closed: leaked through the gate before this pass (the header ones with the CSP
    enforced too; the site's own style sheet with the CSP off); covered: blocked already.
    Every page reaches the partner as written (each vector is real)."""
    names, who, want = GROUPS[group]
    seen = reached(page, recording_proxy, sites, names, who)
    assert {name: sorted(w) for name, w in seen.items() if w != want} == {}


@pytest.mark.parametrize("context", [{"java_script_enabled": False}], indirect=True)
def test_noscript_vectors_without_scripts_reach_the_partner_only_as_written(
        page: Page, recording_proxy: RecordingProxy, sites: dict[str, ServerProcess]) -> None:
    seen = reached(page, recording_proxy, sites, NOSCRIPT, ("raw", "off"))
    assert {name: sorted(w) for name, w in seen.items() if w != {"raw"}} == {}


def test_speculation_rules_prefetch_a_partner_only_as_written(
        chromium: Browser, recording_proxy: RecordingProxy, tls_partner: TlsPartner,
        sites: dict[str, ServerProcess]) -> None:
    """An inline rule set listing a partner URL, or matching every link (selector_matches)
    with a partner link among them: Chromium 156 prefetched both, with the page as Referer,
    through the gate with the enforced CSP too (no CSP directive governs a prefetch, and our
    script-src allows the site's inline scripts). Chromium refuses a prefetch past a proxy,
    so this browser reaches the TLS partner directly. Now such a rule set is made inert
    whatever the consent; one whose rules stay on the site's origin is kept."""
    browser = chromium.browser_type.launch(
        executable_path=CHROMIUM_PATH, headless=True,
        args=[*BASE_FLAGS, recording_proxy.chromium_arg, *tls_partner.chromium_flags()])
    try:
        page = browser.new_context(ignore_https_errors=True).new_page()
        page.set_default_timeout(10_000)
        types = {}
        # Each rule set's page stays open while its prefetches may start: leaving it cancels
        # the candidates Chromium has not started yet (the raw control's selector_matches
        # prefetch was lost that way under load in CI). A gated page gets as long as the raw
        # control needed, at least 1 s.
        raw_took = 1.0
        for who in ("raw", "off", "enforce"):
            for name in ("spec-rules", "spec-local"):
                page.goto(f"{sites[who].url}/{who}/{name}", wait_until="load")
                types[who, name] = page.evaluate("document.querySelector('script').type")
                if name != "spec-rules":
                    continue
                if who == "raw":
                    started = time.monotonic()
                    with contextlib.suppress(TimeoutError):
                        while len(tls_partner.paths()) < 2 and time.monotonic() < started + 15:
                            page.wait_for_timeout(100)
                    raw_took = max(raw_took, time.monotonic() - started)
                else:
                    page.wait_for_timeout(int(raw_took * 1000))
        page.wait_for_timeout(1000)
    finally:
        browser.close()
    assert sorted(tls_partner.paths()) == ["/raw/doclink", "/raw/listed"]
    assert all(s.purpose == "prefetch" for s in tls_partner.seen)
    assert types == {("raw", "spec-rules"): "speculationrules",
                     ("raw", "spec-local"): "speculationrules",
                     ("off", "spec-rules"): "text/plain", ("off", "spec-local"): "speculationrules",
                     ("enforce", "spec-rules"): "text/plain",
                     ("enforce", "spec-local"): "speculationrules"}
    assert recording_proxy.requests == []


def test_every_vector_has_a_row() -> None:
    assert sorted(CLOSED + COVERED + NOSCRIPT + FOR_THE_CSP + NOTHING) == sorted([*MARKUP, *OTHER])
