"""Headless Chromium (Debian's, via playwright's *sync* API) behind a RecordingProxy.

The fixtures in ``tests/browser/conftest.py`` wrap these helpers; use them directly only
for special cases (e.g. a second browser with a net log).

Network rules: the browser talks only to loopback. Loopback requests go direct (Chromium
bypasses a proxy for loopback by default, ``<-loopback>`` is implicit); everything else
goes to the RecordingProxy, which answers itself. As a second fence, Chromium's own host
resolver maps every name except loopback to NOTFOUND, so no DNS query leaves the machine
(Chromium resolves page hosts itself even with a proxy set, see README.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.servers import REPO_ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

    from tests.support.proxy import RecordedRequest, RecordingProxy

__all__ = [
    "BASE_FLAGS",
    "CHROMIUM_PATH",
    "SAFETY_FLAGS",
    "SCREENSHOT_DIR",
    "TIMINGS",
    "VIEWPORTS",
    "PlaywrightSession",
    "browser_unavailable_reason",
    "chromium_args",
    "netlog_violations",
    "screenshot",
    "visit",
]

CHROMIUM_PATH = os.environ.get("CONSENT_GATE_CHROMIUM", "/usr/bin/chromium")

# Required by the workplace rules, always passed.
BASE_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

# Extra fences and noise suppression (see README.md for why each is here).
SAFETY_FLAGS: tuple[str, ...] = (
    # No DNS for anything but loopback; the proxy is an IP literal so it is unaffected.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    # WebRTC must not send UDP around the proxy.
    "--force-webrtc-ip-handling-policy=disable_non_proxied_udp",
    # Chromium itself calls accounts.google.com (ListAccounts, retried with backoff) and
    # update.googleapis.com (an on-demand component) despite the flags above. Both would
    # be caught by the proxy, but they would show up in the records: point them at a
    # closed loopback port instead. (Do not pass --disable-features/--enable-features:
    # a second occurrence replaces playwright's own list.)
    "--gaia-url=http://127.0.0.1:9",
    "--component-updater=url-source=http://127.0.0.1:9/",
)

VIEWPORTS: Mapping[str, tuple[int, int]] = {"desktop": (1280, 800), "mobile": (375, 812)}
SCREENSHOT_DIR = Path(
    os.environ.get("CONSENT_GATE_SCREENSHOTS", REPO_ROOT / "test-artifacts" / "screenshots")
)

# Filled by the fixtures, printed in pytest's terminal summary.
TIMINGS: dict[str, list[float]] = {}


def record_timing(name: str, seconds: float) -> None:
    TIMINGS.setdefault(name, []).append(seconds)


def browser_unavailable_reason() -> str | None:
    """Why browser tests cannot run here, or None."""
    if not Path(CHROMIUM_PATH).exists():
        return f"Chromium not found at {CHROMIUM_PATH} (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the venv
        return f"playwright is not installed: {exc}"
    return None


def chromium_args(proxy_address: str, *, extra: Iterable[str] = ()) -> list[str]:
    """Full ``args`` for ``chromium.launch``: base flags, proxy, safety flags, extras."""
    return [*BASE_FLAGS, f"--proxy-server=http://{proxy_address}", *SAFETY_FLAGS, *extra]


class PlaywrightSession:
    """Owns ``sync_playwright()`` and one Chromium; keeps asyncio usable between tests.

    The sync API leaves its own event loop marked as *running* in the calling thread
    between calls (so that its dispatcher greenlet can resume). Left like that,
    ``asyncio.run()``, anyio or pytest-asyncio tests that run later in the same
    process fail with "cannot be called from a running event loop". ``suspend()``
    clears the mark after each browser test, ``resume()`` restores it before the next.
    """

    def __init__(self, proxy_address: str, *, extra_args: Sequence[str] = ()) -> None:
        from playwright.sync_api import sync_playwright

        t0 = time.perf_counter()
        self.playwright: Playwright = sync_playwright().start()
        self._loop = asyncio.get_running_loop()  # playwright's, marked running
        t1 = time.perf_counter()
        try:
            self.browser: Browser = self.playwright.chromium.launch(
                executable_path=CHROMIUM_PATH,
                headless=True,
                args=chromium_args(proxy_address, extra=extra_args),
            )
        except BaseException:
            self.playwright.stop()
            raise
        t2 = time.perf_counter()
        record_timing("playwright driver start", t1 - t0)
        record_timing("chromium launch", t2 - t1)

    def resume(self) -> None:
        current = asyncio._get_running_loop()
        if current is None:
            asyncio._set_running_loop(self._loop)
        elif current is not self._loop:
            raise RuntimeError(
                "another asyncio loop is running in this thread; the playwright sync API "
                "cannot be used from an async test (use the async API there)"
            )

    def suspend(self) -> None:
        if asyncio._get_running_loop() is self._loop:
            asyncio._set_running_loop(None)

    def close(self) -> None:
        self.resume()
        try:
            self.browser.close()
        finally:
            self.playwright.stop()
            self.suspend()


def visit(
    page: Page,
    proxy: RecordingProxy,
    url: str,
    *,
    label: str | None = None,
    quiet: float = 0.25,
    wait_until: Any = "load",
) -> list[RecordedRequest]:
    """One page view: ``proxy.mark(label)``, ``page.goto(url)``, wait until the proxy is
    quiet, return what the proxy recorded for this view."""
    label = label or f"visit {url} @{time.monotonic():.6f}"
    proxy.mark(label)
    t0 = time.perf_counter()
    response = page.goto(url, wait_until=wait_until)
    record_timing("page view (goto)", time.perf_counter() - t0)
    if response is not None and response.status >= 500:
        raise AssertionError(f"{url} answered {response.status}")
    proxy.wait_quiet(quiet)
    record_timing("page view (visit, incl. quiet)", time.perf_counter() - t0)
    return proxy.section(label)


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")
    if not slug:
        raise ValueError(f"bad screenshot name {name!r}")
    return slug


def screenshot(
    page: Page,
    name: str,
    *,
    sizes: Mapping[str, tuple[int, int]] = VIEWPORTS,
    full_page: bool = True,
    directory: Path | None = None,
) -> list[Path]:
    """Save ``{name}-{W}x{H}.png`` for each viewport (1280x800 and 375x812 by default).

    Resizes the viewport of ``page`` (not a mobile emulation: no touch, no mobile UA;
    make a context with ``is_mobile=True`` for that) and restores it afterwards.
    """
    out_dir = directory or SCREENSHOT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    paths = []
    try:
        for width, height in sizes.values():
            page.set_viewport_size({"width": width, "height": height})
            path = out_dir / f"{_slug(name)}-{width}x{height}.png"
            page.screenshot(path=str(path), full_page=full_page)
            paths.append(path)
    finally:
        if before is not None:
            page.set_viewport_size(before)
    return paths


_LOOPBACK = re.compile(r"^(\[::1\]|127\.\d+\.\d+\.\d+|localhost)(:\d+)?$")
_LOOPBACK_NAMES = re.compile(
    r"^(https?://)?(localhost|127\.\d+\.\d+\.\d+|\[::1\]|~notfound)(:\d+)?$"
)


def netlog_violations(path: str | os.PathLike[str]) -> list[str]:
    """Parse a Chromium net log (``--log-net-log=PATH``, written when the browser closes)
    and list every attempt to reach a non-loopback address: TCP connects, UDP sockets
    that sent data, and host names handed to a resolver (other than loopback names and
    ``~notfound``, the result of ``--host-resolver-rules``).

    A UDP ``connect()`` that sends nothing is not traffic: Chromium does one to
    ``[2001:4860:4860::8888]:443`` to learn whether IPv6 is routable.
    """
    data = json.loads(Path(path).read_text())
    names = {v: k for k, v in data["constants"]["logEventTypes"].items()}
    udp_peer: dict[int, str] = {}
    udp_sent: set[int] = set()
    problems: list[str] = []
    for event in data["events"]:
        kind = names.get(event["type"], str(event["type"]))
        params = event.get("params") or {}
        source = event["source"]["id"]
        if kind == "TCP_CONNECT_ATTEMPT" and "address" in params:
            if not _LOOPBACK.match(params["address"]):
                problems.append(f"TCP connect to {params['address']}")
        elif kind in ("UDP_CONNECT", "SOCKET_CONNECT") and "address" in params:
            udp_peer[source] = params["address"]
        elif kind in ("UDP_BYTES_SENT", "SOCKET_BYTES_SENT"):
            udp_sent.add(source)
        elif (
            kind == "HOST_RESOLVER_MANAGER_REQUEST"
            and "host" in params
            and not _LOOPBACK_NAMES.match(params["host"])
        ):
            problems.append(f"host resolution of {params['host']}")
    for source, address in udp_peer.items():
        if source in udp_sent and not _LOOPBACK.match(address):
            problems.append(f"UDP data to {address}")
    return problems
