"""The report in real Chromium: its charts are there with one series per partner / outcome,
it loads nothing from anywhere, and it prints to a PDF whose text reads as the page does."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page

from middleware.cli import main
from tests.support.browser import SCREENSHOT_DIR, screenshot
from tests.support.proxy import RecordingProxy
from tests.support.review_data import seed
from tests.support.servers import REPO_ROOT

JAPAN_TALK = REPO_ROOT / "examples" / "japan_talk" / "partners.toml"


@pytest.fixture
def report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, dict]:
    ledger = tmp_path / "ledger.sqlite3"
    seed(ledger)
    out = tmp_path / "report.html"
    assert main(["report", "--ledger", str(ledger), "--config", str(JAPAN_TALK), "--since",
                 "2026-11-01", "--until", "2026-12-01", "-o", str(out), "--json"]) == 0
    return out, json.loads(capsys.readouterr().out)


def _series(page: Page, section: str) -> set[str]:
    ids = page.eval_on_selector_all(f"#{section} svg [id^='series-']", "els => els.map(e => e.id)")
    return {re.sub(r"-\d+$", "", i) for i in ids}


def test_report_in_chromium_shows_charts_and_loads_nothing(
        page: Page, recording_proxy: RecordingProxy, report: tuple[Path, dict]) -> None:
    path, data = report
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    recording_proxy.mark("report")
    page.goto(path.as_uri())
    assert requests == [path.as_uri()], "the report fetched something besides itself"
    assert recording_proxy.section("report") == []
    assert _series(page, "disclosures") == {"series-google-adsense", "series-facebook"}
    assert _series(page, "decisions") == {"series-accept", "series-reject", "series-custom",
                                          "series-withdraw"}
    # One bar per day of the period and per partner, stacked.
    assert page.locator("#disclosures svg [id^='series-facebook-']").count() == 30
    assert page.locator("svg").count() == 3  # per day, per day (decisions), per banner
    summary = page.inner_text("#summary")
    assert f"from {data['page_views']} page views" in summary
    assert page.locator("svg text, svg tspan").count() > 20, "chart labels are text"
    screenshot(page, "review-report")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "review-report-phone", sizes={"phone": (390, 844)})
    page.set_viewport_size({"width": 1280, "height": 800})
    # Nothing overflows the page sideways at desktop width.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_report_prints_to_a_readable_pdf(page: Page, report: tuple[Path, dict]) -> None:
    from pypdf import PdfReader

    path, _ = report
    page.goto(path.as_uri())
    pdf = page.pdf(format="A4", print_background=True)
    (SCREENSHOT_DIR / "review-report.pdf").parent.mkdir(parents=True, exist_ok=True)
    (SCREENSHOT_DIR / "review-report.pdf").write_bytes(pdf)
    reader = PdfReader(io.BytesIO(pdf))
    text = " ".join((p.extract_text() or "") for p in reader.pages)
    words = " ".join(text.split())
    assert 1 <= len(reader.pages) <= 6
    assert "In November 2026, 2 partners received data from 6 page views" in words
    for heading in ("1. Disclosures per partner and day", "3. Consent decisions",
                    "5. Ledger health", "6. Undeclared hosts and cookies"):
        assert heading in words, heading
    assert "google-adsense" in words  # chart legends print as text, not outlines
    assert "Verified: every hash chain is intact" in words
