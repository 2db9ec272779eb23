"""Passive tracker discovery: undeclared hosts, CSP reports and cookies are kept in the ledger
database, bounded, and `consent-gate discover` suggests a partners.toml entry for each."""

from __future__ import annotations

import asyncio
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import httpx2
import pytest

from middleware.cli import main
from middleware.config import load_config, parse_config
from middleware.review import db as review_db
from middleware.review.db import ReviewDb, Sighting
from middleware.review.recorder import ReviewRecorder
from middleware.review.suggest import site_of

from .asgi_helpers import SECRET, html_app, make_config
from .support.servers import REPO_ROOT

JAPAN_TALK = REPO_ROOT / "examples" / "japan_talk" / "partners.toml"


def test_discover_site_of_hosts() -> None:
    assert site_of("cdn.tracker.example") == "tracker.example"
    assert site_of("ads.example.co.uk") == "example.co.uk"
    assert site_of("tracker.example") == "tracker.example"


def test_discover_recorder_counts_hosts_and_undeclared_cookies(tmp_path: Path) -> None:
    config = load_config(JAPAN_TALK)
    ledger = tmp_path / "l.sqlite3"
    recorder = ReviewRecorder(config, str(ledger))

    async def run() -> None:
        await recorder.startup()
        recorder.saw_hosts({"cdn.widgets.example"}, "/a")
        recorder.saw_hosts({"cdn.widgets.example"}, "/b")
        recorder.saw_cookies([(b"set-cookie", b"_uw=1; Path=/"), (b"set-cookie", b"__gads=1"),
                              (b"Set-Cookie", b"consent=x"), (b"content-type", b"text/html")],
                             "/a")
        await recorder.aclose()

    asyncio.run(run())
    db = ReviewDb(ledger, create=False)
    found = {(d.kind, d.name): d for d in db.discovered()}
    db.close()
    assert set(found) == {("host", "cdn.widgets.example"), ("cookie", "_uw")}
    host = found[("host", "cdn.widgets.example")]
    assert host.count == 2 and host.examples == ("/a",)


def test_discover_table_is_bounded_and_keeps_what_it_has(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(review_db, "MAX_DISCOVERED", 3)
    db = ReviewDb(tmp_path / "l.sqlite3")
    now = datetime.now(UTC)
    db.add_sightings([Sighting("csp", f"real{i}.example", "/", now) for i in range(3)])
    db.add_sightings([Sighting("csp", f"fake{i}.example", "/", now) for i in range(500)])
    db.add_sightings([Sighting("csp", "real0.example", "/x", now, 5)])
    found = {d.name: d for d in db.discovered()}
    db.close()
    assert set(found) == {"real0.example", "real1.example", "real2.example"}
    assert found["real0.example"].count == 6 and found["real0.example"].examples == ("/", "/x")


def test_discover_csp_reports_reach_the_table_through_the_endpoint(tmp_path: Path) -> None:
    from middleware.asgi import ConsentMiddleware

    config = make_config(tmp_path)
    gate = ConsentMiddleware(html_app(), config=config, secret=SECRET)
    report = {"csp-report": {"document-uri": "https://site.example/articles/x?q=secret",
                             "blocked-uri": "https://beacon.unknown.example/b.gif",
                             "violated-directive": "img-src"}}

    async def run() -> list[int]:
        await gate._open()
        transport = httpx2.ASGITransport(app=gate)
        async with httpx2.AsyncClient(transport=transport, base_url="http://site.example") as c:
            codes = [(await c.post(gate.csp_report_path, content=json.dumps(report),
                                   headers={"content-type": "application/csp-report"})).status_code
                     for _ in range(3)]
        await gate._close()
        return codes

    assert asyncio.run(run()) == [204, 204, 204]
    db = ReviewDb(config.ledger.path, create=False)
    found = db.discovered()
    db.close()
    assert [(d.kind, d.name, d.count, d.examples) for d in found] == [
        ("csp", "beacon.unknown.example", 3, ("/articles/x",))]


def test_discover_cli_lists_and_suggests_a_valid_partner_block(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ledger = tmp_path / "l.sqlite3"
    db = ReviewDb(ledger)
    now = datetime.now(UTC)
    db.add_sightings([Sighting("csp", "pixel.tracker-unknown.example", "/a", now, 7),
                      Sighting("host", "cdn.tracker-unknown.example", "/b", now, 2),
                      Sighting("cookie", "_uw_id", "/", now)])
    db.close()
    assert main(["discover", "--ledger", str(ledger), "--config", str(JAPAN_TALK)]) == 0
    out = capsys.readouterr().out
    assert "pixel.tracker-unknown.example" in out and "_uw_id" in out
    assert "[partners.tracker-unknown-example]" in out
    assert 'hosts = ["*.tracker-unknown.example"]' in out
    assert main(["discover", "--ledger", str(ledger), "--config", str(JAPAN_TALK), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    block = data["suggestions"][0]["toml"]
    # Pasted into the owner's file, the suggestion is a valid partner as written.
    merged = tomllib.loads(JAPAN_TALK.read_text() + "\n" + block + "\n")
    config = parse_config(merged, "pasted.toml")
    assert config.partners["tracker-unknown-example"].hosts == ("*.tracker-unknown.example",)
    assert [d["count"] for d in data["discovered"]] == [7, 2, 1]


@pytest.mark.parametrize("name", ["a\x0bb.example", "tab\tcookie", "del\x7fx", "nul\x00",
                                  'q"uote\\d', "line\u2028sep"])
def test_discover_suggestion_is_valid_toml_whatever_the_reported_name(name: str) -> None:
    """Hosts come from forged CSP reports and page markup, cookie names from the site's
    Set-Cookie: a control character made the suggested block invalid TOML."""
    from middleware.review.suggest import suggest_partner

    block = suggest_partner("x.example", [name], [name], "ads")
    table = tomllib.loads(block)["partners"]["x-example"]
    assert table["hosts"] == [name] and table["cookies"] == [name]
