"""The background sender: drains the outbox into the partners, one pool each.

Each claimed event goes out once per attempt with the body and event id it was queued with.
429, 5xx and network errors are retried with jittered backoff (``Retry-After`` honoured);
other answers are final. An event older than its partner accepts (Meta: 7 days) is dropped.
A partner that keeps failing opens its circuit breaker and is left out of claims until a
probe succeeds, so a partner down for an hour costs a few requests, not a queue in memory:
events wait on disk. Every outcome goes to the ledger (``on_outcome``) before the row leaves
the outbox; a crash in between sends it again, with the same event id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import httpx2

from middleware.forward.breaker import Breaker, backoff, retry_after
from middleware.forward.kinds import kind_for
from middleware.forward.outbox import Item, Outbox
from middleware.forward.spec import ForwardSpec
from middleware.forward.transport import AddressRefused, Resolver, make_client, read_bounded

logger = logging.getLogger("consent_gate.forward")

Status = Literal["accepted", "rejected", "expired", "gave-up"]


@dataclass(frozen=True)
class Delivery:
    """How one event ended, for the ledger."""

    status: Status
    attempts: int
    http_status: int | None
    detail: str


OnOutcome = Callable[[Item, Delivery], Awaitable[None]]


def redact(text: str, secrets: Mapping[str, str]) -> str:
    for value in secrets.values():
        if value:
            text = text.replace(value, "***")
    return text[:300]


class Sender:
    def __init__(self, outbox: Outbox, specs: Mapping[str, ForwardSpec], secrets: Mapping[str, str],
                 on_outcome: OnOutcome, *, clock: Callable[[], float] = time.time,
                 resolver: Resolver | None = None, batch: int = 64, lease_s: float = 60.0,
                 idle_s: float = 1.0, per_partner: int = 8,
                 breaker_factory: Callable[[], Breaker] | None = None) -> None:
        self.outbox = outbox
        self.specs = specs
        self.secrets = secrets
        self.on_outcome = on_outcome
        self.clock = clock
        self.resolver = resolver
        self.batch = batch
        self.lease_s = lease_s
        self.idle_s = idle_s
        make = breaker_factory or (lambda: Breaker(clock=clock))
        self.breakers = {pid: make() for pid in specs}
        self._limits = {pid: asyncio.Semaphore(per_partner) for pid in specs}
        self._clients: dict[str, httpx2.AsyncClient] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0
        #: Requests made (every attempt), for status and tests.
        self.attempts = 0

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run(), name="forward-sender")

    def wake(self) -> None:
        self._wake.set()

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()

    async def run(self) -> None:
        while True:
            try:
                n = await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the outbox is briefly unavailable: try again later
                logger.warning("consent-gate forward: sender error: %s", redact(str(exc), self.secrets))
                n = 0
            if n == 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.idle_s)

    # -- one round -------------------------------------------------------------------
    async def run_once(self) -> int:
        """Claim what is due and try each once; the number of events tried."""
        closed = [pid for pid, b in self.breakers.items() if b.state == "open"]
        unknown_ok = list(closed)
        items = await self.outbox.claim(self.batch, self.lease_s, exclude=unknown_ok)
        if not items:
            return 0
        await asyncio.gather(*(self._one(item) for item in items))
        return len(items)

    def _client(self, spec: ForwardSpec) -> httpx2.AsyncClient:
        client = self._clients.get(spec.partner)
        if client is None:
            client = make_client(timeout_s=spec.timeout_s, allow_loopback=spec.test_loopback,
                                 resolver=self.resolver)
            self._clients[spec.partner] = client
        return client

    async def _one(self, item: Item) -> None:
        spec = self.specs.get(item.partner)
        if spec is None:  # the partner's forward was removed from the config
            await self._end(item, Delivery("gave-up", item.attempts, None,
                                           "partner no longer configured for forwarding"), "failed")
            return
        kind = kind_for(spec.kind)
        age = self.clock() - item.event_time
        if age > kind.max_age_s:
            await self._end(item, Delivery(
                "expired", item.attempts, None,
                f"older than the {kind.max_age_s / 86400:g} days the partner accepts"), "dropped")
            return
        breaker = self.breakers[item.partner]
        if not breaker.allow():
            await self.outbox.release([item])
            return
        attempt = item.attempts + 1
        async with self._limits[item.partner]:
            status, detail, retryable, floor = await self._post(spec, item)
        if status is not None and 200 <= status < 300:
            ok, detail = kind.accepted(status, detail.encode())
            breaker.success()
            self.sent += 1
            await self._end(item, Delivery("accepted" if ok else "rejected", attempt, status, detail),
                            "delivered" if ok else "failed")
            return
        if not retryable:
            breaker.success() if status is not None else None
            await self._end(item, Delivery("rejected", attempt, status, detail), "failed")
            return
        breaker.failure()
        if attempt >= spec.max_attempts:
            await self._end(item, Delivery("gave-up", attempt, status,
                                           f"{detail} (after {attempt} attempts)"), "failed")
            return
        delay = backoff(item.attempts, floor_s=floor)
        await self.outbox.retry(item, self.clock() + delay, detail)

    async def _post(self, spec: ForwardSpec, item: Item) -> tuple[int | None, str, bool, float]:
        """(HTTP status or None, detail, retryable, minimum delay)."""
        secret = self.secrets.get(spec.partner, "")
        kind = kind_for(spec.kind)
        prepared = kind.prepare(spec, secret, item.gpc)
        headers = dict(prepared.headers)
        self.attempts += 1
        if item.gpc and spec.pass_gpc:
            headers["sec-gpc"] = "1"
        try:
            async with self._client(spec).stream("POST", prepared.url, content=item.body.encode(),
                                                 headers=headers) as response:
                body = await read_bounded(response)
                status = response.status_code
                wait = retry_after(response.headers.get("retry-after"))
        except AddressRefused as exc:
            return None, redact(str(exc), self.secrets), False, 0.0
        except httpx2.TransportError as exc:
            return None, redact(f"{type(exc).__name__}: {exc}", self.secrets), True, 0.0
        text = body.decode("utf-8", "replace")
        if 200 <= status < 300:
            return status, text, False, 0.0
        detail = redact(f"HTTP {status}: {' '.join(text.split())[:200]}", self.secrets)
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirects are not followed", False, 0.0
        return status, detail, status == 429 or status >= 500, wait

    async def _end(self, item: Item, delivery: Delivery, outcome: Literal[
            "delivered", "failed", "dropped"]) -> None:
        try:
            await self.on_outcome(item, delivery)
        except Exception as exc:
            # The ledger could not say how it ended: keep the row, the next round retries.
            logger.warning("consent-gate forward: delivery not recorded: %s", exc)
            await self.outbox.release([item])
            return
        await self.outbox.finish(item, outcome, None if outcome == "delivered" else delivery.detail)
