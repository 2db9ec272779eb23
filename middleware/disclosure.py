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
from typing import Any, cast, get_args

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
from .ledger.records import ConsentAction, ConsentSource
from .ledger.service import ProcessWriter, heads_arguments
from .ledger.writer import RecordWriter
from .signals.page import ledger_fields

logger = logging.getLogger("consent_gate")

# Visitors repeat: the same browser string and address arrive on every page view, and
# parsing them costs more than the rest of a record together.
_ua_family = functools.lru_cache(maxsize=4096)(ua_family)
_minimise_ip = functools.lru_cache(maxsize=8192)(minimise_ip)

_EVENT_SOURCES = frozenset(get_args(ConsentSource))
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_UTC = dt.UTC
_time = time.time
_now = dt.datetime.now
_new = object.__new__
_MISSING: Any = object()
#: Consent sources ``ledger_fields`` records nothing for (any other: it decides).
_PLAIN_SOURCES = frozenset({None, "", "banner", "preferences", "form", "placeholder", "gpc",
                            "api"})


#: What ``ua_family`` reads of a browser string (characters; latin-1 makes them the bytes).
_UA_READ = 512
#: Longer keys are not kept by page_view's caches (an address's text is at most 45 characters
#: plus brackets and a zone; a path this long is rare): each cache then holds at most its
#: count of entries times this, whatever visitors send (h11 takes a 16 KB request head).
_LONGEST_KEPT_ADDRESS = 64
_LONGEST_KEPT_PATH = 512


def _remember(cache: dict[Any, Any], key: Any, value: Any, size: int) -> None:
    """``cache[key] = value``, the cache emptied first when it holds ``size`` entries."""
    if len(cache) >= size:
        cache.clear()
    cache[key] = value

_ERROR_LOG_INTERVAL = 60.0
#: A page never waits longer than this for the ledger; past it the write counts as failed.
_WRITE_TIMEOUT = 5.0


class _RandomHex:
    """The random part of request ids: 12 hex digits of the OS's randomness each (what
    ``secrets.token_hex(6)`` gives), read 3 KB at a time and cut into 512 parts at once, so
    one ``getrandom`` serves 512 page views and each takes its part with a ``list.pop``. A
    forked child starts with an empty buffer (uvicorn forks its workers after import), so no
    two processes hand out the same ids. Also the ids' other half, the Unix second in hex,
    formatted once per second (``stamp``, valid until ``until``), not once per page view."""

    __slots__ = ("parts", "stamp", "until")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.stamp = ""
        self.until = 0.0

    def take(self) -> str:
        parts = self.parts
        return parts.pop() if parts else self.refill()

    def refill(self) -> str:
        """Cut a fresh block into parts (the next one handed out is the block's first)
        and return one of them."""
        block = os.urandom(_BLOCK).hex()
        parts = [block[i:i + 12] for i in range(len(block) - 12, -1, -12)]
        self.parts = parts
        return parts.pop()

    def request_id(self, now: float) -> str:
        """``<now's Unix second, hex>-<12 random hex digits>``."""
        stamp = self.stamp if self.until - 1.0 <= now < self.until else self.restamp(now)
        parts = self.parts
        return stamp + (parts.pop() if parts else self.refill())

    def restamp(self, now: float) -> str:
        """The ids' first half for ``now``'s second (a new second, or the clock went back)."""
        second = int(now)
        self.stamp = stamp = f"{second:x}-"
        self.until = second + 1.0
        return stamp

    def reset(self) -> None:
        self.parts = []


#: Bytes of randomness read at once: 512 request ids.
_BLOCK = 3072
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
            request_id=_random_hex.request_id(time.time()),
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
        # A page view's partner list, by basis and partner set: sorted, shared between views.
        self._consented: dict[frozenset[str], tuple[PartnerShare, ...]] = {}
        self._opted: dict[frozenset[str], tuple[PartnerShare, ...]] = {}
        self._lists = {"consent": self._consented, "opt-out-not-exercised": self._opted}
        # What page_view reads of the config, and its caches: visitors repeat, so the same
        # browser string, address and path arrive on many page views, and parsing them costs
        # more than the rest of a record together (each bounded: emptied when full).
        ledger = config.ledger
        self._trust_proxy = config.policy.trust_proxy
        self._keep_query = ledger.keep_query
        self._ip_mode = ledger.ip
        self._agents: dict[bytes | None, str] = {}
        self._addresses: dict[str | None, str | None] = {}
        self._paths: dict[str, str] = {}

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
        """The page view's partner list for ``partners`` on ``basis``: sorted, shared between
        views, and checked as ``PageView`` checks it when it was made (a view holding it needs
        no check of its own)."""
        lists = self._lists[basis]
        shares = lists.get(partners)
        if shares is None:
            shares = tuple(self._shares[(pid, basis)] for pid in sorted(partners))
            # PageView's checks (at least one partner, each once, sorted): ValueError if not.
            shares = PageView(time=_EPOCH, request_id="", consent_id=None, path="/",
                              partners=shares).partners
            if len(lists) < 4096:  # a site has few partner sets; never grow unbounded
                lists[partners] = shares
        return shares

    def page_view(self, partners: frozenset[str], scope: Scope, consent: Consent,
                  first: PageView | None = None) -> PageView:
        """The record of one page view enabling ``partners``, built in one step from the ASGI
        ``scope`` (one pass over its headers, the path, address and browser family looked up
        in bounded caches), as ``RequestInfo.from_scope`` and then the ``PageView`` of
        ``disclose`` built it (tests/test_ledger_onestep.py holds the two to the same record).
        ``first``: this request's earlier record, when a later chunk enables more partners:
        its request id, path, address and browser are this one's (the same request).
        Built for every logged page view, on the event loop."""
        now = _now(_UTC)
        shares = (self._consented if consent.decided else self._opted).get(partners)
        if shares is None:
            shares = self._partner_list(
                partners, "consent" if consent.decided else "opt-out-not-exercised")
        if (consent.source in _PLAIN_SOURCES and consent.jurisdiction is None
                and consent.tc is None and consent.gpp is None):
            fields: dict[str, object] = {}  # what ledger_fields returns for it, sooner
        else:
            fields = ledger_fields(consent, partners, self._tcf_partners)
        if first is not None:
            request_id, path, ip, ua = first.request_id, first.path, first.ip, first.ua_family
        else:
            request_id = _random_hex.request_id(_time())
            headers = scope.get("headers", ())
            client = scope.get("client")
            address = client[0] if client else None
            agent = forwarded = None
            if self._trust_proxy:
                for key, value in headers:  # the first of each, as header_value finds it
                    if key == b"user-agent":
                        if agent is None:
                            agent = value
                    elif key == b"x-forwarded-for" and forwarded is None:
                        forwarded = value
                if forwarded:
                    address = forwarded.decode("latin-1").split(",")[0].strip() or address
            else:
                for key, value in headers:
                    if key == b"user-agent":
                        agent = value
                        break
            # Keys of bounded size (tests/test_review_page_view_caches.py): a family reads the
            # first 512 characters only (a slice of a shorter bytes is the bytes itself), and
            # a longer address or path is worked out each time, not kept.
            if agent is not None:
                agent = agent[:_UA_READ]
            ua = self._agents.get(agent, "")
            if not ua:  # (a family is never empty)
                ua = ua_family((agent or b"").decode("latin-1"))
                _remember(self._agents, agent, ua, 4096)
            ip = self._addresses.get(address, _MISSING)
            if ip is _MISSING:
                ip = minimise_ip(address, self._ip_mode, self.ip_key)
                if address is None or len(address) <= _LONGEST_KEPT_ADDRESS:
                    _remember(self._addresses, address, ip, 8192)
            raw = scope.get("path", "/")
            if self._keep_query:
                path = page_path(raw, scope.get("query_string", b""), True)
            else:
                path = self._paths.get(raw, "")
                if not path:  # (a recorded path is never empty)
                    path = page_path(raw)
                    if len(raw) <= _LONGEST_KEPT_PATH:
                        _remember(self._paths, raw, path, 4096)
        if fields:  # PageView's checks and copy of the fields
            return PageView(time=now, request_id=request_id, consent_id=consent.consent_id,
                            path=path, partners=shares, policy_version=consent.policy_version,
                            ip=ip, ua_family=ua, fields=fields)
        # An aware UTC time, a checked partner list, no fields: PageView's __post_init__
        # would change nothing, so the fields are filled directly (PageView.on_loop's way).
        view = _new(PageView)
        view.__dict__.update(time=now, request_id=request_id, consent_id=consent.consent_id,
                             path=path, partners=shares, policy_version=consent.policy_version,
                             ip=ip, ua_family=ua, fields=fields)
        return view

    async def disclose(self, partners: frozenset[str], scope: Scope, consent: Consent,
                       first: PageView | None = None) -> PageView:
        """Make one page view record holding these partners durable (``page_view``); raise
        LedgerUnavailable when fail-closed. Returns the record, to pass as ``first`` when a
        later chunk enables more partners: a second record for the same request id. Needs
        a writer."""
        record = self.page_view(partners, scope, consent, first)
        try:
            await cast(RecordWriter, self.writer).write((record,), timeout=_WRITE_TIMEOUT)
        except LedgerUnavailable as exc:
            self._failed(exc)
            if not self.fail_open:
                raise
        else:
            self._failed_at = None
        return record

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
            ip=(_minimise_ip if info.client_ip is None
                or len(info.client_ip) <= _LONGEST_KEPT_ADDRESS else minimise_ip)(
                info.client_ip, self.config.ledger.ip, self.ip_key),
            ua_family=_ua_family(info.user_agent[:_UA_READ]),
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
