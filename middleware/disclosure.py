"""From a page view to ledger records: who received what, on which legal basis.

The middleware calls :meth:`Discloser.disclose` with the partners a chunk is about to
enable and sends the chunk only after it returns (log before disclose).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast, get_args

from starlette.types import Scope

from .config import Config
from .consent import Consent
from .env import LEDGER_KEY_ENV
from .errors import LedgerUnavailable
from .headers import header_value
from .ledger import (
    ConsentEvent,
    LedgerWriter,
    PageView,
    PartnerShare,
    minimise_ip,
    open_store,
    page_path,
    purge,
    ua_family,
)
from .ledger.heads import FileWitness, HeadPublisher, HttpWitness, Witness, load_private_key
from .ledger.records import ConsentAction, ConsentSource, LegalBasis
from .ledger.service import ProcessWriter, heads_arguments
from .ledger.writer import RecordWriter
from .signals.page import ledger_fields

logger = logging.getLogger("consent_gate")

# Visitors repeat: the same browser string and address arrive on every page view, and
# parsing them costs more than the rest of a record together.
_ua_family = functools.lru_cache(maxsize=4096)(ua_family)
_minimise_ip = functools.lru_cache(maxsize=8192)(minimise_ip)

_EVENT_SOURCES = frozenset(get_args(ConsentSource))

_ERROR_LOG_INTERVAL = 60.0
#: A page never waits longer than this for the ledger; past it the write counts as failed.
_WRITE_TIMEOUT = 5.0


class _RandomHex:
    """The random part of request ids: 12 hex digits of the OS's randomness each (what
    ``secrets.token_hex(6)`` gives), read 3 KB at a time, so one ``getrandom`` serves 512
    page views instead of one. A forked child starts with an empty buffer (uvicorn forks its
    workers after import), so no two processes hand out the same ids."""

    __slots__ = ("hex", "pos")

    def __init__(self) -> None:
        self.hex = ""
        self.pos = 0

    def take(self) -> str:
        pos = self.pos
        if pos >= len(self.hex):
            self.hex = os.urandom(3072).hex()
            pos = 0
        self.pos = pos + 12
        return self.hex[pos:pos + 12]

    def reset(self) -> None:
        self.hex = ""
        self.pos = 0


_random_hex = _RandomHex()
os.register_at_fork(after_in_child=_random_hex.reset)


@dataclass(frozen=True)
class RequestInfo:
    """What a disclosure record needs to know about the request, read once."""

    request_id: str
    path: str
    query: str
    client_ip: str | None
    user_agent: str
    consent: Consent

    @classmethod
    def from_scope(cls, scope: Scope, consent: Consent, *, trust_proxy: bool = False) -> RequestInfo:
        headers = scope.get("headers", ())
        client = scope.get("client")
        ip = client[0] if client else None
        if trust_proxy:
            forwarded = header_value(headers, b"x-forwarded-for")
            if forwarded:
                ip = forwarded.decode("latin-1").split(",")[0].strip() or ip
        ua = (header_value(headers, b"user-agent") or b"").decode("latin-1")
        # Built once per logged page view, on the event loop: the fields filled directly,
        # not through the frozen dataclass's object.__setattr__ one by one (2.1 -> 0.85 us).
        info = object.__new__(cls)
        info.__dict__.update(
            request_id=f"{int(time.time()):x}-{_random_hex.take()}",
            path=scope.get("path", "/"),
            query=scope.get("query_string", b"").decode("latin-1"),
            client_ip=ip,
            user_agent=ua,
            consent=consent,
        )
        return info


def head_publisher(config: Config) -> HeadPublisher | None:
    """Signed chain heads for this process's writer, if ``[ledger] heads_key`` is set.
    An unreadable key stops start-up (a ConsentGateError naming the file)."""
    ledger = config.ledger
    if not ledger.heads_key:
        return None
    witnesses: list[Witness] = []
    if ledger.witness_file:
        witnesses.append(FileWitness(ledger.witness_file))
    if ledger.witness_url:
        witnesses.append(HttpWitness(ledger.witness_url))
    return HeadPublisher(load_private_key(ledger.heads_key), witnesses,
                         every_records=ledger.heads_every, every_seconds=ledger.heads_seconds)


class Discloser:
    """Builds records from config + request and hands them to the ledger writer."""

    def __init__(self, config: Config, writer: RecordWriter | None, ip_key: bytes | None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.writer = writer
        self.ip_key = ip_key
        self.fail_open = config.ledger.fail == "open"
        # The retry pause and the error log's interval run on this clock: a test passes its
        # own instead of sleeping through them.
        self._clock = clock
        #: After a failed write, pages are served with partners off; retry the ledger this often.
        self._retry_seconds = config.ledger.retry_seconds
        self._failed_at: float | None = None
        self._last_error_log: float | None = None
        self._tcf_partners = frozenset(pid for pid, p in config.partners.items()
                                       if p.signals.tcf_vendor_id is not None)
        necessary = config.necessary_purposes
        # Per partner and legal basis, once: what it receives. A partner serving strictly
        # necessary purposes only is always on basis "necessary".
        self._shares: Mapping[tuple[str, str], PartnerShare] = {
            (pid, basis): PartnerShare(
                pid, p.purposes,
                "necessary" if all(x in necessary for x in p.purposes) else basis,
                p.receives, p.cookies)
            for pid, p in config.partners.items()
            for basis in ("consent", "opt-out-not-exercised")
        }
        # A page view's partner list, by (partner set, basis): sorted, shared between views.
        self._lists: dict[tuple[frozenset[str], str], tuple[PartnerShare, ...]] = {}

    @classmethod
    def from_config(cls, config: Config, signing_key: str) -> Discloser:
        store = open_store(config.ledger.path, synchronous=config.ledger.synchronous)
        # The IP hash key is derived from the signing key so that hashes cannot be reversed
        # by brute force without the secret, yet stay stable for one deployment.
        ip_key = f"consent-gate.ip.{signing_key}".encode() if config.ledger.ip == "hash" else None
        ledger = config.ledger
        writer: RecordWriter
        if ledger.writer == "process":
            if ledger.heads_key:
                load_private_key(ledger.heads_key)  # an unreadable key stops start-up here
            writer = ProcessWriter(store, ledger.path, synchronous=ledger.synchronous,
                                   heads_args=heads_arguments(ledger))
        else:
            writer = LedgerWriter(store, heads=head_publisher(config))
        return cls(config, writer, ip_key)

    def available(self) -> bool:
        """False right after a failed write: partners stay off until the retry interval passes."""
        if self.fail_open or self._failed_at is None:
            return True
        return self._clock() - self._failed_at >= self._retry_seconds

    def _failed(self, exc: LedgerUnavailable) -> None:
        now = self._clock()
        self._failed_at = now
        if self._last_error_log is None or now - self._last_error_log >= _ERROR_LOG_INTERVAL:
            self._last_error_log = now
            logger.error("consent-gate: the ledger cannot write (%s); %s", exc.cause,
                         "partners are enabled anyway (fail = \"open\")" if self.fail_open
                         else "partners are disabled until it can (fail = \"closed\")")

    def _partner_list(self, partners: frozenset[str], basis: str) -> tuple[PartnerShare, ...]:
        key = (partners, basis)
        shares = self._lists.get(key)
        if shares is None:
            shares = tuple(self._shares[(pid, basis)] for pid in sorted(partners))
            if len(self._lists) < 4096:  # a site has few partner sets; never grow unbounded
                self._lists[key] = shares
        return shares

    async def disclose(self, partners: frozenset[str], request: RequestInfo) -> None:
        """Make one page view record holding these partners durable; raise
        LedgerUnavailable when fail-closed. Called again for partners a later chunk
        enables: that is a second record for the same request id."""
        if self.writer is None:
            return
        ledger = self.config.ledger
        basis: LegalBasis = "consent" if request.consent.decided else "opt-out-not-exercised"
        record = PageView.on_loop(
            time=dt.datetime.now(dt.UTC), request_id=request.request_id,
            consent_id=request.consent.consent_id,
            path=page_path(request.path, request.query, ledger.keep_query),
            partners=self._partner_list(partners, basis),
            policy_version=request.consent.policy_version,
            ip=_minimise_ip(request.client_ip, ledger.ip, self.ip_key),
            ua_family=_ua_family(request.user_agent),
            fields=ledger_fields(request.consent, partners, self._tcf_partners),
        )
        try:
            await self.writer.write((record,), timeout=_WRITE_TIMEOUT)
        except LedgerUnavailable as exc:
            self._failed(exc)
            if not self.fail_open:
                raise
        else:
            self._failed_at = None

    async def record_event(self, action: str, new: Consent, previous: Consent | None, source: str,
                           scope: Scope) -> None:
        """Proof of consent: written before the cookie is set; a failure is logged, not fatal."""
        if self.writer is None:
            return
        info = RequestInfo.from_scope(scope, new, trust_proxy=self.config.policy.trust_proxy)
        event = ConsentEvent(
            time=dt.datetime.now(dt.UTC), consent_id=new.consent_id or "",
            action=cast(ConsentAction, action),
            choices={pid: pid in new.granted for pid in self.config.purposes},
            policy_version=new.policy_version,
            source=cast(ConsentSource, source if source in _EVENT_SOURCES else "form"),
            ip=_minimise_ip(info.client_ip, self.config.ledger.ip, self.ip_key),
            ua_family=_ua_family(info.user_agent),
        )
        try:
            await self.writer.write([event], timeout=_WRITE_TIMEOUT)
        except LedgerUnavailable as exc:
            self._failed(exc)

    async def startup(self) -> None:
        """Open the ledger (and purge old records if configured) off the event loop."""
        if self.writer is None:
            return
        ledger = self.config.ledger
        store = self.writer.store
        try:
            await asyncio.to_thread(store.open)
            if ledger.purge_on_start:
                # Signed like `consent-gate log purge` signs them, so `verify` accepts both.
                key = os.environ.get(LEDGER_KEY_ENV, "").encode() or None
                removed = await asyncio.to_thread(
                    purge, store, dt.timedelta(days=ledger.retention_days), key)
                logger.info("consent-gate: purged ledger records older than %d days (%d writer "
                            "checkpoint(s))", ledger.retention_days, len(removed))
        except Exception as exc:  # the site keeps serving; partners stay off (fail closed)
            self._failed(LedgerUnavailable(f"cannot open {ledger.path}: {exc}"))

    async def aclose(self) -> None:
        if self.writer is not None:
            await self.writer.aclose()
