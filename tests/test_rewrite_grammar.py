"""Two facts of the grammar the tokenizer relies on (``middleware/html/grammar.py``), which
its "cannot happen" branches stand for:

* a tag the exact tag regex (``_TAG_RE``) does not complete is not completed by the tag-tail
  states (``_tag_tail``, followed past ``max_tag``) either, and where both complete it they
  end at the same byte: an oversized tag is read as a short one would be;
* every place the skip (``_SKIP_RE``, and the C ``skip_end``) stops is classified by
  ``_DATA_RE``: no stop is taken for text.
"""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.html import native
from middleware.html.attrs import _name_end
from middleware.html.grammar import _DATA_RE, _SKIP_RE, _T_BEFORE, _TAG_RE, _tag_tail
from tests.support.budget import examples

# Every byte class the attribute states tell apart, plus a '<' and a second letter.
TAG_BYTES = [b"a", b" ", b"\t", b"=", b'"', b"'", b"/", b">", b"<", b"x"]
# Pieces of markup the skip treats differently.
PIECES = [b"<", b"</", b"<!", b"<!--", b"-->", b"<?", b"</>", b"</ x>", b"<a", b"<p ", b"<svg",
          b"<svg/>", b"<math", b"<img src=//x>", b"<img src=/a.png>", b"<script", b"<style",
          b"<noscript>", b"</noscript ", b"</body>", b"<body>", b"<b style=(>", b"<br/>",
          b"<div title='<!--'>", b"<a b=x\"y c=\"z>", b"<iframe", b">", b" ", b"x", b"'", b'"',
          b"=", b"/", b"\x00", b"\xe9", b"<IMG SRC=HTTPS://X>", b"<data-consent>",
          b"<img data-consent=ads>", b"<link rel=icon href=//x>"]


def tag_agrees(body: bytes) -> bool:
    buf = b"<a" + body
    t = _TAG_RE.match(buf, 0)
    pos, _, ended = _tag_tail(buf, _name_end(buf, 1), _T_BEFORE)
    return (t is not None) == ended and (t is None or t.end() == pos)


def test_grammar_tag_tail_agrees_with_tag_regex_on_every_short_tag() -> None:
    for size in range(6):
        for body in itertools.product(TAG_BYTES, repeat=size):
            assert tag_agrees(b"".join(body)), body


@settings(max_examples=examples(3000), deadline=None)
@given(st.lists(st.sampled_from(TAG_BYTES), min_size=6, max_size=24))
def test_grammar_tag_tail_agrees_with_tag_regex_on_long_tags(body: list[bytes]) -> None:
    assert tag_agrees(b"".join(body))


@settings(max_examples=examples(2000), deadline=None)
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=10))
def test_grammar_every_skip_stop_is_classified(pieces: list[bytes]) -> None:
    raw = b"".join(pieces)
    low = raw.lower()
    pos = 0
    while True:
        m = _SKIP_RE.match(low, pos)
        assert m is not None  # the regex always matches (possessive *+)
        stop = m.end()
        if native.skip_end is not None:
            assert native.skip_end(low, pos) == stop
        if stop >= len(low):
            break
        assert _DATA_RE.match(raw, stop) is not None, (raw, stop)
        pos = stop + 1
