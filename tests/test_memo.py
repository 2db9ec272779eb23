"""RewriteMemo: exact-match reuse, bounded memory."""

from __future__ import annotations

from middleware.hosts import HostMatcher
from middleware.memo import RewriteMemo, Rewritten
from middleware.rewrite import RewritePlan


def plan() -> RewritePlan:
    return RewritePlan(head_end=b"", body_start=b"", body_end=b"", injected_partners=frozenset(),
                       allowed_partners=frozenset(), granted_purposes=frozenset(),
                       matcher=HostMatcher({}), placeholder=lambda _p, _a: b"")


def test_memo_hit_needs_same_plan_object_and_same_bytes() -> None:
    memo, a, b = RewriteMemo(), plan(), plan()
    memo.put(Rewritten(a, b"<p>x</p>", b"<p>X</p>", frozenset({"p"}), frozenset()))
    hit = memo.get(a, b"<p>x</p>")
    assert hit is not None and hit.output == b"<p>X</p>" and hit.enabled == {"p"}
    assert memo.get(b, b"<p>x</p>") is None, "an equal but different plan is another key"
    assert memo.get(a, b"<p>y</p>") is None


def test_memo_evicts_least_recent_beyond_its_byte_budget() -> None:
    memo, p = RewriteMemo(max_bytes=100, max_body=40), plan()
    for i in range(5):
        body = bytes([65 + i]) * 20
        memo.put(Rewritten(p, body, body, frozenset(), frozenset()))
    assert memo.get(p, b"A" * 20) is None and memo.get(p, b"E" * 20) is not None
    memo.put(Rewritten(p, b"Z" * 41, b"", frozenset(), frozenset()))
    assert memo.get(p, b"Z" * 41) is None, "bodies above max_body are never kept"


def test_memo_keeps_a_page_from_its_second_miss_on() -> None:
    memo, p = RewriteMemo(), plan()
    page = b"<p>" + b"x" * 500 + b"</p>"
    assert memo.get(p, page) is None and not memo.keep(p, page), "first sight: not kept"
    assert memo.get(p, page) is None and memo.keep(p, page), "second miss: kept"
    for i in range(50):  # pages unique per request never qualify
        unique = b"<p>%04d" % i + b"y" * 500 + b"</p>"
        assert memo.get(p, unique) is None and not memo.keep(p, unique)


def test_memo_pages_sharing_the_sample_share_a_slot_never_a_result() -> None:
    memo, p = RewriteMemo(), plan()
    a = b"<p>" + b"x" * 300 + b"AAAA" + b"x" * 300 + b"z" * 400 + b"</p>"
    b = a.replace(b"AAAA", b"BBBB")
    assert RewriteMemo._key(p, a) == RewriteMemo._key(p, b), "the sample misses the token"
    memo.put(Rewritten(p, a, b"out-a", frozenset(), frozenset()))
    hit = memo.get(p, a)
    assert hit is not None and hit.output == b"out-a"
    assert memo.get(p, b) is None
    assert memo.get(p, a) is None, "two bodies under one key: the slot is dropped"
    assert memo._size == 0


def test_memo_never_keeps_a_page_that_differs_outside_the_sample() -> None:
    """A token in the middle of a form: every request is another body under the same key.
    From the second version on nothing is kept (no 2 x 30 KB entry per request, no compare
    in vain); a page that repeats under another key still is."""
    memo, p = RewriteMemo(), plan()
    pages = [b"<p>" + b"x" * 300 + b"%04d" % i + b"x" * 300 + b"z" * 400 + b"</p>"
             for i in range(6)]
    first, kept = pages[0], 0
    for page in [first, first, *pages[1:], first, first, first]:
        hit, keep = memo.find(p, page)
        assert hit is None
        if keep:
            kept += 1
            memo.put(Rewritten(p, page, b"out", frozenset(), frozenset()))
    assert kept == 1, "only the first page's second miss was kept (then dropped)"
    assert memo._size == 0 and not memo._entries
    other = b"<p>" + b"y" * 1000 + b"</p>"
    for _ in range(2):
        if memo.find(p, other)[1]:
            memo.put(Rewritten(p, other, b"out-y", frozenset(), frozenset()))
    hit = memo.get(p, other)
    assert hit is not None and hit.output == b"out-y"
