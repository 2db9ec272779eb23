"""The red-team pass's fixes below the browser (tests/browser/test_redteam_vectors.py shows
each in Chromium): a passing body's fetching headers are gated, a blocked ``<svg><style>``
keeps no literal ``@import``, and a ``javascript:`` frame's text is read as its document.
Run in both modes (C built, CONSENT_GATE_PURE_PYTHON=1)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from middleware.gate.start import FETCHING_PASS, PASSES, start_kind, start_kind_py
from tests.asgi_helpers import cookie_for, html_app, http_scope, make_gate, run

from .test_rewrite import ALLOWED, BLOCKED, rewrite

AD = b"https://ad.doubleclick.net"

#: (Content-Type, status) of bodies that pass untouched: JSON, a file, a sniffed text, 204.
PASSING = [(b"application/json", 200), (b"text/plain", 200), (b"image/gif", 200),
           (None, 200), (b"text/css", 404), (b"application/json", 204)]
#: Each header names the partner; (header, value) and what must be left of it.
FETCHING = [
    (b"link", b"<" + AD + b"/f.woff2>; rel=preload; as=font, </own.css>; rel=preload; as=style",
     b"</own.css>; rel=preload; as=style"),
    (b"link", b"<" + AD + b">; rel=preconnect", None),
    (b"refresh", b"0;url=" + AD + b"/r", None),
    (b"speculation-rules", b'"' + AD + b'/rules.json"', None),
    (b"reporting-endpoints", b'default="' + AD + b'/r"', None),
    (b"content-security-policy", b"default-src 'none'; report-uri " + AD + b"/csp",
     b"default-src 'none'"),
]


@pytest.mark.parametrize(("content_type", "status"), PASSING)
@pytest.mark.parametrize(("name", "value", "left"), FETCHING)
@pytest.mark.parametrize("consented", [False, True], ids=["no-consent", "consent"])
def test_a_passing_body_loses_the_fetching_headers_that_name_a_partner(
        tmp_path: Path, content_type: bytes | None, status: int, name: bytes, value: bytes,
        left: bytes | None, consented: bool) -> None:
    """Chromium acts on Link, Refresh and Speculation-Rules of any document it shows (a
    text/plain, JSON or image response opened as a page): those headers went out untouched
    with the body, so the partner was contacted with the CSP enforced too. Now gated like a
    page's (even a consented partner's Link: no record precedes it)."""
    headers = [(name, value), (b"x-other", b"kept")]
    if content_type is not None:
        headers.insert(0, (b"content-type", content_type))
    body = b"" if status == 204 else b"plain text, not a page"
    gate = make_gate(html_app([body], status=status, headers=headers), tmp_path)
    cookie = cookie_for(gate, {"ads"}) if consented else None
    out = asyncio.run(run(gate, http_scope("/api", cookie=cookie)))
    assert out.start["status"] == status
    assert out.header(name) == ([] if left is None else [left])
    assert out.header(b"x-other") == [b"kept"]
    assert out.body == body


def test_a_passing_body_without_fetching_headers_keeps_the_fast_answer() -> None:
    plain = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    assert start_kind(plain) is PASSES and start_kind_py(plain) is PASSES
    for name in (b"link", b"refresh", b"content-security-policy", b"report-to"):
        fetching = [*plain, (name, b"x")]
        assert start_kind(fetching) is FETCHING_PASS and start_kind_py(fetching) is FETCHING_PASS
        assert FETCHING_PASS == PASSES  # the same kind and cookie answer, gated headers
    html = [(b"content-type", b"text/html"), (b"link", b"x")]
    assert start_kind(html) is start_kind_py(html) is not FETCHING_PASS


SVG_STYLES = [
    (b'<svg><style>@import "' + AD + b'/a.css";</style></svg>',
     b'<svg><style type="text/plain" data-consent-partner="ads">@-consent-blocked-import "'
     + AD + b'/a.css";</style></svg>'),
    (b"<svg><g><style>@IMPORT url(" + AD + b"/b.css); a{} @import 'x.css'</style></g></svg>",
     b'<svg><g><style type="text/plain" data-consent-partner="ads">@-consent-blocked-import url('
     + AD + b"/b.css); a{} @-consent-blocked-import 'x.css'</style></g></svg>"),
    # From the text's first '<' on it is markup (read tag by tag): left as the known limit
    # (Chromium 156 did not fetch it through the gate: type="text/plain").
    (b'<math><mi><svg><style>@import "' + AD + b'/c.css";<g/>@import "/d.css"</style></svg></mi></math>',
     b'<math><mi><svg><style type="text/plain" data-consent-partner="ads">@-consent-blocked-import "'
     + AD + b'/c.css";<g/>@import "/d.css"</style></svg></mi></math>'),
]


@pytest.mark.parametrize(("doc", "expected"), SVG_STYLES)
def test_a_blocked_svg_style_keeps_no_literal_import(doc: bytes, expected: bytes) -> None:
    """Chromium's preload scanner fetched the @import of a blocked <svg><style> (type=
    "text/plain" stops the sheet, not the scanner): respelled as in an HTML <style>."""
    out, enabled, _ = rewrite(doc, BLOCKED)
    assert out == expected and enabled == frozenset()
    out, enabled, _ = rewrite(doc, ALLOWED)
    assert out == doc and "ads" in enabled


#: javascript: URLs of frames whose script names the partner (its returned string is the
#: frame's document): case, tabs and percent-encoding as the browser reads them.
JS_FRAMES = [
    b"<iframe src=\"javascript:'<img src=" + AD + b"/x>'\"></iframe>",
    b"<iframe src=\"javascript:'<meta http-equiv=refresh content=0;url=" + AD + b"/r>'\"></iframe>",
    b"<iframe src=\" Java&Tab;Script:%27%3Cimg%20src%3D//ad.doubleclick.net/x%3E%27\"></iframe>",
    b"<frameset><frame src='javascript:document.write(\"<script src=//ad.doubleclick.net/a.js></\"+\"script>\")'>",
    b"<embed src=\"javascript:'<img src=//ad.doubleclick.net/x>'\">",
]


@pytest.mark.parametrize("doc", JS_FRAMES)
def test_a_javascript_frame_naming_a_partner_is_its(doc: bytes) -> None:
    """Chromium 156 made the document of <iframe src="javascript:'<img src=partner>'"> (and
    followed a refresh in it) with the CSP off: blocked without consent, kept and reported
    with it."""
    out, enabled, _ = rewrite(doc, BLOCKED)
    assert enabled == frozenset()
    assert b'data-consent-partner="ads"' in out or out.startswith(b"[ads|")  # placeholder
    out, enabled, _ = rewrite(doc, ALLOWED)
    assert out == doc and "ads" in enabled


@pytest.mark.parametrize("doc", [b"<iframe src=javascript:false></iframe>",
                                 b"<iframe src=\"javascript:''\"></iframe>",
                                 b"<iframe src=\"javascript:parent.draw(1)\"></iframe>",
                                 b'<a href="javascript:go(\'//ad.doubleclick.net/x\')">x</a>'])
def test_a_javascript_url_that_names_no_partner_or_is_a_link_is_left_alone(doc: bytes) -> None:
    out, enabled, _ = rewrite(doc, BLOCKED)
    assert out == doc and enabled == frozenset()


_OFF = b'<script type="text/plain" data-consent-speculation=""'
#: Rule sets that may reach another origin (made inert whatever the consent) ...
SPECULATION_OUT = [
    b'{"prefetch":[{"source":"list","urls":["https://www.youtube.com/x"]}]}',
    b'{"prerender":[{"source":"list","urls":["//own.example.org/x"]}]}',
    b'{"prefetch":[{"where":{"selector_matches":"a"},"eagerness":"immediate"}]}',
    b'{"prefetch":[{"source":"document"}]}',
    b'{"prefetch":[{"where":{"not":{"href_matches":"/logout"}}}]}',
    b'{"prefetch":[{"where":{"or":[{"href_matches":"/*"},{"selector_matches":"a"}]}}]}',
    b'{"prefetch":[{"where":{"href_matches":"https://*:*/*"}}]}',
    b'{"prefetch":[{"where":{"href_matches":{"hostname":"x.example"}}}]}',
    b'{"prefetch":[{"source":"list","urls":["\\/\\/x.example/"]}]}',
    b'{"prefetch":[{"source":"list","urls":["/a"],"unknown":1}]}',
    b'{"prefetch":[{"source":"list","urls":["/a<!--"]}]}',
    b"not json",
]
#: ... and rule sets that stay on the page's own origin (kept).
SPECULATION_KEPT = [
    b'{"prefetch":[{"source":"list","urls":["/next","page2?x=1"]}]}',
    b'{"prefetch":[{"where":{"href_matches":"/*"},"eagerness":"moderate"}]}',
    b'{"prerender":[{"where":{"and":[{"href_matches":"/*"},{"not":{"selector_matches":".no"}}]}}]}',
    b'{"prefetch":[{"where":{"or":[{"href_matches":["/a/*","/b/*"]},{"href_matches":"/c"}]}}],"tag":"t"}',
]


@pytest.mark.parametrize("rules", SPECULATION_OUT)
@pytest.mark.parametrize("spelling", [b'type="speculationrules"', b"type=SpeculationRules",
                                      b'type=" speculationrules\t"', b'type="&#x73;peculationrules"'])
def test_a_speculation_rule_set_that_may_leave_the_origin_is_inert(rules: bytes,
                                                                   spelling: bytes) -> None:
    """Chromium 156 prefetched a listed partner URL and a partner link matched by
    selector_matches through the gate with the enforced CSP (test_redteam_vectors.py): no
    CSP directive governs a prefetch. Inert whatever the consent (no record would precede
    those contacts, and they may go to hosts no partner declares)."""
    doc = b"<head><script " + spelling + b">" + rules + b"</script></head><p>x"
    for plan in (BLOCKED, ALLOWED):
        out, enabled, _ = rewrite(doc, plan)
        assert out == doc.replace(b"<script", _OFF, 1) and enabled == frozenset()


@pytest.mark.parametrize("rules", SPECULATION_KEPT)
def test_a_speculation_rule_set_on_the_own_origin_is_kept(rules: bytes) -> None:
    doc = b"<script type=speculationrules>" + rules + b"</script><script>var u='https://www.youtube.com/'</script>"
    out, _, _ = rewrite(doc, BLOCKED)
    assert out == doc
