"""``POST /.consent/collect``: the browser's way to send an event, first-party.

The route (``routes.py``) refuses cross-site requests and bodies over 4 KiB; here the body
is checked against the event schema (``{"event": "purchase", ...EventData}``), each client
address has a token bucket, and the page URL must be one of this site's. A visitor without
consent gets the same 202 as one with: the page learns nothing, and nothing is sent.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.types import Scope

from middleware.consent import Consent
from middleware.errors import LedgerUnavailable
from middleware.forward.fields import BadEvent
from middleware.forward.forwarder import Forwarder
from middleware.headers import header_value

MAX_BODY = 4096
_MAX_CLIENTS = 10_000


class TokenBuckets:
    """``rate`` events per second per key, bursts up to ``burst``; bounded (LRU) key table."""

    def __init__(self, rate: float = 2.0, burst: float = 20.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def take(self, key: str) -> bool:
        now = self.clock()
        tokens, at = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if ok else tokens, now)
        if len(self._buckets) > _MAX_CLIENTS:
            self._buckets.popitem(last=False)
        return ok


class Collector:
    def __init__(self, forwarder: Forwarder, buckets: TokenBuckets | None = None) -> None:
        self.forwarder = forwarder
        self.buckets = buckets or TokenBuckets()

    async def __call__(self, scope: Scope, consent: Consent, body: bytes) -> tuple[int, Mapping[str, Any]]:
        client = scope.get("client")
        if not self.buckets.take(str(client[0]) if client else "-"):
            return 429, {"error": "too many events; slow down"}
        try:
            data = json.loads(body)
        except (ValueError, RecursionError):
            return 400, {"error": "expected a JSON object"}
        if not isinstance(data, dict) or not isinstance(data.get("event"), str):
            return 400, {"error": "expected a JSON object with a string 'event'"}
        event = data.pop("event")
        host = (header_value(scope.get("headers", ()), b"host") or b"").decode("latin-1").lower()
        page = data.get("page_url")
        if page is not None:
            try:
                page_host = urlsplit(str(page)).netloc.lower()
            except ValueError:
                page_host = ""
            if page_host != host:
                return 400, {"error": "page_url must be a page of this site"}
        try:
            result = await self.forwarder.forward(scope, consent, event, data)
        except BadEvent as exc:
            return 400, {"error": str(exc)}
        except LedgerUnavailable:
            return 503, {"error": "events cannot be recorded right now"}
        return 202, {"event_id": result.event_id}
