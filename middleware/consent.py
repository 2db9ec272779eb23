"""The visitor's consent: an immutable value, its signed cookie codec, and browser signals.

Fail closed: any doubt about a cookie (bad signature, expired, for another policy
version, malformed, oversized) means the visitor has not decided, never an error.

References: Global Privacy Control, https://privacycg.github.io/gpc-spec/ (``Sec-GPC: 1``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from .config import Config
from .signals import gpp, tcf
from .signals.jurisdiction import Jurisdiction
from .signals.reader import RequestSignals
from .signals.reprompt import max_age_days
from .signals.tcf_gate import vendor_verdict

logger = logging.getLogger("consent_gate")

#: Browsers keep cookies up to 4096 bytes; anything longer was not written by us.
MAX_COOKIE_LENGTH = 4096
_VERIFIED_CACHE_SIZE = 10_000
#: Resolved consents remembered per (cookie value, browser signal, request signals).
_RESOLVED_CACHE_SIZE = 4096
#: A remembered consent is given up this long before the cookie's expiry or re-prompt date.
_DEADLINE_MARGIN_S = 1.0

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
    #: Where the visitor is and which ``[jurisdictions]`` rule applied (None: no rules configured).
    jurisdiction: Jurisdiction | None = None
    #: Partners whose TCF vendor the TC string does not allow (GDPR regions only).
    tcf_blocked: frozenset[str] = frozenset()
    #: Google tags under Consent Mode "advanced": they load before consent, told "denied".
    consent_mode_partners: frozenset[str] = frozenset()
    #: The TC string a registered CMP wrote, when it decoded (for macros and the ledger).
    tc: tcf.TCString | None = field(default=None, compare=False, repr=False)
    #: The GPP string partners get here: another tool's, or the usnat one we built.
    gpp: gpp.GppString | None = field(default=None, compare=False, repr=False)

    def allows(self, purpose: str) -> bool:
        """True when ``purpose`` is granted (strictly necessary purposes always are)."""
        return purpose in self.granted

    def allows_partner(self, partner_id: str) -> bool:
        """True when every purpose of the partner is granted; unknown partners never are."""
        purposes = self.partner_purposes.get(partner_id)
        return (bool(purposes) and all(p in self.granted for p in purposes or ())
                and partner_id not in self.tcf_blocked)

    @functools.cached_property
    def allowed_partners(self) -> frozenset[str]:
        return frozenset(pid for pid in self.partner_purposes
                         if self.allows_partner(pid) or pid in self.consent_mode_partners)

    @property
    def needs_banner(self) -> bool:
        return not self.decided and self.stance != "notice-only"

    @property
    def stance(self) -> str | None:
        return self.jurisdiction.stance if self.jurisdiction is not None else None


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

    def __init__(self, keys: Iterable[str], *, max_age_seconds: int,
                 now: Callable[[], dt.datetime] | None = None) -> None:
        """``now``: the clock cookies are signed by and expire on (aware UTC; default the
        system's). A test passes one it moves instead of sleeping past ``max_age_seconds``."""
        ordered = list(keys)
        if not ordered:
            raise ValueError("at least one signing key is needed")
        # itsdangerous signs with the *last* key of the list; its signer reads the time
        # through get_timestamp (its hook for this), given ``now`` when there is one.
        self._serializer = URLSafeTimedSerializer(
            list(reversed(ordered)), salt=self.salt,
            signer=TimestampSigner if now is None else _signer_on(now))
        self._now = _utc_now if now is None else now
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
            age = self._now() - known.given_at
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


_utc_now = functools.partial(dt.datetime.now, dt.UTC)


def _signer_on(now: Callable[[], dt.datetime]) -> type[TimestampSigner]:
    """A TimestampSigner whose time is ``now()`` (itsdangerous reads it in get_timestamp)."""

    class ClockSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(now().timestamp())

    return ClockSigner


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


def _signals_key(signals: RequestSignals) -> tuple[object, ...] | bool:
    """What a Consent depends on in the request signals: the decisions and the raw strings
    (each decoded value is a pure function of its raw string). False: not keyable (a
    decoded string without its raw text), so not remembered."""
    tc, gpp_string = signals.tc, signals.gpp
    if (tc is not None and not tc.raw) or (gpp_string is not None and not gpp_string.raw):
        return False
    return (signals.jurisdiction, tc.raw if tc is not None else None,
            gpp_string.raw if gpp_string is not None else None, signals.foreign)


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for key, value in headers:
        if key == name:
            return value
    return None


def privacy_signal(headers: Iterable[tuple[bytes, bytes]], *, honor_gpc: bool, honor_dnt: bool) -> bool:
    """True when the browser asks not to have its data sold or shared.

    Only the exact value "1" counts (GPC spec); DNT only when the site opted to honour it.
    """
    items = headers if isinstance(headers, list | tuple) else list(headers)
    if honor_gpc and (_header(items, b"sec-gpc") or b"").strip() == b"1":
        return True
    return honor_dnt and (_header(items, b"dnt") or b"").strip() == b"1"


class ConsentResolver:
    """Turns a request's cookie and signals into the Consent the middleware enforces.

    Order: our own cookie wins; else a configured foreign tool's cookie (unparsable: no
    consent); else the default of the visitor's jurisdiction (opt-in: necessary only).
    GPC then removes sale/sharing purposes; TCF vendors the TC string refuses are blocked
    where GDPR applies; US-style regions get a usnat GPP string.
    """

    def __init__(self, config: Config, codec: ConsentCodec, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.codec = codec
        self.clock = clock
        #: (cookie value, signal, what the request signals decode to) -> (Consent, valid until).
        #: The Consent is a pure function of the key and of the time only through the cookie's
        #: expiry and re-prompt dates, so an entry is kept only for a verified cookie (or none)
        #: and only until a margin before the first of those dates.
        self._resolved: OrderedDict[tuple[object, ...], tuple[Consent, float]] = OrderedDict()
        self.version = config.policy.version
        self.all_purposes = frozenset(config.purposes)
        self.necessary = config.necessary_purposes
        self.sale_or_sharing = frozenset(p.id for p in config.purposes.values() if p.sale_or_sharing)
        self.partner_purposes: Mapping[str, tuple[str, ...]] = MappingProxyType(
            {pid: p.purposes for pid, p in config.partners.items()})
        self.opt_out = config.policy.default == "allow"
        self.reprompt = config.policy.reprompt_after_days
        gvl = config.tcf.gvl
        # Partner -> (vendor id, TCF purposes, special features); purposes from the GVL when omitted.
        self.tcf_partners: dict[str, tuple[int, tuple[int, ...], tuple[int, ...]]] = {}
        for pid, partner in config.partners.items():
            s = partner.signals
            if s.tcf_vendor_id is None:
                continue
            purposes = s.tcf_purposes
            if not purposes and gvl is not None and s.tcf_vendor_id in gvl.vendors:
                v = gvl.vendors[s.tcf_vendor_id]
                purposes = tuple(sorted(v.purposes | v.leg_int_purposes))
            self.tcf_partners[pid] = (s.tcf_vendor_id, purposes, s.tcf_special_features)
        self._tcf_verdicts: OrderedDict[str, frozenset[str]] = OrderedDict()
        # Consent Mode "advanced" is the owner's explicit choice: Google tags run before consent.
        self.advanced = frozenset(pid for pid, p in config.partners.items() if p.signals.google_tag
                                  ) if config.consent_mode.mode == "advanced" else frozenset()
        self._gpp_strings: dict[tuple[frozenset[str], bool], gpp.GppString] = {}

    def resolve(self, cookie_value: str | None, signal: bool,
                signals: RequestSignals | None = None) -> Consent:
        key = (cookie_value, signal, None if signals is None else _signals_key(signals))
        known = self._resolved.get(key) if key[2] is not False else None
        if known is not None:
            if self.clock() < known[1]:
                return known[0]
            del self._resolved[key]
        stored = self.codec.loads(cookie_value)
        consent = self._resolve(stored, signal, signals)
        if signals is not None:
            consent = self._with_signals(consent, signals, signal)
        if key[2] is not False and (stored is not None or not cookie_value):
            # (a cookie that did not verify is not kept: it may be one signed "in the future")
            until = self._valid_until(stored, signals)
            if until > self.clock():
                self._resolved[key] = (consent, until)
                if len(self._resolved) > _RESOLVED_CACHE_SIZE:
                    self._resolved.popitem(last=False)
        return consent

    def _valid_until(self, stored: StoredChoice | None, signals: RequestSignals | None) -> float:
        """Until when resolving the same inputs gives the same Consent: forever without a
        cookie; else until the cookie expires or (if still ahead) the decision is re-asked."""
        if stored is None:
            return float("inf")
        given = stored.given_at.timestamp()
        until = given + self.codec.max_age_seconds
        where = signals.jurisdiction if signals is not None else None
        days = self._reprompt_days(where)
        if days is not None and given + days * 86400 > self.clock():
            until = min(until, given + days * 86400)
        return until - _DEADLINE_MARGIN_S

    def _resolve(self, stored: StoredChoice | None, signal: bool,
                 signals: RequestSignals | None) -> Consent:
        where = signals.jurisdiction if signals is not None else None
        opt_out = where.stance != "opt-in" if where is not None else self.opt_out
        if stored is not None and stored.policy_version != self.version:
            # No longer consent, but remembered: the same consent id links the visitor's history
            # in the ledger, and the old purposes tell what a refusal now has to clean up.
            return self._undecided(signal, opt_out, stale=stored)
        if stored is not None and self._expired(stored, where):
            # Asked again, as a regulator wants after this long; the id still links the history.
            return dataclasses.replace(self._undecided(signal, opt_out, stale=stored),
                                       stale_version=None)
        if stored is None:
            foreign = signals.foreign if signals is not None else None
            if foreign is not None:
                return self._foreign(foreign.granted if foreign.parsed else None, foreign.tool, signal)
            return self._undecided(signal, opt_out)
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

    def _reprompt_days(self, where: Jurisdiction | None) -> int | None:
        """``[policy.reprompt_after_days]`` here (None: no maximum age)."""
        if not self.reprompt:
            return None
        opt_in = where.opt_in if where is not None else not self.opt_out
        return max_age_days(self.reprompt, where.region if where is not None else None,
                            tcf=bool(self.tcf_partners) and opt_in)

    def _expired(self, stored: StoredChoice, where: Jurisdiction | None) -> bool:
        """The decision is older than ``[policy.reprompt_after_days]`` allows here."""
        days = self._reprompt_days(where)
        if days is None:
            return False
        return dt.datetime.now(dt.UTC) - stored.given_at > dt.timedelta(days=days)

    def _foreign(self, granted: frozenset[str] | None, tool: str, signal: bool) -> Consent:
        if granted is None:  # the tool's cookie is there but unreadable: no consent, ask again
            return Consent(consent_id=None, granted=self.necessary, policy_version=self.version,
                           decided=False, gpc=signal, partner_purposes=self.partner_purposes)
        chosen = (granted & self.all_purposes) | self.necessary
        return Consent(consent_id=None, granted=chosen - self.sale_or_sharing if signal else chosen,
                       policy_version=self.version, decided=True, source=f"foreign:{tool}", gpc=signal,
                       chosen=chosen, partner_purposes=self.partner_purposes)

    def _undecided(self, signal: bool, opt_out: bool, stale: StoredChoice | None = None) -> Consent:
        granted = self.all_purposes if opt_out else self.necessary
        if signal:
            granted = granted - self.sale_or_sharing
        return Consent(consent_id=stale.consent_id if stale else None, granted=granted,
                       policy_version=self.version, decided=False, gpc=signal,
                       stale_version=stale.policy_version if stale else None,
                       chosen=(stale.granted & self.all_purposes) if stale else frozenset(),
                       partner_purposes=self.partner_purposes)

    def _with_signals(self, consent: Consent, signals: RequestSignals, signal: bool) -> Consent:
        where = signals.jurisdiction
        gdpr = where.opt_in if where is not None else not self.opt_out
        blocked = self._tcf_blocked(signals.tc) if gdpr and self.tcf_partners else frozenset()
        gpp_string = signals.gpp
        if gpp_string is None and self.config.gpp.enabled and not gdpr:
            gpp_string = self.usnat(consent.granted, signal)
        return dataclasses.replace(consent, jurisdiction=where, tcf_blocked=blocked,
                                   tc=signals.tc if gdpr else None, gpp=gpp_string,
                                   consent_mode_partners=self.advanced)

    def _tcf_blocked(self, tc: tcf.TCString | None) -> frozenset[str]:
        key = tc.raw if tc is not None else ""
        known = self._tcf_verdicts.get(key)
        if known is not None:
            self._tcf_verdicts.move_to_end(key)
            return known
        gvl = self.config.tcf.gvl
        blocked = frozenset(pid for pid, (vendor, purposes, features) in self.tcf_partners.items()
                            if not vendor_verdict(tc, vendor, purposes, gvl, features).allowed)
        self._tcf_verdicts[key] = blocked
        if len(self._tcf_verdicts) > _VERIFIED_CACHE_SIZE:
            self._tcf_verdicts.popitem(last=False)
        return blocked

    def usnat(self, granted: frozenset[str], gpc: bool) -> gpp.GppString:
        """The GPP string (usnat) for these grants: opted out of sale, sharing and targeted ads
        unless every sale/sharing purpose is granted; the notices are the ones we show."""
        key = (granted & self.sale_or_sharing, gpc)
        built = self._gpp_strings.get(key)
        if built is None:
            opted_out = not self.sale_or_sharing <= granted
            choice = gpp.OPTED_OUT if opted_out else gpp.DID_NOT_OPT_OUT
            section = gpp.UsNat(sharing_notice=gpp.YES, sale_opt_out_notice=gpp.YES,
                                sharing_opt_out_notice=gpp.YES, targeted_advertising_opt_out_notice=gpp.YES,
                                sale_opt_out=choice, sharing_opt_out=choice,
                                targeted_advertising_opt_out=choice, mspa_covered_transaction=gpp.NO,
                                gpc=gpc)
            built = gpp.decode(gpp.encode(section))
            self._gpp_strings[key] = built
        return built

    def choose(self, granted: Iterable[str], source: str, previous: Consent | None) -> tuple[Consent, str]:
        """Record a new choice: returns the Consent and the signed cookie value."""
        purposes = (frozenset(granted) & self.all_purposes) | self.necessary
        consent_id = previous.consent_id if previous and previous.consent_id else new_consent_id()
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        stored = StoredChoice(consent_id=consent_id, granted=purposes, policy_version=self.version,
                              source=source if source in _SOURCES else "api", given_at=now)
        consent = Consent(consent_id=consent_id, granted=purposes, policy_version=self.version,
                          decided=True, given_at=now, source=stored.source, chosen=purposes,
                          partner_purposes=self.partner_purposes,
                          jurisdiction=previous.jurisdiction if previous else None,
                          tcf_blocked=previous.tcf_blocked if previous else frozenset(),
                          tc=previous.tc if previous else None)
        return consent, self.codec.dumps(stored)
