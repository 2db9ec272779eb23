"""``[partners.ID.forward]``: how one partner receives server-side events, as a frozen value.

Read and checked at start-up: the kind, a fixed endpoint (https, a public host; loopback
only with ``test_loopback = true``), the credential's environment-variable name (never the
credential), and the allow-list of fields. A field that is not listed is never read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, TypeAlias, cast, get_args

from middleware.forward.addresses import EndpointError, check_endpoint

if TYPE_CHECKING:
    from middleware.config import Table

Kind: TypeAlias = Literal["ga4-measurement-protocol", "meta-conversions-api", "tiktok-events-api",
                          "webhook"]
KINDS: tuple[str, ...] = get_args(Kind)
Basis: TypeAlias = Literal["consent", "opt-out"]

#: Fields a forward may list in ``fields``. Event name and time are always sent.
FIELDS: tuple[str, ...] = (
    "event_id",        # the site's id (or a random one): partners dedupe on it
    "page_url",        # scheme, host and path; never the query or fragment
    "referrer_host",   # the referring site's host name only
    "ip",              # IPv4 /24 or IPv6 /48, never the whole address
    "ua_family",       # browser family and major version ("Chrome 124"), never the UA string
    "email_sha256",    # SHA-256 of the normalised e-mail, as the partner's spec says
    "phone_sha256",    # SHA-256 of the normalised phone number, as the partner's spec says
    "value",           # the conversion's value (a number)
    "currency",        # ISO 4217 code
    "order_id",        # the site's order / transaction id
)

DEFAULT_ENDPOINTS: Mapping[str, str] = {
    "ga4-measurement-protocol": "https://www.google-analytics.com/mp/collect",
    "meta-conversions-api": "https://graph.facebook.com/v21.0",
    "tiktok-events-api": "https://business-api.tiktok.com/open_api/v1.3/event/track/",
}
#: The account id each kind needs (GA4 measurement id, Meta pixel id, TikTok pixel code).
_ACCOUNT = {
    "ga4-measurement-protocol": re.compile(r"^G-[A-Z0-9]{4,20}$"),
    "meta-conversions-api": re.compile(r"^[0-9]{5,20}$"),
    "tiktok-events-api": re.compile(r"^[A-Z0-9]{10,30}$"),
}
#: Meta: event_source_url and client_user_agent are required for website events.
_REQUIRED_FIELDS = {"meta-conversions-api": ("page_url", "ua_family")}
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")
_EVENT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_COOKIE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_ACCOUNT_WHAT = {"ga4-measurement-protocol": "expected the GA4 measurement id (G-XXXXXXX)",
                 "meta-conversions-api": "expected the Meta pixel (dataset) id, digits",
                 "tiktok-events-api": "expected the TikTok pixel code"}


@dataclass(frozen=True)
class ForwardSpec:
    partner: str
    kind: Kind
    endpoint: str
    account: str = ""
    credential_env: str = ""
    fields: frozenset[str] = frozenset()
    #: Partner cookies forwarded (each only when the visitor consented to the partner).
    cookies: tuple[str, ...] = ()
    #: Events this partner may receive; empty means any.
    events: frozenset[str] = frozenset()
    #: "consent": only after an explicit choice; "opt-out": also an undecided visitor where the
    #: policy's default is "allow" and the visitor has not objected.
    basis: Basis = "consent"
    test_loopback: bool = False
    timeout_s: float = 10.0
    max_attempts: int = 12
    pass_gpc: bool = True
    #: Events waiting per partner before new ones are refused (bounded disk, bounded memory).
    max_pending: int = 100_000

    def allows(self, name: str) -> bool:
        return name in self.fields


def read_forward(t: Table, *, partner: str, partner_cookies: tuple[str, ...]) -> ForwardSpec:
    """A ``ForwardSpec`` from ``[partners.ID.forward]``; problems go to the table (key paths)."""
    from middleware.config import REQUIRED  # config imports this module: import at call time

    kind = t.choice("kind", KINDS)
    test_loopback = t.get("test_loopback", bool, False)

    def endpoint_ok(url: str) -> str | None:
        try:
            check_endpoint(url, test_loopback=test_loopback)
        except EndpointError as exc:
            return str(exc)
        return None

    endpoint = t.get("endpoint", str, DEFAULT_ENDPOINTS.get(kind, REQUIRED), check=endpoint_ok)
    pattern = _ACCOUNT.get(kind)
    account = t.get("account", str, REQUIRED if pattern else "", check=lambda v: None if (
        pattern is None or pattern.match(v)) else _ACCOUNT_WHAT[kind] + f", got {v!r}")
    credential_env = t.get(
        "credential_env", str, REQUIRED if kind != "webhook" else "",
        check=lambda v: None if _ENV.match(v) else
        "expected the NAME of an environment variable (A-Z, 0-9, _), never the secret itself")
    fields = t.str_list("fields", pattern=re.compile(r"^[a-z0-9_]+$"), what="a field name")
    for i, f in enumerate(fields):
        if f not in FIELDS:
            t.error(f"fields[{i}]", f"unknown field {f!r}; known: {', '.join(FIELDS)}")
    for name in _REQUIRED_FIELDS.get(kind, ()):
        if t.present and name not in fields and "fields" in t.data:
            t.error("fields", f"{kind} requires {name!r} for website events; add it to fields")
    cookies = t.str_list("cookies", pattern=_COOKIE, what="a cookie name")
    for i, c in enumerate(cookies):
        if c not in partner_cookies:
            t.error(f"cookies[{i}]", f"cookie {c!r} is not one of the partner's cookies "
                    f"({', '.join(partner_cookies) or 'none declared'}); add it to "
                    f"partners.{partner}.cookies")
    events = t.str_list("events", pattern=_EVENT, what="an event name (lowercase letters, digits, '_')")
    return ForwardSpec(
        partner=partner, kind=cast(Kind, kind), endpoint=endpoint, account=account,
        credential_env=credential_env, fields=frozenset(f for f in fields if f in FIELDS),
        cookies=tuple(c for c in cookies if c in partner_cookies), events=frozenset(events),
        basis=cast(Basis, t.choice("basis", ("consent", "opt-out"), "consent")),
        test_loopback=test_loopback,
        timeout_s=float(t.get("timeout_s", int if isinstance(t.data.get("timeout_s"), int) else float,
                              10.0, check=lambda v: None if 0.1 <= v <= 60
                              else "expected 0.1 to 60 seconds")),
        max_attempts=t.get("max_attempts", int, 12, check=lambda v: None if 1 <= v <= 100
                           else "expected 1 to 100"),
        pass_gpc=t.get("pass_gpc", bool, kind == "webhook"),
        max_pending=t.get("max_pending", int, 100_000, check=lambda v: None if 1 <= v <= 10_000_000
                          else "expected 1 to 10000000"))
