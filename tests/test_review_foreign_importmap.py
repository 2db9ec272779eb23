"""An import map (or a speculation rule set) in an SVG ``<script>``: foreign content, where the
script's text is markup (character references decoded, ``<!--`` a comment), not the raw text
``tokenizer._speculation`` reads. Chromium 156 registers such a map and fetches ``import "lib"``
from the partner it names (tests/browser/test_redteam_round4.py, rows importmap-svg and
importmap-svg-ref); before this fix the rewriter sent it untouched in both modes. Now the
script is inert (``type="text/plain"`` first) whatever it maps, and counted unreadable."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from middleware.html.fetch import UNREADABLE
from middleware.rewrite import HtmlRewriter
from tests.support.budget import examples
from tests.test_rewrite import ALLOWED, BLOCKED, rewrite
from tests.test_rewrite_native import PARTNERS, check

AD = b"https://pagead2.googlesyndication.com/lib.js"
_MAP_OFF = b'<script type="text/plain" data-consent-importmap=""'
_RULES_OFF = b'<script type="text/plain" data-consent-speculation=""'

MAPS = [
    b'{"imports":{"lib":"' + AD + b'"}}',
    b'{"imports":{"lib":"https:&#x2F;&#x2F;pagead2.googlesyndication.com/lib.js"}}',
    b'{"imports":{"lib":"/own.js"}}',  # (not read: inert all the same)
    b"<!--x-->" + b'{"imports":{"lib":"' + AD + b'"}}',
]


@pytest.mark.parametrize("wrap", [b"<svg>%s</svg>", b"<svg><g>%s</g></svg>", b"<math>%s</math>"])
@pytest.mark.parametrize("spelling", [b'type="importmap"', b"type=ImportMap", b'type=" importmap\n"',
                                      b'type="&#x69;mportmap"', b"TYPE=importmap async"])
@pytest.mark.parametrize("text", MAPS)
@pytest.mark.parametrize("plan", [BLOCKED, ALLOWED], ids=["blocked", "allowed"])
def test_a_foreign_import_map_is_inert(wrap: bytes, spelling: bytes, text: bytes, plan: object) -> None:
    doc = b"<p>x" + wrap % (b"<script " + spelling + b">" + text + b"</script>") + b"<p>y"
    out, enabled, _ = rewrite(doc, plan)  # type: ignore[arg-type]
    assert out == doc.replace(b"<script", _MAP_OFF, 1) and enabled == frozenset()
    rw = HtmlRewriter(plan)  # type: ignore[arg-type]
    rw.feed(doc)
    rw.finish()
    assert UNREADABLE in rw.blocked


def test_a_foreign_rule_set_is_inert() -> None:
    doc = b'<svg><script type="speculationrules">{"prefetch":[{"urls":["' + AD + b'"]}]}</script></svg>'
    out, _, _ = rewrite(doc, BLOCKED)
    assert out == doc.replace(b"<script", _RULES_OFF, 1)


@pytest.mark.parametrize("doc", [
    b'<svg><script type="text/ecmascript">x()</script></svg>',
    b"<svg><script>x()</script></svg>",
    b'<svg><script type="module" data-x="importmap">x()</script></svg>',
    b'<svg><script type="text/javascript" type="importmap">x()</script></svg>',  # first type wins
    b'<svg><foreignObject><script type="importmap">{"imports":{"a":"/own.js"}}</script>'
    b"</foreignObject></svg>",  # (HTML content again: read as before)
])
def test_other_foreign_scripts_are_untouched(doc: bytes) -> None:
    out, _, _ = rewrite(doc, BLOCKED)
    assert out == doc


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([
    b'<svg><script type="importmap">{"imports":{"lib":"' + AD + b'"}}</script></svg>',
    b"<svg><script type=&#x69;mportmap>{}</script></svg>",
    b'<svg><script type="speculationrules">{}</script></svg>',
    b"<svg><script>a&amp;b</script></svg>", b"<math><script type=importmap></script></math>",
    b"<p>x</p>", b'<script type=importmap>{"imports":{"a":"//ad.doubleclick.net/m.js"}}</script>',
]), min_size=1, max_size=4).map(b"".join), st.lists(st.integers(0, 300), max_size=3),
       st.sampled_from([frozenset(), frozenset({"ads"}), frozenset(PARTNERS)]))
@example(b'<svg><script type="importmap">{}</script></svg>', [12], frozenset())
def test_native_pass_equals_pure_python_on_foreign_scripts(doc: bytes, cuts: list[int],
                                                           allowed: frozenset[str]) -> None:
    check(doc, cuts, allowed, False)
