"""An import map (or a speculation rule set) whose text is not ASCII: the rewriter read it as
UTF-8, the browser in the page's encoding. In Shift_JIS (and Big5, GBK) a byte of 0x80 or more
takes the next byte as its trail, a ``\\`` included: ``"\\xc3\\x83\\", "lib":"http://partner/…"``
is a string with an escaped quote to UTF-8 (then not JSON: the map was kept, "Chromium
registers none"), and to Shift_JIS ``"ﾃソ"`` followed by a mapping to the partner, which
Chromium 156 fetched (found by review: a raw Shift_JIS page with that map fetched its
``import "lib"`` from the other origin). Now such a text is unreadable: inert."""

from __future__ import annotations

import json

import pytest

from middleware.html.fetch import UNREADABLE, import_map_urls, speculation_rules_local
from middleware.rewrite import HtmlRewriter
from tests.test_rewrite import BLOCKED, rewrite

AD = b"https://pagead2.googlesyndication.com/lib.js"
MAP = b'{"imports":{"a":"\xc3\x83\\", "lib":"' + AD + b'", "b":"x"}}'
RULES = b'{"prefetch":[{"urls":["/a\xc3\x83\\", "' + AD + b'", "x"]}]}'


def test_the_two_readings_differ() -> None:
    """The vector: UTF-8 reads no JSON, Shift_JIS a map to the partner."""
    with pytest.raises(ValueError):
        json.loads(MAP.decode("utf-8"))
    assert json.loads(MAP.decode("shift_jis"))["imports"]["lib"] == AD.decode()
    assert json.loads(RULES.decode("shift_jis"))["prefetch"][0]["urls"][1] == AD.decode()


@pytest.mark.parametrize("charset", [b"shift_jis", b"big5", b"gbk", b"utf-8"])
def test_a_multibyte_import_map_is_inert(charset: bytes) -> None:
    doc = (b'<meta charset="' + charset + b'"><script type="importmap">' + MAP
           + b'</script><script type="module">import "lib"</script>')
    out, enabled, _ = rewrite(doc, BLOCKED)
    assert out == doc.replace(b'<script type="importmap"',
                              b'<script type="text/plain" data-consent-importmap="" type="importmap"')
    rw = HtmlRewriter(BLOCKED)
    rw.feed(doc)
    rw.finish()
    assert UNREADABLE in rw.blocked and enabled == frozenset()


def test_a_multibyte_rule_set_is_not_local() -> None:
    assert import_map_urls(MAP) is None
    assert speculation_rules_local(RULES) is False
    assert speculation_rules_local(b'{"prefetch":[{"urls":["/a"]}]}') is True
    doc = b'<script type="speculationrules">' + RULES + b"</script>"
    out, _, _ = rewrite(doc, BLOCKED)
    assert out.startswith(b'<script type="text/plain" data-consent-speculation=""')


def test_an_ascii_map_is_still_read() -> None:
    assert import_map_urls(b'{"imports":{"a":"/own.js","b":"\\u00e9"}}') == ["\u00e9", "/own.js"]
