"""Concurrent HTTP load against a real server, for the ledger/server tests.

    with LoadRunner(srv.url, "/articles/kyoto-autumn", clients=32, requests_per_client=10,
                    headers={"cookie": cookie}) as load:
        load.wait()
    for r in load.results: ...

Every request gets a unique ``?n=<number>`` query string so that a response can be linked
to the ledger rows written for it (with ``[ledger] keep_query = true``). Each client is its
own ``httpx2.AsyncClient`` with keep-alive off: every request is a new TCP connection, so the
kernel spreads them over the server's worker processes and a dead worker only costs the
requests it was serving. The load runs in a thread with its own event loop, so the test can
kill processes while it goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Self

import httpx2

__all__ = ["LoadRunner", "Result"]


@dataclass(frozen=True)
class Result:
    n: int
    path: str  # path with its query string, as sent
    started: float  # time.monotonic()
    finished: float
    status: int | None = None  # None: no complete response (connection reset, timeout, ...)
    body: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.status == 200


class LoadRunner:
    """``clients`` concurrent clients GET ``path?n=<unique>``.

    Each client stops after ``requests_per_client`` requests (None: no limit) or when
    ``stop()`` is called, whichever comes first.
    """

    def __init__(
        self,
        base_url: str,
        path: str,
        *,
        clients: int = 32,
        requests_per_client: int | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url
        self.path = path
        self.clients = clients
        self.requests_per_client = requests_per_client
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.results: list[Result] = []
        self._counter = itertools.count(1)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._crash: BaseException | None = None

    # -- control -----------------------------------------------------------------------
    def start(self) -> Self:
        self._thread = threading.Thread(target=self._main, name="load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def wait(self, timeout: float = 60.0) -> None:
        assert self._thread is not None, "not started"
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(self.timeout + 5)
            raise TimeoutError(f"load did not finish within {timeout}s")
        if self._crash is not None:
            raise RuntimeError("the load generator itself failed") from self._crash

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)

    # -- views -------------------------------------------------------------------------
    def snapshot(self) -> list[Result]:
        with self._lock:
            return list(self.results)

    def ok_since(self, t: float) -> int:
        """Complete 200 responses to requests started at or after ``t`` (monotonic)."""
        return sum(1 for r in self.snapshot() if r.ok and r.started >= t)

    # -- the thread --------------------------------------------------------------------
    def _main(self) -> None:
        try:
            asyncio.run(self._run_all())
        except BaseException as exc:  # reported by wait()
            self._crash = exc

    async def _run_all(self) -> None:
        await asyncio.gather(*(self._client() for _ in range(self.clients)))

    async def _client(self) -> None:
        limits = httpx2.Limits(max_connections=1, max_keepalive_connections=0)
        async with httpx2.AsyncClient(base_url=self.base_url, headers=self.headers,
                                      timeout=self.timeout, limits=limits, trust_env=False) as c:
            done = 0
            while not self._stop.is_set():
                if self.requests_per_client is not None and done >= self.requests_per_client:
                    return
                done += 1
                n = next(self._counter)
                path = f"{self.path}?n={n}"
                t0 = time.monotonic()
                try:
                    r = await c.get(path)
                    body = r.text  # the whole body was read: a short body raises above
                    res = Result(n, path, t0, time.monotonic(), r.status_code, body)
                except httpx2.HTTPError as exc:
                    res = Result(n, path, t0, time.monotonic(), error=f"{type(exc).__name__}: {exc}")
                with self._lock:
                    self.results.append(res)
