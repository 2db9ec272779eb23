"""Small header helpers shared by the middleware and its routes (raw ASGI header lists)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from http.cookies import CookieError, SimpleCookie

RawHeaders = Iterable[tuple[bytes, bytes]]


def header_value(headers: RawHeaders, name: bytes) -> bytes | None:
    """The first value of ``name`` (lowercase) or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def client_key(scope: Mapping[str, object], trust_proxy: bool) -> str:
    """Whom a rate limit charges: the client's IPv4 address or IPv6 /64 (the first
    ``X-Forwarded-For`` address with ``trust_proxy``; what an attacker rotates cheaply
    within a /64 counts once)."""
    client = scope.get("client")
    ip = str(client[0]) if isinstance(client, tuple | list) and client else ""
    if trust_proxy:
        headers = scope.get("headers", ())
        forwarded = header_value(headers, b"x-forwarded-for") if isinstance(headers, Iterable) else None
        if forwarded:
            ip = forwarded.decode("latin-1").split(",")[0].strip() or ip
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def cookie_value(headers: RawHeaders, name: str) -> str | None:
    """The value of cookie ``name`` from the Cookie header(s); None when absent or unparsable."""
    prefix = name.encode("latin-1") + b"="
    for key, value in headers:
        if key != b"cookie" or prefix not in value:
            continue
        # Fast path without SimpleCookie: split on ';' like browsers send it.
        for part in value.split(b";"):
            part = part.strip()
            if part.startswith(prefix):
                raw = part[len(prefix):]
                try:
                    text = raw.decode("ascii")
                except UnicodeDecodeError:
                    return None
                if len(text) >= 2 and text[0] == text[-1] == '"':
                    try:
                        parsed: SimpleCookie = SimpleCookie()
                        parsed.load(f"{name}={text}")
                        return parsed[name].value
                    except (CookieError, KeyError):
                        return None
                return text
    return None


def merge_vary(existing: str | None, names: Iterable[str]) -> str:
    """``existing`` plus ``names``, case-insensitively deduplicated; ``*`` absorbs everything."""
    items = [v.strip() for v in (existing or "").split(",") if v.strip()]
    if "*" in items:
        return "*"
    seen = {v.lower() for v in items}
    for name in names:
        if name.lower() not in seen:
            items.append(name)
            seen.add(name.lower())
    return ", ".join(items)


def private_cache_control(existing: str | None) -> str:
    """Make a consent-dependent response unfit for shared caches, keeping stricter app choices."""
    directives = [d.strip() for d in (existing or "").split(",") if d.strip()]
    lowered = [d.lower() for d in directives]
    if "no-store" in lowered or "private" in lowered:
        return ", ".join(directives)
    kept = [d for d in directives
            if d.lower() != "public" and not d.lower().startswith("s-maxage")]
    return ", ".join(["private", *kept])


_LINK_ENTRY = re.compile(r"\s*<([^>]*)>([^,]*)")


def gated_link(value: str, blocked: Callable[[str], bool]) -> str | None:
    """A ``Link`` header value without the entries whose target ``blocked`` says a partner the
    visitor has not consented to (preload, preconnect and prefetch act before any HTML is
    parsed, and preconnect is governed by no CSP directive). None when nothing is left.
    An entry we cannot parse is dropped (fail closed)."""
    kept: list[str] = []
    pos = 0
    while pos < len(value):
        m = _LINK_ENTRY.match(value, pos)
        if m is None:
            comma = value.find(",", pos)
            pos = len(value) if comma < 0 else comma + 1
            continue
        if not blocked(m.group(1)):
            kept.append(m.group(0).strip())
        pos = m.end() + 1
    return ", ".join(kept) if kept else None
