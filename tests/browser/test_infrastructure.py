"""Self-test of the browser test infrastructure: proxy, servers, Chromium flags."""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support import browser as support_browser
from tests.support.browser import PlaywrightSession, netlog_violations, screenshot, visit
from tests.support.proxy import GIF_1X1, RecordingProxy
from tests.support.servers import (
    ServerProcess,
    ServerStartError,
    free_port,
    start_command,
    start_uvicorn,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

PARTNER_HOSTS = {"partner.example", "pixel.example", "cdn.example"}


def _http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as resp:  # loopback only
        return bytes(resp.read())


def _hits(site: ServerProcess) -> list[str]:
    return list(json.loads(_http_get(site.url + "/_hits")))


def _raw(proxy: RecordingProxy, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


# --------------------------------------------------------------------- proxy alone
def test_proxy_answers_and_records_without_going_out() -> None:
    with RecordingProxy() as proxy:
        proxy.mark("one")
        r1 = _raw(
            proxy, b"CONNECT partner.example:443 HTTP/1.1\r\nHost: partner.example:443\r\n\r\n"
        )
        assert r1.startswith(b"HTTP/1.1 403")
        r2 = _raw(
            proxy,
            b"GET http://pixel.example/p.gif?a=1 HTTP/1.1\r\nHost: pixel.example\r\n"
            b"Referer: http://127.0.0.1/\r\n\r\n",
        )
        assert r2.startswith(b"HTTP/1.1 200") and r2.endswith(GIF_1X1)
        proxy.mark("two")
        r3 = _raw(
            proxy,
            b"POST http://beacon.example:8080/b HTTP/1.1\r\nHost: beacon.example:8080\r\n"
            b"Content-Length: 5\r\n\r\nhello",
        )
        assert r3.startswith(b"HTTP/1.1 204")
        reqs = proxy.requests
        assert [r[:4][1:] for r in reqs] == [
            ("CONNECT", "partner.example", ""),
            ("GET", "pixel.example", "/p.gif?a=1"),
            ("POST", "beacon.example", "/b"),
        ]
        assert reqs[0].url == "https://partner.example:443"
        assert reqs[1].header("referer") == "http://127.0.0.1/"
        assert reqs[2].body == b"hello" and reqs[2].port == 8080
        assert proxy.hosts(section="one") == {"partner.example", "pixel.example"}
        assert proxy.hosts(since="two") == {"beacon.example"}
        assert proxy.errors == []
        proxy.clear()
        assert proxy.requests == [] and proxy.hosts() == set()
    with pytest.raises(KeyError):
        proxy.since("nope")


# --------------------------------------------------------------------- servers
def test_server_helper_env_cwd_and_failure(tmp_path: Path) -> None:
    with start_uvicorn(
        "tests.support.sample_site:app", env={"SAMPLE_SITE_FLAVOUR": "matcha"}
    ) as srv:
        assert json.loads(_http_get(srv.url + "/_env")) == {"SAMPLE_SITE_FLAVOUR": "matcha"}
        assert srv.startup_seconds is not None
    assert srv.proc is not None and srv.proc.poll() is not None

    with pytest.raises(ServerStartError, match="nope_module"):
        start_uvicorn("nope_module:app", startup_timeout=10)

    (tmp_path / "hello.txt").write_text("hi")
    argv = [sys.executable, "-m", "http.server", "{port}", "--bind", "{host}"]
    with start_command(argv, cwd=tmp_path) as srv2:
        assert _http_get(srv2.url + "/hello.txt") == b"hi"
    assert isinstance(free_port(), int)


# --------------------------------------------------------------------- browser
def test_partner_hosts_go_through_proxy_and_loopback_goes_direct(
    page: Page, recording_proxy: RecordingProxy, sample_site: ServerProcess
) -> None:
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    before = len(_hits(sample_site))

    reqs = visit(page, recording_proxy, sample_site.url + "/", label="home")
    recording_proxy.wait_for_hosts(PARTNER_HOSTS)

    assert page.text_content("#title") == "Sample site (JS on)"
    assert recording_proxy.hosts(section="home") == PARTNER_HOSTS
    by_host = {r.host: r for r in recording_proxy.section("home")}
    assert {(h, r.method, r.path) for h, r in by_host.items()} == {
        ("partner.example", "CONNECT", ""),  # https: tunnel refused, never fetched
        ("pixel.example", "GET", "/p.gif"),
        ("cdn.example", "GET", "/y.js"),  # //cdn.example from an http page
    }
    # The loopback page and its same-origin image came directly, not via the proxy.
    assert not any(r.host in ("127.0.0.1", "localhost") for r in reqs)
    assert _hits(sample_site)[before:][:2] == ["/", "/local.gif"]
    # Everything the page asked for off loopback is accounted for by the proxy.
    off_loopback = {u.split("/")[2].split(":")[0] for u in seen if "127.0.0.1" not in u}
    assert off_loopback == PARTNER_HOSTS


def test_localhost_name_also_bypasses_proxy(
    page: Page, recording_proxy: RecordingProxy, sample_site: ServerProcess
) -> None:
    visit(page, recording_proxy, f"http://localhost:{sample_site.port}/blank", label="lh")
    assert page.title() == "blank"
    assert recording_proxy.requests == []


@pytest.mark.parametrize("context", [{"java_script_enabled": False}], indirect=True)
def test_without_javascript_only_the_image_is_fetched(
    page: Page, recording_proxy: RecordingProxy, sample_site: ServerProcess
) -> None:
    visit(page, recording_proxy, sample_site.url + "/", label="nojs", quiet=0.5)
    assert page.text_content("#title") == "Sample site"  # inline script did not run
    assert page.is_visible("#noscript")
    assert recording_proxy.hosts() == {"pixel.example"}


def test_screenshot_helper(page: Page, sample_site: ServerProcess, tmp_path: Path) -> None:
    page.goto(sample_site.url + "/")
    paths = screenshot(page, "infra sample/home", full_page=False, directory=tmp_path)
    sizes = []
    for path in paths:
        head = path.read_bytes()[:24]
        assert head[:8] == b"\x89PNG\r\n\x1a\n"
        sizes.append(struct.unpack(">II", head[16:24]))
    assert sizes == [(1280, 800), (375, 812)]
    assert [p.name for p in paths] == [
        "infra-sample-home-1280x800.png",
        "infra-sample-home-375x812.png",
    ]
    assert page.viewport_size == {"width": 1280, "height": 800}  # restored
    screenshot(page, "infrastructure-sample")  # the real folder, for a look


def test_page_view_timing(
    page: Page, recording_proxy: RecordingProxy, sample_site: ServerProcess
) -> None:
    durations = []
    for i in range(5):
        t0 = time.perf_counter()
        visit(page, recording_proxy, sample_site.url + "/", label=f"view {i}", quiet=0.1)
        durations.append(time.perf_counter() - t0)
    # Generous bound for 2 slow cores; typical is well under 0.5 s including the quiet wait.
    assert max(durations) < 5, durations


def test_netlog_shows_no_traffic_off_loopback(
    _playwright_session: PlaywrightSession,
    recording_proxy: RecordingProxy,
    sample_site: ServerProcess,
    tmp_path: Path,
) -> None:
    """A second Chromium with a net log: every TCP connect goes to 127.0.0.1, no name
    but loopback reaches a resolver, no UDP datagram leaves."""
    netlog = tmp_path / "netlog.json"
    browser = _playwright_session.playwright.chromium.launch(
        executable_path=support_browser.CHROMIUM_PATH,
        headless=True,
        args=support_browser.chromium_args(
            recording_proxy.address, extra=[f"--log-net-log={netlog}"]
        ),
    )
    try:
        for js in (True, False):
            ctx = browser.new_context(java_script_enabled=js)
            pg = ctx.new_page()
            visit(pg, recording_proxy, sample_site.url + "/", label=f"js={js}")
            pg.goto(f"http://localhost:{sample_site.port}/blank")
            ctx.close()
    finally:
        browser.close()
    assert recording_proxy.hosts(section="js=True") == PARTNER_HOSTS
    assert netlog_violations(netlog) == []
    text = netlog.read_text()
    assert f"127.0.0.1:{recording_proxy.port}" in text  # the proxy was used
    # Chromium did try to resolve page hosts itself; the resolver rules fenced it off.
    assert "~notfound" in text


def test_netlog_parser_flags_direct_traffic(tmp_path: Path) -> None:
    types = {
        "TCP_CONNECT_ATTEMPT": 1,
        "HOST_RESOLVER_MANAGER_REQUEST": 2,
        "UDP_CONNECT": 3,
        "UDP_BYTES_SENT": 4,
    }
    events = [
        {"type": 1, "source": {"id": 1}, "params": {"address": "127.0.0.1:80"}},
        {"type": 1, "source": {"id": 2}, "params": {"address": "93.184.215.14:443"}},
        {"type": 2, "source": {"id": 3}, "params": {"host": "https://~notfound"}},
        {"type": 2, "source": {"id": 4}, "params": {"host": "http://partner.example"}},
        {"type": 3, "source": {"id": 5}, "params": {"address": "[2001:4860:4860::8888]:443"}},
        {"type": 3, "source": {"id": 6}, "params": {"address": "8.8.8.8:53"}},
        {"type": 4, "source": {"id": 6}, "params": {"byte_count": 40}},
    ]
    path = tmp_path / "n.json"
    path.write_text(json.dumps({"constants": {"logEventTypes": types}, "events": events}))
    assert netlog_violations(path) == [
        "TCP connect to 93.184.215.14:443",
        "host resolution of http://partner.example",
        "UDP data to 8.8.8.8:53",
    ]


def test_asyncio_still_usable_after_browser_tests() -> None:
    """Runs after the browser tests above (file order): playwright's loop must not be
    left marked as running in this thread."""

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    assert asyncio.run(answer()) == 42
