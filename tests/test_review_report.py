"""consent-gate report: the facts equal `log summary`, the HTML is self-contained and says
what happened in its first sentence."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from middleware.cli import main

from .support.review_data import seed
from .support.servers import REPO_ROOT

JAPAN_TALK = REPO_ROOT / "examples" / "japan_talk" / "partners.toml"
PERIOD = ["--since", "2026-11-01", "--until", "2026-12-01"]


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    path = tmp_path / "ledger.sqlite3"
    seed(path)
    return path


def _report(capsys: pytest.CaptureFixture[str], ledger: Path, out: Path, *extra: str) -> dict:
    code = main(["report", "--ledger", str(ledger), "--config", str(JAPAN_TALK), *PERIOD,
                 "-o", str(out), "--json", *extra])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_report_numbers_equal_log_summary_json(ledger: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    data = _report(capsys, ledger, tmp_path / "r.html")
    assert main(["log", "summary", "--ledger", str(ledger), "--json", *PERIOD]) == 0
    summary = json.loads(capsys.readouterr().out)
    expected = {p["partner"]: (p["page_views"], p["per_day"], sorted(p["data_categories"]))
                for p in summary["partners"]}
    got = {p["partner"]: (p["page_views"], p["per_day"], p["data_categories"])
           for p in data["partners"]}
    assert got == expected == {
        "google-adsense": (6, {"2026-11-02": 2, "2026-11-03": 1, "2026-11-04": 3},
                           ["cookies", "ip_address"]),
        "facebook": (2, {"2026-11-02": 2}, ["ip_address", "user_agent"])}
    assert data["page_views"] == 6 and data["visitors"] == 2
    assert data["decisions_per_policy_version"]["2008-01-23"]["decisions"] == 4
    assert data["decisions_per_policy_version"]["2008-01-23"]["reject_rate"] == 0.5
    assert set(data["decisions_per_banner"]) == {"a" * 12, "b" * 12}
    assert data["decisions_per_jurisdiction"]["JP"]["custom"] == 1
    assert data["gpc"]["gpc"]["decisions"] == 1
    assert data["ledger_health"]["ok"] is True and data["ledger_health"]["rows"] == 12
    assert [d["name"] for d in data["discovered"]] == ["pixel.tracker-unknown.example", "_uw_id"]


def test_report_html_opens_with_the_summary_and_has_every_section(
        ledger: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r.html"
    _report(capsys, ledger, out)
    html = out.read_text()
    lede = re.search(r"<p class='lede' id='summary'>(.*?)</p>", html)
    assert lede is not None
    assert lede.group(1) == ("In November 2026, 2 partners received data from 6 page views; "
                             "75 % of the 4 visitors who made a choice refused social media.")
    assert html.index("id='summary'") < html.index("<section")
    for section in ("disclosures", "categories", "decisions", "gpc", "health", "discovered"):
        assert f"<section id='{section}'>" in html
    assert "[partners.tracker-unknown-example]" in html
    # Self-contained: no script, no reference to another origin but the partners' own links.
    assert "<script" not in html
    assert not re.search(r"""(src|href)=['"]?https?://(?!policies\.google\.com|www\.facebook)""",
                         html)
    assert "default-src 'none'" in html


def test_report_without_a_config_uses_the_one_the_ledger_recorded(
        ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from middleware.review.db import ReviewDb

    db = ReviewDb(ledger)
    db.set_meta("config_path", str(JAPAN_TALK))
    db.close()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONSENT_GATE_CONFIG", raising=False)
    out = tmp_path / "r.html"
    assert main(["report", "--ledger", str(ledger), *PERIOD, "-o", str(out)]) == 0
    assert "Google AdSense" in out.read_text()  # the partner's name comes from the config
    assert capsys.readouterr().out.startswith(f"wrote {out}: 6 page views, 2 partners")


def test_report_never_writes_to_the_ledger(ledger: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    os.chmod(ledger, 0o400)
    try:
        data = _report(capsys, ledger, tmp_path / "r.html")
    finally:
        os.chmod(ledger, 0o600)
    assert data["page_views"] == 6


def test_report_of_a_tampered_ledger_says_broken(ledger: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    c = sqlite3.connect(ledger)
    c.execute("UPDATE disclosures SET partner = 'x-twitter' WHERE request_id = 'r3'")
    c.commit()
    c.close()
    out = tmp_path / "r.html"
    data = _report(capsys, ledger, out)
    assert data["ledger_health"]["ok"] is False
    assert "BROKEN: 1 problem(s)" in out.read_text()


def _page_views(path: Path, n: int, writer_id: str | None = None) -> None:
    """n page views written the way the middleware writes them (real hash chains)."""
    from datetime import UTC, datetime, timedelta

    from middleware.ledger import LedgerWriter, SqliteStore
    from middleware.ledger.records import PageView, PartnerShare

    ads = PartnerShare("google-adsense", ("ads",), "consent", ("ip_address", "cookies"),
                       ("__gads",))
    social = PartnerShare("facebook", ("social",), "consent", ("ip_address", "user_agent"))
    sets = ((ads,), (ads, social), (social,))
    start = datetime(2026, 11, 1, tzinfo=UTC)
    writer = LedgerWriter(SqliteStore(path, synchronous="normal"), writer_id=writer_id)
    writer.write_sync([
        PageView(time=start + timedelta(seconds=i * 2.5), request_id=f"{writer_id or 'r'}{i}",
                 consent_id=f"c{i % 500}", path="/a", partners=sets[i % 3],
                 policy_version="2008-01-23", ip="203.0.113.0/24", ua_family="Chrome 131")
        for i in range(n)])
    writer.close()


def test_report_counts_page_views_visitors_and_partners_in_a_subprocess(tmp_path: Path) -> None:
    """The CLI as an owner runs it; the 1,000,000-page-view timing is bench/bench_report.py."""
    p = tmp_path / "big.sqlite3"
    _page_views(p, 3_000)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    out = tmp_path / "big.html"
    r = subprocess.run([sys.executable, "-m", "middleware", "report", "--ledger", str(p),
                        "--config", str(JAPAN_TALK), "-o", str(out), "--json"],
                       capture_output=True, text=True, env=env, timeout=300, check=True)
    data = json.loads(r.stdout)
    assert data["page_views"] == 3_000 and data["visitors"] == 500
    assert data["ledger_health"]["ok"] is True
    assert {p["partner"]: p["page_views"] for p in data["partners"]} == {
        "google-adsense": 2_000, "facebook": 2_000}


def test_report_reads_one_snapshot_while_the_site_writes(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A page view committed between two of the report's queries (a live site) is in none of
    its numbers: total, per partner and visitors stay one consistent state."""
    from datetime import UTC, datetime

    from middleware.review.db import ReviewDb
    from middleware.review.facts import Health, collect

    p = tmp_path / "live.sqlite3"
    _page_views(p, 300)
    db = ReviewDb(p, create=False)
    real_read = ReviewDb.read
    wrote = False

    def read_while_the_site_writes(self: ReviewDb, sql: str, params: object = ()) -> list:
        nonlocal wrote
        rows = real_read(self, sql, params)  # type: ignore[arg-type]
        if not wrote and "FROM page_views" in sql and "GROUP BY" in sql:
            # After the per-partner counts, before the total: the site commits 30 more views
            # (its own writer, its own chain) through another connection.
            wrote = True
            _page_views(p, 30, writer_id="site")
        return rows

    monkeypatch.setattr(ReviewDb, "read", read_while_the_site_writes)
    try:
        data = collect(db, None, None, datetime(2027, 1, 1, tzinfo=UTC),
                       Health(None, 0, 0, 0, None, 0, None))
    finally:
        db.close()
    assert wrote
    assert data.page_views == 300
    assert {f.partner: f.page_views for f in data.partners} == {"google-adsense": 200,
                                                                "facebook": 200}
    ((now,),) = sqlite3.connect(p).execute("SELECT COUNT(*) FROM page_views").fetchall()
    assert now == 330, "the concurrent write did land, after the report's snapshot"


def test_report_shows_the_last_witnessed_head(ledger: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from middleware.ledger.heads import ChainHead, generate_keypair, load_private_key

    key, pub = tmp_path / "heads.key", tmp_path / "heads.pub"
    generate_keypair(key, pub)
    witness = tmp_path / "witness.jsonl"
    heads = [ChainHead("w1", n, "h" * 64, datetime(2026, 11, 3, n, tzinfo=UTC)).signed(
        load_private_key(key)) for n in (1, 7)]
    witness.write_text("".join(json.dumps(h.to_dict()) + "\n" for h in heads))
    config = tmp_path / "partners.toml"
    config.write_text(JAPAN_TALK.read_text().replace(
        'path = "consent-ledger.sqlite3"',
        f'path = "{ledger}"\nheads_key = "{key}"\nwitness_file = "{witness}"', 1))
    out = tmp_path / "r.html"
    assert main(["report", "--config", str(config), *PERIOD, "-o", str(out), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ledger_health"]["last_head"].startswith(
        "writer w1 seq 7 at 2026-11-03 07:00:00 UTC, signature valid")
    assert "Last signed head: writer w1 seq 7" in out.read_text()
