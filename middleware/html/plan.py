"""The value one response's rewriter works from: what to inject, who is allowed, how to
replace a blocked embed. ``middleware/plan.py`` builds it per request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from ..hosts import HostMatcher


@dataclass(frozen=True)
class RewritePlan:
    head_end: bytes
    body_start: bytes
    body_end: bytes
    injected_partners: frozenset[str]
    allowed_partners: frozenset[str]
    granted_purposes: frozenset[str]
    matcher: HostMatcher
    placeholder: Callable[[str, Mapping[str, str]], bytes]
    #: How many documents deep this one is (0: the response; 1: an ``srcdoc`` inside it ...).
    nesting: int = 0
    #: ``placeholder`` in parts, for the native pass: partner -> (head, tail), such that
    #: ``placeholder(partner, attrs) == head + templates.placeholder_size(attrs) + tail`` for
    #: every partner listed (tests/test_plan_placeholders.py); None, or a partner not listed:
    #: Python calls ``placeholder``.
    placeholder_parts: Mapping[str, tuple[bytes, bytes]] | None = None

    @cached_property
    def native_args(self) -> tuple[Any, frozenset[str], frozenset[str],
                                   Mapping[str, tuple[bytes, bytes]] | None, frozenset[str], bool]:
        """What ``native.scan_end`` reads from the plan: (the matcher's host table, allowed,
        injected partners, placeholder parts, granted purposes, may an ``srcdoc`` be read).
        Made once per plan (plans are shared by the requests of one consent), not per response:
        a frozen dataclass keeps it in its ``__dict__``, outside the fields (equality, replace)."""
        from . import native  # (native imports the grammar; the plan stays a plain value)
        from .nested import MAX_NESTING
        return (native.host_table(self.matcher), self.allowed_partners, self.injected_partners,
                self.placeholder_parts, self.granted_purposes, self.nesting < MAX_NESTING)
