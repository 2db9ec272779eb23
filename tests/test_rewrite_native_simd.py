"""The native pass's 16-byte SSE2 search (``find_byte`` in middleware/_speedups.c: the text
between tags up to its ``<``; quoted values, which memchr reads, are run beside it) answers as
the scalar scan and the pure-Python rewriter do at its edges: the byte it looks for at every
offset modulo 16 and in every one of the inline vectors, right after them (memchr's part),
buffers that end mid-vector (the scalar tail), NUL bytes and bytes >= 0x80 beside the target.
A vector is loaded only where 16 bytes remain: the guard-page test puts each buffer right
before an inaccessible page, so a load past its end crashes the test.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from middleware import rewrite
from middleware.html import native
from tests.support.budget import examples
from tests.support.guard_page import guarded_windows
from tests.test_rewrite_native import ALLOWED, check, table

if native.scan_end is None:  # test_rewrite_native already skips (or fails under CI)
    pytest.skip("the native pass is not in use", allow_module_level=True)

from middleware import _speedups

FILL = [b"a", b"\x00", b"\xff", b"\x80", b" ", b"\n", b"=", b"'", b'"', b">", b"/"]
URL = b"//ad.doubleclick.net/x"  # a blocked partner (stops the scan: where it ends shows)


def _runs() -> list[bytes]:
    """Text and values whose length crosses every offset mod 16 of the four inline vectors
    (0-80 bytes) and some beyond them (memchr), made of each filler byte."""
    out = []
    for fill in FILL:
        for k in [*range(0, 81), 95, 96, 97, 200]:
            out.append(fill * k)
    return out


def _docs(run: bytes) -> list[bytes]:
    """The run as text before a tag, as a quoted value (both quotes), then cut mid-vector."""
    text = run.replace(b"<", b"")
    dq, sq = run.replace(b'"', b""), run.replace(b"'", b"")
    return [
        b"<p>" + text + b"<img src=" + URL + b">",
        b"<p>" + text + b"</p>" + text,
        b'<div class="' + dq + b'" title=x><img src=' + URL + b">",
        b"<a href='" + sq + b"'>" + text + b"<b>",
        b'<div class="' + dq,  # unclosed: the buffer ends inside the value
        b"<p>" + text,  # the buffer ends inside the text
    ]


def _skip_docs() -> list[bytes]:
    return [doc for run in _runs() for doc in _docs(run)]


def test_scan_end_at_every_offset_equals_the_pure_python_rewriter() -> None:
    """Each document, whole and in two chunks at 16-byte-relevant cuts, rewritten with the
    native pass == the pure-Python rewriter (bytes, enabled partners, unknown hosts)."""
    for run in _runs()[::3]:
        for doc in _docs(run):
            for cuts in ([], [len(doc) - 1], [17], [33]):
                check(doc, cuts, frozenset(), True)


def test_skip_end_at_every_offset_equals_the_regex() -> None:
    """The plain skip (no host table: the same scan functions) == _SKIP_RE, from the start
    and from just after the first tag."""
    for doc in _skip_docs():
        low = doc.lower()
        for pos in (0, 1, 3, len(low) - 1):
            m = rewrite._SKIP_RE.match(low, pos)
            assert m is not None
            assert _speedups.skip_end(low, pos) == m.end(), (low, pos)


@settings(max_examples=examples(1500), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from([b"<", b">", b'"', b"'", b"=", b" ", b"\x00", b"\xe9", b"a",
                                 b"a" * 15, b"a" * 16, b"a" * 17, b"<p>", b"</p>", b"<div ",
                                 b' class="', b"'", b"<img src=" + URL + b">"]),
                max_size=40).map(b"".join),
       st.integers(0, 64))
def test_skip_end_equals_the_regex_on_vector_soup(buf: bytes, pos: int) -> None:
    """Random soups of the bytes the vectors look for, at lengths around 16: skip == regex."""
    low = buf.lower()
    m = rewrite._SKIP_RE.match(low, pos)
    assert m is not None
    assert _speedups.skip_end(low, pos) == m.end()


@pytest.mark.skipif(sys.platform != "linux", reason="mprotect guard page via libc")
def test_vector_loads_read_nothing_past_the_end_of_the_buffer() -> None:
    """Each document, cut at every length, ends right before a PROT_NONE page: scan_end and
    skip_end from several starts read no byte past its end and answer as on bytes."""
    tab = table()
    with guarded_windows() as place:
        for run in _runs()[::2]:
            for doc in _docs(run)[::2]:
                for cut in range(1, len(doc) + 1):
                    piece = doc[:cut]
                    window = place(piece)
                    for pos in (0, 3, cut - 1):
                        assert _speedups.scan_end(window, pos, tab, set(), ALLOWED, set()) == (
                            _speedups.scan_end(piece, pos, tab, set(), ALLOWED, set()))
                        assert _speedups.skip_end(window, pos) == _speedups.skip_end(piece, pos)
                    window.release()
