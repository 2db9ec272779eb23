"""A recording HTTP proxy on loopback that answers every request itself.

Chromium is started with ``--proxy-server=127.0.0.1:PORT`` pointing here, so every
request to a non-loopback host ends up in :attr:`RecordingProxy.requests` instead of on
the network. The proxy never opens an outbound connection:

* ``CONNECT host:443`` (https, wss): recorded, answered ``403`` and closed. Chromium
  fails the request at once with ``ERR_TUNNEL_CONNECTION_FAILED`` and does not retry.
* ``GET http://host/path`` (absolute URI, plain http): recorded, answered with a tiny
  body: a 1x1 GIF for image-like paths, an empty script for ``.js``, ``204`` otherwise.
  Request bodies (beacons) are read and recorded, up to :data:`MAX_BODY` bytes.

Use it from sync code: it runs its own asyncio loop in a daemon thread.

    with RecordingProxy() as proxy:
        ...  # launch Chromium with f"--proxy-server={proxy.address}"
        proxy.mark("home")
        page.goto(url)
        assert proxy.hosts(since="home") == {"partner.example"}
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from typing import NamedTuple, Self
from urllib.parse import urlsplit

__all__ = ["GIF_1X1", "MAX_BODY", "Mark", "RecordedRequest", "RecordingProxy"]

GIF_1X1 = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
JS_BODY = b"/* answered by RecordingProxy */\n"
MAX_HEAD = 64 * 1024
MAX_BODY = 64 * 1024
IDLE_TIMEOUT_S = 30.0
_IMAGE_SUFFIXES = (".gif", ".png", ".jpg", ".jpeg", ".webp", ".ico", ".svg")


class RecordedRequest(NamedTuple):
    """One request seen by the proxy. The first four fields are (time, method, host, path)."""

    time: float  # time.monotonic() when the request head was complete
    method: str  # "CONNECT", "GET", "POST", ...
    host: str  # lower-case host name, no port, no brackets
    path: str  # path with query for http; "" for CONNECT
    port: int  # 443 for CONNECT to https, 80 for plain http unless given
    scheme: str  # "https" (CONNECT: could be wss or any TLS) or "http"
    headers: tuple[tuple[str, str], ...]  # as sent, names lower-cased
    body: bytes  # request body (truncated to MAX_BODY)
    mark: str | None  # label of the last mark() before this request

    @property
    def url(self) -> str:
        if self.method == "CONNECT":
            return f"{self.scheme}://{self.host}:{self.port}"
        default = 80 if self.scheme == "http" else 443
        netloc = self.host if self.port == default else f"{self.host}:{self.port}"
        if ":" in self.host:
            netloc = f"[{self.host}]" if self.port == default else f"[{self.host}]:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}"

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Mark(NamedTuple):
    time: float
    label: str
    index: int  # number of requests recorded before the mark


def _split_host_port(authority: str, default_port: int) -> tuple[str, int]:
    authority = authority.strip()
    if authority.startswith("["):  # [v6]:port
        host, _, rest = authority[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host.lower(), port
    host, sep, port_s = authority.rpartition(":")
    if sep and port_s.isdigit():
        return host.lower(), int(port_s)
    return authority.lower(), default_port


class RecordingProxy:
    """HTTP proxy on 127.0.0.1 that records and answers every request itself."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._want_port = port
        self.port = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._requests: list[RecordedRequest] = []
        self._marks: list[Mark] = []
        self._errors: list[str] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.connections = 0  # TCP connections accepted (for diagnostics)

    # ------------------------------------------------------------------ lifecycle
    @property
    def address(self) -> str:
        """``host:port`` for ``--proxy-server``."""
        return f"{self.host}:{self.port}"

    @property
    def chromium_arg(self) -> str:
        return f"--proxy-server=http://{self.address}"

    def start(self) -> Self:
        if self._thread is not None:
            raise RuntimeError("RecordingProxy already started")
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="recording-proxy", daemon=True
        )
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start_server(), loop)
        try:
            fut.result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    async def _start_server(self) -> None:
        self._server = await asyncio.start_server(
            self._on_connection, self.host, self._want_port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if loop.is_running():
            fut = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(Exception):
                fut.result(timeout=10)
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not loop.is_running():
            loop.close()
        self._loop = None
        self._thread = None
        self._server = None

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ records
    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot (copy) of everything recorded since the last clear()."""
        with self._lock:
            return list(self._requests)

    @property
    def marks(self) -> list[Mark]:
        with self._lock:
            return list(self._marks)

    @property
    def errors(self) -> list[str]:
        """Protocol problems the proxy saw (malformed requests); should stay empty."""
        with self._lock:
            return list(self._errors)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._marks.clear()
            self._errors.clear()

    def mark(self, label: str) -> Mark:
        """Start a new section (e.g. one page view); later requests carry ``mark=label``."""
        with self._lock:
            if any(m.label == label for m in self._marks):
                raise ValueError(f"mark {label!r} already used since the last clear()")
            m = Mark(time.monotonic(), label, len(self._requests))
            self._marks.append(m)
            return m

    def since(self, label: str | None = None) -> list[RecordedRequest]:
        """Requests recorded after mark ``label`` (all of them for ``None``)."""
        with self._lock:
            if label is None:
                return list(self._requests)
            for m in self._marks:
                if m.label == label:
                    return self._requests[m.index :]
            raise KeyError(f"no mark {label!r}; marks: {[m.label for m in self._marks]}")

    def section(self, label: str) -> list[RecordedRequest]:
        """Requests recorded while ``label`` was the latest mark (up to the next mark)."""
        self.since(label)  # raises KeyError for an unknown mark
        with self._lock:
            return [r for r in self._requests if r.mark == label]

    def hosts(self, since: str | None = None, *, section: str | None = None) -> set[str]:
        """Hosts requested after mark ``since`` (or all), or only within mark ``section``."""
        reqs = self.section(section) if section is not None else self.since(since)
        return {r.host for r in reqs}

    def urls(self, since: str | None = None) -> list[str]:
        return [r.url for r in self.since(since)]

    def wait_for(
        self,
        predicate: Callable[[list[RecordedRequest]], bool],
        timeout: float = 5.0,
    ) -> list[RecordedRequest]:
        """Block until ``predicate(requests)`` is true; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._requests)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"proxy: condition not met within {timeout}s; "
                        f"recorded: {[r.url for r in self._requests]}"
                    )
                self._changed.wait(left)
            return list(self._requests)

    def wait_for_hosts(self, hosts: Iterable[str], timeout: float = 5.0) -> None:
        want = set(hosts)
        self.wait_for(lambda reqs: want <= {r.host for r in reqs}, timeout)

    def wait_quiet(self, quiet: float = 0.25, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until no request arrived for ``quiet`` seconds (late beacons, timers)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                last = self._requests[-1].time if self._requests else 0.0
                now = time.monotonic()
                if now - last >= quiet:
                    return list(self._requests)
                if now >= deadline:
                    raise TimeoutError(f"proxy still busy after {timeout}s")
                self._changed.wait(min(quiet - (now - last), deadline - now))

    def _record(self, req: RecordedRequest) -> RecordedRequest:
        with self._changed:
            mark = self._marks[-1].label if self._marks else None
            req = req._replace(mark=mark)
            self._requests.append(req)
            self._changed.notify_all()
            return req

    def _error(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)

    # ------------------------------------------------------------------ protocol
    def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await asyncio.wait_for(self._one_request(reader, writer), IDLE_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass  # idle preconnect or client went away: nothing to record
        except asyncio.LimitOverrunError:
            self._error("request head too large")
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD:
            raise asyncio.LimitOverrunError("head", len(head))
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            self._error(f"bad request line: {lines[0]!r}")
            await self._answer(writer, 400, b"")
            return
        method, target, _version = parts
        headers = tuple(
            (name.strip().lower(), value.strip())
            for name, _, value in (ln.partition(":") for ln in lines[1:] if ln)
        )
        now = time.monotonic()

        if method == "CONNECT":
            host, port = _split_host_port(target, 443)
            self._record(RecordedRequest(now, method, host, "", port, "https", headers, b"", None))
            await self._answer(writer, 403, b"", reason="Forbidden (recording proxy)")
            return

        body = b""
        length = next((v for k, v in headers if k == "content-length"), None)
        if length is not None and length.isdigit():
            n = int(length)
            body = await reader.readexactly(min(n, MAX_BODY))
            if n > MAX_BODY:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(reader.readexactly(n - MAX_BODY), 5)
        elif any(k == "transfer-encoding" for k, _ in headers):
            body = await self._read_chunked(reader)

        split = urlsplit(target)
        if split.scheme not in ("http", "ws") or not split.hostname:
            self._error(f"not an absolute http URI: {method} {target}")
            await self._answer(writer, 400, b"")
            return
        host = split.hostname.lower()
        port = split.port or 80
        path = split.path or "/"
        if split.query:
            path += "?" + split.query
        self._record(RecordedRequest(now, method, host, path, port, "http", headers, body, None))

        lower = split.path.lower()
        if method == "HEAD":
            await self._answer(writer, 204, b"")
        elif lower.endswith(_IMAGE_SUFFIXES) or "pixel" in lower:
            await self._answer(writer, 200, GIF_1X1, content_type="image/gif")
        elif lower.endswith((".js", ".mjs")):
            await self._answer(writer, 200, JS_BODY, content_type="text/javascript")
        else:
            await self._answer(writer, 204, b"")

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # (no trailers expected)
                return bytes(out[:MAX_BODY])
            chunk = await reader.readexactly(size + 2)
            if len(out) < MAX_BODY:
                out += chunk[:-2]

    @staticmethod
    async def _answer(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        *,
        content_type: str | None = None,
        reason: str | None = None,
    ) -> None:
        reasons = {200: "OK", 204: "No Content", 400: "Bad Request", 403: "Forbidden"}
        lines = [f"HTTP/1.1 {status} {reason or reasons.get(status, 'Status')}"]
        if content_type:
            lines.append(f"Content-Type: {content_type}")
        if status != 204:
            lines.append(f"Content-Length: {len(body)}")
        lines += ["Cache-Control: no-store", "Connection: close", "", ""]
        writer.write("\r\n".join(lines).encode("latin-1") + body)
        await writer.drain()
