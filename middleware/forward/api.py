"""``await forward(request, "purchase", {...})``: the site code's way to send an event."""

from __future__ import annotations

import secrets
from typing import Any

from middleware.consent import Consent
from middleware.forward.fields import EventData, check_event
from middleware.forward.forwarder import SCOPE_KEY, Forwarder, ForwardResult


async def forward(request_or_scope: Any, event: str, data: EventData | None = None) -> ForwardResult:
    """Forward ``event`` to every partner whose ``[partners.ID.forward]`` and the visitor's
    consent allow it; return once what will be sent is recorded and queued (durably).

    ``request_or_scope``: a raw ASGI scope or any request object with a ``scope`` (Starlette,
    FastAPI, Litestar, Django). Raises ``LookupError`` outside ConsentMiddleware,
    ``BadEvent`` (a ValueError) for data outside :class:`EventData`, ``LedgerUnavailable``
    when the disclosure record cannot be written (then nothing is queued).
    """
    scope = request_or_scope if isinstance(request_or_scope, dict) else getattr(
        request_or_scope, "scope", None)
    if not isinstance(scope, dict):
        raise LookupError("forward() needs the request (or its ASGI scope)")
    state = scope.get("state") or {}
    consent = state.get("consent") if isinstance(state, dict) else None
    if not isinstance(consent, Consent):
        raise LookupError("no consent on this request: is the app wrapped by ConsentMiddleware?")
    forwarder = scope.get(SCOPE_KEY)
    payload = dict(data or {})
    if not isinstance(forwarder, Forwarder):
        # No partner has a [partners.ID.forward] table: nothing to send, but bad data is still bad.
        check_event(event, payload)
        return ForwardResult(event_id=str(payload.get("event_id") or secrets.token_hex(16)))
    return await forwarder.forward(scope, consent, event, payload)
