"""``consent-gate log purge``: units that cannot be confused, --dry-run, a confirmation on a
terminal, and no purge inside the configured retention without --force."""

from __future__ import annotations

import argparse
import io
import sqlite3
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from middleware.cli import main
from middleware.cli.log import parse_age
from middleware.ledger import DisclosureRecord, LedgerWriter, SqliteStore

from .support.config_text import config_text, partner

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)
# The ledger of a site that keeps records for 30 days.
def site_config(ledger: Path) -> str:
    return config_text(
        ledger=str(ledger), effective=date(2008, 1, 23), ledger_options={"retention_days": 30},
        partners={"adsense": partner(["ads"], ["pagead2.googlesyndication.com"], name="AdSense",
                                     privacy_url="https://policies.google.com/privacy")})


def disclosure(i: int, t: datetime) -> DisclosureRecord:
    return DisclosureRecord(
        time=t, request_id=f"r{i}", consent_id="c1", path="/a", partner="adsense",
        purposes=("ads",), legal_basis="consent", data_categories=("ip_address",),
        cookies=(), policy_version="v1", ip="203.0.113.0/24", ua_family="Chrome 124")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A config whose ledger has records 90, 60, 40, 10 days and 1 minute old."""
    ledger = tmp_path / "ledger.sqlite3"
    LedgerWriter(SqliteStore(ledger)).write_sync(
        [disclosure(i, NOW - age) for i, age in enumerate(
            [90 * DAY, 60 * DAY, 40 * DAY, 10 * DAY, timedelta(minutes=1)])])
    config = tmp_path / "partners.toml"
    config.write_text(site_config(ledger))
    return config


def rows(config: Path) -> int:
    conn = sqlite3.connect(config.parent / "ledger.sqlite3")
    try:
        (n,) = conn.execute("SELECT count(*) FROM disclosures").fetchone()
        return int(n)
    finally:
        conn.close()


def purge(capsys: pytest.CaptureFixture[str], config: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["log", "purge", "--config", str(config), *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("text", ["1m", "30m", "1mo", "2min", "1month", "30", "1y", "90s", "d"])
def test_purge_age_refuses_ambiguous_or_missing_units(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="use days"):
        parse_age(text)


def test_purge_age_says_why_m_is_refused() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="minutes or months"):
        parse_age("1m")


@pytest.mark.parametrize(("text", "delta"), [
    ("30d", 30 * DAY), ("12h", timedelta(hours=12)), ("8w", 56 * DAY), ("395 days", 395 * DAY)])
def test_purge_age_units(text: str, delta: timedelta) -> None:
    assert parse_age(text) == delta


def test_purge_1m_is_a_usage_error_and_deletes_nothing(site: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["log", "purge", "--config", str(site), "--older-than", "1m"])
    assert info.value.code == 2
    assert "minutes or months" in capsys.readouterr().err
    assert rows(site) == 5


def test_purge_inside_retention_is_refused_without_force(site: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = purge(capsys, site, "--older-than", "12h")
    assert code == 2
    assert "refusing to purge records younger than the retention period (30 days" in err
    assert "--older-than 30d" in err and "--force" in err
    assert rows(site) == 5
    code, out, _ = purge(capsys, site, "--older-than", "12h", "--force")
    assert code == 0 and out.startswith("purged 4 records older than 12 hours")
    assert rows(site) == 1


def test_purge_dry_run_counts_and_deletes_nothing(site: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = purge(capsys, site, "--older-than", "50d", "--dry-run")
    assert code == 0
    assert out.startswith("would purge 2 records older than 50 days (before ")
    assert rows(site) == 5
    code, out, _ = purge(capsys, site, "--older-than", "50d")
    assert code == 0 and out.startswith("purged 2 records older than 50 days")
    assert rows(site) == 3


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code", "left"), [("purge\n", 0, 2), ("y\n", 1, 5), ("", 1, 5)])
def test_purge_on_a_terminal_asks_first(site: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch, answer: str, code: int,
                                        left: int) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(answer))
    got, _, err = purge(capsys, site, "--older-than", "35d")
    assert "would purge 3 records older than 35 days" in err and "Type 'purge'" in err
    assert (got, rows(site)) == (code, left)


def test_purge_yes_skips_the_question(site: Path, capsys: pytest.CaptureFixture[str],
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", Terminal(""))
    code, _, err = purge(capsys, site, "--older-than", "35d", "--yes")
    assert code == 0 and "Type" not in err and rows(site) == 2
