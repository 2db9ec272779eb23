"""Retry timing and the per-partner circuit breaker, with an injected clock.

Backoff is "full jitter" between half and the whole of ``base * 2**attempt`` (capped), so
many events failing together do not come back together. A 429's ``Retry-After`` is a floor.
The breaker opens after ``threshold`` failures in a row, stays open for ``cooldown_s``
(doubling on each failed probe up to ``max_cooldown_s``), then lets one probe through
(half-open); a success closes it.

References: AWS Architecture Blog, "Exponential Backoff And Jitter" (2015).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

State = Literal["closed", "open", "half-open"]


def backoff(attempt: int, *, base_s: float = 2.0, cap_s: float = 900.0,
            rand: Callable[[], float] = random.random, floor_s: float = 0.0) -> float:
    """Seconds to wait before attempt ``attempt + 1`` (``attempt`` >= 0 failures so far)."""
    ceiling = min(cap_s, base_s * (1 << min(attempt, 30)))
    return max(floor_s, ceiling * (0.5 + 0.5 * float(rand())))


def retry_after(value: str | None, cap_s: float = 3600.0) -> float:
    """A ``Retry-After`` in seconds (the HTTP-date form counts as absent), bounded."""
    text = value.strip() if value else ""
    # ASCII digits only: the partner's text; str.isdigit() also takes "²", which float() refuses.
    if text.isascii() and text.isdigit():
        return min(float(text), cap_s)
    return 0.0


@dataclass
class Breaker:
    threshold: int = 5
    cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    current_cooldown: float = field(default=0.0)
    probing: bool = False

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return "closed"
        if self.clock() - self.opened_at >= self.current_cooldown:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a request go now? In half-open state only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self.probing:
            self.probing = True
            return True
        return False

    def success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self.current_cooldown = 0.0
        self.probing = False

    def failure(self) -> None:
        self.failures += 1
        if self.probing or (self.opened_at is None and self.failures >= self.threshold):
            self.current_cooldown = (self.cooldown_s if self.opened_at is None
                                     else min(self.max_cooldown_s, self.current_cooldown * 2))
            self.opened_at = self.clock()
        self.probing = False
