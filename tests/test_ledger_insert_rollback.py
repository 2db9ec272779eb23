"""SQLite appends with ``INSERT OR ROLLBACK`` (no statement journal): a batch whose insert
fails half-way leaves none of its rows, lists or sets behind, fails closed with
``LedgerUnavailable``, and the next batch commits the same seqs into a chain that verifies.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from middleware.errors import LedgerUnavailable
from middleware.ledger import LedgerWriter, PageView, PartnerShare, SqliteStore, verify
from middleware.ledger.chain import ChainCursor

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
ADS = PartnerShare("google-adsense", ("ads",), "consent", ("ip_address", "cookies"), ("__gads",))
FB = PartnerShare("facebook", ("social",), "consent", ("ip_address",), ())


def views(start: int, n: int, shares: tuple[PartnerShare, ...] = (FB, ADS),
          bad: int | None = None) -> list[PageView]:
    return [PageView(time=NOW + timedelta(seconds=i), request_id=f"r{i}",
                     consent_id=f"c{i % 3}", path="/refused" if i == bad else f"/p{i}",
                     partners=shares, policy_version="v1", ip="203.0.113.0", ua_family="Chrome")
            for i in range(start, start + n)]


def counts(p: Path) -> tuple[int, int, int]:
    with sqlite3.connect(p) as c:
        return (c.execute("SELECT COUNT(*) FROM page_views").fetchone()[0],
                c.execute("SELECT COUNT(*) FROM partner_lists").fetchone()[0],
                c.execute("SELECT COUNT(*) FROM partner_sets").fetchone()[0])


@pytest.mark.parametrize("bad_at", [0, 4, 7])
def test_sqlite_failed_insert_midway_leaves_nothing_and_the_next_batch_verifies(
        tmp_path: Path, bad_at: int) -> None:
    p = tmp_path / "ledger.sqlite3"
    store = SqliteStore(p)
    cursor = ChainCursor()
    first = cursor.link(views(0, 3))
    store.append(first)
    cursor.advance(first)
    with sqlite3.connect(p) as c:  # a row the database refuses in the middle of a batch
        c.execute("CREATE TRIGGER refuse BEFORE INSERT ON page_views WHEN NEW.path = '/refused' "
                  "BEGIN SELECT RAISE(FAIL, 'refused'); END")
    # A new partner list and set in the failing batch: they must not survive it either.
    batch = cursor.link(views(3, 8, shares=(ADS,), bad=3 + bad_at))
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        store.append(batch)
    assert counts(p) == (3, 1, 1)
    with sqlite3.connect(p) as c:
        c.execute("DROP TRIGGER refuse")
    # The store forgot nothing it must not know: the list of the failed batch gets its
    # row now (had its id been cached, these views would point at no list).
    again = cursor.link(views(3, 8, shares=(ADS,)))
    assert [r.seq for r in again] == [r.seq for r in batch]
    store.append(again)
    cursor.advance(again)
    assert counts(p) == (11, 2, 2)
    report = verify(store)
    assert report.ok, report.problems
    assert report.rows == 11
    store.close()


def test_sqlite_full_ledger_midway_fails_closed_and_recovers(tmp_path: Path) -> None:
    p = tmp_path / "ledger.sqlite3"
    store = SqliteStore(p)
    cursor = ChainCursor()
    first = cursor.link(views(0, 2))
    store.append(first)
    cursor.advance(first)
    conn = store._connection()
    (pages,) = conn.execute("PRAGMA page_count").fetchone()
    # A full disk, as SQLite sees it: no page beyond the ones the file has.
    conn.execute(f"PRAGMA max_page_count = {pages}")
    writer = LedgerWriter(store, writer_id=cursor.writer_id)
    writer.cursor = cursor
    big = views(2, 400)
    with pytest.raises(LedgerUnavailable, match="full"):
        writer.write_sync(big, timeout=30)
    assert counts(p)[0] == 2
    # SQLITE_FULL dropped the connection: the next one has no page limit, and the same
    # records commit into a chain with no gap.
    writer.write_sync(big, timeout=30)
    assert counts(p)[0] == 402
    report = verify(store)
    assert report.ok, report.problems
    writer.close()
