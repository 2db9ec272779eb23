"""The named states of one response and the transitions allowed between them."""

from __future__ import annotations

import enum


class Phase(enum.Enum):
    """The named states of one response (transitions: ``NEXT``)."""

    HELD = "held"  # the start message is kept until the first body decides what to do
    SNIFFING = "sniffing"  # no usable Content-Type: the first bytes are kept to sniff them
    PASSING = "passing"  # not a document we gate: every message goes out as the app sent it
    REWRITING = "rewriting"  # HTML rewritten as it streams; the start leaves with the first bytes
    UNREWRITTEN = "unrewritten"  # unreadable before the headers left: the rest as sent, behind
    #                              an enforced no-partner CSP
    FAILED_AFTER_HEADERS = "failed-after-headers"  # the response was ended; the rest is dropped
    DONE = "done"  # the last body went out; anything the app sends later is dropped

    # Members are singletons compared by identity: hash them so too (Enum's own __hash__ is
    # Python code, run at every transition).
    __hash__ = object.__hash__


NEXT: dict[Phase, frozenset[Phase]] = {
    Phase.HELD: frozenset({Phase.SNIFFING, Phase.PASSING, Phase.REWRITING, Phase.UNREWRITTEN}),
    Phase.SNIFFING: frozenset({Phase.PASSING, Phase.REWRITING, Phase.UNREWRITTEN}),
    Phase.REWRITING: frozenset({Phase.UNREWRITTEN, Phase.FAILED_AFTER_HEADERS, Phase.DONE}),
    Phase.UNREWRITTEN: frozenset({Phase.FAILED_AFTER_HEADERS, Phase.DONE}),
    Phase.PASSING: frozenset(),
    Phase.FAILED_AFTER_HEADERS: frozenset(),
    Phase.DONE: frozenset(),
}

# Enum members read through the Enum metaclass cost ~0.2 µs each; the responder compares
# phases a dozen times per response, so it reads these module names instead.
HELD = Phase.HELD
SNIFFING = Phase.SNIFFING
PASSING = Phase.PASSING
REWRITING = Phase.REWRITING
UNREWRITTEN = Phase.UNREWRITTEN
FAILED_AFTER_HEADERS = Phase.FAILED_AFTER_HEADERS
DONE = Phase.DONE
