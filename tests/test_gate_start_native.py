"""The C start_kind (``_speedups.start_kind``) answers exactly what the Python reference
``gate.start.start_kind_py`` answers, object for object, on random raw header lists: name case
variants, duplicated and several Content-Types, odd bytes, Content-Type parameters and comma
lists, nosniff spellings, Set-Cookie, and objects that are not a list of byte pairs (the C hands
those to the reference). The responder uses the C one unless CONSENT_GATE_PURE_PYTHON is set."""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from middleware.gate import start
from middleware.gate.start import start_kind_py
from tests.support.budget import examples

try:
    from middleware import _speedups
except ImportError:  # pragma: no cover - a pure-Python install
    _speedups = None  # type: ignore[assignment]

NAMES = [b"content-type", b"set-cookie", b"x-content-type-options", b"content-length", b"vary",
         b"x-custom-1", b"Content-Type", b"CONTENT-TYPE", b"Set-Cookie", b"X-Content-Type-Options",
         b"123", b"", b"-", b"content-type ", b"content-typ", b"\xff\xfe", b"x-\xc3\xa9t\xc3\xa9",
         b"link", b"refresh", b"content-security-policy", b"Link", b"linkx", b"report-to"]
TYPES = [b"application/json", b"application/json; charset=utf-8", b"application/jsonx",
         b"application/json, text/html", b"text/html", b"text/html; charset=utf-8", b"TEXT/HTML",
         b"text/htm", b" text/html", b"text/html,", b"text/plain", b"application/xhtml+xml",
         b"image/svg+xml", b"", b"unknown/unknown", b"*/*", b"text/html\x00", b"application/js",
         b"multipart/x-mixed-replace; boundary=x", b"text/xml", b"nosniff", b" NoSniff\t",
         b"text/css", b"text/css; charset=utf-8", b"TEXT/CSS", b"application/x-unknown-content-type",
         b"text/css, application/json", b"*/*, text/css"]
#: header names: the interesting ones, their case variants and random bytes
names = st.one_of(st.sampled_from(NAMES), st.binary(max_size=24))
#: header values: Content-Types (with random parameters), nosniff spellings, random bytes
values = st.one_of(st.sampled_from(TYPES), st.binary(max_size=24),
                   st.tuples(st.sampled_from(TYPES), st.binary(max_size=8)).map(
                       lambda t: t[0] + b";" + t[1]))
header_lists = st.lists(st.tuples(names, values), max_size=8)
#: what is not a list of byte pairs: start_kind_py's answer or its exception, as is
odd_items = st.one_of(
    st.tuples(st.text(max_size=12), st.text(max_size=12)),
    st.tuples(st.sampled_from(NAMES), st.text(max_size=12)),
    st.lists(st.sampled_from(NAMES), min_size=2, max_size=2),
    st.tuples(st.sampled_from(NAMES)),
    st.tuples(st.sampled_from(NAMES), st.sampled_from(TYPES), st.just(b"x")),
    st.tuples(st.sampled_from(NAMES).map(bytearray), st.sampled_from(TYPES)),
    st.tuples(st.sampled_from(NAMES), st.sampled_from(TYPES).map(bytearray)),
    st.none(),
)
odd_lists = st.lists(st.one_of(st.tuples(names, values), odd_items), min_size=1, max_size=6)

needs_c = pytest.mark.skipif(_speedups is None, reason="middleware._speedups not built")


def _set_up() -> Any:
    assert _speedups is not None
    _speedups.start_setup(start._PAIRS[start.HTML], start._PAIRS[start.OTHER], start_kind_py)
    return _speedups.start_kind


def _outcome(fn: Any, headers: Any) -> Any:
    try:
        return ("ok", fn(headers))
    except Exception as exc:  # the same exception type as the reference, not a crash
        return ("raised", type(exc))


@needs_c
@settings(max_examples=examples(1500), deadline=None)
@given(header_lists, st.sampled_from([list, tuple]))
@example([(b"content-type", b"application/json")], list)
@example([(b"content-type", b"application/json"), (b"set-cookie", b"a=b")], tuple)
@example([(b"content-type", b"text/html"), (b"content-type", b"text/html")], list)
@example([(b"content-type", b"application/json, text/html")], list)
@example([(b"123", b"x"), (b"content-type", b"application/json")], list)
@example([(b"x-content-type-options", b" NOSNIFF "), (b"content-type", b"text/plain")], list)
@example([], tuple)
def test_c_start_kind_equals_python(headers: list[tuple[bytes, bytes]], kind: type) -> None:
    """Same answer, the same object (the responder tests answers by identity)."""
    native = _set_up()
    raw = kind(headers)
    want = start_kind_py(raw)
    got = native(raw)
    assert got is want  # None, or the one _PAIRS answer both return



@needs_c
@settings(max_examples=examples(600), deadline=None)
@given(odd_lists, st.sampled_from([list, tuple, iter]))
def test_c_start_kind_hands_odd_objects_to_python(headers: list[Any], kind: Any) -> None:
    """Not a list/tuple of (bytes, bytes): the reference's answer, or its exception type."""
    native = _set_up()
    assert _outcome(native, kind(headers)) == _outcome(start_kind_py, kind(headers))


@needs_c
def test_c_start_kind_is_what_the_responder_uses() -> None:
    """With the extension and no CONSENT_GATE_PURE_PYTHON, the pass path runs the C one."""
    from middleware.gate import responder

    if os.environ.get("CONSENT_GATE_PURE_PYTHON"):
        assert responder.start_kind is start_kind_py
    else:
        assert _speedups is not None and responder.start_kind is _speedups.start_kind
