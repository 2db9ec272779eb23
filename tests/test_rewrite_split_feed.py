"""Tokenizer.feed reads a large chunk in place behind the bytes held from the last one (the
held bytes with the chunk up to its first '>', then the rest without copying the chunk): the
same steps as feeding the chunk whole, in both modes (C and pure Python).

The split is made only for chunks of at least ``_SPLIT_CHUNK`` bytes behind at most
``_SPLIT_HELD`` held bytes; the tests lower the first to 1 so that every small document and
every chunking goes through it, and compare each feed's output, enabled partners and unknown
hosts with the split turned off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from middleware.html import tokenizer
from middleware.rewrite import HtmlRewriter, RewritePlan
from tests.support.budget import examples
from tests.test_rewrite_properties import PARTNERS, documents, make_plan

try:  # the adversarial generator of the native tests (skipped as a module in pure mode)
    from tests.test_rewrite_native import documents as native_documents
    from tests.test_rewrite_native import plan as native_plan
except pytest.skip.Exception:  # pragma: no cover - pure-Python mode
    native_documents = native_plan = None


@contextmanager
def split(chunk: int, held: int) -> Iterator[None]:
    old = tokenizer._SPLIT_CHUNK, tokenizer._SPLIT_HELD
    tokenizer._SPLIT_CHUNK, tokenizer._SPLIT_HELD = chunk, held
    try:
        yield
    finally:
        tokenizer._SPLIT_CHUNK, tokenizer._SPLIT_HELD = old


def trace(plan: RewritePlan, chunks: list[bytes]) -> tuple[object, ...]:
    rw = HtmlRewriter(plan)
    steps = [(rw.feed(c), rw.take_enabled(), frozenset(rw.unknown_hosts)) for c in chunks]
    steps.append((rw.finish(), rw.take_enabled(), frozenset(rw.unknown_hosts)))
    return tuple(steps), frozenset(rw.blocked)


def chunks_of(doc: bytes, cuts: list[int]) -> list[bytes]:
    bounds = sorted({0, len(doc), *(c % (len(doc) + 1) for c in cuts)})
    return [doc[a:b] for a, b in pairwise(bounds)] or [b""]


def same_with_and_without_split(plan: RewritePlan, chunks: list[bytes]) -> None:
    with split(1 << 62, 0):
        reference = trace(plan, chunks)
    with split(1, 1 << 62):
        assert trace(plan, chunks) == reference, chunks
    with split(1, 3):  # only a few held bytes qualify
        assert trace(plan, chunks) == reference, chunks


@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.lists(st.integers(0, 10_000), max_size=10),
       st.frozensets(st.sampled_from(sorted(PARTNERS))), st.booleans())
@example(b"<p>a<img src=//ad.doubleclick.net/x>b</p>", [6, 9], frozenset(), True)
@example(b"<script>x</script><img src=//ad.doubleclick.net/x>", [12, 30], frozenset(), False)
@example(b"<style>a{}</style><iframe src=//www.youtube.com/e>x</iframe>y", [3, 25, 40],
         frozenset(), True)
def test_split_feed_same_steps_as_whole_chunks(doc: bytes, cuts: list[int],
                                               allowed: frozenset[str], inject: bool) -> None:
    plan = make_plan(allowed=allowed, granted=frozenset({"ads"}), inject=inject)
    same_with_and_without_split(plan, chunks_of(doc, cuts))


@pytest.mark.skipif(native_documents is None, reason="the native tests' generator (C mode)")
@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.lists(st.integers(0, 4000), max_size=5),
       st.sampled_from([frozenset(), frozenset({"ads", "yt"}), frozenset({"odd", "fb"})]),
       st.booleans())
def test_split_feed_same_steps_on_adversarial_html(data: st.DataObject, cuts: list[int],
                                                   allowed: frozenset[str], inject: bool) -> None:
    assert native_documents is not None and native_plan is not None
    doc = data.draw(native_documents).encode("utf-8", "surrogateescape")
    same_with_and_without_split(native_plan(allowed, inject), chunks_of(doc, cuts))


def test_split_feed_reads_a_big_chunk_in_place_behind_a_cut_tag() -> None:
    """The real thresholds: a 64 KB chunk behind a tag the last chunk cut."""
    plan = make_plan(inject=True)
    unit = b'<p class="x">text <img src="//ad.doubleclick.net/p.gif"> more</p>\n'
    doc = b"<html><head></head><body>" + unit * 3000 + b"</body></html>"
    cut = 65536 + 5
    chunks = [doc[:cut], *(doc[i:i + 65536] for i in range(cut, len(doc), 65536))]
    rw = HtmlRewriter(plan)
    first = rw.feed(chunks[0])
    assert rw._buf and len(rw._buf) < 100, "the first chunk ends inside a tag: held"
    out = first + b"".join(rw.feed(c) for c in chunks[1:]) + rw.finish()
    assert out == b"".join(trace(plan, [doc])[0][i][0] for i in range(2))
    assert out.count(b"data-consent-src") == 3000
