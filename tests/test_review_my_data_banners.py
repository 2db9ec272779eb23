"""Which consent screen each event of /.consent/my-data links to (``mydata.banners_shown``).

A banner proof is written after its event's ledger commit, so it can carry the next minute
(the browser test failed in CI that way when the old code paired them by minute)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from middleware.ledger.records import ConsentEvent
from middleware.review.db import Proof
from middleware.review.mydata import banners_shown

T0 = datetime(2026, 12, 4, 12, 34, 59, 900_000, tzinfo=UTC)


def event(at: datetime, action: str = "given") -> ConsentEvent:
    return ConsentEvent(time=at, consent_id="c1", action=action,  # type: ignore[arg-type]
                        choices={"ads": True}, policy_version="v1", source="banner")


def proof(at: datetime, digest: str, action: str = "given") -> Proof:
    return Proof(time=at, consent_id="c1", action=action, outcome="accept", source="banner",
                 banner_hash=digest, policy_hash="p", policy_version="v1", gpc=False)


def test_a_proof_written_in_the_next_minute_still_belongs_to_its_event() -> None:
    ev = event(T0)
    assert banners_shown([ev], [proof(T0 + timedelta(milliseconds=250), "h1")]) == ["h1"]


def test_each_event_takes_its_own_proof_and_none_is_shared() -> None:
    evs = [event(T0), event(T0 + timedelta(seconds=20), "withdrawn"),
           event(T0 + timedelta(seconds=40))]
    proofs = [proof(T0 + timedelta(seconds=41), "h3"), proof(T0 + timedelta(seconds=1), "h1"),
              proof(T0 + timedelta(seconds=21), "h2", "withdrawn")]
    assert banners_shown(evs, proofs) == ["h1", "h2", "h3"]
    # no proof for the middle event: it gets none, and does not take the next one's
    assert banners_shown(evs, [proofs[0], proofs[1]]) == ["h1", None, "h3"]
    # a proof of another action is not this event's
    assert banners_shown([evs[0]], [proof(T0, "hx", "withdrawn")]) == [None]


@given(st.lists(st.integers(min_value=0, max_value=3_600_000), min_size=1, max_size=12,
                unique=True),
       st.lists(st.integers(min_value=0, max_value=900), min_size=12, max_size=12))
def test_every_event_finds_its_proof_whatever_the_commit_took(starts: list[int],
                                                               waits: list[int]) -> None:
    """Events at least a second apart, each proof 0-900 ms after its event: all paired."""
    times = sorted(T0 + timedelta(milliseconds=s * 1000) for s in set(starts))
    evs = [event(t) for t in times]
    proofs = [proof(t + timedelta(milliseconds=w), f"h{i}")
              for i, (t, w) in enumerate(zip(times, waits, strict=False))]
    assert banners_shown(list(reversed(evs)), proofs) == [f"h{i}" for i in
                                                         reversed(range(len(evs)))]
