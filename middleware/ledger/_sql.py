"""SQL shared by the SQLite and PostgreSQL stores; each subclass supplies its dialect.

SQL here is written with ``?`` placeholders; the PostgreSQL store rewrites them.
"""

from __future__ import annotations

import heapq
import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime
from functools import lru_cache
from typing import Any, Self

from middleware.ledger.chain import ChainedRecord, Checkpoint, StoredRow, canonical_text
from middleware.ledger.records import ConsentEvent, DisclosureRecord, Record
from middleware.ledger.store import (
    CONSENT_EVENTS,
    DISCLOSURES,
    Filters,
    PartnerAggregate,
    PurgeCheckpointFactory,
    PurgeCut,
    SummaryData,
)

CHAIN_COLS = ("writer_id", "seq", "prev_hash", "hash")
DISCLOSURE_COLS = (
    "time", "request_id", "consent_id", "path", "partner", "purposes", "legal_basis",
    "data_categories", "cookies", "policy_version", "ip", "ua_family", "fields",
)
CONSENT_COLS = ("time", "consent_id", "action", "choices", "policy_version", "source", "ip",
                "ua_family")
JSON_COLS = frozenset({"purposes", "data_categories", "cookies", "choices"})
# Free-form JSON is kept as text everywhere: jsonb would turn 1e16 into 10000000000000000
# (an int), and the recomputed hash would then cry tamper.
TEXT_JSON_COLS = frozenset({"fields"})
CHECKPOINT_COLS = ("id", "writer_id", "last_seq", "last_hash", "purged", "time", "signature")

FETCH = 1000


@lru_cache(maxsize=64)
def _insert_sql(table: str, record_cols: tuple[str, ...], rows: int = 1) -> str:
    cols = (*record_cols, *CHAIN_COLS)
    one = f"({', '.join('?' * len(cols))})"
    return f"INSERT INTO {table} ({', '.join(cols)}) VALUES {', '.join([one] * rows)}"


def _chunks(n: int, largest: int) -> Iterator[int]:
    """Split ``n`` rows into power-of-two statement sizes (``largest`` at most).

    Few distinct statement texts, so the driver's statement cache keeps them all (parsing
    a 512-row INSERT costs more than running it), and few statements per batch.
    """
    size = 1 << max(largest, 1).bit_length() - 1
    while n:
        while size > n:
            size >>= 1
        yield size
        n -= size

Row = Sequence[Any]


class SqlStore:
    """Dialect-neutral implementation of the LedgerStore protocol."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- dialect hooks ---------------------------------------------------------------
    def _q(self, sql: str) -> str:
        return sql

    def _ts_param(self, t: datetime) -> Any:
        raise NotImplementedError

    def _ts_value(self, v: Any) -> datetime:
        raise NotImplementedError

    def _json_param(self, v: Any) -> Any:
        raise NotImplementedError

    def _json_value(self, v: Any) -> Any:
        raise NotImplementedError

    def _strs_param(self, v: tuple[str, ...]) -> Any:
        """A tuple of strings (purposes, data categories, cookies) for a JSON column."""
        return self._json_param(list(v))

    def _multirow_max(self, ncols: int) -> int:
        """Rows per multi-row INSERT; 0 to insert with ``executemany`` instead."""
        return 0

    def _day_expr(self, col: str) -> str:
        raise NotImplementedError

    def _json_each(self, col: str) -> str:
        """A FROM item aliased ``j`` with one text column ``value``."""
        raise NotImplementedError

    def _write_tx(self) -> AbstractContextManager[Any]:
        """Context manager: a write transaction on the main connection, yielding a cursor."""
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    def _stream(
        self, queries: Sequence[tuple[str, Sequence[Any]]]
    ) -> AbstractContextManager[list[Iterator[Row]]]:
        """A dedicated read connection, one snapshot, each query's rows streamed in batches."""
        raise NotImplementedError

    def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    # -- rows <-> records --------------------------------------------------------------
    def _params(self, row: ChainedRecord) -> list[Any]:
        # Straight from the attributes: this runs on the writer thread for every record.
        rec = row.record
        if type(rec) is DisclosureRecord:
            f = rec.fields
            return [
                self._ts_param(rec.time), rec.request_id, rec.consent_id, rec.path, rec.partner,
                self._strs_param(rec.purposes), rec.legal_basis,
                self._strs_param(rec.data_categories), self._strs_param(rec.cookies),
                rec.policy_version, rec.ip, rec.ua_family,
                canonical_text(dict(f)) if f else "{}",
                row.writer_id, row.seq, row.prev_hash, row.hash,
            ]
        if type(rec) is ConsentEvent:
            return [
                self._ts_param(rec.time), rec.consent_id, rec.action,
                self._json_param(dict(rec.choices)), rec.policy_version, rec.source, rec.ip,
                rec.ua_family, row.writer_id, row.seq, row.prev_hash, row.hash,
            ]
        return self._params_generic(row)

    def _params_generic(self, row: ChainedRecord) -> list[Any]:
        body = row.record.to_dict()
        cols: tuple[str, ...] = (DISCLOSURE_COLS if isinstance(row.record, DisclosureRecord)
                                 else CONSENT_COLS)
        out: list[Any] = []
        for c in cols:
            if c == "time":
                out.append(self._ts_param(row.record.time))
            elif c in JSON_COLS:
                out.append(self._json_param(body[c]))
            elif c in TEXT_JSON_COLS:
                out.append(json.dumps(body[c], sort_keys=True, separators=(",", ":"),
                                      ensure_ascii=False))
            else:
                out.append(body[c])
        return [*out, row.writer_id, row.seq, row.prev_hash, row.hash]

    def _stored(self, table: str, r: Row) -> StoredRow:
        # Column order: id, record columns, chain columns (see _select_cols).
        cols: tuple[str, ...] = DISCLOSURE_COLS if table == DISCLOSURES else CONSENT_COLS
        body: dict[str, Any] = {}
        for i, c in enumerate(cols, start=1):
            v = r[i]
            if c in JSON_COLS:
                v = self._json_value(v)
            elif c in TEXT_JSON_COLS:
                v = json.loads(v)
            body[c] = v
        rec: Record = (DisclosureRecord.from_dict(body) if table == DISCLOSURES
                       else ConsentEvent.from_dict(body))
        n = len(cols) + 1
        return StoredRow(table, int(r[0]), rec, str(r[n]), int(r[n + 1]), str(r[n + 2]),
                         str(r[n + 3]))

    @staticmethod
    def _select_cols(table: str) -> str:
        cols: tuple[str, ...] = DISCLOSURE_COLS if table == DISCLOSURES else CONSENT_COLS
        return ", ".join(("id", *cols, *CHAIN_COLS))

    # -- writes ------------------------------------------------------------------------
    def append(self, rows: Sequence[ChainedRecord]) -> None:
        if not rows:
            return
        disc = [self._params(r) for r in rows if isinstance(r.record, DisclosureRecord)]
        cons = [self._params(r) for r in rows if isinstance(r.record, ConsentEvent)]
        with self._lock, self._write_tx() as cur:
            if disc:
                self._insert(cur, DISCLOSURES, DISCLOSURE_COLS, disc)
            if cons:
                self._insert(cur, CONSENT_EVENTS, CONSENT_COLS, cons)

    def _insert(self, cur: Any, table: str, record_cols: tuple[str, ...],
                params: list[list[Any]]) -> None:
        largest = self._multirow_max(len(record_cols) + len(CHAIN_COLS))
        if largest <= 0:
            cur.executemany(self._q(_insert_sql(table, record_cols)), params)
            return
        # One statement for many rows: sqlite3's executemany releases and retakes the GIL
        # around every row, and each retake can wait for a busy event loop thread.
        i = 0
        for k in _chunks(len(params), largest):
            flat = [v for p in params[i:i + k] for v in p]
            cur.execute(self._q(_insert_sql(table, record_cols, k)), flat)
            i += k

    def purge(self, cutoff: datetime, make: PurgeCheckpointFactory) -> list[Checkpoint]:
        ts = self._ts_param(cutoff)
        made: list[Checkpoint] = []
        with self._lock, self._write_tx() as cur:
            def one(sql: str, params: Sequence[Any]) -> list[Row]:
                cur.execute(self._q(sql), params)
                return list(cur.fetchall())

            def pairs(sql: str, params: Sequence[Any]) -> dict[str, int]:
                return {str(w): int(n) for w, n in one(sql, params) if n is not None}

            both = (f"SELECT writer_id, seq FROM {DISCLOSURES} WHERE time {{op}} ? UNION ALL "
                    f"SELECT writer_id, seq FROM {CONSENT_EVENTS} WHERE time {{op}} ?")
            old = pairs(f"SELECT writer_id, MAX(seq) FROM ({both.format(op='<')}) o "
                        "GROUP BY writer_id", [ts, ts])
            if not old:
                return []
            new = pairs(f"SELECT writer_id, MIN(seq) FROM ({both.format(op='>=')}) n "
                        "GROUP BY writer_id", [ts, ts])
            done = pairs("SELECT writer_id, MAX(last_seq) FROM checkpoints GROUP BY writer_id",
                         [])
            for writer, max_old in sorted(old.items()):
                keep_from = new.get(writer)
                last = keep_from - 1 if keep_from is not None else max_old
                if last <= done.get(writer, 0):
                    continue
                tip = one(f"SELECT hash FROM {DISCLOSURES} WHERE writer_id = ? AND seq = ? "
                          f"UNION ALL SELECT hash FROM {CONSENT_EVENTS} "
                          "WHERE writer_id = ? AND seq = ?", [writer, last, writer, last])
                if len(tip) != 1:
                    # The boundary row is missing or doubled: purging now would hide that.
                    continue
                count = 0
                for table in (DISCLOSURES, CONSENT_EVENTS):
                    cur.execute(self._q(f"DELETE FROM {table} WHERE writer_id = ? AND seq <= ?"),
                                [writer, last])
                    count += max(cur.rowcount, 0)
                cp = make(PurgeCut(writer, last, str(tip[0][0]), count))
                cur.execute(self._q(
                    "INSERT INTO checkpoints (writer_id, last_seq, last_hash, purged, time, "
                    "signature) VALUES (?, ?, ?, ?, ?, ?)"),
                    [cp.writer_id, cp.last_seq, cp.last_hash, cp.purged,
                     self._ts_param(cp.time), cp.signature])
                made.append(cp)
        return made

    # -- reads -------------------------------------------------------------------------
    def checkpoints(self) -> list[Checkpoint]:
        rows = self._read(f"SELECT {', '.join(CHECKPOINT_COLS)} FROM checkpoints ORDER BY id", [])
        return [
            Checkpoint(writer_id=str(r[1]), last_seq=int(r[2]), last_hash=str(r[3]),
                       purged=int(r[4]), time=self._ts_value(r[5]),
                       signature=None if r[6] is None else str(r[6]), rowid=int(r[0]))
            for r in rows
        ]

    def chain_rows(self) -> Iterator[StoredRow]:
        order = " ORDER BY writer_id, seq, id"
        with self._stream([
            (f"SELECT {self._select_cols(DISCLOSURES)} FROM {DISCLOSURES}{order}", []),
            (f"SELECT {self._select_cols(CONSENT_EVENTS)} FROM {CONSENT_EVENTS}{order}", []),
        ]) as (d, c):
            rows_d = (self._stored(DISCLOSURES, r) for r in d)
            rows_c = (self._stored(CONSENT_EVENTS, r) for r in c)
            yield from heapq.merge(rows_d, rows_c,
                                   key=lambda s: (s.writer_id, s.seq, s.table, s.rowid))

    def _where(self, f: Filters) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        if f.partner is not None:
            conds.append("partner = ?")
            params.append(f.partner)
        if f.purpose is not None:
            conds.append(f"EXISTS (SELECT 1 FROM {self._json_each('purposes')} "
                         "WHERE j.value = ?)")
            params.append(f.purpose)
        if f.path is not None:
            if f.path.endswith("*"):
                esc = f.path[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                conds.append("path LIKE ? ESCAPE '\\'")
                params.append(esc + "%")
            else:
                conds.append("path = ?")
                params.append(f.path)
        if f.consent_id is not None:
            conds.append("consent_id = ?")
            params.append(f.consent_id)
        if f.since is not None:
            conds.append("time >= ?")
            params.append(self._ts_param(f.since))
        if f.until is not None:
            conds.append("time < ?")
            params.append(self._ts_param(f.until))
        return (" WHERE " + " AND ".join(conds)) if conds else "", params

    def disclosures(self, filters: Filters, newest_first: bool = True) -> Iterator[StoredRow]:
        where, params = self._where(filters)
        order = " ORDER BY time DESC, id DESC" if newest_first else " ORDER BY time, id"
        limit = ""
        if filters.limit is not None:
            limit = " LIMIT ?"
            params.append(int(filters.limit))
        sql = f"SELECT {self._select_cols(DISCLOSURES)} FROM {DISCLOSURES}{where}{order}{limit}"
        with self._stream([(sql, params)]) as (it,):
            for r in it:
                yield self._stored(DISCLOSURES, r)

    def consent_events(
        self, consent_id: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[StoredRow]:
        where, params = self._where(Filters(consent_id=consent_id, since=since, until=until))
        sql = (f"SELECT {self._select_cols(CONSENT_EVENTS)} FROM {CONSENT_EVENTS}{where} "
               "ORDER BY time, id")
        with self._stream([(sql, params)]) as (it,):
            for r in it:
                yield self._stored(CONSENT_EVENTS, r)

    def summary(self, since: datetime | None, until: datetime | None) -> SummaryData:
        where, params = self._where(Filters(since=since, until=until))
        with self._lock:
            parts = self._read(
                f"SELECT partner, COUNT(*), COUNT(DISTINCT consent_id), MIN(time), MAX(time) "
                f"FROM {DISCLOSURES}{where} GROUP BY partner ORDER BY COUNT(*) DESC, partner",
                params)
            day = self._day_expr("time")
            days = self._read(
                f"SELECT partner, {day} AS day, COUNT(*) FROM {DISCLOSURES}{where} "
                f"GROUP BY partner, {day} ORDER BY partner, day", params)
            dwhere = where.replace("time", "d.time")
            purposes = self._read(
                f"SELECT DISTINCT d.partner, j.value FROM {DISCLOSURES} d, "
                f"{self._json_each('d.purposes')}{dwhere} ORDER BY 1, 2", params)
            cats = self._read(
                f"SELECT DISTINCT d.partner, j.value FROM {DISCLOSURES} d, "
                f"{self._json_each('d.data_categories')}{dwhere} ORDER BY 1, 2", params)
        return SummaryData(
            partners=[PartnerAggregate(str(p), int(n), int(c), self._ts_value(a),
                                       self._ts_value(b)) for p, n, c, a, b in parts],
            per_day=[(str(p), date.fromisoformat(str(d)), int(n)) for p, d, n in days],
            purposes=[(str(p), str(v)) for p, v in purposes],
            categories=[(str(p), str(v)) for p, v in cats],
        )



Migration = tuple[int, str, Sequence[str]]


def fetch_batches(cur: Any) -> Iterator[Row]:
    while True:
        batch = cur.fetchmany(FETCH)
        if not batch:
            return
        yield from batch
