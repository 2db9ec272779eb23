"""Page views in the writer process as the columns they are stored in, not as records.

The worker built and checked every ``PageView`` before it sent it (``wire.Encoder``); the
writer process only needs each view's canonical JSON (for the hash) and its column values
(for the INSERT). Rebuilding a ``PageView`` per view (a datetime, a frozen dataclass's
fields, then reading them back in ``ChainCursor.link`` and ``SqlStore._params``) was most of
the writer's own Python per view (docs/ledger.md, "The writer process in instructions").
So ``wire.Decoder.read`` turns a wire tuple straight into a ``ViewRow`` (the texts the row
and the hash share: the time's text, the fields' JSON, the partner list's texts),
``link_views`` chains a round of them into a ``ViewBatch`` (the hashes, byte for byte those
of ``ChainCursor.link`` over the same views: ``tests/test_ledger_viewrows.py``), and
``SqliteStore.append_views`` binds them. Any other store, or a round that also holds a
consent event, takes the records' path (``page_view``, ``ViewBatch.chained``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from json.encoder import encode_basestring
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias

from middleware.ledger.chain import ChainCursor, ChainedRecord, _jv
from middleware.ledger.records import PageView, PartnerShare

#: ``chain.list_texts(shares)``: the shares, their canonical JSON, the `` a b `` partner set.
ListTexts: TypeAlias = tuple[tuple[PartnerShare, ...], str, str]
#: One page view: time text, request id, consent id, path, its list's texts, policy version,
#: ip, UA family, the fields' canonical JSON; then the wire's microseconds and fields dict
#: (only to rebuild the ``PageView`` where a round takes the records' path).
ViewRow: TypeAlias = tuple[str, str, str | None, str, ListTexts, str, str | None, str, str,
                           int, dict[str, Any] | None]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_EMPTY: Any = MappingProxyType({})


class ViewBatch(NamedTuple):
    """A round's page views linked onto one writer's chain: the ``i``-th view has seq
    ``seq + 1 + i`` and hash ``hashes[i]``; the first one's previous hash is ``prev``."""

    writer_id: str
    seq: int
    prev: str
    views: list[ViewRow]
    hashes: list[str]

    @property
    def last_seq(self) -> int:
        return self.seq + len(self.views)

    def chained(self) -> list[ChainedRecord]:
        """The same rows as records, for a store without ``append_views``."""
        out: list[ChainedRecord] = []
        seq, prev = self.seq, self.prev
        for row, h in zip(self.views, self.hashes, strict=True):
            seq += 1
            out.append(ChainedRecord(page_view(row), self.writer_id, seq, prev, h))
            prev = h
        return out


def page_view(row: ViewRow) -> PageView:
    """The ``PageView`` the worker built (its fields filled directly: the worker checked
    them, and ``tests/test_ledger_viewrows.py`` compares the result field by field)."""
    view = object.__new__(PageView)
    view.__dict__.update(
        time=_EPOCH + row[9] * _US, request_id=row[1], consent_id=row[2], path=row[3],
        partners=row[4][0], policy_version=row[5], ip=row[6], ua_family=row[7],
        fields=MappingProxyType(row[10]) if row[10] else _EMPTY)
    return view


def link_views(cursor: ChainCursor, views: list[ViewRow]) -> ViewBatch:
    """``cursor.link`` of the views' records, from their texts: the page view's canonical
    JSON (``chain._view_text``: keys sorted, each string through the encoder json.dumps
    uses) inside the row's (``chain.record_hash``). ``Decoder.read`` checked the types: the
    strings are ``str``, the consent id and ip ``str`` or None. Does not move the cursor."""
    enc = encode_basestring
    seq = cursor.seq
    tail = f',"writer":{_jv(cursor.writer_id)}}}'
    prev_json = _jv(cursor.tip)
    sha256 = hashlib.sha256
    hashes: list[str] = []
    add = hashes.append
    for t, rid, cid, path, lists, pv, ip, ua, fields, _, _ in views:
        seq += 1
        h = sha256(
            f'{{"kind":"page_view","prev":{prev_json},"record":{{'
            f'"consent_id":{"null" if cid is None else enc(cid)},"fields":{fields},'
            f'"ip":{"null" if ip is None else enc(ip)},"partners":{lists[1]},'
            f'"path":{enc(path)},"policy_version":{enc(pv)},"request_id":{enc(rid)},'
            f'"time":"{t}","ua_family":{enc(ua)}}},"seq":{seq}{tail}'.encode()).hexdigest()
        add(h)
        prev_json = f'"{h}"'  # a hex digest: nothing to escape
    return ViewBatch(cursor.writer_id, cursor.seq, cursor.tip, views, hashes)
