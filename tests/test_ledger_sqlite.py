"""SqliteStore: file mode, pragmas, schema versioning, queries, several processes appending."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import stat
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from middleware.errors import LedgerUnavailable
from middleware.ledger import (
    ConsentEvent,
    DisclosureRecord,
    Filters,
    LedgerWriter,
    SqliteStore,
    VerifyReport,
    verify,
)
from middleware.ledger.chain import ChainCursor
from middleware.ledger.query import export, show, subject, summary

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)



def check(p: Path, key: bytes | None = None) -> VerifyReport:
    with SqliteStore(p) as store:
        return verify(store, key)

def disclosure(i: int, partner: str = "adsense", t: datetime | None = None,
               path: str = "/a", consent_id: str | None = "c1",
               purposes: tuple[str, ...] = ("ads",)) -> DisclosureRecord:
    return DisclosureRecord(
        time=t or NOW, request_id=f"r{i}", consent_id=consent_id, path=path, partner=partner,
        purposes=purposes, legal_basis="consent", data_categories=("ip_address", "cookies"),
        cookies=("__gads",), policy_version="v1", ip="203.0.113.0/24", ua_family="Chrome 124",
        fields={"i": i},
    )


def event(consent_id: str, action: str = "given", t: datetime | None = None) -> ConsentEvent:
    return ConsentEvent(time=t or NOW, consent_id=consent_id, action=action,  # type: ignore[arg-type]
                        choices={"ads": action != "withdrawn"}, policy_version="v1",
                        source="banner")


def test_sqlite_store_creates_private_wal_file_with_durable_settings(tmp_path: Path) -> None:
    p = tmp_path / "ledger.sqlite3"
    old = os.umask(0o022)
    try:
        store = SqliteStore(p)
        w = LedgerWriter(store)
        w.write_sync([disclosure(1)])
        for f in (p, Path(f"{p}-wal"), Path(f"{p}-shm")):
            assert f.exists(), f
            assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        conn = store._connection()
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        # SQLite's own handler waits 1 ms at most; the write lock is retried by the store.
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1
        # Statement journals stay in memory: no commit depends on /var/tmp (2 = MEMORY).
        assert conn.execute("PRAGMA temp_store").fetchone()[0] == 2
        w.close()
    finally:
        os.umask(old)


def test_sqlite_read_commands_keep_their_sorters_in_temp_files(tmp_path: Path) -> None:
    """temp_store = MEMORY is for writing connections: a summary's GROUP BY sorter of a big
    ledger would otherwise be held in memory (189 MB instead of 72 at 1,000,000 views)."""
    p = tmp_path / "ledger.sqlite3"
    w = LedgerWriter(SqliteStore(p))
    w.write_sync([disclosure(1)])
    w.close()
    with SqliteStore(p) as store:
        summary(store, NOW - timedelta(days=1))
        assert store._connection().execute("PRAGMA temp_store").fetchone()[0] == 0  # default
        store.append(ChainCursor().link([disclosure(2)]))
        assert store._connection().execute("PRAGMA temp_store").fetchone()[0] == 2


def test_sqlite_schema_is_versioned_and_indexed(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    SqliteStore(p).open()
    SqliteStore(p).open()  # second open: no second migration
    c = sqlite3.connect(p)
    assert c.execute("PRAGMA user_version").fetchone()[0] == 4
    assert c.execute("SELECT version FROM schema_migrations").fetchall() == [
        (1,), (2,), (3,), (4,)]
    indexes = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"disclosures_partner_time", "disclosures_consent_time", "disclosures_chain",
            "consent_events_consent_time", "disclosures_time", "page_views_time",
            "page_views_consent_time", "page_views_set_time_consent", "page_views_chain"} <= indexes
    plan = " ".join(str(r) for r in c.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM page_views WHERE partner_set = ' x ' ORDER BY time DESC"))
    assert "page_views_set_time" in plan
    c.close()


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    SqliteStore(p).open()
    c = sqlite3.connect(p)
    c.execute("PRAGMA user_version = 99")
    c.close()
    with pytest.raises(LedgerUnavailable, match="newer"):
        SqliteStore(p).open()


def test_sqlite_open_fails_with_ledger_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(LedgerUnavailable, match="cannot open SQLite ledger"):
        SqliteStore(tmp_path / "file" / "l.db").open()
    (tmp_path / "garbage.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerUnavailable):
        SqliteStore(tmp_path / "garbage.db").open()


def _populate(p: Path) -> None:
    day = timedelta(days=1)
    w = LedgerWriter(SqliteStore(p))
    w.write_sync([
        event("c1", "given", NOW - 3 * day),
        disclosure(1, "adsense", NOW - 3 * day, "/a", "c1"),
        disclosure(2, "adsense", NOW - 2 * day, "/blog/x", "c2"),
        disclosure(3, "adsense", NOW - 2 * day, "/blog/y", "c1"),
        disclosure(4, "twitter", NOW - day, "/a", "c2", ("social",)),
        disclosure(5, "adsense", NOW, "/b_c", None, ("ads", "measure")),
        event("c1", "withdrawn", NOW),
    ])
    w.close()


def test_query_summary_per_partner(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    _populate(p)
    rows = summary(SqliteStore(p))
    assert [r.partner for r in rows] == ["adsense", "twitter"]
    ads = rows[0]
    assert (ads.page_views, ads.consent_ids) == (4, 2)
    assert ads.purposes == ("ads", "measure")
    assert ads.data_categories == ("cookies", "ip_address")
    assert ads.first_seen == NOW - timedelta(days=3) and ads.last_seen == NOW
    d = NOW.date()
    assert ads.per_day == ((d - timedelta(days=3), 1), (d - timedelta(days=2), 2), (d, 1))
    since = summary(SqliteStore(p), since=NOW - timedelta(days=1, hours=1))
    assert [(r.partner, r.page_views) for r in since] == [("adsense", 1), ("twitter", 1)]
    until = summary(SqliteStore(p), until=NOW - timedelta(days=2))
    assert [(r.partner, r.page_views) for r in until] == [("adsense", 1)]
    assert isinstance(ads.per_day[0][0], date)


@pytest.mark.parametrize(
    ("flt", "expected"),
    [
        (Filters(), ["r5", "r4", "r3", "r2", "r1"]),
        (Filters(limit=2), ["r5", "r4"]),
        (Filters(partner="twitter"), ["r4"]),
        (Filters(purpose="measure"), ["r5"]),
        (Filters(purpose="ads"), ["r5", "r3", "r2", "r1"]),
        (Filters(path="/blog/*"), ["r3", "r2"]),
        (Filters(path="/b_*"), ["r5"]),  # _ is literal, not a LIKE wildcard
        (Filters(path="/a"), ["r4", "r1"]),
        (Filters(consent_id="c2"), ["r4", "r2"]),
        (Filters(since=NOW - timedelta(days=2), until=NOW), ["r4", "r3", "r2"]),
    ],
)
def test_query_show_filters_newest_first(tmp_path: Path, flt: Filters,
                                         expected: list[str]) -> None:
    p = tmp_path / "l.db"
    _populate(p)
    got = [r.record.request_id for r in show(SqliteStore(p), flt)]  # type: ignore[union-attr]
    assert got == expected


def test_query_subject_returns_history_and_disclosures(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    _populate(p)
    rep = subject(SqliteStore(p), "c1")
    assert [e.record.action for e in rep.events] == ["given", "withdrawn"]  # type: ignore[union-attr]
    assert [d.record.request_id for d in rep.disclosures] == ["r1", "r3"]  # type: ignore[union-attr]
    assert subject(SqliteStore(p), "nobody").events == ()


def test_query_export_streams_oldest_first(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    _populate(p)
    it = export(SqliteStore(p), Filters(partner="adsense"))
    first = next(it)
    assert first.record.request_id == "r1"  # type: ignore[union-attr]
    assert [r.record.request_id for r in it] == ["r2", "r3", "r5"]  # type: ignore[union-attr]
    ev = list(export(SqliteStore(p), Filters(), kind="consent-events"))
    assert len(ev) == 2


def _append_worker(path: str, n: int, batch: int) -> None:
    w = LedgerWriter(SqliteStore(path, busy_timeout_s=30))
    for i in range(0, n, batch):
        w.write_sync([disclosure(i + j) for j in range(batch)])
    w.close()


def test_sqlite_several_processes_append_to_one_file(tmp_path: Path) -> None:
    p = tmp_path / "shared.db"
    procs, n, batch = 4, 300, 3
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_append_worker, args=(str(p), n, batch)) for _ in range(procs)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0
    c = sqlite3.connect(p)
    assert c.execute("SELECT count(*) FROM disclosures").fetchone()[0] == procs * n
    assert c.execute("SELECT count(DISTINCT writer_id) FROM disclosures").fetchone()[0] == procs
    c.close()
    report = check(p)
    assert report.ok, report.problems[:3]
    assert (report.rows, report.writers) == (procs * n, procs)


def test_sqlite_store_waits_for_a_write_lock_held_by_another_process(tmp_path: Path) -> None:
    """Another connection holds the write lock far longer than SQLite's 1 ms busy timeout:
    the store keeps retrying (fast) and the write lands as soon as the lock is free."""
    import sqlite3
    import threading
    import time

    p = tmp_path / "ledger.sqlite3"
    store = SqliteStore(p)
    w = LedgerWriter(store)
    w.write_sync([disclosure(1)])
    holder = sqlite3.connect(p, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        time.sleep(0.3)
        holder.execute("COMMIT")
        released.set()

    threading.Thread(target=release).start()
    w.write_sync([disclosure(2)])
    assert released.is_set(), "the write waited for the other process's commit"
    w.close()
    holder.close()
    with sqlite3.connect(p) as check:
        assert check.execute("SELECT count(*) FROM disclosures").fetchone()[0] == 2


def test_sqlite_store_synchronous_setting(tmp_path: Path) -> None:
    from middleware.ledger import open_store

    store = open_store(str(tmp_path / "normal.sqlite3"), synchronous="normal")
    w = LedgerWriter(store)
    w.write_sync([disclosure(1)])
    assert store._connection().execute("PRAGMA synchronous").fetchone()[0] == 1  # type: ignore[attr-defined]
    w.close()
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStore(tmp_path / "x.sqlite3", synchronous="off")


def test_sqlite_deferred_checkpoints_leave_commits_alone_and_restart_the_wal(
    tmp_path: Path,
) -> None:
    """deferred_checkpoints: no checkpoint inside a commit (wal_autocheckpoint 0); the writer
    runs one when due, after which the next commit starts the WAL from its beginning."""
    from datetime import UTC, datetime

    from middleware.ledger import PageView, PartnerShare, verify
    from middleware.ledger.chain import ChainCursor

    p = tmp_path / "l.sqlite3"
    store = SqliteStore(p, deferred_checkpoints=True)
    store.open()
    conn = store._connection()
    assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    shares = (PartnerShare("adsense", ("ads",), "consent", ("ip_address",), ()),)
    cursor = ChainCursor()

    def commit(n: int) -> None:
        rows = cursor.link([PageView(time=datetime.now(UTC), request_id=f"r{cursor.seq + i}",
                                     consent_id="c", path="/a", partners=shares)
                            for i in range(n)])
        store.append(rows)
        cursor.advance(rows)

    def wal_frames() -> int:
        # mxFrame of the wal-index header (-shm, offset 16, native order): read, not checkpointed.
        return int.from_bytes(Path(f"{p}-shm").read_bytes()[16:20], sys.byteorder)

    for _ in range(SqliteStore.CHECKPOINT_COMMITS - 1):
        commit(1)
        assert not store.checkpoint_if_due()
    grown = wal_frames()
    assert grown >= SqliteStore.CHECKPOINT_COMMITS - 1  # every commit stayed in the WAL
    commit(1)
    assert store.checkpoint_if_due()
    assert not store.checkpoint_if_due()  # counted again from zero
    commit(1)
    assert wal_frames() < grown  # the WAL started over
    commit(SqliteStore.CHECKPOINT_ROWS)
    assert store.checkpoint_if_due()  # due by rows as well as by commits
    store.close()
    with SqliteStore(p) as again:
        report = verify(again)
    assert report.ok and report.rows == SqliteStore.CHECKPOINT_COMMITS + 1 + SqliteStore.CHECKPOINT_ROWS
