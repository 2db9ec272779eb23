"""SQL shared by the SQLite and PostgreSQL stores; each subclass supplies its dialect.

SQL here is written with ``?`` placeholders; the PostgreSQL store rewrites them.
"""

from __future__ import annotations

import heapq
import itertools
import json
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any, Self

from middleware.ledger.chain import (
    BrokenRow,
    ChainedRecord,
    Checkpoint,
    StoredRow,
    canonical_text,
    list_texts,
    partner_set_text,
)
from middleware.ledger.records import (
    ConsentEvent,
    DisclosureRecord,
    PageView,
    PartnerShare,
    Record,
    parse_time,
    path_forms,
)
from middleware.ledger.store import (
    CONSENT_EVENTS,
    DISCLOSURES,
    PAGE_VIEWS,
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
PAGE_VIEW_COLS = ("time", "request_id", "consent_id", "path", "partners", "partner_set",
                  "policy_version", "ip", "ua_family", "fields")
#: Written: since schema v4 a view's ``partners`` is '' and ``list_id`` names its partner
#: list's row in ``partner_lists`` (the ~1 KB text once per list, not once per view).
PAGE_VIEW_WRITE_COLS = (*PAGE_VIEW_COLS, "list_id")
#: Read: a row's own text (schema v3 rows, which keep theirs), else its list's. Every reader
#: and ``verify`` get the text the hash covers, whichever way the row stores it.
_VIEW_PARTNERS = "COALESCE(NULLIF(partners, ''), pl_partners)"
#: The FROM item of page view reads. The list's columns are renamed so that the unqualified
#: columns of WHERE / ORDER BY (time, id, partner_set ...) stay page_views' own. A LEFT JOIN:
#: a row whose list is missing comes back (and fails verify), it does not vanish.
_VIEWS_FROM = ("page_views LEFT JOIN (SELECT id AS pl_id, partners AS pl_partners "
               "FROM partner_lists) pl ON pl.pl_id = page_views.list_id")
TABLE_COLS: dict[str, tuple[str, ...]] = {
    DISCLOSURES: DISCLOSURE_COLS, CONSENT_EVENTS: CONSENT_COLS, PAGE_VIEWS: PAGE_VIEW_COLS}
CHAIN_TABLES = (DISCLOSURES, CONSENT_EVENTS, PAGE_VIEWS)
JSON_COLS = frozenset({"purposes", "data_categories", "cookies", "choices"})
# Free-form JSON is kept as text everywhere: jsonb would turn 1e16 into 10000000000000000
# (an int), and the recomputed hash would then cry tamper.
TEXT_JSON_COLS = frozenset({"fields"})
CHECKPOINT_COLS = ("id", "writer_id", "last_seq", "last_hash", "purged", "time", "signature")

FETCH = 1000


@lru_cache(maxsize=1024)
def _shares(text: str) -> tuple[PartnerShare, ...]:
    """A ``partners`` column back to shares: a site has few distinct lists, parse each once."""
    items = json.loads(text)
    if not isinstance(items, list):
        raise ValueError("partners is not a JSON array")
    return tuple(PartnerShare.from_dict(d) for d in items)


class MissingList(ValueError):
    """A page view names a partner list (``list_id``) that ``partner_lists`` does not hold:
    the text its hash covers is gone (a deleted list row)."""


def _row_error(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"missing field {exc}"
    if isinstance(exc, MissingList):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


@lru_cache(maxsize=256)
def _insert_sql(table: str, record_cols: tuple[str, ...], rows: int = 1,
                verb: str = "INSERT") -> str:
    cols = (*record_cols, *CHAIN_COLS)
    one = f"({', '.join('?' * len(cols))})"
    return f"{verb} INTO {table} ({', '.join(cols)}) VALUES {', '.join([one] * rows)}"


#: Batches up to this many rows are one statement of exactly their size.
EXACT_ROWS = 64


def _chunks(n: int, largest: int) -> Iterator[int]:
    """Split ``n`` rows into statement sizes (``largest`` at most): one statement of ``n``
    rows up to ``EXACT_ROWS``, else power-of-two sizes.

    Few distinct statement texts, so the driver's statement cache (128 by default) keeps
    them all (parsing a 512-row INSERT costs more than running it): at most 64 exact sizes
    and ~11 powers of two per table. Exact below 64, since a commit of the writer process
    holds 5-30 views and each extra statement costs its own step, reset and halt (8 + 4 + 1
    for 13 views before).
    """
    if n <= min(EXACT_ROWS, largest):
        if n:
            yield n
        return
    size = 1 << max(largest, 1).bit_length() - 1
    while n:
        while size > n:
            size >>= 1
        yield size
        n -= size

Row = Sequence[Any]


class SqlStore:
    """Dialect-neutral implementation of the LedgerStore protocol."""

    #: How ``append`` inserts rows (the SQLite store: ``INSERT OR ROLLBACK``).
    _insert_verb = "INSERT"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._known_sets: set[str] = set()
        # partner_lists id by text, of lists committed (filled after COMMIT only, so a
        # rolled-back transaction never leaves an id behind); cleared on every new
        # connection, as the database behind it may not be the one the ids came from.
        self._list_ids: dict[str, int] = {}

    def _forget_ids(self) -> None:
        """A new connection: ids learnt on the last one may not hold (a replaced file)."""
        self._known_sets = set()
        self._list_ids = {}

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

    def _day_of(self, v: Any) -> date:
        """The UTC day of a stored time, as ``_day_expr`` names it."""
        raise NotImplementedError

    def _day_bound(self, d: date) -> Any:
        """A parameter for ``time >= ?`` / ``time < ?`` that starts day ``d`` as ``_day_expr``
        cuts days: every time of day ``d`` is >= it and every time of the day before < it."""
        raise NotImplementedError

    def _json_each(self, col: str) -> str:
        """A FROM item aliased ``j`` with one text column ``value``."""
        raise NotImplementedError

    def _json_text(self, col: str, key: str) -> str:
        """The text value of ``key`` in the JSON object held in the text column ``col``."""
        raise NotImplementedError

    def _list_lookup(self, text: str) -> tuple[str, list[Any]]:
        """WHERE clause and parameters that find the ``partner_lists`` row of ``text``."""
        return "partners = ?", [text]

    def _indexed(self, name: str) -> str:
        """Pin a query to an index where the planner might not see it covers the query."""
        return ""

    def _write_tx(self) -> AbstractContextManager[Any]:
        """Context manager: a write transaction on the main connection, yielding a cursor."""
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any]) -> list[Row]:
        raise NotImplementedError

    def _snapshot(self) -> AbstractContextManager[Any]:
        """Context manager (the caller holds ``_lock``): every ``_read`` inside sees one state
        of the ledger, a read transaction on the main connection."""
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
        if isinstance(rec, PageView):
            f = rec.fields
            _, text, partner_set = list_texts(rec.partners)
            return [
                self._ts_param(rec.time), rec.request_id, rec.consent_id, rec.path,
                text, partner_set, rec.policy_version,
                rec.ip, rec.ua_family, canonical_text(dict(f)) if f else "{}", None,
                row.writer_id, row.seq, row.prev_hash, row.hash,
            ]
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

    def _stored(self, table: str, r: Row) -> StoredRow | BrokenRow:
        """A row back to its record; a row that does not parse (bad time, bad JSON, an
        unknown legal basis) comes back as a ``BrokenRow`` naming it, never an exception."""
        cols = TABLE_COLS[table]
        n = len(cols) + 1
        try:
            writer_id, seq = str(r[n]), int(r[n + 1])
        except (TypeError, ValueError):
            writer_id, seq = str(r[n]), -1
        try:
            rec = self._record(table, cols, r)
            return StoredRow(table, int(r[0]), rec, writer_id, seq, str(r[n + 2]), str(r[n + 3]))
        except Exception as exc:  # any parse failure: one broken row
            return BrokenRow(table, int(r[0]), writer_id, seq, str(r[n + 2]), str(r[n + 3]),
                             _row_error(exc))

    def _record(self, table: str, cols: tuple[str, ...], r: Row) -> Record:
        if table == PAGE_VIEWS:
            # id, time, request_id, consent_id, path, partners, partner_set, policy_version,
            # ip, ua_family, fields, the chain columns, list_id
            if r[5] is None:  # partners '' and no list row to take the text from
                raise MissingList(f"partner list {r[-1]} is missing (its partner_lists row "
                                  "was deleted)")
            shares = _shares(str(r[5]))
            if r[6] != partner_set_text(shares):
                raise ValueError(f"partner_set {r[6]!r} does not match the partners column "
                                 "(edited: it hides the view from partner queries)")
            fields = json.loads(r[10])
            return PageView(time=self._ts_value(r[1]), request_id=r[2], consent_id=r[3],
                            path=r[4], partners=shares, policy_version=r[7], ip=r[8],
                            ua_family=r[9], fields=fields or {})
        body: dict[str, Any] = {}
        for i, c in enumerate(cols, start=1):
            v = r[i]
            if c in JSON_COLS:
                v = self._json_value(v)
            elif c in TEXT_JSON_COLS:
                v = json.loads(v)
            elif c == "time":
                v = self._ts_value(v)
            body[c] = v
        return (DisclosureRecord.from_dict(body) if table == DISCLOSURES
                else ConsentEvent.from_dict(body))

    @staticmethod
    def _select_cols(table: str) -> str:
        cols = TABLE_COLS[table]
        if table == PAGE_VIEWS:
            cols = tuple(_VIEW_PARTNERS if c == "partners" else c for c in cols)
            # list_id last: named when its list is missing.
            return ", ".join(("id", *cols, *CHAIN_COLS, "list_id"))
        return ", ".join(("id", *cols, *CHAIN_COLS))

    @staticmethod
    def _from(table: str) -> str:
        return _VIEWS_FROM if table == PAGE_VIEWS else table

    # -- writes ------------------------------------------------------------------------
    def append(self, rows: Sequence[ChainedRecord]) -> None:
        if not rows:
            return
        views: list[list[Any]] = []
        disc: list[list[Any]] = []
        cons: list[list[Any]] = []
        for r in rows:
            rec = r.record
            (views if isinstance(rec, PageView) else disc if isinstance(rec, DisclosureRecord)
             else cons).append(self._params(r))
        with self._lock, self._write_tx() as cur:
            # Inside the transaction: _write_tx may have (re)connected and cleared the caches.
            new_sets: set[str] = set()
            new_ids: dict[str, int] = {}
            if views:
                known = self._list_ids
                for p in views:
                    text = p[4]
                    list_id = known.get(text)
                    if list_id is None:
                        list_id = new_ids.get(text)
                        if list_id is None:
                            list_id = new_ids[text] = self._list_id(cur, text, p[5])
                    p[4], p[10] = "", list_id
                # partner_set of each view (column 5): new sets go into the small
                # partner_sets table that partner queries start from.
                new_sets = {p[5] for p in views} - self._known_sets
                for ps in sorted(new_sets):
                    cur.execute(self._q("INSERT INTO partner_sets (partner_set) VALUES (?) "
                                        "ON CONFLICT DO NOTHING"), [ps])
                self._insert(cur, PAGE_VIEWS, PAGE_VIEW_WRITE_COLS, views)
            if disc:
                self._insert(cur, DISCLOSURES, DISCLOSURE_COLS, disc)
            if cons:
                self._insert(cur, CONSENT_EVENTS, CONSENT_COLS, cons)
        self._known_sets |= new_sets
        self._list_ids.update(new_ids)

    def _known_views(self, rows: Sequence[ChainedRecord]) -> list[list[Any]] | None:
        """The rows' parameters, lists by reference, if every row is a page view whose
        partner list and partner set are already committed (the steady state: nothing to
        insert but the views); else None. Call with the connection open (it may forget ids)."""
        known, sets = self._list_ids, self._known_sets
        out: list[list[Any]] = []
        for r in rows:
            if not isinstance(r.record, PageView):
                return None
            p = self._params(r)
            list_id = known.get(p[4])
            if list_id is None or p[5] not in sets:
                return None
            p[4], p[10] = "", list_id
            out.append(p)
        return out

    def _list_id(self, cur: Any, text: str, partner_set: str) -> int:
        """The id of a partner list, inserting it if new, in the caller's transaction.

        Insert-or-nothing, then read: another writer of the same database may have added
        the same list (its row is then the one every view of that list refers to).
        """
        cur.execute(self._q("INSERT INTO partner_lists (partners, partner_set) VALUES (?, ?) "
                            "ON CONFLICT DO NOTHING"), [text, partner_set])
        where, params = self._list_lookup(text)
        cur.execute(self._q(f"SELECT id FROM partner_lists WHERE {where}"), params)
        row = cur.fetchone()
        if row is None:  # only if the insert was silently dropped: refuse to write the views
            raise RuntimeError("partner_lists: a partner list was neither inserted nor found")
        return int(row[0])

    def _insert(self, cur: Any, table: str, record_cols: tuple[str, ...],
                params: list[list[Any]]) -> None:
        largest = self._multirow_max(len(record_cols) + len(CHAIN_COLS))
        if largest <= 0:
            cur.executemany(self._q(_insert_sql(table, record_cols, 1, self._insert_verb)), params)
            return
        # One statement for many rows: sqlite3's executemany releases and retakes the GIL
        # around every row, and each retake can wait for a busy event loop thread.
        i = 0
        for k in _chunks(len(params), largest):
            flat = [v for p in params[i:i + k] for v in p]
            cur.execute(self._q(_insert_sql(table, record_cols, k, self._insert_verb)), flat)
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

            both = " UNION ALL ".join(f"SELECT writer_id, seq FROM {t} WHERE time {{op}} ?"
                                      for t in CHAIN_TABLES)
            tss = [ts] * len(CHAIN_TABLES)
            old = pairs(f"SELECT writer_id, MAX(seq) FROM ({both.format(op='<')}) o "
                        "GROUP BY writer_id", tss)
            if not old:
                return []
            new = pairs(f"SELECT writer_id, MIN(seq) FROM ({both.format(op='>=')}) n "
                        "GROUP BY writer_id", tss)
            done = pairs("SELECT writer_id, MAX(last_seq) FROM checkpoints GROUP BY writer_id",
                         [])
            for writer, max_old in sorted(old.items()):
                keep_from = new.get(writer)
                last = keep_from - 1 if keep_from is not None else max_old
                if last <= done.get(writer, 0):
                    continue
                tip = one(" UNION ALL ".join(f"SELECT hash FROM {t} WHERE writer_id = ? AND seq = ?"
                                             for t in CHAIN_TABLES),
                          [writer, last] * len(CHAIN_TABLES))
                if len(tip) != 1:
                    # The boundary row is missing or doubled: purging now would hide that.
                    continue
                count = 0
                for table in CHAIN_TABLES:
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

    def chain_rows(self) -> Iterator[StoredRow | BrokenRow]:
        order = " ORDER BY writer_id, seq, id"
        with self._stream([(f"SELECT {self._select_cols(t)} FROM {self._from(t)}{order}", [])
                           for t in CHAIN_TABLES]) as streams:
            parts = [self._rows_of(t, it) for t, it in zip(CHAIN_TABLES, streams, strict=True)]
            yield from heapq.merge(*parts, key=lambda s: (s.writer_id, s.seq, s.table, s.rowid))

    def _rows_of(self, table: str, it: Iterator[Row]) -> Iterator[StoredRow | BrokenRow]:
        for r in it:
            yield self._stored(table, r)

    def _where(self, f: Filters, table: str = DISCLOSURES) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        if f.partner is not None and table == DISCLOSURES:
            conds.append("partner = ?")
            params.append(f.partner)
        if f.purpose is not None and table == DISCLOSURES:
            conds.append(f"EXISTS (SELECT 1 FROM {self._json_each('purposes')} "
                         "WHERE j.value = ?)")
            params.append(f.purpose)
        if f.path is not None:
            # As a person writes it: the recorded form or the browser's (path_forms).
            if f.path.endswith("*"):
                forms = path_forms(f.path[:-1])
                conds.append("(" + " OR ".join(["path LIKE ? ESCAPE '\\'"] * len(forms)) + ")")
                params.extend(form.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                              + "%" for form in forms)
            else:
                forms = path_forms(f.path)
                conds.append(f"path IN ({', '.join(['?'] * len(forms))})")
                params.extend(forms)
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

    def partner_sets(self) -> list[str]:
        """Every distinct partner set a page view record has had (`` a b c ``)."""
        return [str(r[0]) for r in self._read("SELECT partner_set FROM partner_sets", [])]

    def disclosures(
        self, filters: Filters, newest_first: bool = True
    ) -> Iterator[StoredRow | BrokenRow]:
        """Page view records and (older or server-side) per-partner disclosure rows that
        match, merged by time. ``filters.limit`` counts records."""
        streams = [self._old_disclosures(filters, newest_first),
                   *self._view_streams(filters, newest_first)]
        merged: Iterable[StoredRow | BrokenRow] = (
            streams[0] if len(streams) == 1 else
            heapq.merge(*streams, key=_time_key, reverse=newest_first))
        if filters.purpose is not None:
            merged = (r for r in merged if _has_purpose(r, filters.partner, filters.purpose))
        if filters.limit is not None:
            merged = itertools.islice(merged, int(filters.limit))
        yield from merged

    def _order(self, newest_first: bool) -> str:
        return " ORDER BY time DESC, id DESC" if newest_first else " ORDER BY time, id"

    def _old_disclosures(self, f: Filters, newest_first: bool) -> Iterator[StoredRow | BrokenRow]:
        where, params = self._where(f, DISCLOSURES)
        limit = ""
        if f.limit is not None:
            limit = " LIMIT ?"
            params.append(int(f.limit))
        sql = (f"SELECT {self._select_cols(DISCLOSURES)} FROM {DISCLOSURES}{where}"
               f"{self._order(newest_first)}{limit}")
        with self._stream([(sql, params)]) as (it,):
            for r in it:
                yield self._stored(DISCLOSURES, r)

    def _view_streams(self, f: Filters, newest_first: bool) -> list[Iterator[StoredRow | BrokenRow]]:
        where, params = self._where(f, PAGE_VIEWS)
        if f.partner is None:
            sets: list[str | None] = [None]
        else:
            # One indexed (partner_set, time) range per set holding the partner: each stream
            # is already in time order and stops after `limit` rows, however many views exist.
            sets = [ps for ps in self.partner_sets() if f" {f.partner} " in ps]
        out: list[Iterator[StoredRow | BrokenRow]] = []
        for ps in sets:
            w, p = where, list(params)
            if ps is not None:
                w = (w + " AND " if w else " WHERE ") + "partner_set = ?"
                p.append(ps)
            limit = ""
            if f.limit is not None and f.purpose is None:
                limit = " LIMIT ?"
                p.append(int(f.limit))
            sql = (f"SELECT {self._select_cols(PAGE_VIEWS)} FROM {self._from(PAGE_VIEWS)}{w}"
                   f"{self._order(newest_first)}{limit}")
            out.append(self._view_rows(sql, p))
        return out

    def _view_rows(self, sql: str, params: list[Any]) -> Iterator[StoredRow | BrokenRow]:
        with self._stream([(sql, params)]) as (it,):
            for r in it:
                yield self._stored(PAGE_VIEWS, r)

    def consent_events(
        self, consent_id: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[StoredRow | BrokenRow]:
        where, params = self._where(Filters(consent_id=consent_id, since=since, until=until),
                                    CONSENT_EVENTS)
        sql = (f"SELECT {self._select_cols(CONSENT_EVENTS)} FROM {CONSENT_EVENTS}{where} "
               "ORDER BY time, id")
        with self._stream([(sql, params)]) as (it,):
            for r in it:
                yield self._stored(CONSENT_EVENTS, r)

    def summary(self, since: datetime | None, until: datetime | None) -> SummaryData:
        acc = _Summary()
        where, params = self._where(Filters(since=since, until=until), DISCLOSURES)
        # A forwarded event's delivery outcome (accepted, rejected, ...) is a second row about
        # the same disclosure: the data left once, so only the row written before it counts.
        not_outcome = f"COALESCE({self._json_text('fields', 'delivery')}, 'queued') = 'queued'"
        where = f"{where} AND {not_outcome}" if where else f" WHERE {not_outcome}"
        day = self._day_expr("time")
        # One snapshot: its statements (a few per partner set and day) must agree while the
        # site keeps writing, or a view written meanwhile counts in one day and not in the
        # totals' range.
        with self._lock, self._snapshot():
            # Old per-partner rows (and server-side disclosures).
            for p, d, n, a, b in self._read(
                    f"SELECT partner, {day}, COUNT(*), MIN(time), MAX(time) FROM {DISCLOSURES}"
                    f"{where} GROUP BY partner, {day}", params):
                acc.add(str(p), str(d), int(n), self._ts_value(a), self._ts_value(b))
            for p, c in self._read(f"SELECT DISTINCT partner, consent_id FROM {DISCLOSURES}"
                                   f"{where}", params):
                if c is not None:
                    acc.consent_ids.setdefault(str(p), set()).add(str(c))
            dwhere = where.replace("time", "d.time")
            for table, sink in (("purposes", acc.purposes), ("data_categories", acc.categories)):
                for p, v in self._read(
                        f"SELECT DISTINCT d.partner, j.value FROM {DISCLOSURES} d, "
                        f"{self._json_each('d.' + table)}{dwhere}", params):
                    sink.add((str(p), str(v)))
            # Page views: per partner set (few) and per day, each an indexed range of the
            # (partner_set, time, consent_id) index read in its order, expanded per partner
            # here. One GROUP BY partner_set, day over the whole range cannot use that order
            # (the day is an expression): SQLite sorted every view of the range in a temp
            # B-tree, which was most of the summary's time.
            seen = self._summary_views(acc, since, until)
            # Purposes and data: every partner list recorded for the sets seen (a superset when
            # a list was used only outside the period: never fewer than were disclosed).
            for text, ps in self._read("SELECT partners, partner_set FROM partner_lists", []):
                if str(ps) not in seen:
                    continue
                try:
                    shares = _shares(str(text))
                except Exception:  # a broken row: verify names it
                    continue
                for sh in shares:
                    acc.purposes.update((sh.partner, x) for x in sh.purposes)
                    acc.categories.update((sh.partner, x) for x in sh.data_categories)
        return acc.data()

    def _summary_views(self, acc: _Summary, since: datetime | None,
                       until: datetime | None) -> set[str]:
        """Page views of [since, until) into ``acc``; returns the partner sets seen."""
        idx = self._indexed("page_views_set_time_consent")
        vwhere, vparams = self._where(Filters(since=since, until=until), PAGE_VIEWS)
        in_set = (vwhere + " AND " if vwhere else " WHERE ") + "partner_set = ?"
        seen: set[str] = set()
        for ps in self._view_sets():
            p = [*vparams, ps]
            # A lone MIN() or MAX() is one seek into the index, not a scan.
            first = self._read(f"SELECT MIN(time) FROM {PAGE_VIEWS}{idx}{in_set}", p)[0][0]
            if first is None:
                continue
            last = self._read(f"SELECT MAX(time) FROM {PAGE_VIEWS}{idx}{in_set}", p)[0][0]
            seen.add(ps)
            partners = ps.split()
            a, b = self._ts_value(first), self._ts_value(last)
            day, end = self._day_of(first), self._day_of(last)
            while day <= end:
                nxt = day + timedelta(days=1)
                # One bound each side, the tighter of the day's and the range's: given both
                # lower bounds SQLite seeks to one and filters the other, so every day's
                # count would scan from `since` on.
                lo, hi = self._day_bound(day), self._day_bound(nxt)
                if since is not None:
                    lo = max(lo, self._ts_param(since))
                if until is not None:
                    hi = min(hi, self._ts_param(until))
                n = self._read(f"SELECT COUNT(*) FROM {PAGE_VIEWS}{idx} "
                               "WHERE partner_set = ? AND time >= ? AND time < ?",
                               [ps, lo, hi])[0][0]
                if n:
                    d = day.isoformat()
                    for partner in partners:
                        acc.add(partner, d, int(n), a, b)
                day = nxt
            # Distinct ids of one set: the set's range in time order, deduplicated in a temp
            # B-tree of distinct ids (a few thousand), not a sort of every view.
            ids = [str(c) for c, in self._read(
                f"SELECT DISTINCT consent_id FROM {PAGE_VIEWS}{idx}{in_set} "
                "AND consent_id IS NOT NULL", p)]
            for partner in partners:
                acc.consent_ids.setdefault(partner, set()).update(ids)
        return seen

    def _view_sets(self) -> list[str]:
        """Every distinct partner_set of page_views, from the index itself (one seek per set:
        a loose index scan), so that no view is left out whatever the partner_sets table says."""
        rows = self._read(
            "WITH RECURSIVE s(ps) AS ("
            f"SELECT MIN(partner_set) FROM {PAGE_VIEWS} UNION ALL "
            f"SELECT (SELECT MIN(partner_set) FROM {PAGE_VIEWS} WHERE partner_set > s.ps) "
            "FROM s WHERE s.ps IS NOT NULL) SELECT ps FROM s WHERE ps IS NOT NULL", [])
        return [str(r[0]) for r in rows]


def _time_key(r: StoredRow | BrokenRow) -> tuple[datetime, str, int]:
    t = r.record.time if isinstance(r, StoredRow) else _EPOCH
    return (t, r.table, r.rowid)


_EPOCH = parse_time("1970-01-01T00:00:00Z")


def _has_purpose(r: StoredRow | BrokenRow, partner: str | None, purpose: str) -> bool:
    if isinstance(r, BrokenRow):
        return True  # reported, never silently dropped
    rec = r.record
    if isinstance(rec, PageView):
        return any(purpose in s.purposes for s in rec.partners
                   if partner is None or s.partner == partner)
    return True  # the old table was filtered in SQL


class _Summary:
    """Per-partner totals gathered from both disclosure tables."""

    def __init__(self) -> None:
        self.views: dict[str, int] = {}
        self.first: dict[str, datetime] = {}
        self.last: dict[str, datetime] = {}
        self.days: dict[tuple[str, str], int] = {}
        self.consent_ids: dict[str, set[str]] = {}
        self.purposes: set[tuple[str, str]] = set()
        self.categories: set[tuple[str, str]] = set()

    def add(self, p: str, day: str, n: int, first: datetime, last: datetime) -> None:
        self.views[p] = self.views.get(p, 0) + n
        self.days[(p, day)] = self.days.get((p, day), 0) + n
        if p not in self.first or first < self.first[p]:
            self.first[p] = first
        if p not in self.last or last > self.last[p]:
            self.last[p] = last

    def data(self) -> SummaryData:
        order = sorted(self.views, key=lambda p: (-self.views[p], p))
        return SummaryData(
            partners=[PartnerAggregate(p, self.views[p], len(self.consent_ids.get(p, ())),
                                       self.first[p], self.last[p]) for p in order],
            per_day=sorted((p, date.fromisoformat(d), n) for (p, d), n in self.days.items()),
            purposes=sorted(self.purposes),
            categories=sorted(self.categories),
        )

Migration = tuple[int, str, Sequence[str]]


def fetch_batches(cur: Any) -> Iterator[Row]:
    while True:
        batch = cur.fetchmany(FETCH)
        if not batch:
            return
        yield from batch
