"""Counts CSP violation reports per blocked host: a leak detector for partner tags the
rewriter could not see (added by ``document.write`` or by other scripts at run time).

Reports come from browsers, so they are untrusted: bounded in size and count, never
reflected, and only the blocked host is kept.

References: https://www.w3.org/TR/CSP3/#deprecated-serialize-violation (application/csp-report),
https://www.w3.org/TR/reporting-1/ (application/reports+json)
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections import Counter
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .hosts import HostMatcher

logger = logging.getLogger("consent_gate")

MAX_REPORT_BYTES = 16 * 1024
_MAX_HOSTS = 1000


class CspReports:
    def __init__(self, matcher: HostMatcher) -> None:
        self.matcher = matcher
        self.blocked: Counter[str] = Counter()

    def count(self, report: Any) -> None:
        """Count one report body (either format); ignore anything that is not one."""
        items = report if isinstance(report, list) else [report]
        for item in items[:50]:
            if not isinstance(item, dict):
                continue
            body = item.get("csp-report") or item.get("body") or {}
            if not isinstance(body, dict):
                continue
            uri = body.get("blocked-uri") or body.get("blockedURL") or ""
            host = self.matcher.host_of_url(uri) if isinstance(uri, str) else None
            if host is None:
                continue
            if host not in self.blocked and len(self.blocked) >= _MAX_HOSTS:
                continue
            if host not in self.blocked:
                partner = self.matcher.partner_for_host(host)
                logger.warning("consent-gate: the browser's CSP blocked %s (%s); a tag the rewriter "
                               "did not see tried to load it", host,
                               f"partner {partner}" if partner else "unknown third party")
            self.blocked[host] += 1

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await Response("Method not allowed.\n", 405, {"Allow": "POST"},
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
            self.count(json.loads(body))
        await Response(status_code=204)(scope, receive, send)
