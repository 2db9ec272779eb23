"""The value one response's rewriter works from: what to inject, who is allowed, how to
replace a blocked embed. ``middleware/plan.py`` builds it per request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

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
