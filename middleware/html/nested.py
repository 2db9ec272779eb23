"""Documents inside an attribute (``iframe srcdoc``, ``data:`` URLs of embeds): which
partners they would load, judged by a second rewriter of the same kind."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from .fetch import UNREADABLE
from .plan import RewritePlan

#: Documents nested deeper than this are not read but treated as unreadable (their tag is
#: neutralised whatever the consent): each level is a rewriter inside the one above, and a
#: page of 200 nested ``srcdoc`` frames would otherwise end in Python's recursion limit.
MAX_NESTING = 16


class Rewriter(Protocol):
    blocked: set[str]
    unknown_hosts: set[str]

    def feed(self, chunk: bytes) -> bytes: ...
    def finish(self) -> bytes: ...
    def take_enabled(self) -> frozenset[str]: ...


def document_partners(make: Callable[[RewritePlan], Rewriter], plan: RewritePlan,
                      doc: bytes) -> tuple[set[str], set[str], set[str]]:
    """(enabled, blocked, unknown hosts) of the document ``doc`` under ``plan``."""
    if plan.nesting >= MAX_NESTING:
        return set(), {UNREADABLE}, set()
    inner = make(replace(plan, head_end=b"", body_start=b"", body_end=b"",
                         injected_partners=frozenset(), nesting=plan.nesting + 1))
    inner.feed(doc)
    inner.finish()
    blocked = set(inner.blocked)
    enabled = set(inner.take_enabled())
    # Scripts and styles of the inner document may name partners in ways no tag shows.
    for pid in plan.matcher.partners_in_text(doc.decode("latin-1")):
        (enabled if pid in plan.allowed_partners else blocked).add(pid)
    return enabled, blocked, set(inner.unknown_hosts)
