"""Red-team round 2 (docs/rewriter.md): what a hostile tester tried next that no test covered,
at the rewriter's level (the Chromium rows are in tests/browser/test_redteam_vectors.py)."""

from __future__ import annotations

import pytest

from middleware.html.attrs import unescape
from middleware.rewrite import HtmlRewriter
from tests.test_rewrite import make_plan

PARTNER = b"https://pagead2.googlesyndication.com"


@pytest.mark.parametrize("tag", [
    b'<img src="&#' + b"9" * 5000 + b';">',
    b'<img src="&#x' + b"f" * 5000 + b';">',
    b'<div style="background:url(&#' + b"1" * 5000 + b';)"></div>',
    b'<iframe srcdoc="&#' + b"7" * 5000 + b';"></iframe>',
])
def test_a_reference_of_thousands_of_digits_is_read_not_raised(tag: bytes) -> None:
    """html.unescape raised ValueError on more than 4300 digits (int()'s limit): the page went
    out unrewritten behind the no-partner CSP. Now the tag is read, and the partner tag after
    it is neutralised as usual."""
    rewriter = HtmlRewriter(make_plan())
    out = rewriter.feed(tag + b'<img src="' + PARTNER + b'/x.gif">') + rewriter.finish()
    assert out.startswith(tag) and b'data-consent-src="' + PARTNER in out


def test_a_padded_reference_still_decodes() -> None:
    """Leading zeros change nothing (the browser reads &#000…0104; as 'h'); past U+10FFFF is
    U+FFFD, as html.unescape reads a short one."""
    assert unescape("&#" + "0" * 6000 + "104;ttp") == "http"
    assert unescape("&#x" + "0" * 6000 + "68;") == "h"
    assert unescape("&#" + "9" * 6000 + ";") == "\ufffd" == unescape("&#99999999;")
    assert unescape("a&amp;b&#38;c") == "a&b&c"
    rewriter = HtmlRewriter(make_plan())
    doc = b'<img src="&#' + b"0" * 5000 + b'104;ttps://pagead2.googlesyndication.com/y.gif">'
    out = rewriter.feed(doc) + rewriter.finish()
    assert b"data-consent-src=" in out


RULES = (b'<script type="speculationrules">{"prefetch":[{"source":"list","urls":["/next"]}]}'
         b"</script>")


@pytest.mark.parametrize(("before", "kept"), [
    (b"", True),
    (b'<a href="https://other.example/">x</a>', True),  # a link is the visitor's navigation
    (b'<base href="https://other.example/">', False),
    (b'<base href="//other.example/">', False),
    (b'<img src="https://cdn.example/x.png">', False),  # (over-inclusive: any other host)
    (b'<base href="/sub/">', True),
])
def test_relative_rules_after_another_host_are_inert(before: bytes, kept: bool) -> None:
    """Relative rules resolve against the document's base: under a <base href> on another
    origin Chromium 156 prefetched them there (tests/browser/test_redteam_speculation.py).
    Any unknown host named before the rule set makes it inert, on every chunking."""
    from tests.test_rewrite import rewrite

    out, _, _ = rewrite(b"<!DOCTYPE html><head>" + before + b"</head><body>" + RULES, make_plan())
    assert (b'data-consent-speculation=""' not in out) == kept
