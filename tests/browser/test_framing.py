"""Clickjacking in a real Chromium: another site frames the banner and the visitor clicks.

Two loopback origins are two sites: the wrapped Japan Talk site on http://127.0.0.1:P and
an attacker's page on http://localhost:Q that frames it. The click in the frame must never
write a consent event (the browser would not keep a cookie set in a cross-site frame).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import screenshot
from tests.support.servers import REPO_ROOT, ServerProcess, start_command

if TYPE_CHECKING:
    from playwright.sync_api import Page

pytestmark = pytest.mark.browser

CLI = str(REPO_ROOT / ".venv" / "bin" / "consent-gate")
EXAMPLE_TOML = REPO_ROOT / "examples" / "japan_talk" / "partners.toml"
SECRET = "framing-test-secret-" + "k" * 40


@dataclass
class Site:
    server: ServerProcess
    ledger: Path

    def events(self) -> list[tuple[str, str]]:
        if not self.ledger.exists():
            return []
        conn = sqlite3.connect(f"file:{self.ledger}?mode=ro", uri=True, timeout=5)
        try:
            return [(r[0], r[1]) for r in conn.execute("SELECT action, source FROM consent_events")]
        except sqlite3.OperationalError:  # no table yet: nothing recorded
            return []
        finally:
            conn.close()


@dataclass
class Attacker:
    """Another site on its own port (bound before the framed site starts, so no other server
    can take the port in between); it frames ``framed_url`` once that is set."""

    port: int
    framed_url: str = ""

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}/"

    def page(self) -> bytes:
        return (f'<!doctype html><title>Win a prize</title><h1>Click the button to win</h1>'
                f'<iframe src="{self.framed_url}" width="1000" height="700"></iframe>').encode()


def start_site(directory: Path, frame_ancestors: str | None) -> Site:
    ledger = directory / "ledger.sqlite3"
    text = EXAMPLE_TOML.read_text().replace('path = "consent-ledger.sqlite3"', f'path = "{ledger}"')
    if frame_ancestors is not None:
        text = text.replace('[csp]\n', f"[csp]\nframe_ancestors = {frame_ancestors}\n", 1)
    config = directory / "partners.toml"
    config.write_text(text)
    argv = [CLI, "run", "examples.japan_talk.app:app", "--config", str(config), "--port", "{port}"]
    return Site(start_command(argv, env={"CONSENT_GATE_SECRET": SECRET}, cwd=REPO_ROOT), ledger)


@pytest.fixture
def attacker() -> Iterator[Attacker]:
    holder: list[Attacker] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = holder[0].page()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    holder.append(Attacker(int(httpd.server_address[1])))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        httpd.shutdown()
        httpd.server_close()


def wait_for_events(site: Site, want: list[tuple[str, str]], timeout: float = 10.0) -> None:
    """Until the ledger holds ``want`` (the choice's POST records the event before it
    answers; the page's reload comes after), polled instead of a fixed settling sleep."""
    deadline = time.monotonic() + timeout
    while site.events() != want and time.monotonic() < deadline:
        time.sleep(0.05)
    assert site.events() == want


def test_framing_default_frame_ancestors_blocks_the_framed_banner(
        page: Page, tmp_path: Path, attacker: Attacker) -> None:
    site = start_site(tmp_path, None)
    with site.server:
        attacker.framed_url = site.server.url + "/"
        page.goto(attacker.url)
        page.wait_for_load_state("load")
        frame = next(f for f in page.frames if f != page.main_frame)
        # Chromium shows its own error page instead of the framed site.
        assert frame.query_selector("#consent-gate-banner") is None
        assert site.events() == []
        # The same banner at top level works: the test can see a consent event.
        page.goto(site.server.url + "/")
        page.get_by_role("button", name="Accept all").first.click()
        wait_for_events(site, [("given", "banner")])


@pytest.mark.parametrize("context", [{}, {"java_script_enabled": False}], indirect=True,
                         ids=["js", "nojs"])
def test_framing_click_in_allowed_cross_site_frame_records_no_consent(
        page: Page, tmp_path: Path, attacker: Attacker) -> None:
    # The owner lets the other origin frame the pages; the choice still cannot be made there.
    site = start_site(tmp_path, f"[\"'self'\", \"http://localhost:{attacker.port}\"]")
    with site.server:
        attacker.framed_url = site.server.url + "/"
        page.goto(attacker.url)
        frame_el = page.frame_locator("iframe")
        frame_el.get_by_role("button", name="Accept all").first.click()
        # The refusal is the server's answer to the choice's POST (fetch or form): once the
        # frame shows it, an event the POST wrote would be in the ledger already.
        frame_el.get_by_text("Your choice was not saved").first.wait_for(timeout=10_000)
        assert site.events() == [], "a click in a cross-site frame wrote a consent event"
        frame = next(f for f in page.frames if f != page.main_frame)
        assert "Your choice was not saved" in frame.content()
        screenshot(page, "framing-refused-in-cross-site-frame")
