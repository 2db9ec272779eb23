"""Which addresses a partner request may reach: public unicast only.

Checked twice: on the endpoint at start-up (scheme, host, a literal address), and on the
address a connection actually reached (``transport.py``), so a name that resolves, or
later re-resolves, to a private address (DNS rebinding) is refused all the same.

References: RFC 6890 (special-purpose registries), RFC 4291 2.5.5.2 (IPv4-mapped),
RFC 6052 (64:ff9b::/96), RFC 3056 (6to4), RFC 4380 (Teredo).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")
#: Cloud metadata services that are not in a link-local range (AWS IPv6, Alibaba).
_METADATA = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")})


class EndpointError(ValueError):
    """The endpoint or the address it reached is not one a partner request may go to."""


def parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def refusal(addr: IPAddress, *, allow_loopback: bool = False) -> str | None:
    """Why ``addr`` may not be contacted (None when it is public unicast)."""
    if isinstance(addr, ipaddress.IPv6Address):
        embedded = addr.ipv4_mapped or addr.sixtofour
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is None and addr.teredo is not None:
            embedded = addr.teredo[1]
        if embedded is not None:
            inner = refusal(embedded, allow_loopback=allow_loopback)
            return f"{addr} embeds {embedded}: {inner}" if inner else None
        if addr in _NAT64_LOCAL or addr in _SIX_TO_FOUR:
            return f"{addr} is a translation address"
    if addr.is_loopback:
        return None if allow_loopback else f"{addr} is a loopback address"
    if addr in _METADATA:
        return f"{addr} is a cloud metadata address"
    if addr.is_link_local:
        return f"{addr} is link-local (cloud metadata lives at 169.254.169.254)"
    if addr.is_private:
        return f"{addr} is a private address"
    if addr.is_multicast or addr.is_unspecified or addr.is_reserved:
        return f"{addr} is not a unicast address"
    if not addr.is_global:
        return f"{addr} is not a public address"
    return None


def check_endpoint(url: str, *, test_loopback: bool = False) -> None:
    """Raise EndpointError unless ``url`` is a fixed https endpoint a partner may be reached at.

    ``test_loopback``: plain http to a loopback host is allowed too (tests only)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise EndpointError(f"not a URL: {exc}") from None
    host = (parts.hostname or "").lower()
    if parts.username or parts.password:
        raise EndpointError("credentials do not belong in the URL; use credential_env")
    if parts.query or parts.fragment:
        raise EndpointError("expected no query or fragment (credentials go in credential_env)")
    if not host:
        raise EndpointError(f"expected https://HOST/..., got {url!r}")
    addr = parse_ip(host)
    loopback = host == "localhost" or (addr is not None and addr.is_loopback)
    if test_loopback:
        if not loopback:
            raise EndpointError("test_loopback = true allows only a loopback endpoint "
                                "(127.0.0.1, [::1], localhost)")
        if parts.scheme not in ("http", "https"):
            raise EndpointError(f"expected http:// or https://, got {url!r}")
        return
    if parts.scheme != "https":
        raise EndpointError(f"expected an https:// endpoint, got {url!r}")
    if loopback:
        raise EndpointError("a loopback endpoint needs test_loopback = true (tests only)")
    if addr is not None:
        why = refusal(addr)
        if why:
            raise EndpointError(why)
    elif "." not in host:
        raise EndpointError(f"expected a fully qualified host name, got {host!r}")
    if port is not None and not 1 <= port <= 65535:
        raise EndpointError(f"bad port {port}")
