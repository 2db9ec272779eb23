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
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import httpx2

from middleware.forward.breaker import Breaker, backoff, retry_after
from middleware.forward.kinds import kind_for
from middleware.forward.outbox import Item, Outbox, Outcome, encode
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


#: Writes the ledger's delivery records of a round (all of them, or raises).
OnOutcome = Callable[[Sequence[tuple[Item, Delivery]]], Awaitable[None]]


@dataclass(frozen=True)
class _End:
    item: Item
    delivery: Delivery
    outcome: Outcome

    @property
    def error(self) -> str | None:
        return None if self.outcome == "delivered" else self.delivery.detail


@dataclass(frozen=True)
class _Retry:
    item: Item
    next_at: float
    detail: str


def redact(text: str, secrets: Mapping[str, str]) -> str:
    for value in secrets.values():
        if value:
            text = text.replace(value, "***")
    return text[:300]


class Sender:
    def __init__(self, outbox: Outbox, specs: Mapping[str, ForwardSpec], secrets: Mapping[str, str],
                 on_outcome: OnOutcome, *, clock: Callable[[], float] = time.time,
                 resolver: Resolver | None = None, batch: int = 256, lease_s: float = 60.0,
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
        """Claim what is due and try each once; the number of events tried.

        The outcomes of a round are written together: one ledger write for every delivery
        record, then one outbox transaction (two commits per round, not two per event)."""
        closed = [pid for pid, b in self.breakers.items() if b.state == "open"]
        items = await self.outbox.claim(self.batch, self.lease_s, exclude=closed)
        if not items:
            return 0
        steps: list[_End | _Retry | Item] = []
        groups: dict[str, list[Item]] = {}
        for item in items:
            early = self._check(item)
            if early is None:
                groups.setdefault(item.partner, []).append(item)
            else:
                steps.append(early)
        sends = []
        for pid, group in groups.items():
            size = kind_for(self.specs[pid].kind).max_batch
            sends += [self._send_guarded(self.specs[pid], group[i:i + size])
                      for i in range(0, len(group), size)]
        for result in await asyncio.gather(*sends):
            steps += result
        ends = [s for s in steps if isinstance(s, _End)]
        retries = [(s.item, s.next_at, s.detail) for s in steps if isinstance(s, _Retry)]
        releases = [s for s in steps if isinstance(s, Item)]
        if ends:
            try:
                await self.on_outcome([(e.item, e.delivery) for e in ends])
            except Exception as exc:
                # The ledger could not say how they ended: keep the rows, a later round retries.
                logger.warning("consent-gate forward: deliveries not recorded: %s", exc)
                releases += [e.item for e in ends]
                ends = []
        await self.outbox.settle([(e.item, e.outcome, e.error) for e in ends], retries, releases)
        return len(items)

    def _client(self, spec: ForwardSpec) -> httpx2.AsyncClient:
        client = self._clients.get(spec.partner)
        if client is None:
            client = make_client(timeout_s=spec.timeout_s, allow_loopback=spec.test_loopback,
                                 resolver=self.resolver)
            self._clients[spec.partner] = client
        return client

    def _check(self, item: Item) -> _End | Item | None:
        """Before sending: an end (no forward any more, too old), the item back (breaker
        open), or None (send it)."""
        spec = self.specs.get(item.partner)
        if spec is None:  # the partner's forward was removed from the config
            return _End(item, Delivery("gave-up", item.attempts, None,
                                       "partner no longer configured for forwarding"), "failed")
        kind = kind_for(spec.kind)
        if self.clock() - item.event_time > kind.max_age_s:
            return _End(item, Delivery(
                "expired", item.attempts, None,
                f"older than the {kind.max_age_s / 86400:g} days the partner accepts"), "dropped")
        if self.breakers[item.partner].state == "open":
            return item
        return None

    async def _send_guarded(self, spec: ForwardSpec,
                            items: list[Item]) -> list[_End | _Retry | Item]:
        """``_send``, where an unexpected error is one failed attempt of these items only: it
        must not lose the outcomes of the round's other partners (already posted)."""
        try:
            return await self._send(spec, items)
        except Exception as exc:
            detail = redact(f"unexpected error: {type(exc).__name__}: {exc}", self.secrets)
            logger.warning("consent-gate forward: %s: %s", spec.partner, detail)
            out: list[_End | _Retry | Item] = []
            for i in items:
                attempt = i.attempts + 1
                if attempt >= spec.max_attempts:
                    out.append(_End(i, Delivery("gave-up", attempt, None, detail), "failed"))
                else:
                    out.append(_Retry(i, self.clock() + backoff(i.attempts), detail))
            return out

    async def _send(self, spec: ForwardSpec, items: list[Item]) -> list[_End | _Retry | Item]:
        """One request for ``items`` (one event, or a batch where the partner takes one);
        the answer decides for each of them."""
        breaker = self.breakers[spec.partner]
        if not breaker.allow():
            return list(items)
        kind = kind_for(spec.kind)
        body = items[0].body if len(items) == 1 else encode(
            kind.merge([json.loads(i.body) for i in items]))
        async with self._limits[spec.partner]:
            status, detail, retryable, floor = await self._post(spec, body, items[0].gpc)
        if status is not None and 200 <= status < 300:
            ok, detail = kind.accepted(status, detail.encode())
            breaker.success()
            self.sent += len(items)
            return [_End(i, Delivery("accepted" if ok else "rejected", i.attempts + 1, status, detail),
                         "delivered" if ok else "failed") for i in items]
        if not retryable:
            if status is not None:  # the partner answered: it is up
                breaker.success()
            return [_End(i, Delivery("rejected", i.attempts + 1, status, detail), "failed") for i in items]
        breaker.failure()
        out: list[_End | _Retry | Item] = []
        for i in items:
            attempt = i.attempts + 1
            if attempt >= spec.max_attempts:
                out.append(_End(i, Delivery("gave-up", attempt, status,
                                            f"{detail} (after {attempt} attempts)"), "failed"))
            else:
                out.append(_Retry(i, self.clock() + backoff(i.attempts, floor_s=floor), detail))
        return out

    async def _post(self, spec: ForwardSpec, body: str, gpc: bool) -> tuple[int | None, str, bool, float]:
        """(HTTP status or None, detail, retryable, minimum delay)."""
        secret = self.secrets.get(spec.partner, "")
        kind = kind_for(spec.kind)
        prepared = kind.prepare(spec, secret, gpc)
        headers = dict(prepared.headers)
        self.attempts += 1
        if gpc and spec.pass_gpc:
            headers["sec-gpc"] = "1"
        try:
            async with self._client(spec).stream("POST", prepared.url, content=body.encode(),
                                                 headers=headers) as response:
                answer = await read_bounded(response)
                status = response.status_code
                wait = retry_after(response.headers.get("retry-after"))
        except AddressRefused as exc:
            return None, redact(str(exc), self.secrets), False, 0.0
        except httpx2.TransportError as exc:
            return None, redact(f"{type(exc).__name__}: {exc}", self.secrets), True, 0.0
        text = answer.decode("utf-8", "replace")
        if 200 <= status < 300:
            return status, text, False, 0.0
        detail = redact(f"HTTP {status}: {' '.join(text.split())[:200]}", self.secrets)
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirects are not followed", False, 0.0
        return status, detail, status == 429 or status >= 500, wait
