"""PostgresStore: the same ledger in PostgreSQL (psycopg 3), for sites that scale out.

Each writer keeps its own chain, so many application servers append concurrently
with no lock beyond PostgreSQL's own. ``synchronous_commit`` is forced on for the
session: a commit has reached the WAL on disk before ``append`` returns. Schema
migrations run under a transaction-scoped advisory lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from middleware.errors import LedgerUnavailable
from middleware.ledger._sql import (
    CHAIN_COLS,
    FETCH,
    PAGE_VIEW_WRITE_COLS,
    Migration,
    Row,
    SqlStore,
    fetch_batches,
)
from middleware.ledger.chain import ChainedRecord
from middleware.ledger.store import PAGE_VIEWS

_MIGRATION_LOCK = 0x1ED6E6  # advisory lock key: "ledger"

_MIGRATIONS: tuple[Migration, ...] = (
    (1, "disclosures, consent events, purge checkpoints", (
        """CREATE TABLE disclosures (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            time timestamptz NOT NULL,
            request_id text NOT NULL,
            consent_id text,
            path text NOT NULL,
            partner text NOT NULL,
            purposes jsonb NOT NULL,
            legal_basis text NOT NULL,
            data_categories jsonb NOT NULL,
            cookies jsonb NOT NULL,
            policy_version text NOT NULL,
            ip text,
            ua_family text NOT NULL,
            fields text NOT NULL,
            writer_id text NOT NULL,
            seq bigint NOT NULL,
            prev_hash text NOT NULL,
            hash text NOT NULL
        )""",
        "CREATE INDEX disclosures_time ON disclosures (time)",
        "CREATE INDEX disclosures_partner_time ON disclosures (partner, time)",
        "CREATE INDEX disclosures_consent_time ON disclosures (consent_id, time)",
        "CREATE INDEX disclosures_path_time ON disclosures (path, time)",
        "CREATE INDEX disclosures_chain ON disclosures (writer_id, seq)",
        """CREATE TABLE consent_events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            time timestamptz NOT NULL,
            consent_id text NOT NULL,
            action text NOT NULL,
            choices jsonb NOT NULL,
            policy_version text NOT NULL,
            source text NOT NULL,
            ip text,
            ua_family text NOT NULL,
            writer_id text NOT NULL,
            seq bigint NOT NULL,
            prev_hash text NOT NULL,
            hash text NOT NULL
        )""",
        "CREATE INDEX consent_events_consent_time ON consent_events (consent_id, time)",
        "CREATE INDEX consent_events_time ON consent_events (time)",
        "CREATE INDEX consent_events_chain ON consent_events (writer_id, seq)",
        """CREATE TABLE checkpoints (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            writer_id text NOT NULL,
            last_seq bigint NOT NULL,
            last_hash text NOT NULL,
            purged bigint NOT NULL,
            time timestamptz NOT NULL,
            signature text
        )""",
        "CREATE INDEX checkpoints_writer ON checkpoints (writer_id, last_seq)",
    )),
    (2, "page_views: one record per page view holding its partners", (
        # partners is the canonical JSON text the hash covers (jsonb would reorder it).
        # IF NOT EXISTS: an owner may create page_views partitioned by month beforehand.
        """CREATE TABLE IF NOT EXISTS page_views (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            time timestamptz NOT NULL,
            request_id text NOT NULL,
            consent_id text,
            path text NOT NULL,
            partners text NOT NULL,
            partner_set text NOT NULL,
            policy_version text NOT NULL,
            ip text,
            ua_family text NOT NULL,
            fields text NOT NULL,
            writer_id text NOT NULL,
            seq bigint NOT NULL,
            prev_hash text NOT NULL,
            hash text NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS page_views_time ON page_views (time)",
        "CREATE INDEX IF NOT EXISTS page_views_consent_time ON page_views (consent_id, time)",
        "CREATE INDEX IF NOT EXISTS page_views_set_time ON page_views (partner_set, time)",
        "CREATE INDEX IF NOT EXISTS page_views_chain ON page_views (writer_id, seq)",
        "CREATE TABLE IF NOT EXISTS partner_sets (partner_set text PRIMARY KEY)",
    )),
    (3, "summary from an index: (partner_set, time, consent_id); partner_lists", (
        "CREATE INDEX IF NOT EXISTS page_views_set_time_consent ON page_views "
        "(partner_set, time, consent_id)",
        "DROP INDEX IF EXISTS page_views_set_time",
        "CREATE TABLE IF NOT EXISTS partner_lists (partners text PRIMARY KEY, "
        "partner_set text NOT NULL)",
        "INSERT INTO partner_lists SELECT DISTINCT partners, partner_set FROM page_views "
        "ON CONFLICT DO NOTHING",
    )),
    (4, "partner lists by reference: page_views.list_id -> partner_lists.id", (
        # As in SQLite (see sqlite.py): new rows store partners = '' and their list's id.
        # partners stays NOT NULL so that both stores write and read one way.
        """CREATE TABLE partner_lists_v4 (
            id bigint GENERATED ALWAYS AS IDENTITY,
            partners text NOT NULL,
            partner_set text NOT NULL,
            CONSTRAINT partner_lists_id PRIMARY KEY (id),
            CONSTRAINT partner_lists_partners UNIQUE (partners)
        )""",
        "INSERT INTO partner_lists_v4 (partners, partner_set) "
        "SELECT partners, partner_set FROM partner_lists ORDER BY partner_set, partners",
        "DROP TABLE partner_lists",
        "ALTER TABLE partner_lists_v4 RENAME TO partner_lists",
        # IF NOT EXISTS: an owner's partitioned page_views may have it already. No foreign
        # key: it would lock the list's row for every insert; verify reports a dangling id.
        "ALTER TABLE page_views ADD COLUMN IF NOT EXISTS list_id bigint",
    )),
    (5, "partner_lists: unique by the md5 of the text, not the text", (
        # A btree entry holds at most ~2.7 KB (a third of a page, after compression): the
        # UNIQUE (partners) index refused a longer list (one partner with a few hundred
        # cookies), and every page view of it failed to commit. An index of md5(partners)
        # has 32-character keys whatever the list (md5 because an index expression must be
        # IMMUTABLE: sha256() needs the text as bytea, and convert_to / textsend are only
        # STABLE). Lists stay one row each; the writer finds its list by the text itself,
        # so two lists with one md5 (only by construction) cannot be confused: the second
        # one's insert does nothing and its views fail to commit (closed, never wrong).
        "ALTER TABLE partner_lists DROP CONSTRAINT partner_lists_partners",
        "CREATE UNIQUE INDEX partner_lists_partners_md5 ON partner_lists (md5(partners))",
    )),
)
SCHEMA_VERSION = _MIGRATIONS[-1][0]


class PostgresStore(SqlStore):
    """The ledger in a PostgreSQL database given by a libpq DSN. Connects lazily."""

    def __init__(self, dsn: str, *, connect_timeout_s: int = 5) -> None:
        super().__init__()
        self.dsn = dsn
        self.connect_timeout_s = connect_timeout_s
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self._names = threading.Lock()
        self._n = 0

    def __repr__(self) -> str:
        return "PostgresStore(<dsn>)"  # the DSN may hold a password

    def _connect(self, autocommit: bool) -> psycopg.Connection[tuple[Any, ...]]:
        conn = psycopg.connect(self.dsn, autocommit=autocommit,
                               connect_timeout=self.connect_timeout_s)
        try:
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                cur.execute("SET synchronous_commit = on")
            if not autocommit:
                conn.commit()
        except BaseException:
            conn.close()
            raise
        return conn

    def _migrate(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY "
                        "KEY, description text NOT NULL, applied_at timestamptz NOT NULL)")
            cur.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")
            row = cur.fetchone()
            version = int(row[0]) if row else 0
            if version > SCHEMA_VERSION:
                raise LedgerUnavailable(
                    f"the PostgreSQL ledger has schema version {version}, newer than this "
                    f"consent-gate knows ({SCHEMA_VERSION}); upgrade consent-gate")
            for v, description, statements in _MIGRATIONS:
                if v <= version:
                    continue
                for stmt in statements:
                    cur.execute(stmt.encode())
                cur.execute("INSERT INTO schema_migrations VALUES (%s, %s, now())",
                            (v, description))

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed:
            try:
                conn = self._connect(autocommit=True)
                try:
                    self._migrate(conn)
                except BaseException:
                    conn.close()
                    raise
            except LedgerUnavailable:
                raise
            except psycopg.Error as exc:
                raise LedgerUnavailable(f"cannot open PostgreSQL ledger: {exc}") from exc
            self._conn = conn
            self._forget_ids()
        return self._conn

    def open(self) -> None:
        with self._lock:
            self._connection()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def append(self, rows: Sequence[ChainedRecord]) -> None:
        """Page views whose lists and sets are known go in as one autocommit ``COPY``: one
        statement is one transaction, durable when it completes (``synchronous_commit``),
        two round trips instead of BEGIN, the INSERTs and COMMIT. Anything else (a new
        list or set, other record kinds) goes through one explicit transaction."""
        if not rows:
            return
        with self._lock:
            conn = self._connection()  # first: a new connection forgets the known ids
            views = self._known_views(rows)
            if views is None:
                super().append(rows)
                return
            try:
                with conn.cursor() as cur:
                    self._insert(cur, PAGE_VIEWS, PAGE_VIEW_WRITE_COLS, views)
            except psycopg.Error:
                if conn.broken or conn.closed:
                    self._conn = None
                    conn.close()
                raise

    def _insert(self, cur: Any, table: str, record_cols: tuple[str, ...],
                params: list[list[Any]]) -> None:
        # COPY, not INSERT: per row the backend skips the executor's per-statement work and
        # psycopg formats the row in C (its executemany communicated once per row, and a
        # multi-row INSERT's text is re-parsed by psycopg on every call: not cached past
        # 50 parameters). Measured in bench/bench_ledger_append.py --postgres.
        cols = ", ".join((*record_cols, *CHAIN_COLS))
        with cur.copy(f"COPY {table} ({cols}) FROM STDIN".encode()) as copy:
            for p in params:
                copy.write_row(p)

    @contextmanager
    def _write_tx(self) -> Iterator[psycopg.Cursor[tuple[Any, ...]]]:
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except psycopg.Error:
            if conn.broken or conn.closed:
                self._conn = None
                conn.close()
            raise

    def _read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        with self._lock:
            return list(self._connection().execute(self._q(sql).encode(), params).fetchall())

    @contextmanager
    def _snapshot(self) -> Iterator[None]:
        conn = self._connection()
        with conn.transaction():
            conn.execute(b"SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield

    @contextmanager
    def _stream(
        self, queries: Sequence[tuple[str, Sequence[Any]]]
    ) -> Iterator[list[Iterator[Row]]]:
        self.open()
        try:
            conn = self._connect(autocommit=False)
        except psycopg.Error as exc:
            raise LedgerUnavailable(f"cannot open PostgreSQL ledger: {exc}") from exc
        cursors: list[psycopg.ServerCursor[tuple[Any, ...]]] = []
        try:
            # One snapshot for every query, server-side cursors for constant memory.
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            for sql, params in queries:
                with self._names:
                    self._n += 1
                    name = f"ledger_stream_{self._n}"
                cur = conn.cursor(name=name)
                cursors.append(cur)
                cur.itersize = FETCH
                cur.execute(self._q(sql).encode(), params)
            yield [fetch_batches(c) for c in cursors]
        finally:
            for c in cursors:
                with suppress(psycopg.Error):
                    c.close()
            conn.close()

    # -- dialect -----------------------------------------------------------------------
    def _q(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _ts_param(self, t: datetime) -> Any:
        return t.astimezone(UTC)

    def _ts_value(self, v: Any) -> datetime:
        if not isinstance(v, datetime):
            raise TypeError(f"expected a timestamptz, got {v!r}")
        return v.astimezone(UTC)

    def _json_param(self, v: Any) -> Any:
        return Jsonb(v)

    def _json_value(self, v: Any) -> Any:
        return v

    def _list_lookup(self, text: str) -> tuple[str, list[Any]]:
        # Through the md5 index (schema v5), then the text itself.
        return "md5(partners) = md5(?) AND partners = ?", [text, text]

    def _day_expr(self, col: str) -> str:
        return f"to_char({col} AT TIME ZONE 'UTC', 'YYYY-MM-DD')"

    def _day_of(self, v: Any) -> date:
        return self._ts_value(v).date()

    def _day_bound(self, d: date) -> Any:
        return datetime(d.year, d.month, d.day, tzinfo=UTC)

    def _json_each(self, col: str) -> str:
        return f"jsonb_array_elements_text({col}) AS j(value)"

    def _json_text(self, col: str, key: str) -> str:
        return f"(({col})::jsonb ->> '{key}')"
