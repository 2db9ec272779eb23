"""The review tables, kept in the ledger's SQLite file beside (never inside) the ledger's own.

The ledger's tables are the ledger package's; this module only reads them, with aggregate
SQL (a report over a million page views must not parse a million records in Python), and
owns four tables of its own, all prefixed ``review_``:

* ``review_banners``: the exact HTML of each consent UI version, stored once per hash;
* ``review_proofs``: per consent decision, which banner and policy version it was made on;
* ``review_discovered``: undeclared hosts, CSP reports and cookies, bounded;
* ``review_meta``: small facts such as the config file the middleware ran with.

SQLite only for now; a PostgreSQL ledger gets no review tables (``ReviewUnavailable``).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import ConsentGateError
from ..ledger.records import format_time

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS review_banners (
        hash TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        lang TEXT NOT NULL,
        policy_hash TEXT NOT NULL,
        policy TEXT NOT NULL,
        html TEXT NOT NULL,
        first_seen TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS review_proofs (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        consent_id TEXT NOT NULL,
        action TEXT NOT NULL,
        outcome TEXT NOT NULL,
        source TEXT NOT NULL,
        banner_hash TEXT NOT NULL,
        policy_hash TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        gpc INTEGER NOT NULL,
        jurisdiction TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS review_proofs_consent ON review_proofs (consent_id, time)",
    "CREATE INDEX IF NOT EXISTS review_proofs_time ON review_proofs (time)",
    """CREATE TABLE IF NOT EXISTS review_discovered (
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        count INTEGER NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        examples TEXT NOT NULL,
        PRIMARY KEY (kind, name)
    )""",
    "CREATE TABLE IF NOT EXISTS review_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

#: At most this many distinct names per discovery kind: a flood of fake reports cannot grow
#: the table without bound; names already kept still count.
MAX_DISCOVERED = 2000
MAX_EXAMPLES = 5


class ReviewUnavailable(ConsentGateError):
    """The ledger is not a SQLite file: no review tables."""


@dataclass(frozen=True)
class Banner:
    hash: str
    kind: str
    lang: str
    policy_hash: str
    policy: str
    html: str
    first_seen: str


@dataclass(frozen=True)
class Proof:
    time: datetime
    consent_id: str
    action: str
    outcome: str  # accept | reject | custom | withdraw
    source: str
    banner_hash: str
    policy_hash: str
    policy_version: str
    gpc: bool
    jurisdiction: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"time": format_time(self.time), "consent_id": self.consent_id,
                "action": self.action, "outcome": self.outcome, "source": self.source,
                "banner_hash": self.banner_hash, "policy_hash": self.policy_hash,
                "policy_version": self.policy_version, "gpc": self.gpc,
                "jurisdiction": self.jurisdiction}


@dataclass(frozen=True)
class Sighting:
    """One observation for discovery: an undeclared host, a CSP report or a cookie."""

    kind: str  # "host" | "csp" | "cookie"
    name: str
    page: str
    time: datetime
    count: int = 1


@dataclass(frozen=True)
class Discovered:
    kind: str
    name: str
    count: int
    first_seen: str
    last_seen: str
    examples: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "count": self.count,
                "first_seen": self.first_seen, "last_seen": self.last_seen,
                "examples": list(self.examples)}


def is_sqlite_target(target: str) -> bool:
    return "://" not in target


class ReviewDb:
    """One connection to the ledger's SQLite file; thread-safe behind a lock."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        target = str(path)
        if not is_sqlite_target(target):
            raise ReviewUnavailable(
                "the review tables (report, discovery, banner proofs, my-data) need a SQLite "
                f"ledger for now; {target.split('://')[0]}:// is not supported yet")
        if not create and not Path(target).exists():
            raise ReviewUnavailable(f"no ledger at {target}")
        self.path = target
        self.writable = create
        self._lock = threading.RLock()
        if create:
            self._conn = sqlite3.connect(target, check_same_thread=False, timeout=5.0,
                                         isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            with self._tx() as cur:
                for stmt in SCHEMA:
                    cur.execute(stmt)
        else:
            # Reading never writes: a copy handed to an auditor may be read-only.
            uri = Path(target).resolve().as_uri() + "?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False, timeout=5.0,
                                         isolation_level=None)
            self._conn.execute("PRAGMA busy_timeout=5000")
        self._tables = self.tables()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Cursor]:
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read inside sees one state of the ledger: one read transaction (in WAL mode
        a fixed snapshot), so a report's totals and its per-partner counts agree while the
        site keeps writing. Other threads' calls wait until it ends."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                yield
            finally:
                self._conn.execute("COMMIT")

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    def tables(self) -> set[str]:
        return {r[0] for r in self.read("SELECT name FROM sqlite_master WHERE type = 'table'")}

    # -- meta --------------------------------------------------------------------------------
    def set_meta(self, key: str, value: str) -> None:
        with self._tx() as cur:
            cur.execute("INSERT INTO review_meta (key, value) VALUES (?, ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def meta(self, key: str) -> str | None:
        if "review_meta" not in self._tables:
            return None
        rows = self.read("SELECT value FROM review_meta WHERE key = ?", (key,))
        return str(rows[0][0]) if rows else None

    # -- banners and proofs ------------------------------------------------------------------
    def add_banners(self, banners: Iterable[Banner]) -> None:
        with self._tx() as cur:
            cur.executemany(
                "INSERT INTO review_banners (hash, kind, lang, policy_hash, policy, html, "
                "first_seen) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (hash) DO NOTHING",
                [(b.hash, b.kind, b.lang, b.policy_hash, b.policy, b.html, b.first_seen)
                 for b in banners])

    def banner(self, digest: str) -> Banner | None:
        if "review_banners" not in self._tables:
            return None
        rows = self.read("SELECT hash, kind, lang, policy_hash, policy, html, first_seen "
                         "FROM review_banners WHERE hash = ?", (digest,))
        return Banner(*rows[0]) if rows else None

    def banner_by_prefix(self, prefix: str) -> Banner | None:
        if "review_banners" not in self._tables:
            return None
        rows = self.read("SELECT hash, kind, lang, policy_hash, policy, html, first_seen "
                         "FROM review_banners WHERE hash >= ? AND hash < ? ORDER BY hash LIMIT 2",
                         (prefix, prefix + "g"))
        return Banner(*rows[0]) if len(rows) == 1 else None

    def add_proof(self, proof: Proof) -> None:
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO review_proofs (time, consent_id, action, outcome, source, "
                "banner_hash, policy_hash, policy_version, gpc, jurisdiction) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (format_time(proof.time), proof.consent_id, proof.action, proof.outcome,
                 proof.source, proof.banner_hash, proof.policy_hash, proof.policy_version,
                 int(proof.gpc), proof.jurisdiction))

    def proofs(self, consent_id: str) -> list[Proof]:
        from ..ledger.records import parse_time

        if "review_proofs" not in self._tables:
            return []
        rows = self.read(
            "SELECT time, consent_id, action, outcome, source, banner_hash, policy_hash, "
            "policy_version, gpc, jurisdiction FROM review_proofs WHERE consent_id = ? "
            "ORDER BY time, id", (consent_id,))
        return [Proof(parse_time(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], bool(r[8]),
                      r[9]) for r in rows]

    # -- discovery ---------------------------------------------------------------------------
    def add_sightings(self, sightings: Iterable[Sighting]) -> None:
        """Merge observations; a new name is kept only while its kind has room."""
        with self._tx() as cur:
            for s in sightings:
                t = format_time(s.time)
                row = cur.execute("SELECT examples FROM review_discovered WHERE kind = ? AND "
                                  "name = ?", (s.kind, s.name)).fetchone()
                if row is None:
                    (n,) = cur.execute("SELECT COUNT(*) FROM review_discovered WHERE kind = ?",
                                       (s.kind,)).fetchone()
                    if n >= MAX_DISCOVERED:
                        continue
                    cur.execute("INSERT INTO review_discovered (kind, name, count, first_seen, "
                                "last_seen, examples) VALUES (?, ?, ?, ?, ?, ?)",
                                (s.kind, s.name, s.count, t, t, json.dumps([s.page] if s.page else [])))
                    continue
                examples = json.loads(row[0])
                if s.page and s.page not in examples and len(examples) < MAX_EXAMPLES:
                    examples.append(s.page)
                cur.execute("UPDATE review_discovered SET count = count + ?, last_seen = "
                            "max(last_seen, ?), first_seen = min(first_seen, ?), examples = ? "
                            "WHERE kind = ? AND name = ?",
                            (s.count, t, t, json.dumps(examples), s.kind, s.name))

    def discovered(self, since: datetime | None = None) -> list[Discovered]:
        if "review_discovered" not in self._tables:
            return []
        where, params = "", []
        if since is not None:
            where, params = " WHERE last_seen >= ?", [format_time(since)]
        rows = self.read("SELECT kind, name, count, first_seen, last_seen, examples FROM "
                         f"review_discovered{where} ORDER BY count DESC, kind, name", params)
        return [Discovered(r[0], r[1], int(r[2]), r[3], r[4], tuple(json.loads(r[5])))
                for r in rows]
