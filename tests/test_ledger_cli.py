"""``consent-gate log ...``: output of each subcommand, --json, exit codes (the export's flat
memory: test_ledger_export_memory.py)."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from middleware.cli import main
from middleware.cli.common import parse_duration, parse_when
from middleware.cli.log import format_sparkline, format_summary
from middleware.ledger import ConsentEvent, DisclosureRecord, LedgerWriter, SqliteStore
from middleware.ledger.query import PartnerSummary

NOW = datetime.now(UTC).replace(microsecond=0)
DAY = timedelta(days=1)


def disclosure(i: int, partner: str, t: datetime, consent_id: str | None = "c1",
               path: str = "/a") -> DisclosureRecord:
    return DisclosureRecord(
        time=t, request_id=f"r{i}", consent_id=consent_id, path=path, partner=partner,
        purposes=("ads",) if partner != "twitter" else ("social",), legal_basis="consent",
        data_categories=("ip_address",), cookies=("__gads",), policy_version="v1",
        ip="203.0.113.0/24", ua_family="Chrome 124",
    )


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    p = tmp_path / "ledger.sqlite3"
    w = LedgerWriter(SqliteStore(p))
    w.write_sync([
        ConsentEvent(time=NOW - 3 * DAY, consent_id="c1", action="given",
                     choices={"ads": True, "social": False}, policy_version="v1",
                     source="banner"),
        disclosure(1, "adsense", NOW - 3 * DAY),
        disclosure(2, "adsense", NOW - 2 * DAY, "c2", "/blog/x"),
        disclosure(3, "adsense", NOW - 2 * DAY, "c1", "/blog/y"),
        disclosure(4, "twitter", NOW - DAY, "c2"),
        disclosure(5, "adsense", NOW - 400 * DAY, None),
    ])
    w.close()
    return p


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["log", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_parse_durations_and_times() -> None:
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("395d") == timedelta(days=395)
    now = datetime(2024, 5, 10, tzinfo=UTC)
    assert parse_when("2d", now) == datetime(2024, 5, 8, tzinfo=UTC)
    assert parse_when("2024-05-01", now) == datetime(2024, 5, 1, tzinfo=UTC)
    assert parse_when("2024-05-01T12:00:00Z", now) == datetime(2024, 5, 1, 12, tzinfo=UTC)
    with pytest.raises(Exception, match="bad duration"):
        parse_duration("7 days")
    with pytest.raises(Exception, match="bad time"):
        parse_when("yesterday", now)


def test_cli_sparkline_scales_to_the_largest_value() -> None:
    assert format_sparkline([0, 1, 2, 4, 8]) == "·▁▂▄█"
    assert format_sparkline([0, 0]) == "··"
    assert format_sparkline([]) == ""


def test_cli_format_summary_has_table_sparkline_and_bars() -> None:
    d0 = datetime(2024, 5, 1, tzinfo=UTC)
    rows = [PartnerSummary("adsense", 1234, 56, ("ads",), ("ip_address",), d0, d0 + 2 * DAY,
                           ((d0.date(), 10), ((d0 + 2 * DAY).date(), 20)))]
    text = format_summary(rows, d0, d0 + 3 * DAY)
    assert "disclosures 2024-05-01 .. 2024-05-03 (UTC)" in text
    assert "adsense" in text and "1,234" in text and "ip_address" in text
    assert "▄·█" in text  # 10, 0, 20 per day
    assert "2024-05-03  " + "█" * 40 + " 20" in text
    assert format_summary([], None, None) == "no disclosures in this period"


def test_cli_summary(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "summary", "--ledger", str(ledger))
    assert code == 0
    lines = out.splitlines()
    adsense = next(line for line in lines if line.startswith("adsense "))
    assert adsense.split()[1:3] == ["3", "2"]  # the 400-day-old record is outside 7d
    assert "twitter" in out
    assert any(ch in out for ch in "▁▂▃▄▅▆▇█")
    code, out, _ = run(capsys, "summary", "--ledger", str(ledger), "--json", "--since", "500d")
    data = json.loads(out)
    assert code == 0
    assert {p["partner"]: p["page_views"] for p in data["partners"]} == {
        "adsense": 4, "twitter": 1}
    assert sum(data["partners"][0]["per_day"].values()) == 4


def test_cli_show_filters_and_json(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "show", "--ledger", str(ledger), "--path", "/blog/*")
    assert code == 0
    body = out.splitlines()[2:]
    assert len(body) == 2 and all("/blog/" in line for line in body)
    code, out, _ = run(capsys, "show", "--ledger", str(ledger), "--json", "--limit", "2")
    rows = json.loads(out)
    assert [r["request_id"] for r in rows] == ["r4", "r3"]
    assert {"hash", "seq", "writer_id", "partner", "purposes"} <= set(rows[0])
    code, out, _ = run(capsys, "show", "--ledger", str(ledger), "--partner", "nobody")
    assert (code, out.strip()) == (0, "no matching disclosures")


def test_cli_subject(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "subject", "c1", "--ledger", str(ledger))
    assert code == 0
    assert "consent id c1" in out and "given" in out and "ads yes, social no" in out
    assert "disclosures (2 records):" in out
    code, out, _ = run(capsys, "subject", "c2", "--ledger", str(ledger), "--json")
    data = json.loads(out)
    assert data["consent_events"] == [] and len(data["disclosures"]) == 2


def test_cli_export_jsonl_and_csv(ledger: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "export", "--ledger", str(ledger), "--partner", "adsense")
    assert code == 0 and err == ""  # no progress when stderr is not a TTY
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["request_id"] for r in rows] == ["r5", "r1", "r2", "r3"]  # oldest first
    dest = tmp_path / "out.csv"
    code, out, _ = run(capsys, "export", "--ledger", str(ledger), "--format", "csv",
                       "-o", str(dest), "--json")
    assert code == 0 and json.loads(out)["exported"] == 5
    table = list(csv.DictReader(io.StringIO(dest.read_text())))
    assert len(table) == 5 and table[0]["purposes"] == "ads"
    code, out, _ = run(capsys, "export", "--ledger", str(ledger), "--kind", "consent-events")
    assert [json.loads(line)["action"] for line in out.splitlines()] == ["given"]


def test_cli_verify_ok_then_broken(ledger: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger))
    assert (code, out.splitlines()[0]) == (0, "ok: 6 records, 1 writers, 0 purge checkpoints")
    c = sqlite3.connect(ledger)
    (rowid,) = c.execute("SELECT id FROM disclosures WHERE request_id = 'r3'").fetchone()
    c.execute("UPDATE disclosures SET path = '/elsewhere' WHERE id = ?", (rowid,))
    c.commit()
    c.close()
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger))
    assert code == 1
    assert out.startswith("BROKEN")
    assert f"first bad record: disclosures row {rowid} " in out and "seq 4" in out
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger), "--json")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["problems"][0]["rowid"] == rowid


def test_cli_purge_then_verify(ledger: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENT_GATE_LEDGER_KEY", "k" * 32)
    # r5 (400 days old) is seq 6, behind younger records: a chain prefix only is purged.
    code, out, _ = run(capsys, "purge", "--ledger", str(ledger), "--older-than", "2d", "--force")
    assert code == 0
    assert out.startswith("purged 4 records older than 2 days") and "checkpoints signed" in out
    code, out, _ = run(capsys, "verify", "--ledger", str(ledger), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] and data["checkpoints"] == 1 and data["rows"] == 2
    code, out, _ = run(capsys, "purge", "--ledger", str(ledger), "--older-than", "2d", "--force",
                       "--json")
    assert json.loads(out)["purged"] == 0
    monkeypatch.setenv("CONSENT_GATE_LEDGER_KEY", "wrong" * 8)
    assert run(capsys, "verify", "--ledger", str(ledger))[0] == 1


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.sqlite3"
    code, _, err = run(capsys, "summary", "--ledger", str(missing))
    assert code == 2 and "no ledger at" in err
    assert not missing.exists()  # looking must not create an empty ledger
    with pytest.raises(SystemExit) as info:
        main(["log", "purge", "--ledger", str(missing), "--older-than", "soon"])
    assert info.value.code == 2
    capsys.readouterr()


def test_cli_takes_the_ledger_path_from_config(ledger: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "partners.toml"
    cfg.write_text(
        '[policy]\nversion = "v1"\neffective = 2024-01-01\n\n'
        '[purposes.ads]\ntitle = "Ads"\ndescription = "Ads."\n\n'
        f'[ledger]\npath = "{ledger}"\n')
    code, out, err = run(capsys, "verify", "--config", str(cfg))
    assert (code, err) == (0, ""), err
    assert out.startswith("ok: 6 records")
