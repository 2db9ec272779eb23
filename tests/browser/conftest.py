"""Fixtures for real-browser tests: recording proxy, Chromium, context/page, servers.

See README.md in this folder.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # `tests.support` must import however pytest was started
    sys.path.insert(0, _ROOT)

from tests.support import browser as _browser  # noqa: E402
from tests.support.proxy import RecordingProxy  # noqa: E402
from tests.support.servers import ServerProcess, start_command, start_uvicorn  # noqa: E402

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

_HERE = Path(__file__).resolve().parent
_SESSION: _browser.PlaywrightSession | None = None

DEFAULT_CONTEXT: dict[str, Any] = {
    "viewport": {"width": 1280, "height": 800},
    "locale": "en-US",
    "java_script_enabled": True,
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.browser)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _browser.TIMINGS:
        return
    terminalreporter.section("browser timings")
    for name, values in _browser.TIMINGS.items():
        n = len(values)
        terminalreporter.write_line(
            f"{name:28s} n={n:<3d} total={sum(values):6.2f}s  mean={sum(values) / n:6.3f}s  "
            f"max={max(values):6.3f}s"
        )


@pytest.fixture(scope="session")
def recording_proxy() -> Iterator[RecordingProxy]:
    """The session's RecordingProxy (cleared before each browser test)."""
    with RecordingProxy() as proxy:
        yield proxy


@pytest.fixture(scope="session")
def _playwright_session(recording_proxy: RecordingProxy) -> Iterator[_browser.PlaywrightSession]:
    global _SESSION
    reason = _browser.browser_unavailable_reason()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"browser tests cannot run in CI: {reason}")
        pytest.skip(f"browser tests skipped: {reason}")
    session = _browser.PlaywrightSession(recording_proxy.address)
    _SESSION = session
    try:
        yield session
    finally:
        _SESSION = None
        session.close()


@pytest.fixture(scope="session")
def chromium(_playwright_session: _browser.PlaywrightSession) -> Browser:
    """Headless Chromium, launched once per session behind ``recording_proxy``."""
    return _playwright_session.browser


@pytest.fixture(autouse=True)
def _browser_test_guard(
    recording_proxy: RecordingProxy, request: pytest.FixtureRequest
) -> Iterator[None]:
    """Per test: fresh proxy records; playwright's loop marked running only while a test
    that uses the browser runs (see PlaywrightSession)."""
    uses_browser = "_playwright_session" in request.fixturenames
    if uses_browser and _SESSION is not None:
        _SESSION.resume()
    recording_proxy.clear()
    try:
        yield
    finally:
        if _SESSION is not None:
            _SESSION.suspend()


@pytest.fixture
def context(chromium: Browser, request: pytest.FixtureRequest) -> Iterator[BrowserContext]:
    """A fresh browser context (no cookies). Options via indirect parametrisation:

    @pytest.mark.parametrize("context", [{"java_script_enabled": False}], indirect=True)
    """
    options = {**DEFAULT_CONTEXT, **getattr(request, "param", {})}
    t0 = time.perf_counter()
    ctx = chromium.new_context(**options)
    _browser.record_timing("new context", time.perf_counter() - t0)
    try:
        yield ctx
    finally:
        ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    """A page in ``context``; default timeout 10 s (everything is local)."""
    p = context.new_page()
    p.set_default_timeout(10_000)
    return p


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``start_server("pkg.mod:app", env={...})`` (uvicorn) or
    ``start_server(argv=[...,"--port","{port}"])``; stopped at test end."""
    started: list[ServerProcess] = []

    def start(app: str | None = None, *, argv: list[str] | None = None, **kw: Any) -> ServerProcess:
        if (app is None) == (argv is None):
            raise TypeError("give either an app import string or argv")
        srv = start_uvicorn(app, **kw) if app is not None else start_command(argv or [], **kw)
        started.append(srv)
        _browser.record_timing("server start", srv.startup_seconds or 0.0)
        return srv

    try:
        yield start
    finally:
        for srv in reversed(started):
            srv.__exit__(None, None, None)


@pytest.fixture(scope="session")
def sample_site() -> Iterator[ServerProcess]:
    """tests/support/sample_site.py under uvicorn (one per session)."""
    with start_uvicorn("tests.support.sample_site:app", log_level="warning") as srv:
        _browser.record_timing("server start", srv.startup_seconds or 0.0)
        yield srv
