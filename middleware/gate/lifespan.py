"""The ASGI lifespan protocol, bridged so that the ledger opens at start-up (errors surface
then, not at the first page) and is flushed at shutdown, whatever the app does with lifespan.

An app that does not speak the protocol (Django raises, others just return) gets it answered
here, so the ledger still opens and ``purge_on_start`` still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import Message, Receive, Scope, Send

logger = logging.getLogger("consent_gate")

Hook = Callable[[], Awaitable[None]]


@dataclass
class _LifespanProgress:
    """How far the app's own lifespan handling got."""

    startup_received: bool = False
    ledger_open: bool = False
    shutdown_received: bool = False
    answered: bool = False


async def run_lifespan(app: Callable[[Any, Any, Any], Awaitable[None]], scope: Scope,
                       receive: Receive, send: Send, *, open_: Hook, close: Hook) -> None:
    """Run the app's lifespan with ``open_`` at startup and ``close`` at shutdown; answer the
    protocol ourselves when the app does not."""
    seen = _LifespanProgress()

    async def app_receive() -> Message:
        message = await receive()
        if message["type"] == "lifespan.startup":
            seen.startup_received = True
            await open_()
            seen.ledger_open = True
        elif message["type"] == "lifespan.shutdown":
            seen.shutdown_received = True
            await close()
        return message

    async def app_send(message: Message) -> None:
        if message["type"] in ("lifespan.startup.complete", "lifespan.startup.failed"):
            seen.answered = True
        await send(message)

    try:
        await app(scope, app_receive, app_send)
    except Exception as exc:
        if seen.answered:
            raise
        logger.info("consent-gate: the app does not support lifespan (%s: %s); consent-gate "
                    "answers it to open and close the ledger", type(exc).__name__, exc)
    else:
        if seen.answered:
            return
    await _answer_lifespan(receive, send, seen, open_, close)


async def _answer_lifespan(receive: Receive, send: Send, seen: _LifespanProgress,
                           open_: Hook, close: Hook) -> None:
    if not seen.startup_received:
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
    if not seen.ledger_open:
        try:
            await open_()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
    await send({"type": "lifespan.startup.complete"})
    if not seen.shutdown_received:
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        await close()
    await send({"type": "lifespan.shutdown.complete"})
