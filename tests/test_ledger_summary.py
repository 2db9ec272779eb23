"""``SqlStore.summary`` reads page views per partner set and day (indexed ranges, no sort of
the whole range). Its result must equal what one plain GROUP BY over the range gives (the
query it replaced, kept here as the reference) on random ledgers: several partner sets
sharing partners, days without a view, a since/until that cuts a day, views with no consent
id, and schema v3 rows that hold their partner list's text instead of a ``list_id``."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from middleware.ledger import PageView, PartnerShare, SqliteStore
from middleware.ledger._sql import SqlStore, _Summary
from middleware.ledger.chain import ChainCursor
from middleware.ledger.query import summary
from middleware.ledger.store import PAGE_VIEWS, Filters, SummaryData
from tests.test_ledger_listref import v3_append, v3_file
from tests.test_ledger_postgres import dsn, pg_server  # noqa: F401  (fixtures)

START = datetime(2026, 11, 1, tzinfo=UTC)
ADS = PartnerShare("google-adsense", ("ads",), "consent", ("ip_address", "cookies"), ("__gads",))
GPT = PartnerShare("google-publisher-tag", ("ads",), "consent", ("ip_address",), ())
FB = PartnerShare("facebook", ("social",), "consent", ("ip_address",), ())
X = PartnerShare("x-twitter", ("social",), "opt-out-not-exercised")
YT = PartnerShare("youtube", ("media",), "consent", ("page_url",), ())
SETS = [(FB, ADS, GPT, X), (ADS, GPT), (FB, X), (YT,), (ADS, X)]
EMPTY_DAYS = {2, 5, 6}  # of days 0-9: no view at all on these


def views(rng: random.Random, n: int) -> list[PageView]:
    """``n`` views over days 0-9 (none on EMPTY_DAYS), in time order as a writer logs them."""
    times = []
    while len(times) < n:
        day = rng.randrange(10)
        if day not in EMPTY_DAYS:
            times.append(START + timedelta(days=day, seconds=rng.randrange(86_400),
                                           microseconds=rng.randrange(1_000_000)))
    times.sort()
    # Exactly midnight and the last microsecond of a day: the edges of a day's range.
    times[0] = START
    times[-1] = START + timedelta(days=10) - timedelta(microseconds=1)
    out = []
    for i, t in enumerate(times):
        r = rng.random()
        shares = SETS[3] if r < 0.05 else rng.choice(SETS)
        cid = None if r > 0.9 else f"c{rng.randrange(12)}"
        out.append(PageView(time=t, request_id=f"r{i}", consent_id=cid, path=f"/p{i % 7}",
                            partners=shares, policy_version="v1", ip="203.0.113.0/24",
                            ua_family="Chrome 124"))
    return out


def reference(store: SqlStore, since: datetime | None, until: datetime | None) -> SummaryData:
    """The page view part of the summary as one GROUP BY and one DISTINCT over the range (the
    queries summary ran before: they sort the whole range)."""
    acc = _Summary()
    where, params = store._where(Filters(since=since, until=until), PAGE_VIEWS)
    day = store._day_expr("time")
    seen = set()
    for ps, d, n, a, b in store._read(
            f"SELECT partner_set, {day}, COUNT(*), MIN(time), MAX(time) FROM {PAGE_VIEWS}"
            f"{where} GROUP BY partner_set, {day}", params):
        seen.add(str(ps))
        for p in str(ps).split():
            acc.add(p, str(d), int(n), store._ts_value(a), store._ts_value(b))
    for ps, c in store._read(f"SELECT DISTINCT partner_set, consent_id FROM {PAGE_VIEWS}{where}",
                             params):
        if c is not None:
            for p in str(ps).split():
                acc.consent_ids.setdefault(p, set()).add(str(c))
    for s in SETS:
        if " " + " ".join(sorted(x.partner for x in s)) + " " in seen:
            for sh in s:
                acc.purposes.update((sh.partner, x) for x in sh.purposes)
                acc.categories.update((sh.partner, x) for x in sh.data_categories)
    return acc.data()


RANGES = [
    (None, None),
    # Both ends inside a day (day 1 from 07:13:05, day 8 until 05:00), then whole days, then
    # a range that starts and ends on days without a view, and one with no view at all.
    (START + timedelta(days=1, hours=7, minutes=13, seconds=5),
     START + timedelta(days=8, hours=5)),
    (START + timedelta(days=3), START + timedelta(days=7)),
    (START + timedelta(days=2, hours=12), START + timedelta(days=6, hours=1)),
    (START + timedelta(days=5), START + timedelta(days=7)),
    (START + timedelta(days=4, hours=23, minutes=59), None),
    (None, START + timedelta(days=1, microseconds=1)),
]


def check(store: SqlStore, recs: list[PageView]) -> None:
    for since, until in RANGES:
        got, want = store.summary(since, until), reference(store, since, until)
        assert got == want, (since, until)
        # And against the records themselves, not SQL: views, days and ids per partner.
        inside = [v for v in recs if (since is None or v.time >= since)
                  and (until is None or v.time < until)]
        per_day: dict[tuple[str, str], int] = {}
        ids: dict[str, set[str]] = {}
        for v in inside:
            for sh in v.partners:
                k = (sh.partner, v.time.date().isoformat())
                per_day[k] = per_day.get(k, 0) + 1
                if v.consent_id is not None:
                    ids.setdefault(sh.partner, set()).add(v.consent_id)
        assert {(p, d.isoformat()): n for p, d, n in got.per_day} == per_day
        assert {a.partner: a.consent_ids for a in got.partners} == {
            p: len(ids.get(p, ())) for p, _ in per_day}
        assert all(d.day - 1 not in EMPTY_DAYS for _, d, _ in got.per_day)
    assert store.summary(START + timedelta(days=5), START + timedelta(days=7)).partners == []


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sqlite_summary_equals_the_group_by_reference(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    recs = views(rng, 600)
    p = tmp_path / "l.sqlite3"
    v3_file(p)
    cursor = ChainCursor()
    v3_append(p, cursor, recs[:250])  # v3 rows: partners text in the row, no list_id
    with SqliteStore(p) as store:
        rows = cursor.link(recs[250:])
        store.append(rows)
        with store._lock:
            assert store._read("SELECT COUNT(*) FROM page_views WHERE list_id IS NULL",
                               []) == [(250,)]
        check(store, recs)
        # The CLI's own rendering path agrees too (query.summary over the same data).
        assert [s.page_views for s in summary(store)] == [
            a.page_views for a in reference(store, None, None).partners]


def test_sqlite_summary_plans_use_the_index_without_a_temp_b_tree(tmp_path: Path) -> None:
    """Every page view query of a summary is an indexed search: no "USE TEMP B-TREE FOR GROUP
    BY" (a sort of the range), and the only temp B-tree is the DISTINCT of consent ids."""
    plans: list[tuple[str, str]] = []
    with SqliteStore(tmp_path / "l.sqlite3") as store:
        cursor = ChainCursor()
        rows = cursor.link(views(random.Random(4), 50))
        store.append(rows)
        read = store._read

        def spy(sql: str, params: list[object]) -> list[tuple[object, ...]]:
            if PAGE_VIEWS in sql:
                for r in read("EXPLAIN QUERY PLAN " + sql, params):
                    plans.append((sql, str(r[-1])))
            return read(sql, params)

        store._read = spy  # type: ignore[method-assign]
        store.summary(START + timedelta(hours=5), START + timedelta(days=8, hours=3))
    assert plans
    assert not [p for p in plans if "FOR GROUP BY" in p[1] or "FOR ORDER BY" in p[1]]
    assert {sql for sql, d in plans if "TEMP B-TREE" in d} == {
        sql for sql, _ in plans if "DISTINCT consent_id" in sql}
    assert not [p for p in plans if p[1].startswith("SCAN page_views")], plans


def test_postgres_summary_equals_the_group_by_reference(dsn: str) -> None:  # noqa: F811
    from middleware.ledger.postgres import PostgresStore

    recs = views(random.Random(5), 400)
    with PostgresStore(dsn) as store:
        cursor = ChainCursor()
        for chunk in (recs[:150], recs[150:]):
            rows = cursor.link(chunk)
            store.append(rows)
            cursor.advance(rows)
        check(store, recs)


def _summary_while_writing(store: SqlStore, writer: SqlStore, recs: list[PageView]) -> None:
    """A second store (its own connection, as another process's writer) commits views
    between the summary's statements: the summary is the one of the ledger before them."""
    before = store.summary(None, None)
    cursor = ChainCursor()
    late = [PageView(time=v.time + timedelta(microseconds=1), request_id=f"late{i}",
                     consent_id=f"late{i}", path=v.path, partners=v.partners)
            for i, v in enumerate(recs[::3])]
    read = store._read
    calls = [0]

    def read_then_write(sql: str, params: Sequence[Any]) -> list[Any]:
        calls[0] += 1
        if calls[0] % 5 == 2 and late:  # after the first statement's snapshot
            rows = cursor.link([late.pop()])
            writer.append(rows)
            cursor.advance(rows)
        return read(sql, params)

    store._read = read_then_write  # type: ignore[method-assign]
    try:
        during = store.summary(None, None)
    finally:
        del store._read
    assert calls[0] > 10 and len(late) < len(recs[::3])  # writes did land in between
    assert during == before
    assert store.summary(None, None) != before  # and the next summary sees them


def test_sqlite_summary_reads_one_snapshot(tmp_path: Path) -> None:
    recs = views(random.Random(6), 300)
    p = tmp_path / "l.sqlite3"
    with SqliteStore(p) as store, SqliteStore(p) as writer:
        rows = ChainCursor().link(recs)
        store.append(rows)
        _summary_while_writing(store, writer, recs)


def test_postgres_summary_reads_one_snapshot(dsn: str) -> None:  # noqa: F811
    from middleware.ledger.postgres import PostgresStore

    recs = views(random.Random(7), 200)
    with PostgresStore(dsn) as store, PostgresStore(dsn) as writer:
        store.append(ChainCursor().link(recs))
        _summary_while_writing(store, writer, recs)
