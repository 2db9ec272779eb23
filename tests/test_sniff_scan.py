"""``sniff.declares_iso2022jp`` finds its candidates with ``bytes.find`` in a lowercased copy
instead of searching case-blind regexes over the whole body (every body of a page without a
header label passes there). Its verdicts must be exactly those of the case-blind ``finditer``
scan it replaced, kept here as the reference."""

from __future__ import annotations

import html
import itertools
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.sniff import XML_DECL_MAX, declares_iso2022jp

from .support.budget import examples

_META_CHARSET = re.compile(rb"(?i)charset[\t\n\x0c\r ]*+=[\t\n\x0c\r ]*+[\"']?+"
                           rb"[\t\n\x0c\r ]*+([^\"'>\t\n\x0c\r ]{1,64})")
_XML_ENCODING = re.compile(rb"(?i)<\?xml[^<>]*?encoding[\t\n\x0c\r ]*+=[\t\n\x0c\r ]*+[\"']?+"
                           rb"[\t\n\x0c\r ]*+([^\"'>?\t\n\x0c\r ]{1,64})")
_NAMES = frozenset({"iso-2022-jp", "csiso2022jp"})


def _names(value: bytes) -> bool:
    label = value.decode("latin-1")
    if "&" in label:
        label = html.unescape(label)
    return label.split(";")[0].strip("\t\n\x0c\r ").lower() in _NAMES


def reference(data: bytes) -> bool:
    """The scan as it was before (c61bf50): case-blind regexes over the whole body; its
    character references decoded in the whole text (round 2: a <meta> longer than the 512
    bytes read after it hid its declaration)."""
    if data[:5].lower() == b"<?xml" and b">" not in data[:XML_DECL_MAX] \
            and len(data) >= XML_DECL_MAX:
        return True
    for m in itertools.chain(_META_CHARSET.finditer(data), _XML_ENCODING.finditer(data)):
        if _names(m.group(1)):
            return True
    if b"&" in data:
        # (since round 2: the whole text decoded, no longer 512 bytes after each <meta>)
        text = html.unescape(data.decode("latin-1")).encode("latin-1", "replace")
        if any(_names(c.group(1)) for c in _META_CHARSET.finditer(text)):
            return True
    return False


# Pieces a declaration is made of, in every case and spelling, and the decoys around them.
_PIECES = [b"<meta", b"<META ", b"<MeTa", b"charset", b"CharSet", b"CHARSET", b"chars", b"et",
           b"<?xml", b"<?XML ", b"encoding", b"Encoding", b"=", b" = ", b"\t", b"\n", b'"', b"'",
           b"iso-2022-jp", b"ISO-2022-JP", b"csISO2022JP", b"iso-2022-jp;", b"utf-8", b"2022",
           b"&#99;", b"&#x63;", b"&#X68;", b"&#61;", b"&equals;", b"&#x2d;", b"&amp;", b"&",
           b">", b"<", b"?", b";", b"content=", b"text/html; ", b"a", b"\xe9", b"\x1b$B"]


@settings(max_examples=examples(1500), deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40))
def test_same_verdict_as_the_case_blind_regex_scan(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    assert declares_iso2022jp(data) == reference(data)


@settings(max_examples=examples(500), deadline=None)
@given(st.binary(max_size=300))
def test_same_verdict_on_any_bytes(data: bytes) -> None:
    assert declares_iso2022jp(data) == reference(data)


def test_each_spelling_is_still_seen() -> None:
    for page in (b"<meta charset=ISO-2022-JP>", b"<META CHARSET='csiso2022jp'>",
                 b'<?xml version="1.0" ENCODING="iso-2022-jp"?>',
                 b"x" * 70_000 + b'<meta http-equiv=content-type content="text/html; '
                 b'&#99;harset=iso-2022-jp">',
                 b"<p>" + b"charset " * 1000 + b"charset=iso-2022-jp"):
        assert declares_iso2022jp(page) and reference(page)
    for page in (b"<meta charset=utf-8>", b"charset iso-2022-jp", b"<?xml?>iso-2022-jp",
                 b"<p>&amp; <meta content='a &amp; b'>"):
        assert not declares_iso2022jp(page) and not reference(page)
