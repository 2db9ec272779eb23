"""Small header helpers shared by the middleware and its routes (raw ASGI header lists)."""

from __future__ import annotations

from collections.abc import Iterable
from http.cookies import CookieError, SimpleCookie

RawHeaders = Iterable[tuple[bytes, bytes]]


def header_value(headers: RawHeaders, name: bytes) -> bytes | None:
    """The first value of ``name`` (lowercase) or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


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
