"""SheetMemo: a one-message style sheet's reading remembered per (plan, charset, mode, bytes).

A site's own sheets are static files: every visitor with the same plan gets the same bytes, and
reading one (gate/css.py, pure Python) costs ~250 µs for Japan Talk's 11.6 KB ``site.css``:
about twice what serving it costs. The reading is a pure function of the plan, the charset,
the lenient flag and the body, so it is remembered under exactly those (the body itself is the
key: a hit is a dict lookup that hashes and compares the bytes, ~10 µs for 11.6 KB; no
sample can make two bodies share an entry). Only the bytes and what they name are reused:
log before disclose still runs on every request (the responder discloses ``enabled`` before
the bytes leave, and reads afresh with every partner refused if the ledger fails). A reading
made after such a failure, or of a dropped sheet, is never remembered.
"""

from __future__ import annotations

from typing import NamedTuple

from ..rewrite import RewritePlan

__all__ = ["SheetMemo", "SheetRead"]


class SheetRead(NamedTuple):
    """One remembered reading."""

    plan: RewritePlan  # held so that id(plan) in the key cannot be reused while the entry lives
    output: bytes
    #: Allowed partners the sheet names (disclosed before the bytes leave, on every request).
    enabled: frozenset[str]
    #: Whether any window named a partner or was unreadable (the response is then private).
    named: bool
    unknown_hosts: frozenset[str]


class SheetMemo:
    """Bounded by the bytes it holds (body + output per entry), oldest entry out first."""

    def __init__(self, *, max_bytes: int = 8 * 1024 * 1024, max_body: int = 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.max_body = max_body
        self._entries: dict[tuple[int, str | None, bool, bytes], SheetRead] = {}
        self._size = 0
        self.hits = 0
        self.misses = 0

    def get(self, plan: RewritePlan, charset: str | None, lenient: bool,
            body: bytes) -> SheetRead | None:
        if len(body) > self.max_body:
            return None
        entry = self._entries.get((id(plan), charset, lenient, body))
        if entry is None or entry.plan is not plan:
            self.misses += 1
            return None
        self.hits += 1
        return entry

    def put(self, charset: str | None, lenient: bool, body: bytes, read: SheetRead) -> None:
        size = len(body) + len(read.output)
        if len(body) > self.max_body or size > self.max_bytes:
            return
        key = (id(read.plan), charset, lenient, body)
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(body) + len(old.output)
        self._entries[key] = read
        self._size += size
        while self._size > self.max_bytes:
            first = next(iter(self._entries))
            dropped = self._entries.pop(first)
            self._size -= len(first[3]) + len(dropped.output)
