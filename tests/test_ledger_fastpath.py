"""The writer's fast paths (hashing, row parameters, multi-row INSERT) change no byte.

The fixed hashes below were computed with the original implementation
(``record_hash(kind, record.to_dict(), ...)`` over ``json.dumps``): a ledger written
before the fast paths must still verify, and one written after must verify with it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from middleware.ledger import ConsentEvent, DisclosureRecord, LedgerWriter, SqliteStore, verify
from middleware.ledger._sql import _chunks
from middleware.ledger.chain import (
    GENESIS,
    ChainCursor,
    canonical_text,
    hash_record,
    record_hash,
    record_text,
)
from middleware.ledger.records import Record, format_time

T = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
WRITER = "w0123456789abcdef"

RECORDS: list[Record] = [
    DisclosureRecord(
        time=T, request_id="66321f00-abcdef123456", consent_id="c-1", path="/blog/x",
        partner="google-adsense", purposes=("ads", "measurement"), legal_basis="consent",
        data_categories=("ip_address", "device_id"), cookies=("__gads",),
        policy_version="2024-05-01", ip="203.0.113.0/24", ua_family="Chrome 124"),
    DisclosureRecord(
        time=datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        request_id="r2", consent_id=None, path="/caf\u00e9/\u65e5\u672c?q=\"x\"\\\n\t\x01",
        partner="meta-pixel", purposes=(), legal_basis="opt-out-not-exercised",
        ip=None, ua_family="other",
        fields={"z": 1, "a": [1.5, None, True, "\u2028\U0001f600"],
                "m": {"b": 2, "a": 1e16}}),
    ConsentEvent(
        time=T, consent_id="c-1", action="changed",
        choices={"measurement": False, "ads": True}, policy_version="v2",
        source="preferences", ip="2001:db8::/48", ua_family="Firefox 125"),
    ConsentEvent(
        time=datetime(999, 1, 2, 3, 4, 5, tzinfo=UTC), consent_id="\u00fc\"",
        action="withdrawn", choices={}, policy_version="", source="gpc"),
]

# Chained from GENESIS, seq 1..4, writer WRITER, by the implementation before the fast path.
HASHES = [
    "7a6bb7deffba5b2fba383501ef5470abbe2cf388923b64b38e9ab46861ccfd01",
    "4388d89b687998ac4dcae8771362d8201f587e1a05e571e4cd7f106633764bcc",
    "9d3109f678a518fffd3cbc8b996a2aebb39c0c1cc9ea55eca84c2e2ab53730d4",
    "59cd8566b1af868632e53d47d6d0090d4d9d1e944c39a98d07654e1e307cbeee",
]


def test_hashes_are_unchanged_from_the_original_implementation() -> None:
    rows = ChainCursor(WRITER).link(RECORDS)
    assert [r.hash for r in rows] == HASHES
    prev = GENESIS
    for seq, (rec, want) in enumerate(zip(RECORDS, HASHES, strict=True), start=1):
        assert record_hash(rec.kind, rec.to_dict(), WRITER, seq, prev) == want
        assert hash_record(rec, WRITER, seq, prev) == want
        prev = want


@pytest.mark.parametrize("rec", RECORDS, ids=range(len(RECORDS)))
def test_record_text_is_the_canonical_json_of_to_dict(rec: Record) -> None:
    assert record_text(rec) == canonical_text(rec.to_dict())


def test_record_text_matches_for_odd_strings() -> None:
    odd = ["", "\x00\x1f\x7f", "\ud7ff\ue000\uffff", "'\"\\/", "\u0085\u2029", "a" * 1000]
    for i, s in enumerate(odd):
        rec = DisclosureRecord(
            time=T + timedelta(microseconds=i), request_id=s, consent_id=s or None, path=s,
            partner=s or "p", purposes=(s, s), legal_basis="necessary", data_categories=(s,),
            cookies=(), policy_version=s, ip=s, ua_family=s, fields={s: [s]} if s else {})
        assert record_text(rec) == canonical_text(rec.to_dict())
        ev = ConsentEvent(time=T, consent_id=s, action="given", choices={s: True},
                          policy_version=s, source="form", ip=s, ua_family=s)
        assert record_text(ev) == canonical_text(ev.to_dict())


def test_format_time_matches_strftime() -> None:
    def ref(t: datetime) -> str:
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    for t in (T, T.replace(microsecond=0), datetime(999, 12, 31, 23, 59, tzinfo=UTC),
              datetime(1000, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, UTC),
              datetime(2024, 3, 31, 2, 30, tzinfo=timezone(timedelta(hours=-9, minutes=-30)))):
        assert format_time(t) == ref(t)


def test_row_parameters_match_the_generic_path(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "l.db") as store:
        store.open()
        for row in ChainCursor(WRITER).link(RECORDS):
            assert store._params(row) == store._params_generic(row)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 64, 100, 513, 2049])
def test_chunks_cover_every_row(n: int) -> None:
    sizes = list(_chunks(n, 1927))
    assert sum(sizes) == n
    assert all(s & (s - 1) == 0 and s <= 1024 for s in sizes)
    assert len(set(sizes)) == len(sizes) or max(sizes) == 1024


def test_multirow_insert_keeps_order_and_verifies(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    store = SqliteStore(p)
    store.open()
    store._max_variables = 17 * 3  # force several chunks of at most 2 rows
    w = LedgerWriter(store, writer_id=WRITER)
    # Not RECORDS[3]: a year before 1000 is written fine but does not parse back.
    recs = [r for _ in range(3) for r in RECORDS[:3]]
    w.write_sync(recs)
    w.write_sync(recs[:5])
    w.close()
    with SqliteStore(p) as s:
        report = verify(s)
        assert report.ok, report.first_problem
        assert report.rows == len(recs) + 5
        back = [row.record for row in s.chain_rows()]
    assert back == recs + recs[:5]
    # The first rows are exactly the ones hashed by the original implementation.
    con = sqlite3.connect(p)
    got = con.execute("SELECT hash FROM disclosures WHERE seq <= 3 UNION ALL "
                      "SELECT hash FROM consent_events WHERE seq <= 3").fetchall()
    con.close()
    assert sorted(h for (h,) in got) == sorted(HASHES[:3])


def test_one_wakeup_per_loop_for_a_batch(tmp_path: Path) -> None:
    w = LedgerWriter(SqliteStore(tmp_path / "l.db"))
    wakeups: list[object] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        real = loop.call_soon_threadsafe

        def spy(cb: Any, *args: Any, **kw: Any) -> asyncio.Handle:
            if getattr(cb, "__name__", "") == "_settle_all":
                wakeups.append(cb)
            return real(cb, *args, **kw)

        loop.call_soon_threadsafe = spy  # type: ignore[method-assign]
        await asyncio.gather(*(w.write([RECORDS[0]]) for _ in range(40)))

    asyncio.run(main())
    w.close()
    assert w.stats.records == 40
    assert len(wakeups) == w.stats.transactions
