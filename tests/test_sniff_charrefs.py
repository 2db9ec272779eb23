"""A ``<meta>`` that names ISO-2022-JP with character references (``&#99;harset=``) is a
declaration too: Chromium 156 reads a meta content's value decoded (measured:
tests/browser/test_header_vectors.py, ``iso2022-meta-charref``), so the gate must not rewrite
such a page as ASCII text (sniff.declares_iso2022jp)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from middleware.html.refresh_guard import RefreshRespeller
from middleware.sniff import CHARSET_TAIL, declares_iso2022jp

from .asgi_helpers import enforced_no_partner, html_app, http_scope, make_gate, run
from .test_responder import ESC_TAG, iso2022jp_page

SPELLED = [
    b'<meta http-equiv="Content-Type" content="text/html; &#99;harset=iso-2022-jp">',
    b'<meta http-equiv="Content-Type" content="text/html; &#x63;&#X68;arset&#61;ISO&#x2d;2022-JP">',
    b"<META HTTP-EQUIV=content-type CONTENT='text/html;&#32;charset&equals;csISO2022JP'>",
    b'<meta http-equiv="Content-Type" content="text/html; &#0000000000000000000000099;harset=iso-2022-jp">',
]


@pytest.mark.parametrize("meta", SPELLED)
def test_declaration_spelled_with_character_references_is_seen(meta: bytes) -> None:
    assert declares_iso2022jp(meta)
    assert not declares_iso2022jp(meta.replace(b"2022", b"8859"))


def test_ampersands_elsewhere_are_not_a_declaration() -> None:
    page = b"<p>Tom &amp; Jerry</p><meta charset=utf-8><meta name=x content='a &amp; b'>"
    assert not declares_iso2022jp(page)


@pytest.mark.parametrize("meta", SPELLED)
@pytest.mark.parametrize("mode", ["report-only", "off"])
def test_gate_serves_such_a_page_as_sent_behind_enforced_csp(tmp_path: Path, meta: bytes,
                                                              mode: str) -> None:
    page = iso2022jp_page(meta)
    gate = make_gate(html_app([page], headers=[(b"content-type", b"text/html")]), tmp_path,
                     csp={"mode": mode})
    out = asyncio.run(run(gate, http_scope()))
    respelled = RefreshRespeller()
    assert out.body == respelled.feed(page) + respelled.finish()
    assert enforced_no_partner(out)


@pytest.mark.parametrize("meta", SPELLED)
@pytest.mark.parametrize("cut", [6, 40, -5])
def test_gate_ends_the_response_where_a_later_chunk_declares_it(tmp_path: Path, meta: bytes,
                                                                cut: int) -> None:
    """Cut inside the <meta>, after the headers left (the responder keeps CHARSET_TAIL bytes
    of a chunk for the next): the partner's tag after it never leaves."""
    lead = b"<!DOCTYPE html><html><head><title>T</title>" + b" " * 2000
    rest = b"</head><body>" + ESC_TAG + b"</body></html>"
    at = cut if cut >= 0 else len(meta) + cut
    gate = make_gate(html_app([lead + meta[:at], meta[at:] + rest],
                              headers=[(b"content-type", b"text/html")]), tmp_path,
                     csp={"mode": "off"})
    out = asyncio.run(run(gate, http_scope()))
    assert b"googlesyndication" not in out.body
    assert out.messages[-1] == {"type": "http.response.body", "body": b"", "more_body": False}


def test_tail_holds_a_whole_spelled_meta() -> None:
    assert all(len(meta) < CHARSET_TAIL for meta in SPELLED)
