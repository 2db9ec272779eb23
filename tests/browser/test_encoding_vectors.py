"""Measured in Chromium 156 through the recording proxy: bodies the byte-level rewriter cannot
read as sent (br, zstd, gzip inside br, two Content-Encoding headers, a coding no browser
knows, XHTML/SVG in UTF-16 or ISO-2022-JP by header, BOM, declaration or first bytes, a
UTF-32 label, a compressed body without a type, an XHTML internal entity that spells the name
with a character reference, an HTML page whose XML declaration names ISO-2022-JP, an XSLT
transform that builds the name, deflate without its zlib header, gzip/deflate/br/zstd streams
cut inside the SVG image's href), each with a meta refresh,
an <img> and an SVG <image href> to the partner. Served as written, Chromium (Accept-Encoding "gzip, deflate,
br, zstd") fetches all three; through the gate before gate/encodings.py, the enforced
no-partner CSP stopped the img and the SVG image but every one of these pages followed its
meta refresh to the partner (a navigation: no CSP directive governs it). Through the gate now,
the partner receives nothing, and the gated page is still the document (its root element,
its title: read and gated, not ended; raw deflate was ended before the gate read it as
Chromium does). Chromium renders what a truncated stream decoded to (the refresh and img
before the cut were fetched, the cut SVG image dropped); through the gate the cut tag used to
be completed by the banner appended after it (its quote and '>'), and fetched."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.encoding_site import BODIES, XML_CSS_CODECS, H
from tests.browser.tabs import TabVisit, visit_in_tabs
from tests.browser.vector_sites import raw_and_gated
from tests.support.servers import ServerProcess

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import BrowserContext, Page

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser



def _vectors(name: str) -> set[str]:
    """The vectors a page holds (a standalone SVG has no <img>; the XSLT refresh is named
    after its sheet, which xslt-doc applies)."""
    if name in ("xsl-sheet", "xslt-doc"):
        return {"refresh"} if name == "xsl-sheet" else set()
    if name.endswith("-cut"):
        return {"refresh", "img"}  # the stream ends inside the SVG image's href
    return {"refresh", "svgimg"} if name.startswith("svg") else {"refresh", "img", "svgimg"}


#: The gated document's root element is html or svg; the sheet itself and the XML document
#: whose <?xml-stylesheet?> the gate renamed are shown by Chromium's XML viewer (an HTML page).
ROOTS: dict[str, str] = {"xsl-sheet": "html", "xslt-doc": "html"}


def test_unread_bodies_reach_the_partner_only_as_written(
        context: BrowserContext, page: Page, recording_proxy: RecordingProxy,
        tmp_path: Path) -> None:
    roots: dict[str, str] = {}
    titles: dict[str, str] = {}

    def reached(who: str) -> set[tuple[str, str]]:
        return {(p[2], p[3]) for p in (r.path.split("/") for r in recording_proxy.requests
                                       if r.host == H) if len(p) > 3 and p[1] == who}

    def fetched_as_written(name: str) -> Callable[[], bool] | None:
        """Whether the raw page's own fetches all reached the partner (None: it makes none
        of its own; the XSLT document's refresh is named after the sheet it applies)."""
        own = {("xsl-sheet", "refresh")} if name == "xslt-doc" else (
            set() if name == "xsl-sheet" else {(name, v) for v in _vectors(name)})
        return (lambda: own <= reached("raw")) if own else None

    def read_gated(name: str) -> Callable[[Page], None]:
        def read(tab: Page) -> None:
            roots[name] = tab.evaluate("document.documentElement.localName")
            titles[name] = tab.title()
        return read

    # report-only: a rewritten page (br, zstd, ...) must be clean without the CSP's help; an
    # unreadable document gets the enforced no-partner CSP whatever the mode.
    with raw_and_gated("tests.browser.encoding_site", tmp_path, csp="report-only") as (raw, gated):
        visits = []
        for name in BODIES:
            # As written: open until its vectors reached the partner (at most 5 s). Through
            # the gate: watched 1.3 s after its load, past the refresh's 1 s (as every page
            # was when they were visited one by one).
            until = fetched_as_written(name)
            visits.append(TabVisit(f"{raw.url}/raw/{name}", hold=1.3 if until is None else 5.0,
                                   until=until))
            visits.append(TabVisit(f"{gated.url}/gated/{name}", hold=1.3,
                                   on_load=read_gated(name)))
        visit_in_tabs(context, visits)
        ae = page.goto(f"{raw.url}/ae/raw").text()
        recording_proxy.wait_quiet(1.0)
    assert ae == '"gzip, deflate, br, zstd"'
    seen: dict[tuple[str, str], set[str]] = {}
    for r in recording_proxy.requests:
        p = r.path.split("/")
        if r.host == H and len(p) > 3:
            seen.setdefault((p[1], p[2]), set()).add(p[3])
    assert {name: sorted(v) for (who, name), v in seen.items() if who == "gated"} == {}
    missing = {name: sorted(_vectors(name) - seen.get(("raw", name), set())) for name in BODIES}
    assert {k: v for k, v in missing.items() if v} == {}, "each vector reaches it as written"
    assert roots == {name: ROOTS.get(name, "svg" if name.startswith("svg") else "html")
                     for name in BODIES}
    # Read and gated, not ended (an ended body is an empty page): each title is there; but
    # a br window over 8 MB is refused (gate/encodings.py BR_WINDOW_BITS_MAX).
    assert titles == {name: "" if name.startswith("svg") or name in ("xslt-doc", "html-br-lgwin24")
                      else "enc" for name in BODIES}


@pytest.fixture(scope="module")
def enforced_sites(tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """The raw and the gated site (CSP enforced), one pair for the module: each test's
    pages have their own names, and the proxy's records are cleared before each test."""
    with raw_and_gated("tests.browser.encoding_site", tmp_path_factory.mktemp("enc-enforce"),
                       csp="enforce") as sites:
        yield sites


@pytest.mark.parametrize("name", list(XML_CSS_CODECS))
def test_xml_document_keeps_its_own_stylesheet_not_the_partners(
        page: Page, recording_proxy: RecordingProxy,
        enforced_sites: tuple[ServerProcess, ServerProcess], name: str) -> None:
    """Chromium 156 applies both CSS <?xml-stylesheet?> of an XML document as written (the
    partner's sheet fetched); through the gate the own one still applies and the partner's
    instruction is renamed (every one was before: the page lost its own style), in UTF-8 and
    in UTF-16 either byte order (where every one stayed renamed until the wide judge)."""
    colors = {}
    raw, gated = enforced_sites
    for who, server in (("raw", raw), ("gated", gated)):
        page.goto(f"{server.url}/{who}/{name}", wait_until="load")
        colors[who] = page.evaluate(
            "getComputedStyle(document.documentElement.firstElementChild).color")
    recording_proxy.wait_quiet(0.5)
    fetched = {r.path for r in recording_proxy.requests if r.host == H}
    assert colors == {"raw": "rgb(1, 2, 3)", "gated": "rgb(1, 2, 3)"}
    assert fetched == {f"/raw/{name}/css"}
