"""``consent-gate log show --path P`` finds a page by the path its visitor's browser showed
(the request line's spelling: ``/caf%C3%A9``, ``/a%3Fb``) and by the path as the ledger
recorded it (``/café``, ``/a%3Fb``; records.recorded_path escapes ``%``, ``?``, NUL and lone
surrogates), on a ledger written by a real uvicorn; exact and as a prefix (``P*``)."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from middleware import ConsentMiddleware
from middleware.cli import main as cli_main
from middleware.ledger import LedgerWriter, PageView, open_store, page_path
from middleware.ledger.records import PartnerShare, path_forms
from tests.asgi_helpers import SECRET, cookie_for
from tests.support.servers import start_uvicorn
from tests.support.tracker_config import tracker_config
from tests.test_ledger_page_paths import REQUESTS, _get

#: request line -> the other spellings a person may type for it (the recorded form first).
TYPED = {
    "/a%2500b": ["/a%2500b"],
    "/a%00b": ["/a%00b"],
    "/a%3Fb": ["/a%3Fb"],
    "/100%25": ["/100%25", "/100%"],
    "/caf%C3%A9": ["/caf\u00e9", "/caf%c3%a9"],
    "/caf%E9": ["/caf\ufffd"],
    "/plain": ["/plain", "/pl%61in"],
}


def _show(ledger: Path, capsys: pytest.CaptureFixture[str], *args: str) -> list[dict[str, Any]]:
    capsys.readouterr()
    assert cli_main(["log", "show", "--ledger", str(ledger), "--json", "--limit", "100", *args]) == 0
    rows: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return rows


@pytest.fixture(scope="module")
def served_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ledger with one page view per request line of REQUESTS, written through uvicorn."""
    tmp = tmp_path_factory.mktemp("paths")
    ledger = tmp / "ledger.sqlite3"
    config = tmp / "partners.toml"
    config.write_text(tracker_config(ledger.as_posix()))
    cookie = cookie_for(ConsentMiddleware(lambda *a: None, config=str(config), secret=SECRET), {"ads"})
    env = {"CSP_SITE_CONFIG": str(config), "CONSENT_GATE_SECRET": SECRET}
    with start_uvicorn("tests.browser.csp_site:create_app", env=env, extra_args=["--factory"],
                       log_level="warning") as server:
        for target in REQUESTS:
            assert _get(server.port, target, cookie).startswith(b"HTTP/1.1 404")
        deadline = time.monotonic() + 10
        count = 0
        while time.monotonic() < deadline and count < len(REQUESTS):
            with sqlite3.connect(ledger) as db:
                count = db.execute("SELECT count(*) FROM page_views").fetchone()[0]
            time.sleep(0.05)
    assert count == len(REQUESTS)
    return ledger


@pytest.mark.parametrize("target", list(TYPED))
def test_log_show_finds_a_page_by_its_browser_path_and_by_its_recorded_path(
        served_ledger: Path, capsys: pytest.CaptureFixture[str], target: str) -> None:
    recorded = REQUESTS[target]
    for typed in (target, *TYPED[target]):
        rows = _show(served_ledger, capsys, "--path", typed)
        assert [r["path"] for r in rows] == [recorded], (typed, rows)


def test_log_show_path_prefix_in_either_form(served_ledger: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    everything = {r["path"] for r in _show(served_ledger, capsys)}
    assert everything == set(REQUESTS.values())
    # A prefix cut inside a UTF-8 sequence decodes (as uvicorn would) to U+FFFD.
    for prefix, want in (("/caf%C3*", {"/caf\ufffd"}),
                         ("/caf%C3%A9*", {"/caf\u00e9"}), ("/caf\u00e9*", {"/caf\u00e9"}),
                         ("/caf*", {"/caf\u00e9", "/caf\ufffd"}), ("/a%25*", {"/a%2500b"}),
                         ("/a%*", {"/a%2500b", "/a%00b", "/a%3Fb"}), ("/100%*", {"/100%25"}),
                         ("/a_*", set()), ("*", everything)):
        got = {r["path"] for r in _show(served_ledger, capsys, "--path", prefix)}
        assert got == want, (prefix, got)


def test_log_show_path_with_a_kept_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With ``keep_query`` the query is part of the recorded path, as the request line sent it."""
    ledger = tmp_path / "ledger.sqlite3"
    writer = LedgerWriter(open_store(str(ledger)))
    share = PartnerShare("tracker", ("ads",), "consent", ("ip_address",), ())
    views = [PageView(time=dt.datetime(2026, 12, 3, 12, i, tzinfo=dt.UTC), request_id=f"r{i}",
                      consent_id="cid-abcdefgh", path=page_path(path, query, keep_query=True),
                      partners=(share,), policy_version="v1")
             for i, (path, query) in enumerate([("/search", "q=caf%C3%A9"), ("/a?b", "c=1"),
                                                ("/search", "")])]
    writer.write_sync(views)
    writer.close()
    assert [v.path for v in views] == ["/search?q=caf%C3%A9", "/a%3Fb?c=1", "/search"]
    assert [r["path"] for r in _show(ledger, capsys, "--path", "/search?q=caf%C3%A9")] == [
        "/search?q=caf%C3%A9"]
    assert [r["path"] for r in _show(ledger, capsys, "--path", "/a%3Fb?c=1")] == ["/a%3Fb?c=1"]
    assert [r["path"] for r in _show(ledger, capsys, "--path", "/search")] == ["/search"]
    assert [r["path"] for r in _show(ledger, capsys, "--path", "/search?*")] == [
        "/search?q=caf%C3%A9"]


def test_path_forms_are_the_typed_text_then_what_a_server_records_for_it() -> None:
    assert path_forms("/plain") == ("/plain",)
    assert path_forms("/caf%C3%A9") == ("/caf%C3%A9", "/caf\u00e9")
    assert path_forms("/caf%E9") == ("/caf%E9", "/caf\ufffd")  # surrogateescape: the same text
    assert path_forms("/a%3Fb?x=%3F") == ("/a%3Fb?x=%3F",)
    assert path_forms("/x%uD800") == ("/x%uD800", "/x%25uD800")
