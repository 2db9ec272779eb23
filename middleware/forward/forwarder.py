"""Forwarder: one event -> per partner: decide, minimise, record, queue. Then the sender.

``await forwarder.forward(scope, consent, "purchase", {...})`` returns once, for every partner
the action allows, the disclosure record (the exact field names and a keyed digest of each
value, never the values) is durable in the ledger and the event is durable in the outbox.
A partner without consent gets nothing: no record, no row, no request.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

from starlette.types import Scope

from middleware.config import Config
from middleware.consent import Consent
from middleware.errors import ConfigError
from middleware.forward.activity import Signals, apply, decide
from middleware.forward.fields import Hashing, Source, check_event, extract
from middleware.forward.kinds import Outbound, kind_for
from middleware.forward.outbox import Item, Outbox, encode
from middleware.forward.sender import Delivery, Sender
from middleware.forward.spec import ForwardSpec
from middleware.forward.transport import Resolver
from middleware.headers import cookie_value, header_value
from middleware.ledger import DisclosureRecord, RecordWriter, minimise_ip, page_path, ua_family
from middleware.ledger.records import LegalBasis

if TYPE_CHECKING:
    from middleware.forward.collect import Collector

logger = logging.getLogger("consent_gate.forward")

#: The key under which the middleware puts the Forwarder into the ASGI scope.
SCOPE_KEY = "consent_gate.forwarder"

_HASHING: Mapping[str, Hashing] = {"ga4-measurement-protocol": "google",
                                   "meta-conversions-api": "meta", "tiktok-events-api": "tiktok",
                                   "webhook": "meta"}
#: The ledger's data categories for each forwarded field.
CATEGORIES: Mapping[str, str] = {
    "page_url": "page_url", "referrer_host": "referrer", "ip": "ip_address",
    "ua_family": "user_agent", "email_sha256": "identifiers", "phone_sha256": "identifiers",
    "order_id": "identifiers", "event_id": "browsing_activity", "value": "browsing_activity",
    "currency": "browsing_activity",
}


@dataclass(frozen=True)
class ForwardResult:
    """Per partner, what happened to the event (a value for the caller and the tests)."""

    event_id: str
    queued: tuple[str, ...] = ()
    #: partner -> why nothing was sent (no consent, event not forwarded, queue full).
    skipped: Mapping[str, str] = field(default_factory=dict)
    actions: Mapping[str, str] = field(default_factory=dict)


def digest(key: bytes, name: str, value: Any) -> str:
    """Keyed digest of one sent value: proves later what was sent without keeping it."""
    data = f"{name}\x00{json.dumps(value, sort_keys=True)}".encode()
    return "hmac-sha256:" + hmac.new(key, data, hashlib.sha256).hexdigest()[:32]


def read_secrets(config_source: str, specs: Mapping[str, ForwardSpec],
                 environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each partner's credential from its environment variable; a missing one stops start-up."""
    env = os.environ if environ is None else environ
    out: dict[str, str] = {}
    for pid, spec in specs.items():
        if not spec.credential_env:
            out[pid] = ""
            continue
        value = env.get(spec.credential_env, "")
        if not value:
            raise ConfigError(config_source, f"partners.{pid}.forward.credential_env",
                              f"environment variable {spec.credential_env} is not set (it holds "
                              "the partner's credential)")
        out[pid] = value
    return out


class Forwarder:
    SCOPE_KEY = SCOPE_KEY

    def __init__(self, config: Config, specs: Mapping[str, ForwardSpec], writer: RecordWriter,
                 outbox: Outbox, *, digest_key: bytes, environ: Mapping[str, str] | None = None,
                 clock: Callable[[], float] = time.time, resolver: Resolver | None = None,
                 sender_options: Mapping[str, Any] | None = None, autostart: bool = True) -> None:
        self.config = config
        self.specs = dict(specs)
        self.writer = writer
        self.outbox = outbox
        self.digest_key = digest_key
        self.clock = clock
        self.secrets = read_secrets(config.source, self.specs, environ)
        self.necessary = config.necessary_purposes
        self.sender = Sender(outbox, self.specs, self.secrets, self._record_deliveries, clock=clock,
                             resolver=resolver, **dict(sender_options or {}))
        self._depths: dict[str, int] = {}
        #: False: the sender runs only when driven (``sender.run_once()``), for tests.
        self.autostart = autostart
        self._started = False
        self.skipped = 0

    @classmethod
    def from_config(cls, config: Config, signing_key: str, writer: RecordWriter) -> Forwarder:
        """The forwarder of a wrapped site: its outbox in the ledger's SQLite file."""
        path = config.ledger.path
        if path.startswith(("postgresql://", "postgres://")):
            raise ConfigError(config.source, "ledger.path", "server-side forwarding keeps its outbox "
                              "in a SQLite ledger file; a PostgreSQL ledger is not supported yet")
        return cls(config, specs_of(config), writer,
                   Outbox(path, synchronous=config.ledger.synchronous),
                   digest_key=f"consent-gate.forward.{signing_key}".encode())

    @functools.cached_property
    def collector(self) -> Collector:
        """The handler of ``POST /.consent/collect`` (rate-limited, schema-checked)."""
        from middleware.forward.collect import Collector

        return Collector(self)

    # -- lifecycle -------------------------------------------------------------------
    async def startup(self) -> None:
        self._depths = await self.outbox.depths()
        self.sender.start()
        self._started = True

    async def aclose(self) -> None:
        await self.sender.aclose()
        self.outbox.close()

    # -- forwarding ------------------------------------------------------------------
    def signals(self, consent: Consent) -> Signals:
        """The decision's inputs: consent, GPC or a usnat opt-out, the region's stance, TCF."""
        usnat = consent.gpp.usnat if consent.gpp is not None else None
        us_opt_out = usnat is not None and 1 in (
            usnat.sale_opt_out, usnat.sharing_opt_out, usnat.targeted_advertising_opt_out)
        where = consent.jurisdiction
        default = self.config.policy.default if where is None else (
            "deny" if where.stance == "opt-in" else "allow")
        return Signals(granted=consent.granted, decided=consent.decided,
                       opt_out_sale=consent.gpc or us_opt_out, default=default,
                       jurisdiction=where.region if where is not None else None,
                       tcf_purposes=(frozenset(consent.tc.purpose_consents)
                                     if consent.tc is not None else None),
                       tcf_blocked=consent.tcf_blocked)

    async def forward(self, scope: Scope, consent: Consent, event: str,
                      data: Mapping[str, Any] | None = None) -> ForwardResult:
        """Record and queue ``event`` for every partner that may have it; see the module doc.

        Raises ``fields.BadEvent`` for data outside the schema and ``LedgerUnavailable`` when
        the record cannot be made durable (then nothing is queued)."""
        data = dict(data or {})
        check_event(event, data)
        given_id = data.get("event_id")
        event_id = given_id if isinstance(given_id, str) else secrets.token_hex(16)
        now = self.clock()
        signals = self.signals(consent)
        src = _source(scope, data, trust_proxy=self.config.policy.trust_proxy)
        records: list[DisclosureRecord] = []
        items: list[Item] = []
        skipped: dict[str, str] = {}
        actions: dict[str, str] = {}
        ledger = self.config.ledger
        base: dict[str, Any] = {
            "request_id": f"fwd-{event_id}", "consent_id": consent.consent_id,
            "path": self._page_path(scope, src),
            "policy_version": consent.policy_version,
            "ip": minimise_ip(src.client_ip(), ledger.ip, None if ledger.ip != "hash" else self.digest_key),
            "ua_family": ua_family(src.user_agent()),
        }
        for pid, spec in self.specs.items():
            partner = self.config.partners[pid]
            action = decide(partner.purposes, self.necessary, spec.events, spec.basis, event, signals,
                            pid)
            if not action.send:
                skipped[pid] = action.reason
                continue
            if self._depths.get(pid, 0) >= spec.max_pending:
                skipped[pid] = f"outbox full ({spec.max_pending} events waiting)"
                continue
            cookies = spec.cookies if consent.allows_partner(pid) else ()
            got = extract(spec.fields, cookies, src, _HASHING[spec.kind])
            values, removed = apply(action, got.values)
            kind = kind_for(spec.kind)
            ev = Outbound(partner=pid, event=event, event_id=event_id, event_time=now, values=values,
                          limited_data_use=action.limited_data_use, gpc=action.gpc)
            body = encode(kind.body(spec, ev))
            necessary_only = all(p in self.necessary for p in partner.purposes)
            basis: LegalBasis = ("necessary" if necessary_only else
                                 "consent" if consent.decided else "opt-out-not-exercised")
            sent_cookies = tuple(n.removeprefix("cookie.") for n in values if n.startswith("cookie."))
            categories = sorted({CATEGORIES.get(n, "cookies") for n in values})
            record_fields = {
                "channel": "server", "kind": spec.kind, "event": event, "event_id": event_id,
                "sent": {n: digest(self.digest_key, n, v) for n, v in sorted(values.items())},
                "action": action.name, "reason": action.reason, "removed": list(removed),
                "not_allowed": list(got.not_allowed), "limited_data_use": action.limited_data_use,
                "gpc": action.gpc, "delivery": "queued", "attempts": 0,
            }
            records.append(DisclosureRecord(
                time=dt.datetime.fromtimestamp(now, dt.UTC), partner=pid, purposes=partner.purposes,
                legal_basis=basis, data_categories=tuple(categories), cookies=sent_cookies,
                fields=record_fields, **base))
            meta = {**base, "purposes": list(partner.purposes), "legal_basis": basis, "kind": spec.kind}
            items.append(Item(partner=pid, event_id=event_id, event=event, event_time=now, body=body,
                              gpc=action.gpc, record=json.dumps(meta)))
            actions[pid] = action.name
        self.skipped += len(skipped)
        if records:
            # Ledger first: the record is durable before the event can leave the outbox.
            await self.writer.write(records, timeout=5.0)
            await self.outbox.put(items)
            for item in items:
                self._depths[item.partner] = self._depths.get(item.partner, 0) + 1
            if not self._started and self.autostart:  # served without a lifespan: start here
                await self.startup()
            self.sender.wake()
        return ForwardResult(event_id=event_id, queued=tuple(i.partner for i in items),
                             skipped=skipped, actions=actions)

    def _page_path(self, scope: Scope, src: Source) -> str:
        """The page the event belongs to: the request's path, or for the browser's
        ``/.consent/collect`` the page that sent it (its URL or the Referer), no query."""
        path = str(scope.get("path", "/"))
        if path.startswith(self.config.policy.prefix):
            given = src.data.get("page_url")
            page = given if isinstance(given, str) else src.referer()
            if page:
                with contextlib.suppress(ValueError):
                    # Decoded like the scope path of the page's own record (records.page_path).
                    path = unquote(urlsplit(page).path) or "/"
        return page_path(path)

    async def _record_deliveries(self, outcomes: Sequence[tuple[Item, Delivery]]) -> None:
        """How each event ended, in the same chain as the record written before it was sent."""
        records = []
        for item, delivery in outcomes:
            meta = json.loads(item.record or "{}")
            self._depths[item.partner] = max(0, self._depths.get(item.partner, 1) - 1)
            fields = {"channel": "server", "kind": meta.get("kind", ""), "event": item.event,
                      "event_id": item.event_id, "delivery": delivery.status,
                      "attempts": delivery.attempts, "http_status": delivery.http_status,
                      "detail": delivery.detail}
            records.append(DisclosureRecord(
                time=dt.datetime.fromtimestamp(self.clock(), dt.UTC),
                request_id=meta.get("request_id", f"fwd-{item.event_id}"),
                consent_id=meta.get("consent_id"), path=meta.get("path", "/"), partner=item.partner,
                purposes=tuple(meta.get("purposes", ())),
                legal_basis=cast(LegalBasis, meta.get("legal_basis", "consent")),
                policy_version=meta.get("policy_version", ""), ip=meta.get("ip"),
                ua_family=meta.get("ua_family", "other"), fields=fields))
        await self.writer.write(records, timeout=10.0)


def specs_of(config: Config) -> dict[str, ForwardSpec]:
    return {pid: p.forward for pid, p in config.partners.items() if p.forward is not None}


def _source(scope: Scope, data: Mapping[str, Any], *, trust_proxy: bool) -> Source:
    headers = scope.get("headers", ())

    def header(name: bytes) -> str | None:
        v = header_value(headers, name)
        return v.decode("latin-1") if v is not None else None

    def client_ip() -> str | None:
        if trust_proxy:
            forwarded = header(b"x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[0].strip() or None
        client = scope.get("client")
        return str(client[0]) if client else None

    def request_url() -> str | None:
        host = header(b"host")
        if not host or scope.get("path", "").startswith("/.consent/"):
            return None
        return f"{scope.get('scheme', 'http')}://{host}{scope.get('path', '/')}"

    def cookie(name: str) -> str | None:
        v = cookie_value(headers, name)
        return v if isinstance(v, str) else None

    return Source(data=data, client_ip=client_ip, user_agent=lambda: header(b"user-agent") or "",
                  request_url=request_url, referer=lambda: header(b"referer"), cookie=cookie)
