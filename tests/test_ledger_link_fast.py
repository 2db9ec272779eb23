"""``ChainCursor.link`` (the writer's unrolled hash loop and page view text) against the
reference definition ``record_hash(kind, to_dict(), writer, seq, prev)``: any page view,
consent event or disclosure, any strings (escapes, non-ASCII, None), any starting tip."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.ledger import ConsentEvent, DisclosureRecord, PageView, PartnerShare
from middleware.ledger.chain import ChainCursor, record_hash, record_text
from middleware.ledger.records import Record
from tests.support.budget import examples

T0 = datetime(2026, 12, 1, tzinfo=UTC)
SHARES = (PartnerShare("a-ads", ("ads",), "consent", ("ip_address",), ("_a",)),
          PartnerShare("b\u00e9", ("social", "x\"y"), "consent", (), ()))
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
_fields = st.dictionaries(_text, st.one_of(st.integers(-5, 5), _text, st.none()), max_size=3)


@st.composite
def _record(draw: st.DrawFn) -> Record:
    t = T0 + timedelta(microseconds=draw(st.integers(0, 10**12)))
    kind = draw(st.sampled_from(["view", "view", "consent", "disclosure"]))
    cid = draw(st.one_of(st.none(), _text))
    ip = draw(st.one_of(st.none(), _text))
    if kind == "view":
        return PageView(time=t, request_id=draw(_text), consent_id=cid, path=draw(_text),
                        partners=SHARES[:draw(st.integers(1, 2))],
                        policy_version=draw(_text), ip=ip, ua_family=draw(_text),
                        fields=draw(_fields))
    if kind == "consent":
        return ConsentEvent(time=t, consent_id=draw(_text) or "c", action="given",
                            choices={"ads": draw(st.booleans())}, policy_version=draw(_text),
                            source="banner", ip=ip, ua_family=draw(_text))
    return DisclosureRecord(time=t, request_id=draw(_text), consent_id=cid, path=draw(_text),
                            partner="a-ads", purposes=("ads",), legal_basis="consent",
                            data_categories=("ip_address",), cookies=(), ip=ip,
                            ua_family=draw(_text), fields=draw(_fields))


@settings(max_examples=examples(300), deadline=None)
@given(records=st.lists(_record(), min_size=1, max_size=6),
       tip=st.one_of(st.just("0" * 64), _text), start=st.integers(0, 10**9))
def test_link_matches_the_reference_hash_chain(records: list[Record], tip: str,
                                               start: int) -> None:
    cursor = ChainCursor("w\"riter\u00e9")
    cursor.seq, cursor.tip = start, tip
    rows = cursor.link(records)
    prev, seq = tip, start
    for row, rec in zip(rows, records, strict=True):
        seq += 1
        want = record_hash(rec.kind, rec.to_dict(), cursor.writer_id, seq, prev)
        assert (row.seq, row.prev_hash, row.hash) == (seq, prev, want)
        prev = want
    for rec in records:
        assert record_text(rec) == json.dumps(rec.to_dict(), sort_keys=True,
                                              separators=(",", ":"), ensure_ascii=False,
                                              allow_nan=False)
