"""The hash chain: one chain per writer, spanning both record tables.

Each stored row carries ``writer_id`` (random per writer start), ``seq`` (1..n within
the writer), ``prev_hash`` (the hash of the writer's previous row, or of the purge
checkpoint it follows) and ``hash`` = SHA-256 over a canonical serialisation of the
record, the writer id, the seq and the prev hash. Writers share no lock: each
process extends only its own chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) uses
from typing import TYPE_CHECKING, Any, NamedTuple

from middleware.ledger.records import (
    ConsentEvent,
    DisclosureRecord,
    PageView,
    PartnerShare,
    Record,
    RecordKind,
    format_time,
)

if TYPE_CHECKING:
    from middleware.ledger.store import LedgerStore

GENESIS = "0" * 64


def canonical_text(obj: Any) -> str:
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_json(obj: Any) -> bytes:
    return canonical_text(obj).encode("utf-8")


def record_hash(kind: RecordKind, body: dict[str, Any], writer_id: str, seq: int, prev: str) -> str:
    """The reference definition of a row's hash (``body`` is ``record.to_dict()``).

    ``hash_record`` computes the same value faster; keep the two identical, or existing
    ledgers stop verifying.
    """
    payload = {"kind": kind, "record": body, "writer": writer_id, "seq": seq, "prev": prev}
    return hashlib.sha256(canonical_json(payload)).hexdigest()


# -- the fast path ---------------------------------------------------------------------
# The writer thread hashes every record and competes for the GIL with the event loop, so
# the canonical JSON of the two known record shapes is assembled by hand from fragments:
# strings through the very encoder json.dumps uses, repeated tuples (purposes, data
# categories, cookies: fixed per partner) and times (shared by a page view's records)
# from small caches. The output is byte for byte that of ``canonical_json(to_dict())``.

@lru_cache(maxsize=4096)
def json_strs(values: tuple[str, ...]) -> str:
    """Canonical JSON of a tuple of strings (a JSON array): also the SQLite column text."""
    return canonical_text(list(values))


#: Bounded caches (cleared when full): a site has a few partner lists, and a commit's
#: records are a few hundred times.
_CACHE_MAX = 4096
_TIMES: dict[datetime, str] = {}
_SECONDS: dict[int, str] = {}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)


def time_text(t: datetime) -> str:
    """``format_time`` for the writer: a time is formatted for the hash and again for the
    row, and the writer process's decoder formats it from the wire (``time_text_us``)."""
    text = _TIMES.get(t)
    if text is None:
        text = format_time(t)
        if len(_TIMES) >= _CACHE_MAX:
            _TIMES.clear()
        _TIMES[t] = text
    return text


def _second_text(s: int) -> str:
    head = format_time(_EPOCH + s * _SECOND)[:-8]  # without ".ffffffZ"
    if len(_SECONDS) >= _CACHE_MAX:
        _SECONDS.clear()
    _SECONDS[s] = head
    return head


#: "000" .. "999": a microsecond fraction as two table look-ups. ``f"{frac:06d}"`` went
#: through int.__format__'s spec parser, ~1.6 k instructions per view (callgrind).
_DIGITS3 = tuple(f"{i:03d}" for i in range(1000))


def us_text(us: int) -> str:
    """``format_time`` of the epoch + ``us`` microseconds, without the datetime: the
    second's text once per second, the microseconds by hand (``isoformat`` of an aware
    datetime costs ~1.2-2 µs, this ~0.5)."""
    s, frac = divmod(us, 1_000_000)
    ms, frac = divmod(frac, 1000)
    return f"{_SECONDS.get(s) or _second_text(s)}.{_DIGITS3[ms]}{_DIGITS3[frac]}Z"


def time_text_us(t: datetime, us: int) -> str:
    """``time_text(t)`` for ``t`` = the epoch + ``us`` microseconds, remembered for ``t``."""
    text = us_text(us)
    if len(_TIMES) >= _CACHE_MAX:
        _TIMES.clear()
    _TIMES[t] = text
    return text


def _jv(v: Any) -> str:
    if type(v) is str:
        return encode_basestring(v)
    if v is None:
        return "null"
    return canonical_text(v)


def _mapping_text(m: Mapping[str, Any]) -> str:
    return canonical_text(dict(m)) if m else "{}"


def _strs_text(v: Any) -> str:
    return json_strs(v) if type(v) is tuple else canonical_text(list(v))


#: Partner list texts by the list's id(): the middleware (and the writer process's decoder)
#: share one tuple per list, so this is a dict hit per view where an lru_cache hashed the
#: tuple (a Python ``__hash__`` per share: ~0.8 µs per look-up, three per view). The tuple
#: is kept in the entry, so its id cannot be reused while the entry lives.
_LISTS: dict[int, tuple[tuple[PartnerShare, ...], str, str]] = {}


def list_texts(shares: tuple[PartnerShare, ...]) -> tuple[tuple[PartnerShare, ...], str, str]:
    """``(shares, shares_text(shares), partner_set_text(shares))``."""
    got = _LISTS.get(id(shares))
    if got is None or got[0] is not shares:
        got = (shares, canonical_text([s.to_dict() for s in shares]),
               " " + " ".join(s.partner for s in shares) + " ")
        if len(_LISTS) >= _CACHE_MAX:
            _LISTS.clear()
        _LISTS[id(shares)] = got
    return got


def shares_text(shares: tuple[PartnerShare, ...]) -> str:
    """Canonical JSON of a page view's partner list: the text the hash covers, and that of
    its ``partner_lists`` row."""
    return list_texts(shares)[1]


def partner_set_text(shares: tuple[PartnerShare, ...]) -> str:
    """The partner ids of a page view as `` a b c `` (space-delimited, sorted): the indexed
    ``partner_set`` column that ``show --partner`` and ``summary`` group by."""
    return list_texts(shares)[2]


_KIND_JSON = {"page_view": '"page_view"', "disclosure": '"disclosure"', "consent": '"consent"'}


def _view_text(rec: PageView) -> str:
    """``record_text`` of a page view. Each string through ``encode_basestring`` inline, not
    ``_jv``: a Python call fewer per field, seven per view (the fields may be None, and a
    caller may have put another type in one: those still go through ``_jv``)."""
    enc = encode_basestring
    cid, ip, path, pv, rid, ua = (rec.consent_id, rec.ip, rec.path, rec.policy_version,
                                  rec.request_id, rec.ua_family)
    f = rec.fields
    return (
        f'{{"consent_id":{enc(cid) if type(cid) is str else _jv(cid)},'
        f'"fields":{canonical_text(dict(f)) if f else "{}"},'
        f'"ip":{enc(ip) if type(ip) is str else _jv(ip)},'
        f'"partners":{list_texts(rec.partners)[1]},'
        f'"path":{enc(path) if type(path) is str else _jv(path)},'
        f'"policy_version":{enc(pv) if type(pv) is str else _jv(pv)},'
        f'"request_id":{enc(rid) if type(rid) is str else _jv(rid)},'
        f'"time":"{time_text(rec.time)}",'
        f'"ua_family":{enc(ua) if type(ua) is str else _jv(ua)}}}'
    )


def record_text(rec: Record) -> str:
    """Canonical JSON text of ``rec.to_dict()`` (keys sorted), built without the dict."""
    if type(rec) is PageView:
        return _view_text(rec)
    if type(rec) is DisclosureRecord:
        return (
            f'{{"consent_id":{_jv(rec.consent_id)},"cookies":{_strs_text(rec.cookies)},'
            f'"data_categories":{_strs_text(rec.data_categories)},'
            f'"fields":{_mapping_text(rec.fields)},"ip":{_jv(rec.ip)},'
            f'"legal_basis":{_jv(rec.legal_basis)},"partner":{_jv(rec.partner)},'
            f'"path":{_jv(rec.path)},"policy_version":{_jv(rec.policy_version)},'
            f'"purposes":{_strs_text(rec.purposes)},"request_id":{_jv(rec.request_id)},'
            f'"time":"{time_text(rec.time)}","ua_family":{_jv(rec.ua_family)}}}'
        )
    if type(rec) is ConsentEvent:
        return (
            f'{{"action":{_jv(rec.action)},"choices":{_mapping_text(rec.choices)},'
            f'"consent_id":{_jv(rec.consent_id)},"ip":{_jv(rec.ip)},'
            f'"policy_version":{_jv(rec.policy_version)},"source":{_jv(rec.source)},'
            f'"time":"{time_text(rec.time)}","ua_family":{_jv(rec.ua_family)}}}'
        )
    return canonical_text(rec.to_dict())  # a subclass: its to_dict is the definition


def _hash(kind_json: str, body: str, writer_json: str, seq: int, prev: str) -> str:
    # Keys in sorted order: kind, prev, record, seq, writer.
    text = (f'{{"kind":{kind_json},"prev":{_jv(prev)},"record":{body},'
            f'"seq":{int(seq)},"writer":{writer_json}}}')
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def hash_record(rec: Record, writer_id: str, seq: int, prev: str) -> str:
    """``record_hash(rec.kind, rec.to_dict(), writer_id, seq, prev)``, faster."""
    return _hash(_jv(rec.kind), record_text(rec), _jv(writer_id), seq, prev)


def new_writer_id() -> str:
    return secrets.token_hex(8)


class ChainedRecord(NamedTuple):
    """A record with its place in its writer's chain, ready to insert. (A named tuple: made
    for every record the writer commits, 0.5 µs against 1.1 µs for a frozen dataclass.)"""

    record: Record
    writer_id: str
    seq: int
    prev_hash: str
    hash: str


class ChainCursor:
    """The tip of one writer's chain. Only the writer thread touches it.

    ``link`` does not move the tip; ``advance`` does, after the rows are committed,
    so a failed transaction is simply retried with the same seqs.
    """

    def __init__(self, writer_id: str | None = None) -> None:
        self.writer_id = writer_id or new_writer_id()
        self.seq = 0
        self.tip = GENESIS

    def link(self, records: Iterable[Record]) -> list[ChainedRecord]:
        out: list[ChainedRecord] = []
        seq, prev = self.seq, self.tip
        writer_id = self.writer_id
        tail = f',"writer":{_jv(writer_id)}}}'
        prev_json = _jv(prev)
        sha256 = hashlib.sha256
        for rec in records:
            seq += 1
            # _hash(), unrolled: this runs for every record the writer commits.
            body = _view_text(rec) if type(rec) is PageView else record_text(rec)
            h = sha256(f'{{"kind":{_KIND_JSON.get(rec.kind) or _jv(rec.kind)},"prev":{prev_json},'
                       f'"record":{body},"seq":{seq}{tail}'.encode()).hexdigest()
            out.append(ChainedRecord(rec, writer_id, seq, prev, h))
            prev = h
            prev_json = f'"{h}"'  # a hex digest: nothing to escape
        return out

    def advance(self, rows: Sequence[ChainedRecord]) -> None:
        if rows:
            self.seq, self.tip = rows[-1].seq, rows[-1].hash


@dataclass(frozen=True)
class StoredRow:
    """A row as read back from a store: which table and row, and the chain fields."""

    table: str
    rowid: int
    record: Record
    writer_id: str
    seq: int
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        return hash_record(self.record, self.writer_id, self.seq, self.prev_hash)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.record.kind,
            "table": self.table,
            "rowid": self.rowid,
            **self.record.to_dict(),
            "writer_id": self.writer_id,
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class BrokenRow:
    """A stored row that cannot be read back as a record (bad time, bad JSON, a value the
    record type refuses). Review commands report it by table, id, writer and seq and go on."""

    table: str
    rowid: int
    writer_id: str
    seq: int
    prev_hash: str
    hash: str
    error: str

    def __str__(self) -> str:
        return (f"{self.table} row {self.rowid} (writer {self.writer_id} seq {self.seq}): "
                f"broken row: {self.error}")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "broken", "table": self.table, "rowid": self.rowid,
                "writer_id": self.writer_id, "seq": self.seq, "error": self.error}


@dataclass(frozen=True)
class Checkpoint:
    """Left by a purge: a writer's chain up to ``last_seq`` was deleted on purpose."""

    writer_id: str
    last_seq: int
    last_hash: str
    purged: int  # rows deleted by this purge for this writer
    time: datetime
    signature: str | None = None
    rowid: int = 0

    def payload(self) -> bytes:
        return canonical_json({
            "writer": self.writer_id, "last_seq": self.last_seq, "last_hash": self.last_hash,
            "purged": self.purged, "time": format_time(self.time),
        })

    def signed(self, key: bytes | None) -> Checkpoint:
        if not key:
            return self
        sig = hmac.new(key, self.payload(), hashlib.sha256).hexdigest()
        return Checkpoint(self.writer_id, self.last_seq, self.last_hash, self.purged, self.time,
                          sig, self.rowid)

    def signature_ok(self, key: bytes) -> bool:
        if self.signature is None:
            return False
        want = hmac.new(key, self.payload(), hashlib.sha256).hexdigest()
        return hmac.compare_digest(want, self.signature)


@dataclass(frozen=True)
class Problem:
    table: str
    rowid: int
    writer_id: str
    seq: int
    what: str

    def __str__(self) -> str:
        where = f"{self.table} row {self.rowid} (writer {self.writer_id} seq {self.seq})"
        return f"{where}: {self.what}"


@dataclass(frozen=True)
class ChainTip:
    """What verify saw of one writer's chain: its last seq, and its hashes at the seqs it
    was asked for (those of witnessed heads)."""

    last_seq: int
    hashes: Mapping[int, str]


@dataclass(frozen=True)
class VerifyReport:
    rows: int
    writers: int
    checkpoints: int
    problems: tuple[Problem, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())
    tips: Mapping[str, ChainTip] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rows": self.rows,
            "writers": self.writers,
            "checkpoints": self.checkpoints,
            "problems": [
                {"table": p.table, "rowid": p.rowid, "writer_id": p.writer_id, "seq": p.seq,
                 "what": p.what}
                for p in self.problems
            ],
            "warnings": list(self.warnings),
        }


def verify_rows(
    rows: Iterable[StoredRow | BrokenRow],
    checkpoints: Iterable[Checkpoint],
    key: bytes | None = None,
    max_problems: int = 100,
    want: Mapping[str, set[int]] | None = None,
) -> VerifyReport:
    """Check chains. ``rows`` must come ordered by (writer_id, seq, table, rowid).
    The report's ``tips`` hold each writer's last seq and its hashes at the seqs in
    ``want`` (for :func:`middleware.ledger.heads.check_heads`).

    Edited row: its hash no longer matches its content (or, if the hash was recomputed,
    the next row's prev_hash no longer matches it). Deleted row: a gap in seq, or the
    first row of a chain is not seq 1 and no purge checkpoint explains it. Inserted row:
    a duplicate seq, or a prev_hash that does not point at the previous row.
    A deleted *tail* of a chain cannot be seen from the rows alone.
    """
    problems: list[Problem] = []
    warnings: list[str] = []
    latest: dict[str, Checkpoint] = {}
    n_cp = 0
    for cp in checkpoints:
        n_cp += 1
        if key is not None and not cp.signature_ok(key):
            problems.append(Problem("checkpoints", cp.rowid, cp.writer_id, cp.last_seq,
                                    "checkpoint signature missing or wrong (forged purge?)"))
            continue
        if key is None and cp.signature is not None:
            warnings.append("checkpoint signatures not checked: no key given")
        prev = latest.get(cp.writer_id)
        if prev is None or cp.last_seq > prev.last_seq:
            latest[cp.writer_id] = cp

    n_rows = 0
    writers: set[str] = set()
    cur_writer: str | None = None
    last_seq, last_hash, last_name = 0, GENESIS, ""

    def add(row: StoredRow | BrokenRow, what: str) -> None:
        problems.append(Problem(row.table, row.rowid, row.writer_id, row.seq, what))

    last_seen: dict[str, int] = {}
    at: dict[str, dict[int, str]] = {}
    wanted = want or {}
    for row in rows:
        n_rows += 1
        if row.seq > last_seen.get(row.writer_id, 0):
            last_seen[row.writer_id] = row.seq
        if row.seq in wanted.get(row.writer_id, ()):
            at.setdefault(row.writer_id, {})[row.seq] = row.hash
        if row.writer_id != cur_writer:
            cur_writer = row.writer_id
            writers.add(cur_writer)
            start = latest.get(cur_writer)
            if start is not None:
                last_seq, last_hash = start.last_seq, start.last_hash
                last_name = f"purge checkpoint {start.rowid} (seq {start.last_seq})"
            else:
                last_seq, last_hash, last_name = 0, GENESIS, "start of chain"
        if len(problems) >= max_problems:
            continue
        if isinstance(row, BrokenRow):
            # Its content cannot be checked; its chain fields still link the rest.
            add(row, f"broken row: {row.error}")
            if row.seq < 0:
                continue
        elif row.computed_hash() != row.hash:
            add(row, "hash does not match the row's content (row edited)")
        if row.seq <= last_seq:
            if cp_seq_covers(latest.get(row.writer_id), row.seq):
                add(row, "row is older than its writer's purge checkpoint "
                         "(inserted, or purge incomplete)")
            else:
                add(row, f"duplicate seq {row.seq} (row inserted)")
            continue
        if row.seq > last_seq + 1:
            missing = (f"seq {last_seq + 1}" if row.seq == last_seq + 2
                       else f"seq {last_seq + 1}..{row.seq - 1}")
            add(row, f"{missing} missing before this row (rows deleted)")
        elif row.prev_hash != last_hash:
            add(row, f"prev_hash does not match {last_name} (row inserted, or the previous "
                     "row was edited and re-hashed)")
        last_seq, last_hash = row.seq, row.hash
        last_name = f"{row.table} row {row.rowid} (seq {row.seq})"

    tips = {w: ChainTip(s, at.get(w, {})) for w, s in last_seen.items()}
    return VerifyReport(n_rows, len(writers | set(latest)), n_cp, tuple(problems),
                        tuple(dict.fromkeys(warnings)), tips)


def cp_seq_covers(cp: Checkpoint | None, seq: int) -> bool:
    return cp is not None and seq <= cp.last_seq


def verify(store: LedgerStore, key: bytes | None = None, max_problems: int = 100,
           want: Mapping[str, set[int]] | None = None) -> VerifyReport:
    """Check every writer's chain in ``store`` (streaming); see ``verify_rows``.

    With ``key``, purge checkpoints must carry a valid HMAC signature, so that a
    deletion cannot pass for a purge.
    """
    return verify_rows(store.chain_rows(), store.checkpoints(), key, max_problems, want)
