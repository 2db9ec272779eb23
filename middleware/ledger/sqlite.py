"""SqliteStore: the embedded default, one file shared by every worker process.

WAL so readers never block the writer; ``synchronous=FULL`` so a commit is on disk
(WAL + fsync) before ``append`` returns; ``BEGIN IMMEDIATE`` so concurrent processes
queue on the write lock (``busy_timeout``) instead of failing mid-transaction.

References: https://sqlite.org/wal.html, https://sqlite.org/pragma.html#pragma_synchronous
"""

from __future__ import annotations

import json
import operator
import os
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from middleware.errors import LedgerUnavailable
from middleware.ledger._sql import (
    CHAIN_COLS,
    EXACT_ROWS,
    PAGE_VIEW_WRITE_COLS,
    Migration,
    Row,
    SqlStore,
    fetch_batches,
)
from middleware.ledger.chain import ChainedRecord, json_strs, time_text
from middleware.ledger.records import format_time, parse_time
from middleware.ledger.store import PAGE_VIEWS
from middleware.ledger.viewrows import ViewBatch

_MIGRATIONS: tuple[Migration, ...] = (
    (1, "disclosures, consent events, purge checkpoints", (
        """CREATE TABLE disclosures (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            request_id TEXT NOT NULL,
            consent_id TEXT,
            path TEXT NOT NULL,
            partner TEXT NOT NULL,
            purposes TEXT NOT NULL,
            legal_basis TEXT NOT NULL,
            data_categories TEXT NOT NULL,
            cookies TEXT NOT NULL,
            policy_version TEXT NOT NULL,
            ip TEXT,
            ua_family TEXT NOT NULL,
            fields TEXT NOT NULL,
            writer_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX disclosures_time ON disclosures (time)",
        "CREATE INDEX disclosures_partner_time ON disclosures (partner, time)",
        "CREATE INDEX disclosures_consent_time ON disclosures (consent_id, time)",
        "CREATE INDEX disclosures_path_time ON disclosures (path, time)",
        "CREATE INDEX disclosures_chain ON disclosures (writer_id, seq)",
        """CREATE TABLE consent_events (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            consent_id TEXT NOT NULL,
            action TEXT NOT NULL,
            choices TEXT NOT NULL,
            policy_version TEXT NOT NULL,
            source TEXT NOT NULL,
            ip TEXT,
            ua_family TEXT NOT NULL,
            writer_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        "CREATE INDEX consent_events_consent_time ON consent_events (consent_id, time)",
        "CREATE INDEX consent_events_time ON consent_events (time)",
        "CREATE INDEX consent_events_chain ON consent_events (writer_id, seq)",
        """CREATE TABLE checkpoints (
            id INTEGER PRIMARY KEY,
            writer_id TEXT NOT NULL,
            last_seq INTEGER NOT NULL,
            last_hash TEXT NOT NULL,
            purged INTEGER NOT NULL,
            time TEXT NOT NULL,
            signature TEXT
        )""",
        "CREATE INDEX checkpoints_writer ON checkpoints (writer_id, last_seq)",
    )),
    (2, "page_views: one record per page view holding its partners", (
        """CREATE TABLE page_views (
            id INTEGER PRIMARY KEY,
            time TEXT NOT NULL,
            request_id TEXT NOT NULL,
            consent_id TEXT,
            path TEXT NOT NULL,
            partners TEXT NOT NULL,
            partner_set TEXT NOT NULL,
            policy_version TEXT NOT NULL,
            ip TEXT,
            ua_family TEXT NOT NULL,
            fields TEXT NOT NULL,
            writer_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        # Four indexes, each one B-tree insert per page view (the per-partner rows took five
        # per partner): time ranges, a subject's history, a partner's views, the chains.
        "CREATE INDEX page_views_time ON page_views (time)",
        "CREATE INDEX page_views_consent_time ON page_views (consent_id, time)",
        "CREATE INDEX page_views_set_time ON page_views (partner_set, time)",
        "CREATE INDEX page_views_chain ON page_views (writer_id, seq)",
        "CREATE TABLE partner_sets (partner_set TEXT PRIMARY KEY)",
    )),
    (3, "summary from an index: (partner_set, time, consent_id); partner_lists", (
        # A summary reads partner set, day and consent id of every view in its range: from
        # this index that is ~100 bytes per view instead of the ~1.4 KB row.
        "CREATE INDEX page_views_set_time_consent ON page_views (partner_set, time, consent_id)",
        "DROP INDEX page_views_set_time",
        "CREATE TABLE partner_lists (partners TEXT PRIMARY KEY, partner_set TEXT NOT NULL)",
        "INSERT OR IGNORE INTO partner_lists SELECT DISTINCT partners, partner_set FROM page_views",
    )),
    (4, "partner lists by reference: page_views.list_id -> partner_lists.id", (
        # A view's ~1 KB partner list text was stored on every row (half the row, and of the
        # writer's SQLite time); a site has a few lists. New rows store partners = '' and the
        # list's id; rows written before keep their text (nothing is rewritten), and readers
        # take COALESCE(NULLIF(partners, ''), the list's text): the hash covers that text
        # either way. An INTEGER PRIMARY KEY, since the rowid of the v3 table (text key) may
        # change on VACUUM.
        """CREATE TABLE partner_lists_v4 (
            id INTEGER PRIMARY KEY,
            partners TEXT NOT NULL UNIQUE,
            partner_set TEXT NOT NULL
        )""",
        "INSERT INTO partner_lists_v4 (partners, partner_set) "
        "SELECT partners, partner_set FROM partner_lists ORDER BY partner_set, partners",
        "DROP TABLE partner_lists",
        "ALTER TABLE partner_lists_v4 RENAME TO partner_lists",
        # No REFERENCES: SQLite does not enforce it unless asked per connection, and a
        # dangling id is what verify reports (the row's text is then missing).
        "ALTER TABLE page_views ADD COLUMN list_id INTEGER",
    )),
)
SCHEMA_VERSION = _MIGRATIONS[-1][0]

#: SQLITE_MAX_VARIABLE_NUMBER's default since SQLite 3.32 (999 before).
_MAX_VARIABLES = 32766


@lru_cache(maxsize=1024)
def _loads(text: str) -> Any:
    return json.loads(text)


_VIEW_COLS = (*PAGE_VIEW_WRITE_COLS, *CHAIN_COLS)
# Positions in a page view's parameter row (SqlStore._params after append's list_id pass).
_PARTNERS, _WRITER, _PREV, _HASH = (_VIEW_COLS.index(c) for c in
                                    ("partners", "writer_id", "prev_hash", "hash"))
_OWN = tuple(i for i in range(len(_VIEW_COLS)) if i not in (_PARTNERS, _WRITER, _PREV))
#: A row's own values (C: one call per row), and the first row's with its prev_hash.
_OWN_OF = operator.itemgetter(*_OWN)
_FIRST = operator.itemgetter(*(i for i in range(len(_VIEW_COLS)) if i not in (_PARTNERS, _WRITER)))


@lru_cache(maxsize=EXACT_ROWS)
def _chained_views_sql(rows: int, verb: str) -> str:
    """One INSERT of ``rows`` page views of one writer's chain, each the next of the one
    before: the writer id is bound once (``?1``), ``partners`` is the literal '' (a view
    refers to its list since schema v4) and a row's ``prev_hash`` is the parameter of the
    previous row's ``hash``. Parameters: the writer id, then per row its own values in
    ``_OWN`` order, the first row's ``prev_hash`` before its hash."""
    n = 1
    tuples: list[str] = []
    last_hash = 0
    for k in range(rows):
        vals: list[str] = []
        for i, _ in enumerate(_VIEW_COLS):
            if i == _WRITER:
                vals.append("?1")
            elif i == _PARTNERS:
                vals.append("''")
            elif i == _PREV and k:
                vals.append(f"?{last_hash}")
            else:
                n += 1
                vals.append(f"?{n}")
                if i == _HASH:
                    last_hash = n
        tuples.append(f"({', '.join(vals)})")
    return f"{verb} INTO page_views ({', '.join(_VIEW_COLS)}) VALUES {', '.join(tuples)}"


class SqliteStore(SqlStore):
    """The ledger in one SQLite file (created with mode 0600). Connects lazily."""

    #: A plain INSERT of several rows inside BEGIN ... COMMIT opens a statement journal: it
    #: may abort half-way (a NOT NULL constraint) and SQLite must then undo that statement
    #: alone, so every page it touches is first copied there (memory; a temp file before
    #: ``temp_store = MEMORY``). ``append`` never keeps a transaction whose insert failed
    #: (it raises, the commit fails closed), so ``OR ROLLBACK``, which ends the whole
    #: transaction at once and needs no statement journal, does what the error path did.
    _insert_verb = "INSERT OR ROLLBACK"

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0,
                 synchronous: str = "full", deferred_checkpoints: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        # full: every commit is fsync'd (survives power loss); normal: WAL commits reach the OS
        # at once and the disk at checkpoints (survives a crash of the process, not of the machine).
        self.synchronous = synchronous
        self._conn: sqlite3.Connection | None = None
        self._max_variables = 999
        #: WAL checkpoints when the writer asks (``checkpoint_if_due``), not in a commit.
        self.deferred_checkpoints = deferred_checkpoints
        self._since_checkpoint = [0, 0]  # commits, rows
        self._temp_in_memory = False  # PRAGMA temp_store = MEMORY on this connection yet

    def __repr__(self) -> str:
        return f"SqliteStore({str(self.path)!r})"

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        if not self.path.exists():
            # Create it ourselves so that the mode is 0600 whatever the umask; SQLite gives
            # the -wal and -shm files the same permissions as the database file.
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
        # 256 prepared statements: append's INSERTs of 1-64 rows (chained page views, any
        # page views, other records) must not push each other out of the cache.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                               check_same_thread=False, cached_statements=256)
        try:
            # 1 ms: the write lock is retried by _begin_immediate, faster than SQLite would.
            conn.execute("PRAGMA busy_timeout = 1")
            for attempt in range(50):
                try:
                    conn.execute("PRAGMA journal_mode = WAL")
                    break
                except sqlite3.OperationalError:
                    if attempt == 49:
                        raise
                    time.sleep(0.02)
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
            if self.deferred_checkpoints:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        self._begin_immediate(conn)
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise LedgerUnavailable(
                    f"{self.path} has ledger schema version {version}, newer than this "
                    f"consent-gate knows ({SCHEMA_VERSION}); upgrade consent-gate")
            conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER "
                         "PRIMARY KEY, description TEXT NOT NULL, applied_at TEXT NOT NULL)")
            for v, description, statements in _MIGRATIONS:
                if v <= version:
                    continue
                for stmt in statements:
                    conn.execute(stmt)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                             (v, description, format_time(datetime.now().astimezone())))
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            try:
                conn = self._connect()
                try:
                    self._migrate(conn)
                except BaseException:
                    conn.close()
                    raise
            except LedgerUnavailable:
                raise
            except (OSError, sqlite3.Error) as exc:
                raise LedgerUnavailable(f"cannot open SQLite ledger {self.path}: {exc}") from exc
            self._conn = conn
            self._temp_in_memory = False
            self._forget_ids()
            self._max_variables = min(
                conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER), _MAX_VARIABLES)
        return self._conn

    def open(self) -> None:
        with self._lock:
            self._connection()

    def append(self, rows: Sequence[ChainedRecord]) -> None:
        super().append(rows)
        if rows:
            self._since_checkpoint[0] += 1
            self._since_checkpoint[1] += len(rows)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _write_tx(self) -> Iterator[sqlite3.Cursor]:
        conn = self._connection()
        if not self._temp_in_memory:
            # A multi-row INSERT keeps a statement journal (to undo just that statement) and
            # SQLite spills it to a temp file past 64 KiB: an open, unlink and writes in
            # /var/tmp every few commits, measured. In memory it is the same journal; the
            # commit's durability is the WAL's, untouched. Set at a connection's first write,
            # not when it opens: a read command's GROUP BY / DISTINCT sorters are temp files
            # too, and in memory `log summary` of 1,000,000 views peaked at 189 MB instead
            # of 72 (growing with the ledger).
            conn.execute("PRAGMA temp_store = MEMORY")
            self._temp_in_memory = True
        try:
            cur = conn.cursor()
            self._begin_immediate(cur)
            try:
                yield cur
                cur.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        except sqlite3.Error:
            # The connection may be unusable (I/O error, file replaced): reconnect next time.
            self._drop()
            raise

    #: A deferred checkpoint is due after this many commits or rows (~1,000 WAL pages, the
    #: default ``wal_autocheckpoint``, at ~2.4 KB per page view).
    CHECKPOINT_COMMITS = 64
    CHECKPOINT_ROWS = 1500

    def checkpoint_if_due(self) -> bool:
        """With ``deferred_checkpoints``: a PASSIVE WAL checkpoint once enough has been
        committed since the last one; True if it ran.

        SQLite's automatic checkpoint runs inside the commit that crosses the threshold:
        that commit is durable once the WAL is fsync'd, yet its ``append`` returns only after
        the checkpoint has copied the pages and fsync'd the database file. The writer process
        calls this after it has acknowledged a commit instead, so no page waits for a
        checkpoint of pages already committed. Measured in process, 32 page views per
        commit, synchronous=FULL: append p99 6-16 ms with the checkpoint in the commit,
        0.9-1.1 ms without (docs/ledger.md). One connection, no concurrent commit: every
        checkpoint copies the whole WAL, so the next commit starts it from its beginning.
        """
        commits, rows = self._since_checkpoint
        if not self.deferred_checkpoints or (commits < self.CHECKPOINT_COMMITS
                                             and rows < self.CHECKPOINT_ROWS):
            return False
        self._since_checkpoint = [0, 0]
        with self._lock:
            if self._conn is None:
                return False
            try:
                self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                return False  # the next commit's checkpoint tries again
        return True

    def _begin_immediate(self, cur: sqlite3.Connection | sqlite3.Cursor) -> None:
        """Take the write lock, retrying fast while another process holds it.

        SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries; with several
        workers appending, a waiting page would then stall for tens of milliseconds although
        the holder's transaction lasts about one. We try again every fraction of a millisecond
        (jittered, so workers do not move in step) until ``busy_timeout_s`` has passed.
        """
        deadline = time.monotonic() + self.busy_timeout_s
        delay = 0.0002
        while True:
            try:
                cur.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 1.5, 0.002)

    def _drop(self) -> None:
        if self._conn is not None:
            with suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None

    def _read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self._lock:
            return list(self._connection().execute(sql, params).fetchall())

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        conn = self._connection()
        conn.execute("BEGIN")  # deferred: WAL fixes the snapshot at its first read
        try:
            yield
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    @contextmanager
    def _stream(
        self, queries: Sequence[tuple[str, Sequence[Any]]]
    ) -> Iterator[list[Iterator[Row]]]:
        self.open()
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("BEGIN")  # one read snapshot for every query
            yield [fetch_batches(conn.execute(sql, params)) for sql, params in queries]
        finally:
            conn.close()

    # -- dialect -----------------------------------------------------------------------
    def _ts_param(self, t: datetime) -> Any:
        return time_text(t)

    def _ts_value(self, v: Any) -> datetime:
        return parse_time(str(v))

    def _json_param(self, v: Any) -> Any:
        return json.dumps(v, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def _strs_param(self, v: tuple[str, ...]) -> Any:
        return json_strs(v)  # the same text as _json_param(list(v)), cached

    def _insert(self, cur: Any, table: str, record_cols: tuple[str, ...],
                params: list[list[Any]]) -> None:
        """The writer process's commit (up to ``EXACT_ROWS`` page views of its own chain, in
        order) binds 12 values per view instead of 15 (``_chained_views_sql``: each bound
        text is copied by SQLite); anything else as ``SqlStore._insert``."""
        n = len(params)
        if table == PAGE_VIEWS and 0 < n <= EXACT_ROWS and n * 12 + 2 <= self._max_variables:
            writer = params[0][_WRITER]
            prev_hash = params[0][_PREV]
            flat: list[Any] = [writer, *_FIRST(params[0])]
            own = _OWN_OF
            for p in params:
                if p[_WRITER] != writer or p[_PARTNERS] != "" or p[_PREV] != prev_hash:
                    break
                prev_hash = p[_HASH]
            else:
                for p in params[1:]:
                    flat += own(p)
                cur.execute(_chained_views_sql(n, self._insert_verb), flat)
                return
        super()._insert(cur, table, record_cols, params)

    def append_views(self, batch: ViewBatch) -> None:
        """``append(batch.chained())`` from the rows' texts (the writer process's commit
        of page views only: ``viewrows``): the parameters of ``_chained_views_sql`` built in
        one pass, no records. The same rows, lists and sets as ``append``
        (``tests/test_ledger_viewrows.py``)."""
        views = batch.views
        n = len(views)
        if not n:
            return
        if n > EXACT_ROWS or n * 12 + 2 > self._max_variables:
            self.append(batch.chained())
            return
        with self._lock, self._write_tx() as cur:
            # Inside the transaction: _write_tx may have (re)connected and cleared the caches.
            known, sets = self._list_ids, self._known_sets
            new_ids: dict[str, int] = {}
            new_sets: set[str] = set()
            flat: list[Any] = [batch.writer_id]
            seq = batch.seq
            for (t, rid, cid, path, (_, text, ps), pv, ip, ua, fields, _, _), h in zip(
                    views, batch.hashes, strict=True):
                seq += 1
                list_id = known.get(text)
                if list_id is None:
                    list_id = new_ids.get(text)
                    if list_id is None:
                        list_id = new_ids[text] = self._list_id(cur, text, ps)
                if ps not in sets:
                    new_sets.add(ps)
                flat += (t, rid, cid, path, ps, pv, ip, ua, fields, list_id, seq, h)
            flat.insert(12, batch.prev)  # the first row's prev_hash, before its hash
            for ps in sorted(new_sets):
                cur.execute("INSERT INTO partner_sets (partner_set) VALUES (?) "
                            "ON CONFLICT DO NOTHING", [ps])
            cur.execute(_chained_views_sql(n, self._insert_verb), flat)
        self._known_sets |= new_sets
        self._list_ids.update(new_ids)
        self._since_checkpoint[0] += 1
        self._since_checkpoint[1] += n

    def _multirow_max(self, ncols: int) -> int:
        # _write_tx has connected, so the limit is the connection's own.
        return self._max_variables // ncols

    def _json_value(self, v: Any) -> Any:
        # Purposes, categories and cookies repeat on every row: parse each text once.
        # Safe to share: records copy these values into tuples / fresh mappings.
        return _loads(v)

    def _day_expr(self, col: str) -> str:
        return f"substr({col}, 1, 10)"

    def _day_of(self, v: Any) -> date:
        return date.fromisoformat(str(v)[:10])

    def _day_bound(self, d: date) -> Any:
        # The bare date: a text starting with that day's 10 characters sorts at or after it,
        # one starting with the day before sorts before it (so does substr(time, 1, 10)).
        return d.isoformat()

    def _json_each(self, col: str) -> str:
        return f"json_each({col}) AS j"

    def _json_text(self, col: str, key: str) -> str:
        return f"json_extract({col}, '$.{key}')"

    def _indexed(self, name: str) -> str:
        return f" INDEXED BY {name}"
