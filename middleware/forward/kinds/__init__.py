"""One module per partner kind: the request body its published schema wants.

A kind turns an :class:`Outbound` event (fields already allowed, minimised and hashed) into
the JSON body kept in the outbox (no credentials), and at send time into the URL and headers
with the credential added. ``accepted`` reads the partner's answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from middleware.forward.spec import ForwardSpec

DAY = 86400.0


@dataclass(frozen=True)
class Outbound:
    """One event as it will leave: what the activity control allowed, nothing more."""

    partner: str
    event: str
    event_id: str
    event_time: float  # unix seconds
    values: Mapping[str, Any]
    limited_data_use: bool = False
    gpc: bool = False

    def cookie(self, name: str) -> str | None:
        v = self.values.get(f"cookie.{name}")
        return v if isinstance(v, str) else None


@dataclass(frozen=True)
class Prepared:
    url: str
    headers: Mapping[str, str]


class Kind(Protocol):
    #: Events older than this are dropped (and recorded), not sent.
    max_age_s: float
    #: Events one request may carry (1: one request per event).
    max_batch: int

    def merge(self, bodies: list[dict[str, Any]]) -> dict[str, Any]:
        """One body for several events (only called when ``max_batch`` > 1)."""
        ...

    def body(self, spec: ForwardSpec, ev: Outbound) -> dict[str, Any]: ...

    def prepare(self, spec: ForwardSpec, secret: str, gpc: bool) -> Prepared: ...

    def accepted(self, status: int, body: bytes) -> tuple[bool, str]:
        """(accepted, detail) for a 2xx answer; some partners say no inside a 200."""
        ...


def merge_data(bodies: list[dict[str, Any]]) -> dict[str, Any]:
    """Meta and TikTok: the first body with every body's ``data`` events."""
    return {**bodies[0], "data": [ev for b in bodies for ev in b["data"]]}


def kind_for(name: str) -> Kind:
    from middleware.forward.kinds import ga4, meta, tiktok, webhook

    kinds: Mapping[str, Kind] = {
        "ga4-measurement-protocol": ga4.KIND, "meta-conversions-api": meta.KIND,
        "tiktok-events-api": tiktok.KIND, "webhook": webhook.KIND,
    }
    return kinds[name]
