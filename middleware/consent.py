"""The visitor's consent: an immutable value, its signed cookie codec, and browser signals.

Fail closed: any doubt about a cookie (bad signature, expired, for another policy
version, malformed, oversized) means the visitor has not decided, never an error.

References: Global Privacy Control, https://privacycg.github.io/gpc-spec/ (``Sec-GPC: 1``).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import secrets
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from itsdangerous import BadData, URLSafeTimedSerializer

from .config import Config

logger = logging.getLogger("consent_gate")

#: Browsers keep cookies up to 4096 bytes; anything longer was not written by us.
MAX_COOKIE_LENGTH = 4096
_VERIFIED_CACHE_SIZE = 10_000

Source = Literal["banner", "preferences", "form", "placeholder", "gpc", "api"]
_SOURCES: frozenset[str] = frozenset({"banner", "preferences", "form", "placeholder", "gpc", "api"})


@dataclass(frozen=True)
class Consent:
    """What the current visitor agreed to, as the middleware enforces it for this request."""

    consent_id: str | None
    granted: frozenset[str]
    policy_version: str
    decided: bool = False
    given_at: dt.datetime | None = None
    #: Where the stored choice was made (banner, preferences page, form, placeholder).
    source: str | None = None
    #: The browser sent ``Sec-GPC: 1`` (or DNT where configured) and it was honoured.
    gpc: bool = False
    #: The visitor had consented under this older policy version (the banner says the policy changed).
    stale_version: str | None = None
    #: The purposes the visitor chose, before GPC was applied.
    chosen: frozenset[str] = frozenset()
    partner_purposes: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}), compare=False, repr=False)

    def allows(self, purpose: str) -> bool:
        """True when ``purpose`` is granted (strictly necessary purposes always are)."""
        return purpose in self.granted

    def allows_partner(self, partner_id: str) -> bool:
        """True when every purpose of the partner is granted; unknown partners never are."""
        purposes = self.partner_purposes.get(partner_id)
        return bool(purposes) and all(p in self.granted for p in purposes or ())

    @functools.cached_property
    def allowed_partners(self) -> frozenset[str]:
        return frozenset(pid for pid in self.partner_purposes if self.allows_partner(pid))

    @property
    def needs_banner(self) -> bool:
        return not self.decided


def new_consent_id() -> str:
    """A random pseudonymous id: links a visitor's consent events and disclosures, nothing else."""
    return secrets.token_urlsafe(12)


@dataclass(frozen=True)
class StoredChoice:
    """What the cookie carries."""

    consent_id: str
    granted: frozenset[str]
    policy_version: str
    source: str
    given_at: dt.datetime


class ConsentCodec:
    """Signs and reads the consent cookie with itsdangerous.

    ``keys`` newest first: the newest signs, every key verifies (rotation).
    """

    salt = "consent-gate.consent.v1"

    def __init__(self, keys: Iterable[str], *, max_age_seconds: int) -> None:
        ordered = list(keys)
        if not ordered:
            raise ValueError("at least one signing key is needed")
        # itsdangerous signs with the *last* key of the list.
        self._serializer = URLSafeTimedSerializer(list(reversed(ordered)), salt=self.salt)
        self.max_age_seconds = max_age_seconds
        # Verified cookie values -> their choice. A returning visitor sends the same value on
        # every request; re-deriving the key and the HMAC each time is most of a JSON request's
        # cost. Only values that verified are kept, and expiry is re-checked on every hit.
        self._verified: OrderedDict[str, StoredChoice] = OrderedDict()

    def dumps(self, choice: StoredChoice) -> str:
        payload = {
            "i": choice.consent_id,
            "g": sorted(choice.granted),
            "v": choice.policy_version,
            "s": choice.source,
        }
        return str(self._serializer.dumps(payload))

    def loads(self, value: str | None) -> StoredChoice | None:
        """The stored choice, or None for any cookie we cannot trust."""
        if not value or len(value) > MAX_COOKIE_LENGTH:
            return None
        known = self._verified.get(value)
        if known is not None:
            age = dt.datetime.now(dt.UTC) - known.given_at
            if age.total_seconds() > self.max_age_seconds:
                del self._verified[value]
                return None
            self._verified.move_to_end(value)
            return known
        try:
            payload, signed_at = self._serializer.loads(
                value, max_age=self.max_age_seconds, return_timestamp=True)
        except BadData as exc:
            logger.debug("consent cookie rejected: %s", type(exc).__name__)
            return None
        except Exception as exc:  # e.g. a decompression error inside a forged-looking payload
            logger.debug("consent cookie unreadable: %r", exc)
            return None
        choice = _parse_payload(payload, signed_at)
        if choice is not None:
            self._verified[value] = choice
            if len(self._verified) > _VERIFIED_CACHE_SIZE:
                self._verified.popitem(last=False)
        return choice


def _parse_payload(payload: Any, signed_at: dt.datetime) -> StoredChoice | None:
    if not isinstance(payload, dict):
        return None
    cid, granted, version, source = (payload.get(k) for k in ("i", "g", "v", "s"))
    if not (isinstance(cid, str) and 8 <= len(cid) <= 64 and isinstance(version, str)):
        return None
    if not isinstance(granted, list) or not all(isinstance(g, str) for g in granted):
        return None
    if not isinstance(source, str) or source not in _SOURCES:
        return None
    return StoredChoice(consent_id=cid, granted=frozenset(granted), policy_version=version,
                        source=source, given_at=signed_at)


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def privacy_signal(headers: Iterable[tuple[bytes, bytes]], *, honor_gpc: bool, honor_dnt: bool) -> bool:
    """True when the browser asks not to have its data sold or shared.

    Only the exact value "1" counts (GPC spec); DNT only when the site opted to honour it.
    """
    items = list(headers)
    if honor_gpc and (_header(items, b"sec-gpc") or b"").strip() == b"1":
        return True
    return honor_dnt and (_header(items, b"dnt") or b"").strip() == b"1"


class ConsentResolver:
    """Turns a request's cookie and signals into the Consent the middleware enforces."""

    def __init__(self, config: Config, codec: ConsentCodec) -> None:
        self.config = config
        self.codec = codec
        self.version = config.policy.version
        self.all_purposes = frozenset(config.purposes)
        self.necessary = config.necessary_purposes
        self.sale_or_sharing = frozenset(p.id for p in config.purposes.values() if p.sale_or_sharing)
        self.partner_purposes: Mapping[str, tuple[str, ...]] = MappingProxyType(
            {pid: p.purposes for pid, p in config.partners.items()})
        self.opt_out = config.policy.default == "allow"

    def resolve(self, cookie_value: str | None, signal: bool) -> Consent:
        stored = self.codec.loads(cookie_value)
        if stored is not None and stored.policy_version != self.version:
            # No longer consent, but remembered: the same consent id links the visitor's history
            # in the ledger, and the old purposes tell what a refusal now has to clean up.
            return self._undecided(signal, stale=stored)
        if stored is None:
            return self._undecided(signal)
        chosen = (stored.granted & self.all_purposes) | self.necessary
        granted = chosen
        gpc = False
        # An explicit opt-in made on the preferences page overrides the browser signal.
        if signal and stored.source != "preferences":
            granted = chosen - self.sale_or_sharing
            gpc = True
        return Consent(consent_id=stored.consent_id, granted=granted, policy_version=self.version,
                       decided=True, given_at=stored.given_at, source=stored.source, gpc=gpc,
                       chosen=chosen, partner_purposes=self.partner_purposes)

    def _undecided(self, signal: bool, stale: StoredChoice | None = None) -> Consent:
        granted = self.all_purposes if self.opt_out else self.necessary
        if signal:
            granted = granted - self.sale_or_sharing
        return Consent(consent_id=stale.consent_id if stale else None, granted=granted,
                       policy_version=self.version, decided=False, gpc=signal,
                       stale_version=stale.policy_version if stale else None,
                       chosen=(stale.granted & self.all_purposes) if stale else frozenset(),
                       partner_purposes=self.partner_purposes)

    def choose(self, granted: Iterable[str], source: str, previous: Consent | None) -> tuple[Consent, str]:
        """Record a new choice: returns the Consent and the signed cookie value."""
        purposes = (frozenset(granted) & self.all_purposes) | self.necessary
        consent_id = previous.consent_id if previous and previous.consent_id else new_consent_id()
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        stored = StoredChoice(consent_id=consent_id, granted=purposes, policy_version=self.version,
                              source=source if source in _SOURCES else "api", given_at=now)
        consent = Consent(consent_id=consent_id, granted=purposes, policy_version=self.version,
                          decided=True, given_at=now, source=stored.source, chosen=purposes,
                          partner_purposes=self.partner_purposes)
        return consent, self.codec.dumps(stored)

