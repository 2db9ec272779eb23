"""SqliteStore's chained page view INSERT (the writer id bound once, ``partners`` a literal,
each ``prev_hash`` the previous row's ``hash`` parameter) stores exactly the rows the
generic multi-row INSERT stores, for any mix of page views and other records in a commit
(a consent event between two views breaks the chain: the generic statement then runs)."""

from __future__ import annotations

import itertools
import shutil
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.ledger import ConsentEvent, PageView, PartnerShare, SqliteStore, verify
from middleware.ledger._sql import SqlStore
from middleware.ledger.chain import ChainCursor
from middleware.ledger.records import Record
from tests.support.budget import examples

T0 = datetime(2026, 12, 1, tzinfo=UTC)
EVERY = (PartnerShare("a-ads", ("ads",), "consent", ("ip_address",), ("_a",)),
         PartnerShare("b-social", ("social",), "consent", (), ()))
ADS = EVERY[:1]


class GenericInsert(SqliteStore):
    """The same store with SqlStore's multi-row INSERT for every table."""

    _insert = SqlStore._insert


def rows_of(p: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(p) as c:
        views = c.execute("SELECT v.*, l.partners FROM page_views v LEFT JOIN partner_lists l "
                          "ON l.id = v.list_id ORDER BY v.id").fetchall()
        events = c.execute("SELECT * FROM consent_events ORDER BY id").fetchall()
    return [tuple(r) for r in views + events]


def record(i: int, kind: str) -> Record:
    t = T0 + timedelta(milliseconds=i)
    if kind == "consent":
        return ConsentEvent(time=t, consent_id=f"c{i}", action="given", choices={"ads": True},
                            policy_version="v1", source="banner", ip=None, ua_family="Firefox")
    return PageView(time=t, request_id=f"r{i}", consent_id=None if i % 7 == 0 else f"c{i % 5}",
                    path=f"/p{i}", partners=ADS if kind == "ads" else EVERY,
                    policy_version="v1", ip="203.0.113.0" if i % 2 else None, ua_family="Chrome",
                    fields={"n": i} if i % 11 == 0 else {})


@settings(max_examples=examples(60), deadline=None)
@given(batches=st.lists(st.lists(st.sampled_from(["view", "view", "view", "ads", "consent"]),
                                 min_size=1, max_size=70), min_size=1, max_size=4))
def test_chained_insert_stores_what_the_generic_insert_stores(
        batches: list[list[str]]) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="chained-"))
    stores = [SqliteStore(tmp / "chained.sqlite3"), GenericInsert(tmp / "generic.sqlite3")]
    cursor = ChainCursor("writer-1")
    i = 0
    for kinds in batches:
        rows = cursor.link([record(i + k, kind) for k, kind in enumerate(kinds)])
        i += len(kinds)
        for store in stores:
            store.append(rows)
        cursor.advance(rows)
    chained, generic = (rows_of(s.path) for s in stores)
    assert chained == generic
    report = verify(stores[0])
    assert report.ok and report.rows == i, report.problems
    for store in stores:
        store.close()
    shutil.rmtree(tmp)


def test_chained_insert_keeps_a_chain_that_starts_after_a_tip(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "l.sqlite3")
    cursor = ChainCursor("writer-2")
    first = cursor.link([record(0, "view")])
    store.append(first)
    cursor.advance(first)
    rest = cursor.link([record(k, "view") for k in range(1, 20)])
    store.append(rest)
    with sqlite3.connect(store.path) as c:
        chain = c.execute("SELECT seq, prev_hash, hash, partners, writer_id FROM page_views "
                          "ORDER BY seq").fetchall()
    assert [r[0] for r in chain] == list(range(1, 21))
    assert all(b[1] == a[2] for a, b in itertools.pairwise(chain))
    assert {r[3] for r in chain} == {""} and {r[4] for r in chain} == {"writer-2"}
    assert verify(store).ok
    store.close()
