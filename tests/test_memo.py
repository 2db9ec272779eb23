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
