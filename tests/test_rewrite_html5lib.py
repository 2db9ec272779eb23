"""Differential test against a spec-compliant parser (html5lib): for generated documents that
mix partner tags of every fetching kind with foreign content (SVG, MathML), raw-text elements
and decoys, fed in random chunks, html5lib's tree of the rewritten output

* with no consent holds no element or attribute that a browser would fetch from a partner host;
* with consent holds only partner fetches that ``take_enabled()`` reported (so the ledger has them).

Both readings of ``<noscript>`` are checked (html5lib with scripting on and off). Documents
avoid ``</p>`` and ``</br>`` in foreign content, where html5lib 1.1 predates the current spec.
``<select>`` is in: html5lib 1.1 reads it as browsers without the 2025 select parsing do (a
``<style>`` in it ignored, ``</select>`` then ends it), the reading the rewriter must also cover.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from middleware.rewrite import HtmlRewriter, RewritePlan
from tests.support.budget import examples

from .html5lib_oracle import MATCHER, PARTNERS, document_fetches


def placeholder(partner: str, attrs: Mapping[str, str]) -> bytes:
    return f'<div class="consent-placeholder" data-partner="{partner}"></div>'.encode()


def plan(allowed: frozenset[str]) -> RewritePlan:
    return RewritePlan(head_end=b"", body_start=b"", body_end=b"", injected_partners=frozenset(),
                       allowed_partners=allowed, granted_purposes=frozenset(), matcher=MATCHER,
                       placeholder=placeholder)


# --- the generator -----------------------------------------------------------------------------

URLS = ["https://ad.doubleclick.net/x", "//www.youtube.com/y", "https:&#x2F;&#x2F;connect.facebook.net/z",
        "HTTPS://WWW.YOUTUBE.COM/v", "/\t/ad.doubleclick.net/t", "https://www%2Eyoutube%2Ecom/p"]
PARTNER_TAGS = [
    '<script src="{u}"></script>', '<img src="{u}">', "<img srcset='/a.png 1x, {u} 2x'>",
    '<iframe src="{u}"></iframe>', '<embed src="{u}">', '<object data="{u}"></object>',
    '<video poster="{u}"></video>', '<audio src="{u}"></audio>', '<video><track src="{u}"></video>',
    '<input type=image src="{u}">', '<image src="{u}">', '<link rel=stylesheet href="{u}">',
    '<link rel=prefetch href="{u}">', '<meta http-equiv=refresh content="0;url={u}">',
    '<div style="background:url({u})">', '<p background="{u}">', '<a href=/ ping="{u}">x</a>',
    '<style>@import "{u}";</style>', '<svg><image href="{u}"/></svg>', '<image xlink:href="{u}"/>',
    '<use href="{u}"/>', '<feImage href="{u}"/>', '<script href="{u}"></script>',
    '<rect fill="url({u})"/>', '<iframe srcdoc="&lt;img src={u}&gt;"></iframe>',
    '<iframe src="data:text/html,%3Cimg%20src%3D{u}%3E"></iframe>', '<base href="{u}">',
    '<object codebase="{u}"></object>', '<table><tr><td background="{u}"></table>',
]
STRUCTURE = [
    "<svg>", "</svg>", "<math>", "</math>", "<foreignObject>", "</foreignObject>", "<desc>",
    "</desc>", "<title>", "</title>", "<mi>", "</mi>", "<mtext>", '<annotation-xml encoding="text/html">',
    "<annotation-xml>", "</annotation-xml>", "<g>", "</g>", "<g/>", "<style>", "</style>",
    "<script>", "</script>", "<textarea>", "</textarea>", "<xmp>", "</xmp>", "<noscript>",
    "</noscript>", "<plaintext>", "<iframe>", "</iframe>", "<noembed>", "</noembed>",
    "<noframes>", "</noframes>", "<p>", "<b>", "</b>", "<div>", "</div>", "<span>", "</span>",
    "<font color=red>", "<font>", "<br>", "<ul><li>", "<h1>", "<pre>", "<table>", "<img>",
    "<select>", "</select>", "<option>", "<input>",
]
DECOYS = ["<!--", "-->", "--!>", "<![CDATA[", "]]>", "<!x>", "<?pi>", '<div title="', '">', "'",
          '"', ">", "<", "</", "text ", "&lt;", "<!-->", "<script><!--<script>", "<style/>", "<svg/>",
          "<textarea/>"]

# Openings that put the tokenizer or the tree builder in a state that matters.
CONTEXTS = [
    "<svg><title>", "<svg><desc>", "<svg><foreignObject>", "<math><mi>", "<math><mtext>",
    "<math><annotation-xml encoding='text/html'>", "<math><annotation-xml><svg><title>",
    "<svg><style>", "<svg><textarea>", "<svg><script>", "<svg><plaintext>", "<math><plaintext>",
    "<svg><noscript>", "<svg><xmp>", "<svg><iframe>", "<noscript><plaintext></noscript>",
    "<style><!--</style>", "<svg><desc><style><!--</style>", "<svg><title><textarea>",
    "<svg><![CDATA[", "<svg><p>", "<svg><font color=red>", "<svg><font>", "<svg><b>",
    "<svg><g><title><div>", "<svg></svg><style>", "<svg><foreignObject><svg><style>",
    "<math><mi><style><!--</style>", "<div><svg></div><style><!--</style>",
    "<select><style>", "<select><xmp>", "<select><title>", "<select><noembed>",
    "<select><iframe>", "<select><textarea>", "<select><script>", "<select><svg><style>",
    "<noscript><select></noscript><style>",
]

token = st.one_of(
    st.builds(lambda t, u: t.format(u=u), st.sampled_from(PARTNER_TAGS), st.sampled_from(URLS)),
    st.sampled_from(STRUCTURE),
    st.sampled_from(CONTEXTS),
    st.sampled_from(DECOYS),
)
documents = st.lists(token, min_size=1, max_size=20).map("".join)


def _feed(doc: bytes, allowed: frozenset[str], cuts: list[int]) -> tuple[bytes, frozenset[str]]:
    rw = HtmlRewriter(plan(allowed))
    out: list[bytes] = []
    enabled: set[str] = set()
    prev = 0
    for cut in [*sorted(c % (len(doc) + 1) for c in cuts), len(doc)]:
        out.append(rw.feed(doc[prev:cut]))
        enabled |= rw.take_enabled()
        prev = cut
    out.append(rw.finish())
    enabled |= rw.take_enabled()
    return b"".join(out), frozenset(enabled)


SETTINGS = settings(max_examples=examples(700), deadline=None, suppress_health_check=[HealthCheck.too_slow])
cuts = st.lists(st.integers(min_value=0, max_value=4000), max_size=6)


@SETTINGS
@given(documents, cuts)
def test_html5lib_no_partner_fetch_survives_without_consent(doc: str, cuts: list[int]) -> None:
    out, enabled = _feed(doc.encode(), frozenset(), cuts)
    leaks = sorted(set(document_fetches(out.decode())))
    assert leaks == [], (doc, out)
    assert enabled == frozenset()


@SETTINGS
@given(documents, cuts)
def test_html5lib_every_consented_partner_fetch_is_reported(doc: str, cuts: list[int]) -> None:
    out, enabled = _feed(doc.encode(), frozenset(PARTNERS), cuts)
    seen = {pid for _, pid in document_fetches(out.decode())}
    assert seen <= enabled, (doc, seen - enabled)


#: Injections that would complete a tag cut at the end of the body (quotes, '>').
QUOTED = b'<a class="cg" href="#b" title=\'x\'>banner</a>'


def _quoted_plan(allowed: frozenset[str]) -> RewritePlan:
    return RewritePlan(head_end=QUOTED, body_start=QUOTED, body_end=QUOTED,
                       injected_partners=frozenset(), allowed_partners=allowed,
                       granted_purposes=frozenset(), matcher=MATCHER, placeholder=placeholder)


@SETTINGS
@given(documents, st.integers(min_value=0, max_value=4000), cuts)
def test_html5lib_no_partner_fetch_survives_in_any_prefix(doc: str, end: int,
                                                          cuts: list[int]) -> None:
    """A body that ends anywhere (a truncated br/zstd/gzip stream, a site that stops): the
    injections finish() appends come after the last byte; a tag cut there used to take the
    first quote and '>' of the banner as its own and fetch (<img src="https://partner/...)."""
    data = ("<!DOCTYPE html><html><head>" + doc).encode()
    data = data[:end % (len(data) + 1)]
    rw = HtmlRewriter(_quoted_plan(frozenset()))
    out = []
    prev = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        out.append(rw.feed(data[prev:cut]))
        prev = cut
    out.append(rw.finish())
    body = b"".join(out).decode("utf-8", "replace")
    assert sorted(set(document_fetches(body))) == [], (data, body)


@pytest.mark.parametrize("tail", [
    '<img src="https://ad.doubleclick.net/x', "<img src=https://ad.doubleclick.net/x",
    '<img alt="a" src=https://ad.doubleclick.net/x alt=', '<svg><image href="https://ad.doubleclick.net/x',
    '<div style="background:url(https://ad.doubleclick.net/x', '<a href=/ ping="https://ad.doubleclick.net/x',
    '<meta http-equiv=refresh content="0;url=https://ad.doubleclick.net/x'])
def test_a_tag_cut_by_the_end_of_the_body_is_dropped(tail: str) -> None:
    """The browser drops a tag that EOF cuts (eof-in-tag); the rewriter drops it too, so the
    injections after it are markup of their own."""
    head = b"<!DOCTYPE html><html><head><title>t</title></head><body><p>x</p>"
    rw = HtmlRewriter(_quoted_plan(frozenset()))
    out = rw.feed(head + tail.encode()) + rw.finish()
    kept = tail[:tail.rindex("<")].encode()  # (an <svg> before the cut tag stays)
    assert out.endswith(b"<p>x</p>" + kept + QUOTED) and out.count(QUOTED) == 3
    assert not list(document_fetches(out.decode()))


def test_an_oversized_tag_cut_by_the_end_gets_no_injection() -> None:
    """An oversized tag already went out inert; at the end inside it, nothing is appended
    (it would be read as its attributes)."""
    rw = HtmlRewriter(_quoted_plan(frozenset()), max_tag=64)
    tag = b'<img alt="' + b"a" * 100 + b'" src=https://ad.doubleclick.net/x'
    out = rw.feed(b"<html><body>" + tag) + rw.finish()
    assert out.endswith(b"https://ad.doubleclick.net/x")
    assert out.rindex(QUOTED) < out.index(b"a" * 100)  # (head and body injections before it)
    assert not list(document_fetches(out.decode()))


def test_html5lib_oracle_sees_the_vectors() -> None:
    # The oracle must see each generated vector as a fetch (else the tests above prove nothing).
    for tag in PARTNER_TAGS:
        doc = tag.format(u="https://ad.doubleclick.net/x")
        wrapped = f"<svg>{doc}</svg>" if tag.startswith(("<use", "<feImage", "<rect", "<image xlink")) else doc
        if tag.startswith("<script href"):
            wrapped = f"<svg>{doc}</svg>"
        assert {pid for _, pid in document_fetches(wrapped)} == {"ads"}, wrapped
    assert unquote_to_bytes("%3C") == b"<"


@pytest.mark.parametrize("raw", ["style", "xmp", "noembed", "iframe", "title", "noframes"])
@pytest.mark.parametrize("native_mode", [True, False])
def test_select_raw_text_element_hides_no_live_tag_from_either_tree_builder(
        raw: str, native_mode: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """<select><style></select><img partner></style>: to the 2025 select parsing (Chromium
    135+) the <img> is style text; to the earlier tree builder (html5lib 1.1, browsers without
    the new parsing) the <style> is ignored and the <img> is live. Until </select> the
    rewriter reads such elements both ways, so neither tree holds a live partner fetch."""
    from middleware.html import native

    if not native_mode:
        monkeypatch.setattr(native, "scan_end", None)
    url = "https://ad.doubleclick.net/s.gif"
    doc = (f"<!DOCTYPE html><html><head></head><body><select><option>a<{raw}></select>"
           f'<img src="{url}"></{raw}><p>after</p></body></html>').encode()
    out, _ = _feed(doc, frozenset(), [])
    assert not list(document_fetches(out.decode())), out
    assert b"<p>after</p>" in out
    # With consent the page is left as it was, and the partner is reported for the ledger.
    out, enabled = _feed(doc, frozenset({"ads"}), [])
    assert out == doc and "ads" in enabled
