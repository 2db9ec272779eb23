"""Red-team round 4 (docs/rewriter.md), at the rewriter's level: an import map that maps a
module to a partner. The Chromium rows are in tests/browser/test_redteam_round4.py: as
written, and through the gate with the CSP off or report-only, ``<script type=importmap>``
``{"imports":{"lib":"http://partner/…"}}`` plus ``import "lib"`` fetched the partner (the
module fetch is the CSP's only when it is enforced)."""

from __future__ import annotations

import pytest

from middleware.html.fetch import import_map_urls
from middleware.rewrite import HtmlRewriter

from .test_rewrite import ALLOWED, BLOCKED, rewrite

_OFF = b'<script type="text/plain" data-consent-importmap=""'
AD = "https://pagead2.googlesyndication.com/lib.js"

#: Maps that name a partner (inert without consent, kept and enabled with it).
PARTNER_MAPS = [
    b'{"imports":{"lib":"' + AD.encode() + b'"}}',
    b'{"scopes":{"/app/":{"lib":"//ad.doubleclick.net/m.js"}}}',
    b'{"imports":{"lib":"https:\\/\\/pagead2.googlesyndication.com\\/x.js"}}',  # JSON escapes
    b'{"imports":{"lib":"\\u0068ttps://pagead2.googlesyndication\\u002ecom/x.js"}}',
    b'{"imports":{"a":"/own.js","b":"HTTPS://AD.DOUBLECLICK.NET/b.js"}}',
    b' \n{"imports":{"lib/":"https://pagead2.googlesyndication.com/lib/"}}\t',
]


@pytest.mark.parametrize("spelling", [b'type="importmap"', b"type=ImportMap", b'type=" importmap\n"',
                                      b'type="&#x69;mportmap"', b'type="import&#109;ap" async'])
@pytest.mark.parametrize("text", PARTNER_MAPS)
def test_an_import_map_to_a_refused_partner_is_inert(spelling: bytes, text: bytes) -> None:
    doc = b"<head><script " + spelling + b">" + text + b"</script></head><p>x"
    out, enabled, _ = rewrite(doc, BLOCKED)
    assert out == doc.replace(b"<script", _OFF, 1) and enabled == frozenset()
    rw = HtmlRewriter(BLOCKED)
    rw.feed(doc)
    rw.finish()
    assert rw.blocked == {"ads"}


@pytest.mark.parametrize("text", PARTNER_MAPS)
def test_an_import_map_to_an_allowed_partner_is_kept_and_enabled(text: bytes) -> None:
    doc = b"<script type=importmap>" + text + b"</script><p>x"
    out, enabled, _ = rewrite(doc, ALLOWED)
    assert out == doc and enabled == frozenset({"ads"})


@pytest.mark.parametrize("text", [
    b'{"imports":{"lib":"/own/lib.js","cdn":"https://cdn.example/x.js"}}',
    b'{"imports":{"' + AD.encode() + b'":"/own/shim.js"}}',  # a partner URL mapped away: a key
    b'not json {"imports":{"lib":"' + AD.encode() + b'"}',  # (Chromium registers no map)
    b"",
])
def test_an_import_map_naming_no_partner_target_is_kept(text: bytes) -> None:
    doc = b"<script type=importmap>" + text + b"</script>"
    out, enabled, unknown = rewrite(doc, BLOCKED)
    assert out == doc and enabled == frozenset()
    assert ("cdn.example" in unknown) == (b"cdn.example" in text)


@pytest.mark.parametrize("text", [
    b'{"imports":{"lib":"/a.js<!--"}}',  # script data escapes: the script may end elsewhere
    b'{"imports":{"lib":"\xff"}}',  # not UTF-8
    b"[" * 100_000 + b"]" * 100_000,  # deeper than Python's json reads
])
def test_an_unreadable_import_map_is_inert(text: bytes) -> None:
    rw = HtmlRewriter(BLOCKED)
    out = rw.feed(b"<script type=importmap>" + text + b"</script>") + rw.finish()
    assert out.startswith(_OFF) and rw.blocked == {"unreadable"}
    assert import_map_urls(text) is None


def test_import_map_urls_reads_every_string_value() -> None:
    assert sorted(import_map_urls(b'{"imports":{"a":"/a","b":"x"},"scopes":{"/s/":{"c":"y"}},'
                                  b'"integrity":{"/a":"sha384-z"}}') or []) == ["/a", "sha384-z", "x", "y"]
    assert import_map_urls(b"{") == []


def test_a_deep_speculation_rule_set_is_inert_not_raised() -> None:
    """json.loads raised RecursionError (not a ValueError) on a deeply nested rule set: the
    rewriter failed on the page. Now it is unreadable: inert."""
    rw = HtmlRewriter(BLOCKED)
    out = rw.feed(b"<script type=speculationrules>" + b"[" * 100_000 + b"</script>") + rw.finish()
    assert out.startswith(b'<script type="text/plain" data-consent-speculation=""')
