"""The event a site forwards, and the fields read from it and from the request.

Only fields the partner's allow-list names are read: each field has its own reader, and
a reader of a field that is not allowed is never called (the cookie header is not even
parsed when no partner cookie is allowed). Identifiers are hashed here, as each partner's
spec wants, so the plain values never reach the ledger or the outbox.

References: Meta customer information parameters (em: trimmed, lower-case; ph: digits with
country code), https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/
customer-information-parameters ;
GA4 user-provided data (gmail dots removed; phone in E.164),
https://developers.google.com/analytics/devguides/collection/ga4/uid-data ;
TikTok Events API 2.0 (email lower-case, phone E.164, SHA-256).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypedDict
from urllib.parse import urlsplit

from middleware.ledger.minimise import minimise_ip, ua_family

#: How a partner wants e-mail and phone normalised before hashing.
Hashing: TypeAlias = Literal["meta", "google", "tiktok"]


class EventData(TypedDict, total=False):
    """What site code may pass to ``forward()``; anything else is a TypeError."""

    event_id: str
    value: float
    currency: str
    order_id: str
    email: str
    phone: str
    #: The page the event happened on (default: the request's own URL or its Referer).
    page_url: str
    referrer: str


EVENT_KEYS: frozenset[str] = frozenset(EventData.__annotations__)
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")
_MAX_TEXT = 2048


class BadEvent(ValueError):
    """The event data does not match the schema (site code gets it raised; the browser a 400)."""


def check_event(name: str, data: Mapping[str, Any]) -> None:
    """Raise BadEvent naming the first key or value that is not allowed."""
    if not isinstance(name, str) or not re.match(r"^[a-z][a-z0-9_]{0,39}$", name):
        raise BadEvent(f"event name {name!r}: expected lowercase letters, digits, '_' (max 40)")
    for key, value in data.items():
        if key not in EVENT_KEYS:
            raise BadEvent(f"unknown event key {key!r}; known: {', '.join(sorted(EVENT_KEYS))}")
        if key == "value":
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                    -1e12 < value < 1e12):
                raise BadEvent("value: expected a number")
        elif not isinstance(value, str) or len(value) > _MAX_TEXT:
            raise BadEvent(f"{key}: expected a string (at most {_MAX_TEXT} characters)")
        elif key == "currency" and not _CURRENCY.match(value):
            raise BadEvent("currency: expected an ISO 4217 code like 'EUR'")
        elif key in ("event_id", "order_id") and not _ID.match(value):
            raise BadEvent(f"{key}: expected 1-100 characters of A-Z a-z 0-9 . _ : -")


# -- normalisation ---------------------------------------------------------------------

def normal_email(email: str, hashing: Hashing) -> str | None:
    e = email.strip().lower()
    if e.count("@") != 1 or len(e) > 254:
        return None
    local, domain = e.split("@")
    if not local or "." not in domain:
        return None
    if hashing == "google" and domain in ("gmail.com", "googlemail.com"):
        local = local.replace(".", "")
    return f"{local}@{domain}"


def normal_phone(phone: str, hashing: Hashing) -> str | None:
    """E.164 digits: ``+15551234567`` for Google and TikTok, ``15551234567`` for Meta.

    Only numbers written with their country code (a leading ``+`` or ``00``) are used: a
    national number cannot be turned into E.164 without guessing the country."""
    p = phone.strip()
    if p.startswith("00"):
        p = "+" + p[2:]
    if not p.startswith("+"):
        return None
    digits = re.sub(r"[\s().\-/]", "", p[1:])
    if not digits.isdecimal():  # "²" is a digit to str.isdigit, not a decimal one
        return None
    digits = "".join(str(int(c)) for c in digits)  # other scripts' digits, as ASCII
    if not 8 <= len(digits) <= 15 or digits[0] == "0":
        return None
    return digits if hashing == "meta" else "+" + digits


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def page_url(url: str) -> str | None:
    """Scheme, host and path: never the query, the fragment or userinfo."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host:
        return None
    netloc = host if port is None else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}{parts.path or '/'}"


def referrer_host(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host or None


# -- reading ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """Where fields come from: the site's data and lazily read request facts."""

    data: Mapping[str, Any]
    client_ip: Callable[[], str | None]
    user_agent: Callable[[], str]
    request_url: Callable[[], str | None]
    referer: Callable[[], str | None]
    cookie: Callable[[str], str | None]


Reader = Callable[[Source, Hashing], Any]


def _email(src: Source, h: Hashing) -> str | None:
    v = src.data.get("email")
    n = normal_email(v, h) if isinstance(v, str) else None
    return sha256_hex(n) if n else None


def _phone(src: Source, h: Hashing) -> str | None:
    v = src.data.get("phone")
    n = normal_phone(v, h) if isinstance(v, str) else None
    return sha256_hex(n) if n else None


def _page(src: Source, h: Hashing) -> str | None:
    given = src.data.get("page_url")
    url = given if isinstance(given, str) else (src.request_url() or src.referer())
    return page_url(url) if url else None


def _referrer(src: Source, h: Hashing) -> str | None:
    given = src.data.get("referrer")
    url = given if isinstance(given, str) else src.referer()
    return referrer_host(url) if url else None


def _ip(src: Source, h: Hashing) -> str | None:
    net = minimise_ip(src.client_ip(), "truncate")
    return net.split("/")[0] if net else None


READERS: Mapping[str, Reader] = {
    "event_id": lambda src, h: src.data.get("event_id"),
    "page_url": _page,
    "referrer_host": _referrer,
    "ip": _ip,
    "ua_family": lambda src, h: ua_family(src.user_agent()),
    "email_sha256": _email,
    "phone_sha256": _phone,
    "value": lambda src, h: src.data.get("value"),
    "currency": lambda src, h: src.data.get("currency"),
    "order_id": lambda src, h: src.data.get("order_id"),
}
#: Which data key feeds which field (to name what the site gave but the partner may not get).
_FIELD_OF_KEY = {"email": "email_sha256", "phone": "phone_sha256", "page_url": "page_url",
                 "referrer": "referrer_host", "event_id": "event_id", "value": "value",
                 "currency": "currency", "order_id": "order_id"}


@dataclass(frozen=True)
class Extracted:
    values: Mapping[str, Any]            # field name -> value, only allowed, only present
    not_allowed: tuple[str, ...]         # fields the site gave that the allow-list refuses


def extract(allowed: frozenset[str], cookies: tuple[str, ...], src: Source,
            hashing: Hashing) -> Extracted:
    """Read the allowed fields (and consented partner cookies) and nothing else."""
    values: dict[str, Any] = {}
    for name in sorted(allowed):
        value = READERS[name](src, hashing)
        if value is not None:
            values[name] = value
    for c in cookies:
        v = src.cookie(c)
        if v and len(v) <= 512:
            values[f"cookie.{c}"] = v
    refused = sorted({_FIELD_OF_KEY[k] for k in src.data if _FIELD_OF_KEY.get(k) not in allowed})
    return Extracted(values=values, not_allowed=tuple(refused))
