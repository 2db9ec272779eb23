"""Data minimisation for what the ledger keeps about a visitor: network and browser family.

References: GDPR Art. 5(1)(c) (data minimisation), Art. 25 (data protection by design).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from typing import Literal, TypeAlias

IpMode: TypeAlias = Literal["truncate", "hash", "none"]

_HASH_HEX_CHARS = 16  # 64 bits: enough to tell visitors apart in an audit, short to store


def minimise_ip(ip: str | None, mode: IpMode = "truncate", key: bytes | None = None) -> str | None:
    """Return the IP as the ledger keeps it, or None when it is not an IP (never raises).

    ``truncate``: IPv4 -> its /24 (``203.0.113.0/24``), IPv6 -> its /48; an IPv4-mapped
    IPv6 address counts as IPv4. ``hash``: keyed HMAC-SHA256 of the address, truncated
    (``h:`` + 16 hex chars); without a key it falls back to ``truncate`` because an
    unkeyed hash of 2**32 addresses is trivially reversed. ``none``: keep nothing.
    """
    if mode == "none" or not isinstance(ip, str):
        return None
    try:
        addr = ipaddress.ip_address(ip.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    if mode == "hash" and key:
        digest = hmac.new(key, addr.packed, hashlib.sha256).hexdigest()
        return "h:" + digest[:_HASH_HEX_CHARS]
    if mode not in ("truncate", "hash"):
        return None
    prefix = 24 if addr.version == 4 else 48
    net = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
    return str(net)


_BOT = re.compile(
    r"bot\b|crawler|spider|slurp|headless|lighthouse|pingdom|python-requests|curl/|wget/|"
    r"httpx|go-http-client|java/|facebookexternalhit|preview",
    re.IGNORECASE,
)
# Order matters: Edge and Opera also say "Chrome", Chrome also says "Safari".
_FAMILIES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Edge", re.compile(r"\bEdg(?:e|A|iOS)?/(\d+)")),
    ("Opera", re.compile(r"\bOPR/(\d+)")),
    ("Samsung Internet", re.compile(r"\bSamsungBrowser/(\d+)")),
    ("Firefox", re.compile(r"\b(?:Firefox|FxiOS)/(\d+)")),
    ("Chrome", re.compile(r"\b(?:Chrome|CriOS)/(\d+)")),
    ("Safari", re.compile(r"\bVersion/(\d+)(?:\.\d+)*(?: Mobile/\w+)? Safari/")),
)


def ua_family(user_agent: str | None) -> str:
    """Browser family and major version (``Chrome 124``), ``bot`` or ``other``; never the UA."""
    if not user_agent or not isinstance(user_agent, str):
        return "other"
    ua = user_agent[:512]
    if _BOT.search(ua):
        return "bot"
    for name, pattern in _FAMILIES:
        m = pattern.search(ua)
        if m:
            return f"{name} {int(m.group(1))}"
    if "Safari/" in ua and "AppleWebKit/" in ua:
        return "Safari"
    return "other"
