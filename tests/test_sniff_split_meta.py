"""A <meta> declaring ISO-2022-JP with its padding (leading zeros of a character reference,
whitespace, references to whitespace) longer than the 512 bytes sniff.py used to read after
each <meta>, and cut by a chunk boundary anywhere: the responder's reading (each piece with
``charset_tail`` of the last) finds it on every chunking, as the one-body reading does.
Before round 2 a reference padded with 600 zeros, or 600 spaces before ``&#99;harset``, hid
the declaration even in one body, and Chromium 156 honoured both (test_redteam_vectors.py
meta-zeros, meta-spaces): the ESC $ B comment trick then reached the partner."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.sniff import CHARSET_TAIL, charset_tail, declares_iso2022jp
from tests.asgi_helpers import enforced_no_partner, html_app, http_scope, make_gate, run
from tests.support.budget import examples

_LETTERS = {"c": [b"c", b"C", b"&#99;", b"&#x63;", b"&#0000000099;", b"&#X0000063;"],
            "h": [b"h", b"&#104;", b"&#x68;"], "a": [b"a", b"&#97;"], "r": [b"r", b"&#114;"],
            "s": [b"s", b"&#115;"], "e": [b"e", b"&#101;"], "t": [b"t", b"&#116;"]}
_PADDING = [b" ", b"\t", b"\n", b"&Tab;", b"&NewLine;", b"&#32;", b"&#x20;", b"&#0000032;"]


@st.composite
def declarations(draw: st.DrawFn) -> bytes:
    """A <meta http-equiv=Content-Type> whose content names ISO-2022-JP, spelled with
    references and padded anywhere a declaration may be."""
    first = draw(st.sampled_from(_LETTERS["c"]))
    if draw(st.booleans()):  # a reference padded past any span
        first = b"&#" + b"0" * draw(st.integers(0, 2000)) + b"99;"
    word = first + b"".join(draw(st.sampled_from(_LETTERS[c])) for c in "harset")
    pad = [draw(st.sampled_from(_PADDING)) * draw(st.integers(0, 400)) for _ in range(3)]
    return (b'<meta http-equiv="Content-Type" content="text/html;' + pad[0] + word + pad[1]
            + b"=" + pad[2] + draw(st.sampled_from([b"iso-2022-jp", b"ISO-2022-JP", b"csISO2022JP",
                                                    b"iso&#45;2022-jp"])) + b'">')


def read_in_pieces(doc: bytes, cuts: list[int]) -> bool:
    """The responder's reading: each piece with the tail of the ones before."""
    tail, last = b"", 0
    for cut in [*sorted(set(cuts)), len(doc)]:
        window = tail + doc[last:cut]
        last = cut
        if declares_iso2022jp(window):
            return True
        tail = charset_tail(window)
        assert len(tail) <= CHARSET_TAIL
    return False


@settings(max_examples=examples(300), deadline=None)
@given(declarations(), st.binary(max_size=40).filter(lambda b: b"&" not in b and b"<" not in b),
       st.lists(st.integers(0, 6000), max_size=5))
def test_a_padded_declaration_is_found_on_every_chunking(meta: bytes, before: bytes,
                                                         cuts: list[int]) -> None:
    doc = b"<!DOCTYPE html><html><head>" + before + meta + b"</head><body><p>x</body>"
    assert declares_iso2022jp(doc)
    assert read_in_pieces(doc, [c for c in cuts if c <= len(doc)])


def test_every_cut_of_a_long_reference() -> None:
    meta = b'<meta http-equiv=Content-Type content="text/html; &#' + b"0" * 600 + b'99;harset=iso-2022-jp">'
    for cut in range(len(meta) + 1):
        assert read_in_pieces(meta, [cut]), cut
    spaces = b'<meta http-equiv=Content-Type content="text/html;' + b" " * 600 + b'&#99;harset = iso-2022-jp">'
    for cut in range(0, len(spaces) + 1, 7):
        assert read_in_pieces(spaces, [cut, cut + 300]), cut


def test_the_tail_changes_no_verdict() -> None:
    for window in (b"x" * 3000 + b"charset", b"charset" + b" " * 3000, b"&#" + b"0" * 5000,
                   b"utf-8 &amp; " * 400):
        assert declares_iso2022jp(charset_tail(window) + b"=iso-2022-jp") == (
            declares_iso2022jp(window + b"=iso-2022-jp"))


@pytest.mark.parametrize("cut", [20, 300, 640, 700])
def test_the_responder_serves_a_split_padded_declaration_unrewritten(tmp_path: Path, cut: int) -> None:
    """Streamed with the cut inside the padding: out as sent behind the enforced no-partner
    CSP (the page is read as ISO-2022-JP by the browser, not by the rewriter)."""
    doc = (b"<!DOCTYPE html><html><head>"
           b'<meta http-equiv=Content-Type content="text/html; &#' + b"0" * 600 + b'99;harset=iso-2022-jp">'
           b"</head><body>\x1b$B<!--\x1b(B<img src=https://pagead2.googlesyndication.com/x.gif>"
           b"\x1b$B-->\x1b(B</body></html>")
    gate = make_gate(html_app([doc[:cut], doc[cut:]], headers=[(b"content-type", b"text/html")]), tmp_path)
    out = asyncio.run(run(gate, http_scope()))
    assert enforced_no_partner(out)
