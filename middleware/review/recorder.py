"""What the middleware writes to the review tables while it serves: the consent UI versions
(once per start-up), the proof of which banner each decision was made on, and the undeclared
hosts and cookies it sees (passive tracker discovery).

Nothing here runs on the event loop's time: sightings are counted in memory (bounded) and
written in one transaction every few seconds from a worker thread; a proof is one insert in a
worker thread. Any failure is logged and dropped: review data never stops a page.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import Config
from .db import Proof, ReviewDb, Sighting, is_sqlite_target
from .facts import outcome
from .proof import BannerVersions

if TYPE_CHECKING:
    from starlette.types import Scope

    from ..consent import Consent

logger = logging.getLogger("consent_gate")

#: Distinct (kind, name) pairs held between two flushes; more are dropped until the flush.
MAX_PENDING = 1000
FLUSH_SECONDS = 5.0

RecordEvent = Callable[[str, "Consent", "Consent | None", str, "Scope"], Awaitable[None]]


class ReviewRecorder:
    """One per middleware. ``startup()``/``aclose()`` from the lifespan; the ``saw_*``
    methods from the request path (cheap, synchronous, never raise)."""

    def __init__(self, config: Config, target: str | None, *,
                 versions: BannerVersions | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        #: The ledger's SQLite file (None: no ledger, or not SQLite -> nothing recorded).
        self.target = target
        self.versions = versions
        self.clock = clock
        self.enabled = target is not None and is_sqlite_target(target)
        self.db: ReviewDb | None = None
        self._pending: dict[tuple[str, str], Sighting] = {}
        self._last_flush = clock()
        self._flushing: asyncio.Task[None] | None = None
        declared: set[str] = {config.policy.cookie.name}
        for partner in config.partners.values():
            declared.update(partner.cookies)
        self.declared_cookies = frozenset(declared)
        self.dropped = 0

    # -- lifespan --------------------------------------------------------------------------
    async def startup(self) -> None:
        if self.target is None:
            return
        if not self.enabled:
            logger.info("consent-gate: discovery and banner proofs need a SQLite ledger; "
                        "they are off for %s", self.target.split("://")[0] + "://")
            return
        try:
            self.db = await asyncio.to_thread(ReviewDb, self.target)
            source = self.config.source
            if source and Path(source).exists():
                await asyncio.to_thread(self.db.set_meta, "config_path",
                                        str(Path(source).resolve()))
            if self.versions is not None:
                await asyncio.to_thread(self.db.add_banners, self.versions.banners())
        except Exception as exc:  # the site keeps serving
            logger.error("consent-gate: review tables unavailable (%s)", exc)
            self.db = None

    async def aclose(self) -> None:
        if self._flushing is not None:
            self._flushing.cancel()
            with contextlib.suppress(BaseException):
                await self._flushing
        await self.flush()
        if self.db is not None:
            db, self.db = self.db, None
            await asyncio.to_thread(db.close)

    # -- discovery -------------------------------------------------------------------------
    def saw(self, kind: str, name: str, page: str) -> None:
        if not self.enabled:
            return
        key = (kind, name[:253])
        now = datetime.now(UTC)
        held = self._pending.get(key)
        if held is None:
            if len(self._pending) >= MAX_PENDING:
                self.dropped += 1
                return
            self._pending[key] = Sighting(kind, key[1], page[:200], now)
        else:
            self._pending[key] = Sighting(kind, key[1], held.page or page[:200], held.time,
                                          held.count + 1)
        self._maybe_flush()

    def saw_hosts(self, hosts: Iterable[str], page: str) -> None:
        for host in hosts:
            self.saw("host", host, page)

    def saw_csp(self, host: str, page: str) -> None:
        self.saw("csp", host, page)

    def saw_cookies(self, headers: Iterable[tuple[bytes, bytes]], page: str) -> None:
        """Cookies the site sets (``Set-Cookie``) that neither a partner nor the site declares."""
        for name, value in headers:
            if name.lower() != b"set-cookie":
                continue
            cookie = value.split(b"=", 1)[0].strip().decode("latin-1")
            if cookie and cookie not in self.declared_cookies:
                self.saw("cookie", cookie, page)

    def _maybe_flush(self) -> None:
        """Schedule one flush, at most FLUSH_SECONDS after the previous one."""
        if self._flushing is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = max(0.0, FLUSH_SECONDS - (self.clock() - self._last_flush))
        self._flushing = loop.create_task(self._flush_task(delay))

    async def _flush_task(self, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            await self.flush()
        finally:
            self._flushing = None

    async def flush(self) -> None:
        self._last_flush = self.clock()
        if not self._pending or self.db is None:
            return
        batch, self._pending = list(self._pending.values()), {}
        try:
            await asyncio.to_thread(self.db.add_sightings, batch)
        except Exception as exc:
            logger.error("consent-gate: discovered hosts not recorded (%s)", exc)

    # -- proof of consent ------------------------------------------------------------------
    def wrap(self, record_event: RecordEvent | None) -> RecordEvent:
        """``record_event`` for the consent UI: the ledger's record, then the banner proof."""

        async def recorded(action: str, new: Consent, previous: Consent | None, source: str,
                           scope: Scope) -> None:
            if record_event is not None:
                await record_event(action, new, previous, source, scope)
            await self.proof(action, new, previous, source, scope)

        return recorded

    async def proof(self, action: str, new: Consent, previous: Consent | None, source: str,
                    scope: Scope) -> None:
        if self.db is None or self.versions is None or not new.consent_id:
            return
        shown = self.versions.shown(source, previous, scope)
        necessary = self.config.necessary_purposes
        choices = {p: p in new.granted for p in self.config.purposes}
        proof = Proof(
            time=datetime.now(UTC), consent_id=new.consent_id, action=action,
            outcome=outcome(action, choices, necessary), source=source,
            banner_hash=shown.hash, policy_hash=shown.policy_hash,
            policy_version=new.policy_version, gpc=bool(getattr(new, "gpc", False)),
            jurisdiction=_jurisdiction(new))
        try:
            await asyncio.to_thread(self.db.add_proof, proof)
        except Exception as exc:
            logger.error("consent-gate: banner proof not recorded (%s)", exc)


def _jurisdiction(consent: Any) -> str | None:
    """The visitor's region as [jurisdictions] resolved it ("FR", "US-CA"), else its rule."""
    value = getattr(consent, "jurisdiction", None)
    if value is None:
        return None
    return str(getattr(value, "region", None) or getattr(value, "rule", None) or "")[:32] or None
