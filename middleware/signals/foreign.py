"""Other consent tools' cookies, read as a consent source when a site adopts consent-gate.

Each parser turns one tool's cookie into the set of that tool's categories the visitor
granted, or None when the cookie does not parse: an unreadable cookie is no consent. The
TOML maps our purposes to the categories they need (all of them). Parsers never raise.

Formats (as the tools write them): OneTrust ``OptanonConsent`` (a query string whose
``groups`` is ``C0001:1,C0002:0``); Cookiebot ``CookieConsent`` (a URL-encoded JS object
literal ``{necessary:true,marketing:false,...}``, or ``-1`` where no consent is required);
Klaro ``klaro`` (URL-encoded JSON ``{"service": true}``); cookieconsent v3 ``cc_cookie``
(JSON with a ``categories`` list); the TCF ``euconsent-v2`` string (granted TCF purposes).
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from . import tcf

Tool = Literal["tcf", "onetrust", "cookiebot", "klaro", "cookieconsent"]
TOOLS: tuple[Tool, ...] = ("tcf", "onetrust", "cookiebot", "klaro", "cookieconsent")
DEFAULT_COOKIES: Mapping[Tool, str] = {
    "tcf": "euconsent-v2", "onetrust": "OptanonConsent", "cookiebot": "CookieConsent",
    "klaro": "klaro", "cookieconsent": "cc_cookie",
}
_MAX = 8192
_ONETRUST_GROUP = re.compile(r"^([A-Za-z0-9_-]{1,32}):([01])$")
_COOKIEBOT_FIELD = re.compile(
    r"(?:^|[{,])\s*(necessary|preferences|statistics|marketing)\s*:\s*(true|false)\b")


def _unquote(value: str) -> str:
    return urllib.parse.unquote(value.strip().strip('"'))


def parse_onetrust(value: str) -> frozenset[str] | None:
    fields = urllib.parse.parse_qs(value.strip().strip('"'), keep_blank_values=True)
    groups = fields.get("groups")
    if not groups:
        return None
    granted: set[str] = set()
    for item in groups[0].split(","):
        m = _ONETRUST_GROUP.match(item.strip())
        if m is None:
            return None
        if m.group(2) == "1":
            granted.add(m.group(1))
    return frozenset(granted)


def parse_cookiebot(value: str) -> frozenset[str] | None:
    text = _unquote(value)
    if text == "-1":  # Cookiebot: "no consent required here": it records no choice, so no grant
        return None
    if not text.startswith("{") or not text.endswith("}"):
        return None
    found = dict(_COOKIEBOT_FIELD.findall(text))
    if "marketing" not in found and "statistics" not in found:
        return None
    return frozenset(k for k, v in found.items() if v == "true")


def _json_object(value: str) -> object:
    for candidate in (value.strip(), _unquote(value)):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def parse_klaro(value: str) -> frozenset[str] | None:
    data = _json_object(value)
    if not isinstance(data, dict) or not all(isinstance(v, bool) for v in data.values()):
        return None
    return frozenset(str(k) for k, v in data.items() if v)


def parse_cookieconsent(value: str) -> frozenset[str] | None:
    data = _json_object(value)
    if not isinstance(data, dict):
        return None
    categories = data.get("categories")
    if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
        return None
    return frozenset(categories)


def parse_tcf(value: str) -> frozenset[str] | None:
    decoded = tcf.read(value.strip())
    if decoded is None:
        return None
    return frozenset(str(p) for p in decoded.purpose_consents)


PARSERS: Mapping[Tool, Callable[[str], frozenset[str] | None]] = {
    "tcf": parse_tcf, "onetrust": parse_onetrust, "cookiebot": parse_cookiebot,
    "klaro": parse_klaro, "cookieconsent": parse_cookieconsent,
}


@dataclass(frozen=True)
class ForeignSource:
    """One tool the TOML adopts: its cookie and, per purpose of ours, the categories it needs."""

    tool: Tool
    cookie: str
    purposes: Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class ForeignConsent:
    tool: Tool
    #: Our purposes the foreign choice grants (empty when the cookie did not parse).
    granted: frozenset[str]
    parsed: bool


def read_foreign(source: ForeignSource, value: str | None) -> ForeignConsent | None:
    """None when the cookie is absent; an unparsable cookie grants nothing."""
    if value is None:
        return None
    categories: frozenset[str] | None = None
    if len(value) <= _MAX:
        try:
            categories = PARSERS[source.tool](value)
        except Exception:  # a parser bug must not become a 500: no consent instead
            categories = None
    if categories is None:
        return ForeignConsent(source.tool, frozenset(), parsed=False)
    granted = frozenset(p for p, needed in source.purposes.items()
                        if needed and all(c in categories for c in needed))
    return ForeignConsent(source.tool, granted, parsed=True)
