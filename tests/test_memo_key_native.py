"""The C lookup key of the rewrite memo (``_speedups.memo_key``) files bodies as the Python key
(``memo._key_py``) does: two bodies share a C key exactly when they share the Python one (same
plan, same length, same three 64-byte samples, or the same short body), and a sequence of
finds and puts answers the same hits, misses and "keep" verdicts with either key. The memo
uses the C key unless CONSENT_GATE_PURE_PYTHON is set."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware import memo as memo_module
from middleware.memo import RewriteMemo, Rewritten, _key_py
from tests.support.budget import examples

from .test_memo import plan

try:
    from middleware import _speedups
except ImportError:  # pragma: no cover - a pure-Python install
    _speedups = None  # type: ignore[assignment]

needs_c = pytest.mark.skipif(_speedups is None, reason="middleware._speedups not built")
PLANS = [plan(), plan()]


@st.composite
def body_pairs(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A body and a variant: the same, one byte changed somewhere (often in or next to a
    sample), cut or grown by a byte; lengths around the short limit (192) too."""
    n = draw(st.one_of(st.integers(0, 200), st.integers(190, 196), st.integers(193, 3000)))
    fill = draw(st.sampled_from([b"x", b"ab", b"<p>", bytes(range(256))]))
    body = (fill * (n // len(fill) + 1))[:n]
    how = draw(st.sampled_from(["same", "byte", "byte", "cut", "grow"]))
    if how == "same" or not body:
        return body, bytes(body)
    if how == "byte":
        mid = n >> 1
        spots = [0, 63, 64, mid - 1, mid, mid + 63, mid + 64, n - 65, n - 64, n - 1]
        at = draw(st.one_of(st.sampled_from([s for s in spots if 0 <= s < n]), st.integers(0, n - 1)))
        return body, body[:at] + bytes([body[at] ^ 1]) + body[at + 1:]
    if how == "cut":
        return body, body[:-1]
    return body, body + b"y"


@needs_c
@settings(max_examples=examples(1000), deadline=None)
@given(body_pairs(), st.sampled_from([(0, 0), (0, 1)]))
def test_c_keys_are_equal_exactly_when_python_keys_are(pair: tuple[bytes, bytes],
                                                        plans: tuple[int, int]) -> None:
    a, b = pair
    pa, pb = PLANS[plans[0]], PLANS[plans[1]]
    assert (_speedups.memo_key(pa, a) == _speedups.memo_key(pb, b)) == (
        _key_py(pa, a) == _key_py(pb, b))
    hash(_speedups.memo_key(pa, a))


@needs_c
def test_c_key_shape_and_odd_bodies() -> None:
    p = PLANS[0]
    short = b"s" * 192
    assert _speedups.memo_key(p, short) == (id(p), 192, short)
    long_key = _speedups.memo_key(p, b"s" * 193)
    assert long_key is not None and long_key[:2] == (id(p), 193) and type(long_key[2]) is int
    for odd in (bytearray(b"x" * 300), memoryview(b"x" * 300), "x" * 300, None):
        assert _speedups.memo_key(p, odd) is None  # the Python key then
    with pytest.raises(TypeError):
        _speedups.memo_key(p)  # type: ignore[call-arg]


def _run(memo: RewriteMemo, ops: list[tuple[str, int, bytes]]) -> list[Any]:
    seen: list[Any] = []
    for op, which, body in ops:
        p = PLANS[which]
        if op == "find":
            hit, keep = memo.find(p, body)
            seen.append((None if hit is None else hit.output, keep))
        else:
            memo.put(Rewritten(p, body, b"out:" + body[:8], frozenset(), frozenset()))
            seen.append(memo._size)
    return seen


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["find", "find", "put"]), st.integers(0, 1),
                          body_pairs()), max_size=12), st.lists(st.booleans(), max_size=12))
def test_finds_and_puts_answer_the_same_with_either_key(
        ops: list[tuple[str, int, tuple[bytes, bytes]]], second: list[bool]) -> None:
    flat = [(op, which, pair[1] if i < len(second) and second[i] else pair[0])
            for i, (op, which, pair) in enumerate(ops)]
    with_c = _run(RewriteMemo(max_bytes=4000, max_body=2000), flat)
    saved = memo_module._key_c
    memo_module._key_c = None
    try:
        with_py = _run(RewriteMemo(max_bytes=4000, max_body=2000), flat)
    finally:
        memo_module._key_c = saved
    assert with_c == with_py


def test_the_memo_uses_the_c_key() -> None:
    assert (memo_module._key_c is not None) == (memo_module.speedups is not None)
