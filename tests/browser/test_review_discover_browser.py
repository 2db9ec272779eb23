"""Discovery fed by the browser: Chromium loads a page with a tracker no partner declares, the
CSP blocks it and Chromium reports it; `consent-gate discover` then lists it with a suggested
partners.toml entry, beside what the rewriter saw and the undeclared cookie the site set."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from middleware.cli import main
from tests.support.proxy import RecordingProxy
from tests.support.servers import REPO_ROOT

JAPAN_TALK = REPO_ROOT / "examples" / "japan_talk" / "partners.toml"
SECRET = "discovery-test-" + "s" * 40


def test_discover_fed_by_real_csp_reports_from_chromium(
        page: Page, recording_proxy: RecordingProxy, start_server: Any, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "partners.toml"
    ledger = tmp_path / "ledger.sqlite3"
    config.write_text(JAPAN_TALK.read_text().replace(
        'path = "consent-ledger.sqlite3"', f'path = "{ledger}"', 1))
    server = start_server(argv=[sys.executable, "-m", "middleware", "run",
                                "tests.support.review_site:app", "--config", str(config),
                                "--port", "{port}"],
                          cwd=str(REPO_ROOT), env={"CONSENT_GATE_SECRET": SECRET})
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security" in m.text else None)
    page.goto(server.url + "/")
    assert page.inner_text("h1") == "Travel notes"
    deadline = time.monotonic() + 10
    while "pixel.tracker-unknown.example" not in server.output():
        assert time.monotonic() < deadline, "no CSP report reached the server:\n" + server.output()
        time.sleep(0.1)
    assert violations, "Chromium did not block the undeclared tracker"
    assert "pixel.tracker-unknown.example" not in recording_proxy.hosts()
    server.stop()  # the lifespan shutdown writes what is still held in memory
    assert main(["discover", "--ledger", str(ledger), "--config", str(config), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    found = {(d["kind"], d["name"]): d for d in data["discovered"]}
    assert ("csp", "pixel.tracker-unknown.example") in found, found
    assert found[("csp", "pixel.tracker-unknown.example")]["examples"] == ["/"]
    assert ("host", "pixel.tracker-unknown.example") in found  # the rewriter saw the tag too
    assert ("cookie", "_uw_id") in found and ("cookie", "__gads") not in found
    assert any("[partners.tracker-unknown-example]" in s["toml"] for s in data["suggestions"])
