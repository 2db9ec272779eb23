"""The frames between a worker and the ledger writer process: short, marshal'd, C-speed.

A frame is a 4-byte length and a marshal'd tuple (no code objects):

* ``("S", share_list_id, [share dicts])``  a page view's partner list, sent once per connection
* ``("W", write_id, [record tuples])``     records to commit (one event-loop iteration's worth)
* ``("A", [write_ids], error or None)``    writer -> worker, after the commit is durable

A page view travels as ``("V", time_us, request_id, consent_id, path, share_list_id,
policy_version, ip, ua_family, fields)``; any other record as ``("R", kind, to_dict())``.
"""

from __future__ import annotations

import datetime as dt
import marshal
import struct
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from middleware.ledger.chain import canonical_text, list_texts, us_text
from middleware.ledger.records import PageView, PartnerShare, Record, record_from_dict
from middleware.ledger.viewrows import ListTexts, ViewRow, page_view

_LEN = struct.Struct("!I")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)
_EMPTY: Mapping[str, Any] = MappingProxyType({})
#: A longer frame is not ours (or a broken stream): the connection is dropped.
MAX_FRAME = 64 << 20


class FrameError(ValueError):
    """The byte stream does not hold frames: the connection cannot be trusted any more."""


def frame(obj: Any) -> bytes:
    body = marshal.dumps(obj)
    return _LEN.pack(len(body)) + body


def frames(buf: bytearray) -> list[Any]:
    """Complete frames at the start of ``buf`` (consumed); a partial one stays."""
    out = []
    pos = 0
    view = memoryview(buf)
    try:
        while len(buf) - pos >= 4:
            (n,) = _LEN.unpack_from(buf, pos)
            if n > MAX_FRAME:
                raise FrameError(f"frame of {n} bytes")
            if len(buf) - pos - 4 < n:
                break
            try:
                out.append(marshal.loads(view[pos + 4:pos + 4 + n]))
            except (EOFError, ValueError, TypeError) as exc:
                raise FrameError(f"unreadable frame: {exc}") from None
            pos += 4 + n
    finally:
        view.release()
    del buf[:pos]
    return out


class Encoder:
    """Worker side: records to wire tuples, each distinct partner list registered once."""

    def __init__(self) -> None:
        self._lists: dict[int, tuple[tuple[PartnerShare, ...], int]] = {}

    def encode(self, records: Sequence[Record], out: list[bytes]) -> list[Any]:
        """Wire tuples of ``records``; frames that must go first are appended to ``out``."""
        items: list[Any] = []
        for rec in records:
            if type(rec) is PageView:
                shares = rec.partners
                known = self._lists.get(id(shares))
                if known is None or known[0] is not shares:
                    known = (shares, len(self._lists) + 1)
                    self._lists[id(shares)] = known
                    out.append(frame(("S", known[1], [s.to_dict() for s in shares])))
                items.append(("V", (rec.time - _EPOCH) // _US, rec.request_id, rec.consent_id,
                              rec.path, known[1], rec.policy_version, rec.ip, rec.ua_family,
                              dict(rec.fields) if rec.fields else None))
            else:
                items.append(("R", rec.kind, rec.to_dict()))
        return items


class Decoder:
    """Writer side, one per connection: wire tuples back to what the worker sent."""

    def __init__(self) -> None:
        self.lists: dict[int, tuple[PartnerShare, ...]] = {}
        #: ``list_texts`` of each list, by the worker's list id (what ``read`` puts in a row).
        self.texts: dict[int, ListTexts] = {}

    def share_list(self, list_id: int, dicts: Sequence[Mapping[str, Any]]) -> None:
        shares = tuple(PartnerShare.from_dict(d) for d in dicts)
        # Checked once here as PageView checks it (sorted, each partner once), not per view.
        probe = PageView(time=_EPOCH, request_id="", consent_id=None, path="/", partners=shares)
        self.lists[list_id] = probe.partners
        self.texts[list_id] = list_texts(probe.partners)

    def read(self, item: Sequence[Any]) -> ViewRow | Record:
        """A page view as the ``ViewRow`` the writer process chains and stores (no
        ``PageView``: ``viewrows``); any other record as its record."""
        if item[0] == "V":
            _, us, rid, cid, path, list_id, pv, ip, ua, fields = item
            if not (type(us) is int and type(rid) is str and type(path) is str
                    and type(pv) is str and type(ua) is str
                    and (cid is None or type(cid) is str) and (ip is None or type(ip) is str)
                    and (fields is None or type(fields) is dict)):
                raise ValueError("a page view of the wrong shape")
            # The worker built and checked this PageView: its texts are all the writer needs.
            # (A field value JSON cannot hold fails this write here, not the commit.)
            return (us_text(us), rid, cid, path, self.texts[list_id], pv, ip, ua,
                    canonical_text(fields) if fields else "{}", us, fields)
        return record_from_dict(item[1], item[2])

    def decode(self, item: Sequence[Any]) -> Record:
        """The record the worker built (``read``, then the ``PageView`` of a page view)."""
        got = self.read(item)
        return page_view(got) if isinstance(got, tuple) else got
