"""The durable outbox: a table of its own in the ledger's SQLite file.

``await outbox.put(items)`` returns once the rows are committed (WAL, ``synchronous=FULL``
by default): that is when ``forward()`` returns, so an event a page was told about is never
lost. Puts arriving while a commit is in flight share the next one (group commit). A sender
*leases* due rows (``claim``); a sender killed mid-send leaves its lease to expire and the
row is sent again with the same event id (at least once). A row leaves the table only when
the partner has answered, or when it is dropped (too old, rejected, out of attempts); each
outcome is counted per partner in ``forward_stats``.

All SQLite work happens on one thread per outbox, never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

T = TypeVar("T")
Outcome = Literal["delivered", "failed", "dropped"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS forward_outbox (
        id INTEGER PRIMARY KEY,
        partner TEXT NOT NULL,
        event_id TEXT NOT NULL,
        event TEXT NOT NULL,
        event_time REAL NOT NULL,
        body TEXT NOT NULL,
        gpc INTEGER NOT NULL DEFAULT 0,
        record TEXT NOT NULL DEFAULT '{}',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        lease_until REAL NOT NULL DEFAULT 0,
        last_error TEXT,
        UNIQUE (partner, event_id)
    )""",
    "CREATE INDEX IF NOT EXISTS forward_outbox_due ON forward_outbox (next_at)",
    """CREATE TABLE IF NOT EXISTS forward_stats (
        partner TEXT PRIMARY KEY,
        delivered INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        dropped INTEGER NOT NULL DEFAULT 0,
        retries INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_error_at REAL,
        last_delivered_at REAL
    )""",
)


@dataclass(frozen=True)
class Item:
    """One event for one partner, as it waits in the outbox."""

    partner: str
    event_id: str
    event: str
    event_time: float
    body: str  # the partner's JSON body, without credentials
    gpc: bool = False
    #: What the ledger's delivery record repeats (request id, consent id, path...).
    record: str = "{}"
    attempts: int = 0
    id: int = 0


@dataclass(frozen=True)
class PartnerStatus:
    partner: str
    pending: int
    retrying: int
    oldest_event_time: float | None
    delivered: int
    failed: int
    dropped: int
    retries: int
    last_error: str | None
    last_error_at: float | None
    last_delivered_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Outbox:
    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "full",
                 clock: Callable[[], float] = time.time) -> None:
        if str(path).startswith(("postgresql://", "postgres://")):
            raise ValueError("the forwarding outbox needs a SQLite ledger file")
        self.path = Path(path)
        self.synchronous = "NORMAL" if synchronous == "normal" else "FULL"
        self.clock = clock
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="forward-outbox")
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._pending: list[tuple[Sequence[Item], asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._flush_scheduled = False
        self.commits = 0

    # -- the thread ------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            if not self.path.exists():
                os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            conn = sqlite3.connect(self.path, timeout=10.0, isolation_level=None,
                                   check_same_thread=False)
            # 1 ms: the write lock is retried by _begin, faster than SQLite's busy handler.
            conn.execute("PRAGMA busy_timeout = 1")
            self._begin_with_retry(conn, "PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            self._begin_with_retry(conn)
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
            except BaseException:
                conn.execute("ROLLBACK")
                conn.close()
                raise
            conn.execute("COMMIT")
            self._conn = conn
        return self._conn

    @staticmethod
    def _begin_with_retry(conn: sqlite3.Connection, statement: str = "BEGIN IMMEDIATE") -> None:
        """Take the write lock, retrying every fraction of a millisecond (jittered) for 10 s.

        The ledger's writer shares the file's one write lock; SQLite's own busy handler would
        sleep up to 100 ms between tries while the holder's transaction lasts about one."""
        deadline = time.monotonic() + 10.0
        delay = 0.0002
        while True:
            try:
                conn.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 1.5, 0.002)

    def _tx(self, work: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._db()
        self._begin_with_retry(conn)
        try:
            result = work(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def _run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    # -- putting ---------------------------------------------------------------------
    async def put(self, items: Sequence[Item]) -> None:
        """Return once ``items`` are committed; an event id already queued is kept once."""
        if not items:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            self._pending.append((items, loop, fut))
            schedule = not self._flush_scheduled
            self._flush_scheduled = True
        if schedule:
            self._executor.submit(self._flush)
        await fut

    def put_sync(self, items: Sequence[Item]) -> None:
        self._executor.submit(self._insert, items).result()

    def _insert(self, items: Sequence[Item]) -> None:
        now = self.clock()

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT OR IGNORE INTO forward_outbox (partner, event_id, event, event_time, body, gpc,"
                " record, next_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(i.partner, i.event_id, i.event, i.event_time, i.body, int(i.gpc), i.record, now)
                 for i in items])
        self._tx(work)
        self.commits += 1

    def _flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            self._flush_scheduled = False
        error: BaseException | None = None
        try:
            self._insert([item for items, _, _ in batch for item in items])
        except Exception as exc:
            error = exc
        for _, loop, fut in batch:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits
                loop.call_soon_threadsafe(_settle, fut, error)

    # -- the sender's side -----------------------------------------------------------
    async def claim(self, limit: int, lease_s: float, exclude: Sequence[str] = ()) -> list[Item]:
        """Lease up to ``limit`` due rows (not of ``exclude`` partners) for ``lease_s`` seconds."""
        def work(conn: sqlite3.Connection) -> list[Item]:
            now = self.clock()
            marks = ",".join("?" * len(exclude))
            skip = f"AND partner NOT IN ({marks})" if exclude else ""
            rows = conn.execute(
                "UPDATE forward_outbox SET lease_until = ? WHERE id IN (SELECT id FROM forward_outbox"
                f" WHERE next_at <= ? AND lease_until <= ? {skip} ORDER BY next_at, id LIMIT ?)"
                " RETURNING id, partner, event_id, event, event_time, body, gpc, record, attempts",
                (now + lease_s, now, now, *exclude, limit)).fetchall()
            return [Item(id=r[0], partner=r[1], event_id=r[2], event=r[3], event_time=r[4], body=r[5],
                         gpc=bool(r[6]), record=r[7], attempts=r[8]) for r in rows]
        return await self._run(lambda: self._tx(work))

    async def settle(self, ends: Sequence[tuple[Item, Outcome, str | None]],
                     retries: Sequence[tuple[Item, float, str]] = (),
                     releases: Sequence[Item] = ()) -> None:
        """One transaction for a round's outcomes: finished rows leave (counted per partner:
        delivered, failed for good, dropped), retried rows wait until ``next_at``, released
        rows are given back unsent."""
        if not (ends or retries or releases):
            return

        def work(conn: sqlite3.Connection) -> None:
            now = self.clock()
            partners = {i.partner for i, _, _ in ends} | {i.partner for i, _, _ in retries}
            conn.executemany("INSERT OR IGNORE INTO forward_stats (partner) VALUES (?)",
                             [(p,) for p in partners])
            for item, outcome, error in ends:
                conn.execute("DELETE FROM forward_outbox WHERE id = ?", (item.id,))
                if outcome == "delivered":
                    conn.execute("UPDATE forward_stats SET delivered = delivered + 1,"
                                 " last_delivered_at = ? WHERE partner = ?", (now, item.partner))
                else:
                    conn.execute(f"UPDATE forward_stats SET {outcome} = {outcome} + 1, last_error = ?,"
                                 " last_error_at = ? WHERE partner = ?", (error, now, item.partner))
            for item, next_at, error in retries:
                conn.execute("UPDATE forward_outbox SET attempts = attempts + 1, next_at = ?,"
                             " lease_until = 0, last_error = ? WHERE id = ?", (next_at, error, item.id))
                conn.execute("UPDATE forward_stats SET retries = retries + 1, last_error = ?,"
                             " last_error_at = ? WHERE partner = ?", (error, now, item.partner))
            conn.executemany("UPDATE forward_outbox SET lease_until = 0 WHERE id = ?",
                             [(i.id,) for i in releases])
        await self._run(lambda: self._tx(work))

    async def depths(self) -> dict[str, int]:
        def work() -> dict[str, int]:
            rows = self._db().execute(
                "SELECT partner, COUNT(*) FROM forward_outbox GROUP BY partner").fetchall()
            return {r[0]: int(r[1]) for r in rows}
        return await self._run(work)

    def status(self) -> list[PartnerStatus]:
        return status_of(self._executor.submit(self._db).result())

    def close(self) -> None:
        def shut() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        self._executor.submit(shut).result()
        self._executor.shutdown(wait=True)


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


def status_of(conn: sqlite3.Connection) -> list[PartnerStatus]:
    """Per partner: what waits, what was delivered, dropped or failed, the last error."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "forward_outbox" not in tables:
        return []
    queued = {r[0]: r[1:] for r in conn.execute(
        "SELECT partner, COUNT(*), SUM(attempts > 0), MIN(event_time), MAX(last_error)"
        " FROM forward_outbox GROUP BY partner")}
    stats = {r[0]: r[1:] for r in conn.execute(
        "SELECT partner, delivered, failed, dropped, retries, last_error, last_error_at,"
        " last_delivered_at FROM forward_stats")}
    out = []
    for partner in sorted(set(queued) | set(stats)):
        q = queued.get(partner, (0, 0, None, None))
        s = stats.get(partner, (0, 0, 0, 0, None, None, None))
        out.append(PartnerStatus(
            partner=partner, pending=int(q[0]), retrying=int(q[1] or 0), oldest_event_time=q[2],
            delivered=int(s[0]), failed=int(s[1]), dropped=int(s[2]), retries=int(s[3]),
            last_error=s[4], last_error_at=s[5], last_delivered_at=s[6]))
    return out


def encode(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(",", ":"), sort_keys=True, allow_nan=False)
