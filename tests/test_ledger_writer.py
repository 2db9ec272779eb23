"""LedgerWriter: group commit, durability on return, failure and recovery, never blocks."""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import shutil
import sqlite3
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from middleware.errors import LedgerUnavailable
from middleware.ledger import (
    ConsentEvent,
    DisclosureRecord,
    LedgerWriter,
    SqliteStore,
    VerifyReport,
    verify,
)
from middleware.ledger.writer import _Waiter


def check(p: Path, key: bytes | None = None) -> VerifyReport:
    with SqliteStore(p) as store:
        return verify(store, key)

def disclosure(i: int) -> DisclosureRecord:
    return DisclosureRecord(
        time=datetime.now(UTC), request_id=f"r{i}", consent_id="c1", path="/a",
        partner="adsense", purposes=("ads",), legal_basis="consent",
        data_categories=("ip_address",), cookies=(), policy_version="v1",
        ip="203.0.113.0/24", ua_family="Chrome 124",
    )


def count(p: Path, table: str = "disclosures") -> int:
    c = sqlite3.connect(p)
    try:
        return int(c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        c.close()


def test_writer_group_commits_concurrent_awaits_and_is_durable_on_return(
    tmp_path: Path,
) -> None:
    p = tmp_path / "l.db"
    w = LedgerWriter(SqliteStore(p))

    async def main() -> None:
        await asyncio.gather(*(w.write([disclosure(i)]) for i in range(300)))
        # Every await has returned: a fresh connection must see all of them.
        assert count(p) == 300

    asyncio.run(main())
    assert w.stats.records == 300
    assert w.stats.transactions <= 30, w.stats.transactions
    assert max(w.stats.batch_sizes) > 10
    w.close()
    assert check(p).ok


class _HeldStore:
    """A real SqliteStore whose first transaction waits for the test's go-ahead, so the
    test knows exactly what is queued when the thread next collects a batch."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self.in_commit = threading.Event()
        self.release = threading.Event()

    def append(self, rows):  # type: ignore[no-untyped-def]
        if not self.in_commit.is_set():
            self.in_commit.set()
            assert self.release.wait(30)
        return self._store.append(rows)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self._store, name)


def test_writer_linger_collects_bigger_batches(tmp_path: Path) -> None:
    # Deterministic: the linger's clock stands still and its timed wait is an event wait
    # (the next queued item) that reports "time is up" after the four late writes.
    store = _HeldStore(SqliteStore(tmp_path / "l.db"))
    waits: list[float] = []
    late: list[_Waiter] = []

    def wait(q: queue.SimpleQueue, timeout: float) -> object:
        waits.append(timeout)
        if len(waits) > 1:
            raise queue.Empty  # the linger ran out
        # The batch is lingering: four more writes arrive now (queued as write_sync does).
        for i in range(4, 8):
            late.append(_Waiter((disclosure(i),), cfut=concurrent.futures.Future()))
            q.put(late[-1])
        return q.get()

    w = LedgerWriter(store, max_wait_s=0.05, clock=lambda: 100.0, wait=wait)

    async def main() -> None:
        first = asyncio.create_task(w.write([disclosure(0)]))
        await asyncio.to_thread(store.in_commit.wait, 30)  # the thread holds [0] alone
        rest = [asyncio.create_task(w.write([disclosure(i)])) for i in range(1, 4)]
        await asyncio.sleep(0)  # each task has queued its records and awaits its commit
        store.release.set()
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    for waiter in late:
        waiter.cfut.result(30)
    w.close()
    assert list(w.stats.batch_sizes) == [1, 7]
    assert waits == pytest.approx([0.05, 0.05])  # the clock stood still: the whole linger each time
    assert check(tmp_path / "l.db").ok


def test_writer_linger_ends_at_its_deadline(tmp_path: Path) -> None:
    # Once the clock passes the deadline the batch goes without waiting any more.
    now = [100.0]
    waits: list[float] = []

    def clock() -> float:
        t = now[0]
        now[0] += 0.03
        return t

    late: list[threading.Thread] = []

    def wait(q: queue.SimpleQueue, timeout: float) -> object:
        waits.append(timeout)
        if len(waits) > 1:
            raise queue.Empty
        late.append(threading.Thread(target=w.write_sync, args=([disclosure(9)],)))
        late[0].start()
        return q.get()

    store = _HeldStore(SqliteStore(tmp_path / "l.db"))
    w = LedgerWriter(store, max_wait_s=0.05, clock=clock, wait=wait)

    async def main() -> None:
        first = asyncio.create_task(w.write([disclosure(0)]))
        await asyncio.to_thread(store.in_commit.wait, 30)
        rest = [asyncio.create_task(w.write([disclosure(i)])) for i in range(1, 3)]
        await asyncio.sleep(0)
        store.release.set()
        await asyncio.gather(first, *rest)

    asyncio.run(main())
    late[0].join(30)
    w.close()
    # One wait of the 0.02 s left; after it the clock is past the deadline: no second wait.
    assert list(w.stats.batch_sizes) == [1, 3]
    assert len(waits) == 1 and abs(waits[0] - 0.02) < 1e-9


def test_writer_lone_write_is_not_delayed_by_the_linger(tmp_path: Path) -> None:
    w = LedgerWriter(SqliteStore(tmp_path / "l.db"), max_wait_s=0.5)
    w.write_sync([disclosure(0)])  # opens the file, creates the schema
    t = time.perf_counter()
    w.write_sync([disclosure(1)])
    assert time.perf_counter() - t < 0.4
    w.close()


def test_writer_respects_max_batch(tmp_path: Path) -> None:
    w = LedgerWriter(SqliteStore(tmp_path / "l.db"), max_batch=8)

    async def main() -> None:
        await asyncio.gather(*(w.write([disclosure(i)]) for i in range(100)))

    asyncio.run(main())
    w.close()
    assert max(w.stats.batch_sizes) <= 8 and w.stats.records == 100


def test_writer_failure_raises_ledger_unavailable_then_recovers(tmp_path: Path) -> None:
    # Root ignores permissions, but nobody can create a file below a regular file.
    blocker = tmp_path / "ledger"
    blocker.write_text("not a directory")
    p = blocker / "l.db"
    w = LedgerWriter(SqliteStore(p))

    async def main() -> None:
        with pytest.raises(LedgerUnavailable) as info:
            await w.write([disclosure(0)])
        assert "l.db" in info.value.cause
        results = await asyncio.gather(*(w.write([disclosure(i)]) for i in range(5)),
                                       return_exceptions=True)
        assert all(isinstance(r, LedgerUnavailable) for r in results)
        # The ledger comes back: the next batch succeeds.
        blocker.unlink()
        blocker.mkdir()
        await w.write([disclosure(10)])
        await w.write([disclosure(11)])

    asyncio.run(main())
    w.close()
    assert w.stats.failures >= 2
    assert count(p) == 2
    report = check(p)  # failed batches did not use up seqs
    assert report.ok and report.rows == 2


def test_writer_failure_when_locked_too_long_and_loop_keeps_running(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    w = LedgerWriter(SqliteStore(p, busy_timeout_s=0.3))
    w.write_sync([disclosure(0)])
    other = sqlite3.connect(p, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def main() -> None:
        t = asyncio.create_task(ticker())
        start = time.perf_counter()
        with pytest.raises(LedgerUnavailable, match="locked"):
            await w.write([disclosure(1)])
        assert time.perf_counter() - start >= 0.25
        t.cancel()

    asyncio.run(main())
    assert ticks >= 10  # the event loop kept running while the writer waited on the lock
    other.execute("ROLLBACK")
    other.close()
    w.write_sync([disclosure(2)])
    w.close()
    assert count(p) == 2 and check(p).ok


def test_writer_timeout_raises_ledger_unavailable(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    w = LedgerWriter(SqliteStore(p, busy_timeout_s=2))
    w.write_sync([disclosure(0)])
    other = sqlite3.connect(p, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")

    async def main() -> None:
        with pytest.raises(LedgerUnavailable, match="no commit within"):
            await w.write([disclosure(1)], timeout=0.05)

    asyncio.run(main())
    other.execute("ROLLBACK")
    other.close()
    w.close()


def test_writer_close_flushes_pending_writes(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    w = LedgerWriter(SqliteStore(p))

    async def main() -> None:
        tasks = [asyncio.create_task(w.write([disclosure(i)])) for i in range(200)]
        await asyncio.sleep(0)  # every task has queued its records
        await w.aclose()
        await asyncio.gather(*tasks)

    asyncio.run(main())
    assert count(p) == 200


def test_writer_refuses_writes_after_close(tmp_path: Path) -> None:
    w = LedgerWriter(SqliteStore(tmp_path / "l.db"))
    w.write_sync([disclosure(0)])
    w.close()
    w.close()  # idempotent
    with pytest.raises(LedgerUnavailable, match="closed"):
        w.write_sync([disclosure(1)])
    with pytest.raises(LedgerUnavailable, match="closed"):
        asyncio.run(w.write([disclosure(1)]))


def test_writer_survives_a_cancelled_waiter(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    w = LedgerWriter(SqliteStore(p))

    async def main() -> None:
        t = asyncio.create_task(w.write([disclosure(0)]))
        await asyncio.sleep(0)
        t.cancel()
        await asyncio.gather(*(w.write([disclosure(i)]) for i in range(1, 20)))

    asyncio.run(main())
    w.close()
    assert count(p) in (19, 20)
    assert check(p).ok


def test_writer_writes_mixed_records_in_one_chain(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    w = LedgerWriter(SqliteStore(p))
    ev = ConsentEvent(time=datetime.now(UTC), consent_id="c1", action="given",
                      choices={"ads": True}, policy_version="v1", source="gpc")
    w.write_sync([ev, disclosure(1), ev])
    w.close()
    assert (count(p), count(p, "consent_events")) == (1, 2)
    rows = list(SqliteStore(p).chain_rows())
    assert [(r.table, r.seq) for r in rows] == [
        ("consent_events", 1), ("disclosures", 2), ("consent_events", 3)]


@pytest.mark.slow
def test_writer_throughput_and_latency_with_32_concurrent_writers(tmp_path: Path) -> None:
    """Measures; prints the figures (pytest -s). Bounds are loose: this is not a benchmark."""
    p = tmp_path / "l.db"
    w = LedgerWriter(SqliteStore(p))
    w.write_sync([disclosure(0)])
    lat: list[float] = []
    per_task = 100

    async def one(k: int) -> None:
        for i in range(per_task):
            t = time.perf_counter()
            await w.write([disclosure(k * per_task + i)])
            lat.append(time.perf_counter() - t)

    async def main() -> float:
        t = time.perf_counter()
        await asyncio.gather(*(one(k) for k in range(32)))
        return time.perf_counter() - t

    elapsed = asyncio.run(main())
    w.close()
    n = 32 * per_task
    lat.sort()
    print(f"\n32 writers x {per_task}: {n / elapsed:,.0f} records/s, "
          f"{w.stats.transactions} transactions, latency p50 "
          f"{statistics.median(lat) * 1e3:.2f} ms p99 {lat[int(n * 0.99)] * 1e3:.2f} ms")
    assert count(p) == n + 1
    assert n / elapsed > 300
    assert w.stats.transactions < n / 4
    shutil.rmtree(tmp_path, ignore_errors=True)
