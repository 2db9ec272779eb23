"""Whole-body rewrite results remembered per plan.

Most pages of a site are byte-identical from one visitor to the next (an article, a cached
template), and a site has few distinct plans, so the same (plan, body) pair is rewritten
again and again. The result is a pure function of the two; remembering it turns a scan of
the page into a lookup and a comparison. A page is remembered from its second sighting on:
pages that differ on every request (a CSRF token, a timestamp) never fill it, wherever they
differ: inside the lookup key's sample (a new key each time) or outside it (a second body
under one key drops the slot). Log before
disclose still happens on every request: only the bytes are reused, never the ledger write.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from .accel import speedups
from .rewrite import RewritePlan

#: Bytes taken from the start, the middle and the end of a body for its lookup key.
_SAMPLE = 64
#: Bodies this short are their own key.
_SHORT = 3 * _SAMPLE
#: Keys of recent misses remembered (to keep a page from its second miss on).
_MAX_MISSED = 4096
#: A key's miss count once two different bodies were seen under it: never reaches 2.
_VARIES = -(1 << 62)


#: A lookup key: (id(plan), len(body), the samples), or in C (id(plan), len(body), the body
#: itself or a 64-bit hash of the three samples). Keys of the two kinds never meet: one process
#: uses one.
Key = tuple[object, ...]


def _key_py(plan: RewritePlan, body: bytes) -> Key:
    """A lookup key from a sample of the body, not a hash of all of it: hashing 30 KB
    costs more than the rest of a hit together, and a hit compares the whole body
    anyway. Pages that share the sample share a slot, never a result (see ``find``)."""
    n = len(body)
    if n <= _SHORT:
        return (id(plan), n, body, b"", b"")
    mid = n >> 1
    return (id(plan), n, body[:_SAMPLE], body[mid:mid + _SAMPLE], body[-_SAMPLE:])


#: ``_speedups.memo_key``: the same samples hashed in one C pass (three slices and their
#: SipHash cost ~2 k instructions per lookup); None for a body that is not bytes. A hash
#: collision shares a slot as equal samples do: ``find`` compares the whole body.
_key_c: Callable[[RewritePlan, bytes], Key | None] | None = (
    speedups.memo_key if speedups is not None else None)


def lookup_key(plan: RewritePlan, body: bytes) -> Key:
    """The key ``find`` and ``put`` file a body under (C, else Python)."""
    key = _key_c(plan, body) if _key_c is not None else None
    return _key_py(plan, body) if key is None else key


class Rewritten(NamedTuple):
    """One remembered rewrite (a tuple: made on every miss, so it is cheap to build)."""

    plan: RewritePlan  # held so that id(plan) in the key cannot be reused while the entry lives
    body: bytes
    output: bytes
    enabled: frozenset[str]
    unknown_hosts: frozenset[str]


class RewriteMemo:
    """A small LRU bounded by entry count and by the total bytes it holds."""

    def __init__(self, *, max_bytes: int = 32 * 1024 * 1024, max_body: int = 2 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self.max_body = max_body
        self._entries: OrderedDict[Key, Rewritten] = OrderedDict()
        self._size = 0
        self.hits = 0
        self.misses = 0
        #: Keys of recent misses: a page is kept from its second miss on (``keep``), so that
        #: pages unique per request (a token, a timestamp) cost a lookup, never an entry.
        self._missed: dict[Key, int] = {}

    _key = staticmethod(lookup_key)

    def get(self, plan: RewritePlan, body: bytes) -> Rewritten | None:
        return self.find(plan, body)[0]

    def find(self, plan: RewritePlan, body: bytes) -> tuple[Rewritten | None, bool]:
        """(the remembered rewrite, or None; on a miss, whether to keep this one: a body with
        the same key missed before, so the page repeats)."""
        if len(body) > self.max_body:
            return None, False
        key = _key_c(plan, body) if _key_c is not None else None  # (= lookup_key, inline)
        if key is None:
            key = _key_py(plan, body)
        entry = self._entries.get(key)
        if entry is not None:
            # A key match is not proof: compare the bytes (a memcmp, microseconds). The key
            # holds id(plan) and the entry holds the plan, so the plan is this one.
            if entry.body == body:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry, False
            # The same sample, other bytes: a page that differs per request outside the
            # sample (a token in a form, a timestamp in the text). Keeping each version would
            # store 2 x its size and compare it in vain on every request: the slot is dropped
            # and the key is no longer kept while it is among the recent misses.
            del self._entries[key]
            self._size -= len(entry.body) + len(entry.output)
            self.misses += 1
            self._missed[key] = _VARIES
            return None, False
        self.misses += 1
        missed = self._missed
        seen = missed.get(key, 0) + 1
        if seen == 1 and len(missed) >= _MAX_MISSED:
            # Full of keys seen once or twice: start afresh (an LRU's bookkeeping cost a
            # unique page ~1 µs per request; a page that repeats is seen twice again soon).
            missed.clear()
        missed[key] = seen
        return None, seen >= 2

    def keep(self, plan: RewritePlan, body: bytes) -> bool:
        """Is this miss worth an entry: has a body with the same key missed before?"""
        if len(body) > self.max_body:
            return False
        return self._missed.get(self._key(plan, body), 0) >= 2

    def put(self, entry: Rewritten) -> None:
        if len(entry.body) > self.max_body:
            return
        key = self._key(entry.plan, entry.body)
        old = self._entries.pop(key, None)
        if old is not None:
            self._size -= len(old.body) + len(old.output)
        self._entries[key] = entry
        self._size += len(entry.body) + len(entry.output)
        while self._size > self.max_bytes and self._entries:
            _, dropped = self._entries.popitem(last=False)
            self._size -= len(dropped.body) + len(dropped.output)
