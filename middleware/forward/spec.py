"""``[partners.ID.forward]``: how one partner receives server-side events, as a frozen value.

Read and checked at start-up: the kind, a fixed endpoint (https, a public host; loopback
only with ``test_loopback = true``), the credential's environment-variable name (never the
credential), and the allow-list of fields. A field that is not listed is never read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, cast, get_args

from middleware.errors import ConfigError
from middleware.forward.addresses import EndpointError, check_endpoint

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
_ENV = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")
_EVENT = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_COOKIE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_KEYS = frozenset({"kind", "endpoint", "account", "credential_env", "fields", "cookies", "events",
                   "basis", "test_loopback", "timeout_s", "max_attempts", "pass_gpc", "max_pending"})


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


def parse_forward(source: str, key_path: str, data: Any, *, partner: str,
                  partner_cookies: tuple[str, ...]) -> ForwardSpec:
    """A ``ForwardSpec`` from the TOML table at ``key_path``; ConfigError naming the key."""

    def err(key: str, expected: str) -> ConfigError:
        return ConfigError(source, f"{key_path}.{key}" if key else key_path, expected)

    if not isinstance(data, Mapping):
        raise err("", "expected a table ([partners.ID.forward])")
    for key in data:
        if key not in _KEYS:
            raise err(str(key), "unknown key; known: " + ", ".join(sorted(_KEYS)))

    def get(key: str, kind: type, default: Any) -> Any:
        value = data.get(key, default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise err(key, f"expected {kind.__name__}, got {value!r}")
        return value

    def strs(key: str, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list):
            raise err(key, f"expected an array of {what}")
        for i, v in enumerate(value):
            if not isinstance(v, str) or not pattern.match(v):
                raise err(f"{key}[{i}]", f"expected {what}, got {v!r}")
        return tuple(value)

    kind = get("kind", str, "")
    if kind not in KINDS:
        raise err("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
    test_loopback = get("test_loopback", bool, False)
    endpoint = get("endpoint", str, DEFAULT_ENDPOINTS.get(kind, ""))
    if not endpoint:
        raise err("endpoint", "a webhook needs an endpoint (https://host/path)")
    try:
        check_endpoint(endpoint, test_loopback=test_loopback)
    except EndpointError as exc:
        raise err("endpoint", str(exc)) from None
    account = get("account", str, "")
    if kind in _ACCOUNT and not _ACCOUNT[kind].match(account):
        raise err("account", {"ga4-measurement-protocol": "expected the GA4 measurement id (G-XXXXXXX)",
                              "meta-conversions-api": "expected the Meta pixel (dataset) id, digits",
                              "tiktok-events-api": "expected the TikTok pixel code"}[kind]
                  + f", got {account!r}")
    credential_env = get("credential_env", str, "")
    if credential_env and not _ENV.match(credential_env):
        raise err("credential_env", "expected an environment variable name (A-Z, 0-9, _), not a secret")
    if kind != "webhook" and not credential_env:
        raise err("credential_env", "expected the name of the environment variable holding the "
                  "partner's secret (api secret / access token)")
    fields = strs("fields", re.compile(r"^[a-z0-9_]+$"), "a field name")
    for i, f in enumerate(fields):
        if f not in FIELDS:
            raise err(f"fields[{i}]", f"unknown field {f!r}; known: {', '.join(FIELDS)}")
    cookies = strs("cookies", _COOKIE, "a cookie name")
    for i, c in enumerate(cookies):
        if c not in partner_cookies:
            raise err(f"cookies[{i}]", f"cookie {c!r} is not one of the partner's declared cookies "
                      f"({', '.join(partner_cookies) or 'none'}); list it in partners.{partner}.cookies")
    events = strs("events", _EVENT, "an event name (lowercase letters, digits, '_')")
    basis = get("basis", str, "consent")
    if basis not in ("consent", "opt-out"):
        raise err("basis", f"expected 'consent' or 'opt-out', got {basis!r}")
    timeout_s = get("timeout_s", float, 10.0)
    if not 0.1 <= timeout_s <= 60:
        raise err("timeout_s", "expected 0.1 to 60 seconds")
    max_attempts = get("max_attempts", int, 12)
    if not 1 <= max_attempts <= 100:
        raise err("max_attempts", "expected 1 to 100")
    max_pending = get("max_pending", int, 100_000)
    if not 1 <= max_pending <= 10_000_000:
        raise err("max_pending", "expected 1 to 10000000")
    return ForwardSpec(
        partner=partner, kind=cast(Kind, kind), endpoint=endpoint, account=account,
        credential_env=credential_env, fields=frozenset(fields), cookies=cookies,
        events=frozenset(events), basis=cast(Basis, basis), test_loopback=test_loopback,
        timeout_s=timeout_s, max_attempts=max_attempts,
        pass_gpc=get("pass_gpc", bool, kind == "webhook"), max_pending=max_pending)
