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
from hypothesis import given
from hypothesis import strategies as st

from middleware.ledger import (
    ConsentEvent,
    DisclosureRecord,
    LedgerWriter,
    PageView,
    PartnerShare,
    SqliteStore,
    verify,
)
from middleware.ledger._sql import _chunks
from middleware.ledger.chain import (
    GENESIS,
    ChainCursor,
    canonical_text,
    hash_record,
    list_texts,
    partner_set_text,
    record_hash,
    record_text,
    shares_text,
    time_text,
    time_text_us,
)
from middleware.ledger.records import Record, format_time, parse_time
from middleware.ledger.wire import Decoder, Encoder, frame, frames

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

# Chained from GENESIS, seq 1..4, writer WRITER, by the implementation before the fast path;
# the fourth since its year-999 time is "0999-01-02T..." (was "999-...", never readable back).
HASHES = [
    "7a6bb7deffba5b2fba383501ef5470abbe2cf388923b64b38e9ab46861ccfd01",
    "4388d89b687998ac4dcae8771362d8201f587e1a05e571e4cd7f106633764bcc",
    "9d3109f678a518fffd3cbc8b996a2aebb39c0c1cc9ea55eca84c2e2ab53730d4",
    "c8c83c86c63b24018864e3a6c3ff154c84b02999db011b0cb33e9de5bf45ae5d",
]


ADS = PartnerShare("ads-co", ("ads", "measurement"), "consent", ("ip_address",), ("__gads",))
CAFE = PartnerShare("caf\u00e9-metrics", (), "opt-out-not-exercised")
VIEWS = [
    PageView(time=T, request_id="r1", consent_id="c-1", path="/blog/x", partners=(ADS, CAFE),
             policy_version="2024-05-01", ip="203.0.113.0/24", ua_family="Chrome 124"),
    PageView(time=datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
             request_id="r2", consent_id=None, path="/\u65e5\u672c", partners=(ADS,),
             fields={"z": 1, "a": [1.5, None]}),
    PageView(time=datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), request_id="r3",
             consent_id="c", path="/", partners=(CAFE, ADS)),
]
# Chained from GENESIS, seq 1..3, writer WRITER, before the writer's id-keyed list texts and
# the decoder's time texts (f4619ec).
VIEW_HASHES = [
    "faa33a9fadc6b39334c6035d08f23d0f132a861220c2c656c14fce79d1105d01",
    "30ef7c4a40eef9433afb0967a0cc00098acbe755982d7cf4c732b95d915d9805",
    "19594dd44db57cdfc6d8649accabfb051b2569e1bcd42b4c5ec5150f6bea1cf9",
]


def test_page_views_through_the_wire_hash_as_before() -> None:
    """What the writer process hashes: the views a worker encoded, decoded (the fast path
    that fills the time text from the wire's microseconds), equal the worker's records and
    chain to the hashes of the reference definition."""
    out: list[bytes] = []
    items = Encoder().encode(VIEWS, out)
    buf = bytearray(b"".join([*out, frame(("W", 1, items))]))
    decoder = Decoder()
    decoded: list[Record] = []
    for f in frames(buf):
        if f[0] == "S":
            decoder.share_list(f[1], f[2])
        else:
            decoded += [decoder.decode(item) for item in f[2]]
    assert decoded == VIEWS
    rows = ChainCursor(WRITER).link(decoded)
    assert [r.hash for r in rows] == VIEW_HASHES
    prev = GENESIS
    for seq, (rec, want) in enumerate(zip(VIEWS, VIEW_HASHES, strict=True), start=1):
        assert record_hash(rec.kind, rec.to_dict(), WRITER, seq, prev) == want
        assert record_text(rec) == canonical_text(rec.to_dict())
        prev = want


@pytest.mark.parametrize("t", [
    T, T.replace(microsecond=0), datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1000, 1, 1, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, 1, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999997, UTC)])
def test_time_text_from_microseconds_is_format_time(t: datetime) -> None:
    us = (t - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    for k in range(3):  # the second's text cached, then other microseconds of it
        u = t + timedelta(microseconds=k)
        want = format_time(u)
        assert time_text_us(u, us + k) == want
        assert time_text(u) == want


def test_list_texts_follow_the_list_object() -> None:
    """Keyed by id(): an equal list made anew gets the same texts; a list made after an
    earlier one was dropped (its id possibly reused) gets its own."""
    a = (ADS, CAFE)
    assert list_texts(a)[0] is a
    assert shares_text(a) == canonical_text([s.to_dict() for s in a])
    assert partner_set_text(a) == " ads-co caf\u00e9-metrics "
    assert shares_text(tuple(list(a))) == shares_text(a)
    for _ in range(50):
        one = (PartnerShare("x", ("p",), "consent"),)
        assert partner_set_text(one) == " x "
        del one
        other = (PartnerShare("y", (), "necessary"),)
        assert partner_set_text(other) == " y "
        assert shares_text(other) == canonical_text([other[0].to_dict()])
        del other


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

    for t in (T, T.replace(microsecond=0),
              datetime(1000, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, 59, 999999, UTC),
              datetime(2024, 3, 31, 2, 30, tzinfo=timezone(timedelta(hours=-9, minutes=-30)))):
        assert format_time(t) == ref(t)


@given(st.datetimes(timezones=st.just(UTC)), st.datetimes(timezones=st.just(UTC)))
def test_format_time_is_fixed_width_sorts_and_parses_back_in_every_year(
        a: datetime, b: datetime) -> None:
    """Year 999 came out as "999-12-31T..." (glibc's %Y is not padded): 26 characters,
    sorting after "1000-..." and refused by parse_time."""
    ta, tb = format_time(a), format_time(b)
    assert len(ta) == len(tb) == len("2024-05-01T12:00:00.000000Z")
    assert parse_time(ta) == a and parse_time(tb) == b
    assert (ta < tb) == (a < b)


def test_row_parameters_match_the_generic_path(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "l.db") as store:
        store.open()
        for row in ChainCursor(WRITER).link(RECORDS):
            assert store._params(row) == store._params_generic(row)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 7, 13, 63, 64, 65, 100, 513, 2049])
def test_chunks_cover_every_row(n: int) -> None:
    sizes = list(_chunks(n, 1927))
    assert sum(sizes) == n
    if 0 < n <= 64:  # a writer process's commit: one statement
        assert sizes == [n]
        return
    assert all(s & (s - 1) == 0 and s <= 1024 for s in sizes)
    assert len(set(sizes)) == len(sizes) or max(sizes) == 1024


def test_chunks_respect_the_variable_limit() -> None:
    assert list(_chunks(13, 2)) == [2, 2, 2, 2, 2, 2, 1]
    assert list(_chunks(40, 32)) == [32, 8]


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
