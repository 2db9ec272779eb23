"""The HTTP client partners are reached with: httpx2, one pool per partner, SSRF-safe.

The pool's network backend resolves the name itself, refuses every address that is not
public (``addresses.refusal``), connects to the address literal (TLS still verifies the
name: httpcore passes the origin host as SNI), and checks the address the socket is
actually connected to before a byte is written. A name that resolves to a private address,
or re-resolves to one later (DNS rebinding), gets a ConnectError. Proxies from the
environment are ignored (a proxy would hide the partner's address), redirects are never
followed, and response bodies are read up to a bound.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable

import httpcore2
import httpx2
from httpcore2 import AsyncNetworkBackend, AsyncNetworkStream

from middleware.forward.addresses import parse_ip, refusal

Resolver = Callable[[str, int], Awaitable[list[str]]]
#: What is read of a partner's answer; the rest is discarded unread.
MAX_RESPONSE_BYTES = 64 * 1024


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class AddressRefused(httpcore2.ConnectError):
    """The partner's host resolved, or connected, to an address a partner may not have."""


class GuardedBackend(AsyncNetworkBackend):
    def __init__(self, *, allow_loopback: bool = False, resolver: Resolver | None = None) -> None:
        self.allow_loopback = allow_loopback
        self.resolver = resolver or system_resolver
        self.inner = httpcore2.AnyIOBackend()

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
                          ) -> AsyncNetworkStream:
        literal = parse_ip(host)
        candidates = [str(literal)] if literal is not None else await self.resolver(host, port)
        reasons: list[str] = []
        last_error: Exception | None = None
        for address in candidates:
            addr = parse_ip(address)
            why = "unreadable address" if addr is None else refusal(
                addr, allow_loopback=self.allow_loopback)
            if why:
                reasons.append(why)
                continue
            try:
                stream = await self.inner.connect_tcp(address, port, timeout=timeout,
                                                      local_address=local_address,
                                                      socket_options=socket_options)
            except (httpcore2.ConnectError, httpcore2.ConnectTimeout, OSError) as exc:
                last_error = exc
                continue
            why = self._connected_refusal(stream)
            if why:
                await stream.aclose()
                reasons.append(why)
                continue
            return stream
        if last_error is not None and not reasons:
            raise httpcore2.ConnectError(str(last_error)) from last_error
        detail = "; ".join(reasons) or "no address"
        raise AddressRefused(f"refused to connect to {host}: {detail}")

    def _connected_refusal(self, stream: AsyncNetworkStream) -> str | None:
        peer = stream.get_extra_info("server_addr")
        addr = parse_ip(str(peer[0])) if isinstance(peer, tuple) and peer else None
        if addr is None:
            return "the connected address is unknown"
        why = refusal(addr, allow_loopback=self.allow_loopback)
        return f"connected to {why}" if why else None

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
                                  ) -> AsyncNetworkStream:
        raise AddressRefused("unix sockets are not partner endpoints")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class GuardedTransport(httpx2.AsyncHTTPTransport):
    def __init__(self, *, allow_loopback: bool = False, resolver: Resolver | None = None,
                 http2: bool = True, max_connections: int = 8,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore2.AsyncConnectionPool(
            ssl_context=ssl_context or httpx2.create_ssl_context(trust_env=False),
            max_connections=max_connections, max_keepalive_connections=max_connections,
            keepalive_expiry=30.0, http1=True, http2=http2,
            # request headers and body leave in two writes: no Nagle wait between them
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
            network_backend=GuardedBackend(allow_loopback=allow_loopback, resolver=resolver))


def make_client(*, timeout_s: float, allow_loopback: bool = False, resolver: Resolver | None = None,
                max_connections: int = 8, ssl_context: ssl.SSLContext | None = None) -> httpx2.AsyncClient:
    """One client (one connection pool) per partner. ``ssl_context``: the system's trust
    store by default (a test passes one that trusts its own certificate authority)."""
    try:
        import h2  # noqa: F401  (HTTP/2 where the partner offers it in ALPN)
        http2 = True
    except ImportError:
        http2 = False
    return httpx2.AsyncClient(
        transport=GuardedTransport(allow_loopback=allow_loopback, resolver=resolver, http2=http2,
                                   max_connections=max_connections, ssl_context=ssl_context),
        follow_redirects=False, trust_env=False,
        timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 5.0)))


async def read_bounded(response: httpx2.Response, limit: int = MAX_RESPONSE_BYTES) -> bytes:
    out = bytearray()
    async for chunk in response.aiter_raw():
        out += chunk[: limit - len(out)]
        if len(out) >= limit:
            break
    return bytes(out)
