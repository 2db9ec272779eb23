"""Counts CSP violation reports per blocked host: a leak detector for partner tags the
rewriter could not see (added by ``document.write`` or by other scripts at run time).

The endpoint is unauthenticated, so reports are untrusted and may be forged in bulk.
Everything is bounded so that a flood can neither fill memory nor hide real violations:

- each client (IPv4 address, IPv6 /64) has a token bucket; reports beyond it get 429;
- a partner's hosts have their own table (a few per partner, never evicted), so forged
  unknown hosts can never push a real partner's violations out;
- unknown hosts live in a least-recently-seen table: a flood evicts the oldest, a host
  seen again stays;
- warnings about new unknown hosts have a budget per minute; what is held back is summed
  up in one line when the budget returns.

References: https://www.w3.org/TR/CSP3/#deprecated-serialize-violation (application/csp-report),
https://www.w3.org/TR/reporting-1/ (application/reports+json)
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .headers import client_key
from .hosts import HostMatcher

#: A host name as host_of_url gives it (lower case, IDNA applied) or an IPv6 literal.
_HOST_NAME = re.compile(r"[a-z0-9_](?:[a-z0-9_.-]{0,252})|\[[0-9a-f:.]{2,45}\]")

logger = logging.getLogger("consent_gate")

MAX_REPORT_BYTES = 16 * 1024
#: Reports a client may send at once, and how many per second it earns back.
CLIENT_BURST = 20.0
CLIENT_RATE = 1 / 3
MAX_CLIENTS = 4096
MAX_UNKNOWN_HOSTS = 1000
#: Distinct hosts kept per partner (``*.`` patterns match many); more go to one line.
MAX_HOSTS_PER_PARTNER = 64
#: Warnings about new unknown hosts per minute.
LOG_BURST = 30.0
LOG_RATE = 30 / 60


class _Bucket:
    __slots__ = ("at", "tokens")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at

    def refill(self, now: float, burst: float, rate: float) -> None:
        self.tokens = min(burst, self.tokens + (now - self.at) * rate)
        self.at = now

    def take(self, now: float, burst: float, rate: float) -> bool:
        self.refill(now, burst, rate)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _page_path(url: object) -> str:
    """The path of the page a report came from (no query: it may hold personal data)."""
    if not isinstance(url, str):
        return ""
    path = urlsplit(url).path if "://" in url else ""
    return path[:200] if path.startswith("/") else ""


class CspReports:
    """The violation counters of one middleware; safe against forged floods (see module doc)."""

    def __init__(self, matcher: HostMatcher, *, trust_proxy: bool = False,
                 clock: Callable[[], float] = time.monotonic,
                 on_unknown: Callable[[str, str], None] | None = None) -> None:
        self.matcher = matcher
        #: Told (host, page path) of each report of a host no partner declares (discovery).
        self.on_unknown = on_unknown
        self.trust_proxy = trust_proxy
        self.clock = clock
        self.partner_hosts: dict[str, Counter[str]] = {}
        self.unknown_hosts: OrderedDict[str, int] = OrderedDict()
        self.refused = 0  # reports refused by the per-client limit
        self._clients: OrderedDict[str, _Bucket] = OrderedDict()
        self._log_budget = _Bucket(LOG_BURST, clock())
        self._held_back = 0

    @property
    def blocked(self) -> dict[str, int]:
        """Count per blocked host (partners' and unknown ones)."""
        out: dict[str, int] = {}
        for counts in self.partner_hosts.values():
            out.update(counts)
        out.update(self.unknown_hosts)
        return out

    # ------------------------------------------------------------------ counting

    def _bucket(self, client: str) -> _Bucket:
        bucket = self._clients.get(client)
        if bucket is None:
            bucket = self._clients[client] = _Bucket(CLIENT_BURST, self.clock())
            if len(self._clients) > MAX_CLIENTS:
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(client)
        return bucket

    def may_report(self, client: str) -> bool:
        """Has ``client`` a violation left to report? (Takes nothing.)"""
        bucket = self._bucket(client)
        bucket.refill(self.clock(), CLIENT_BURST, CLIENT_RATE)
        if bucket.tokens >= 1:
            return True
        self.refused += 1
        return False

    def allow_client(self, client: str) -> bool:
        """Take one violation from ``client``'s bucket; False when it is empty."""
        if self._bucket(client).take(self.clock(), CLIENT_BURST, CLIENT_RATE):
            return True
        self.refused += 1
        return False

    def count(self, report: Any, client: str | None = None) -> None:
        """Count one report body (either format); ignore anything that is not one. Each
        violation in it is charged to ``client``: a batch of 50 costs 50."""
        items = report if isinstance(report, list) else [report]
        for item in items[:50]:
            if not isinstance(item, dict):
                continue
            body = item.get("csp-report") or item.get("body") or {}
            if not isinstance(body, dict):
                continue
            uri = body.get("blocked-uri") or body.get("blockedURL") or ""
            host = self.matcher.host_of_url(uri) if isinstance(uri, str) else None
            if host is None or _HOST_NAME.fullmatch(host) is None:
                continue  # not a host a browser contacts: forged (it would reach the log)
            if client is not None and not self.allow_client(client):
                return
            self._count_host(host)
            if self.on_unknown is not None and self.matcher.partner_for_host(host) is None:
                page = body.get("document-uri") or body.get("documentURL") or item.get("url")
                self.on_unknown(host, _page_path(page))

    def _count_host(self, host: str) -> None:
        partner = self.matcher.partner_for_host(host)
        if partner is not None:
            counts = self.partner_hosts.setdefault(partner, Counter())
            if host not in counts and len(counts) >= MAX_HOSTS_PER_PARTNER:
                host = f"(other hosts of partner {partner})"
            if host not in counts:
                # Bounded by the partner table: always said.
                logger.warning("consent-gate: the browser's CSP blocked %s (partner %s); a tag the "
                               "rewriter did not see tried to load it", host, partner)
            counts[host] += 1
            return
        if host in self.unknown_hosts:
            self.unknown_hosts[host] += 1
            self.unknown_hosts.move_to_end(host)
            return
        self.unknown_hosts[host] = 1
        if len(self.unknown_hosts) > MAX_UNKNOWN_HOSTS:
            self.unknown_hosts.popitem(last=False)
        if self._log_budget.take(self.clock(), LOG_BURST, LOG_RATE):
            if self._held_back:
                logger.warning("consent-gate: %d more CSP reports of new unknown hosts were not "
                               "logged (too many at once; forged reports?)", self._held_back)
                self._held_back = 0
            logger.warning("consent-gate: the browser's CSP blocked %s (unknown third party); a tag "
                           "the rewriter did not see tried to load it", host)
        else:
            self._held_back += 1

    # ------------------------------------------------------------------ the endpoint

    def client_of(self, scope: Scope) -> str:
        """The client a report is charged to: its IPv4 address or IPv6 /64."""
        return client_key(scope, self.trust_proxy)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await Response("Method not allowed.\n", 405, {"Allow": "POST"},
                           media_type="text/plain")(scope, receive, send)
            return
        client = self.client_of(scope)
        if not self.may_report(client):
            await Response("Too many reports.\n", 429, {"Retry-After": "60"},
                           media_type="text/plain")(scope, receive, send)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_REPORT_BYTES:
                await Response("Report too large.\n", 413, media_type="text/plain")(scope, receive, send)
                return
        with contextlib.suppress(ValueError, RecursionError):
            self.count(json.loads(body), client)
        await Response(status_code=204)(scope, receive, send)
