"""One record per page view: hashing, queries, migration of per-partner ledgers, broken rows."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from middleware.cli import main
from middleware.ledger import (
    BrokenRow,
    DisclosureRecord,
    Filters,
    LedgerWriter,
    PageView,
    PartnerShare,
    SqliteStore,
    StoredRow,
    verify,
)
from middleware.ledger.chain import canonical_json, hash_record, record_hash, record_text
from middleware.ledger.query import show, subject, summary
from middleware.ledger.sqlite import SCHEMA_VERSION

NOW = datetime.now(UTC).replace(microsecond=123456)
ADS = PartnerShare("google-adsense", ("ads",), "consent", ("ip_address", "cookies"), ("__gads",))
FB = PartnerShare("facebook", ("social",), "consent", ("ip_address",), ())
X = PartnerShare("x-twitter", ("social",), "opt-out-not-exercised")


def view(i: int, shares: tuple[PartnerShare, ...] = (ADS, FB), t: datetime | None = None) -> PageView:
    return PageView(time=t or NOW, request_id=f"v{i}", consent_id=f"c{i % 3}", path=f"/p{i}",
                    partners=shares, policy_version="v1", ip="203.0.113.0/24",
                    ua_family="Chrome 124")


def old_disclosure(i: int, t: datetime | None = None) -> DisclosureRecord:
    return DisclosureRecord(time=t or NOW, request_id=f"r{i}", consent_id=f"c{i % 3}",
                            path=f"/old{i}", partner="google-adsense", purposes=("ads",),
                            legal_basis="consent", policy_version="v1")


def write(path: Path, records: list[object]) -> str:
    w = LedgerWriter(SqliteStore(path))
    w.write_sync(records)  # type: ignore[arg-type]
    w.close()
    return w.writer_id


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["log", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_page_view_fast_hash_is_the_reference_hash() -> None:
    odd = PageView(time=NOW, request_id="r\u2028\"x", consent_id=None, path="/ä?q=\\",
                   partners=(X, ADS), fields={"b": 1e16, "a": [None, "é"]})
    for rec in (view(1), odd):
        assert record_text(rec).encode() == canonical_json(rec.to_dict())
        assert hash_record(rec, "w1", 7, "ab" * 32) == record_hash(
            "page_view", rec.to_dict(), "w1", 7, "ab" * 32)
    assert odd.partner_ids == ("google-adsense", "x-twitter"), "sorted by partner id"
    assert PageView.from_dict(odd.to_dict()) == odd


def test_page_view_rejects_an_empty_or_doubled_partner_list() -> None:
    with pytest.raises(ValueError, match="at least one partner"):
        view(1, ())
    with pytest.raises(ValueError, match="twice"):
        view(1, (ADS, ADS))
    with pytest.raises(ValueError, match="legal_basis"):
        PartnerShare("p", ("ads",), "because")  # type: ignore[arg-type]


def test_page_views_are_queried_per_partner_like_per_partner_rows(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    write(p, [old_disclosure(0, NOW - timedelta(hours=2)),
              *[view(i, (ADS, FB) if i % 2 else (ADS, X), NOW + timedelta(seconds=i))
                for i in range(1, 7)]])
    with SqliteStore(p) as store:
        assert verify(store).ok
        rows = show(store, Filters(partner="facebook"))
        assert [r.record.request_id for r in rows] == ["v5", "v3", "v1"]  # newest first
        rows = show(store, Filters(partner="google-adsense", limit=4))
        assert [r.record.request_id for r in rows] == ["v6", "v5", "v4", "v3"]
        assert [r.record.request_id for r in show(store, Filters(partner="google-adsense"))][-1] == "r0"
        assert [r.record.request_id for r in show(store, Filters(purpose="social", partner="x-twitter"))] == [
            "v6", "v4", "v2"]
        assert show(store, Filters(partner="nobody")) == []
        by = {s.partner: s for s in summary(store, NOW - timedelta(days=1))}
        assert {k: v.page_views for k, v in by.items()} == {
            "google-adsense": 7, "facebook": 3, "x-twitter": 3}
        assert by["google-adsense"].consent_ids == 3
        assert by["google-adsense"].data_categories == ("cookies", "ip_address")
        assert by["facebook"].purposes == ("social",)
        report = subject(store, "c1")
        assert [r.record.request_id for r in report.disclosures] == ["v1", "v4"]


def test_page_views_export_csv_one_line_per_partner(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "l.db"
    write(p, [view(1), view(2, (X,))])
    code, out, _ = run(capsys, "export", "--ledger", str(p), "--format", "csv")
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert [(r["request_id"], r["partner"], r["seq"]) for r in table] == [
        ("v1", "facebook", "1"), ("v1", "google-adsense", "1"), ("v2", "x-twitter", "2")]
    code, out, _ = run(capsys, "export", "--ledger", str(p))
    lines = [json.loads(x) for x in out.splitlines()]
    assert [len(x["partners"]) for x in lines] == [2, 1], "JSON lines: one per record, as hashed"


def _as_schema_v1(p: Path) -> None:
    """Turn a fresh file back into what consent-gate wrote before page view records."""
    with sqlite3.connect(p) as c:
        c.execute("DROP TABLE page_views")
        c.execute("DROP TABLE partner_sets")
        c.execute("DROP TABLE partner_lists")
        c.execute("DELETE FROM schema_migrations WHERE version >= 2")
        c.execute("PRAGMA user_version = 1")


def test_ledger_of_schema_v1_migrates_and_its_chains_still_verify(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "l.db"
    SqliteStore(p).open()
    _as_schema_v1(p)
    # Rows as the per-partner writer left them, in a v1 file.
    with sqlite3.connect(p) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 1
    store = SqliteStore(p)
    store._migrate = lambda conn: None  # type: ignore[method-assign]  # write without migrating
    w = LedgerWriter(store)
    w.write_sync([old_disclosure(i) for i in range(4)])
    w.close()
    with sqlite3.connect(p) as c:
        assert c.execute("SELECT COUNT(*) FROM disclosures").fetchone()[0] == 4
        assert "page_views" not in {r[0] for r in c.execute("SELECT name FROM sqlite_master")}
    # Today's consent-gate opens it: migrates to v2 and appends page view records.
    write(p, [view(1), view(2)])
    with sqlite3.connect(p) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert c.execute("SELECT COUNT(*) FROM partner_lists").fetchone()[0] == 1
    code, out, _ = run(capsys, "verify", "--ledger", str(p))
    assert code == 0 and "ok: 6 records, 2 writers" in out, out
    with sqlite3.connect(p) as c:
        c.execute("UPDATE disclosures SET path = '/edited' WHERE id = 2")
    code, out, _ = run(capsys, "verify", "--ledger", str(p))
    assert code == 1 and "disclosures row 2" in out and "edited" in out, out


def _broken_ledger(tmp_path: Path) -> tuple[Path, str]:
    p = tmp_path / "l.db"
    writer = write(p, [view(i) for i in range(1, 7)])
    with sqlite3.connect(p) as c:
        c.execute("UPDATE page_views SET time = 'yesterday' WHERE seq = 2")
        c.execute("UPDATE page_views SET partners = '[{\"partner\": ' WHERE seq = 3")
        # A row's own partners text wins over its list's (schema v3 rows keep theirs).
        c.execute("UPDATE page_views SET partners = replace((SELECT partners FROM partner_lists "
                  "WHERE id = list_id), '\"consent\"', '\"because\"') WHERE seq = 4")
    return p, writer


def test_verify_reports_malformed_rows_by_writer_seq_and_id_and_checks_the_rest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p, writer = _broken_ledger(tmp_path)
    with sqlite3.connect(p) as c:
        c.execute("UPDATE page_views SET path = '/edited' WHERE seq = 6")
    code, out, err = run(capsys, "verify", "--ledger", str(p))
    assert code == 1 and "Traceback" not in out + err
    assert f"page_views row 2 (writer {writer} seq 2): broken row: ValueError: Invalid isoformat" in out
    assert f"page_views row 3 (writer {writer} seq 3): broken row: JSONDecodeError" in out
    assert "seq 4): broken row: ValueError: legal_basis 'because'" in out
    assert f"page_views row 6 (writer {writer} seq 6): hash does not match" in out, \
        "the rows after a broken one are still checked"
    assert "seq 5" not in out
    with SqliteStore(p) as store:
        rows = list(store.chain_rows())
    assert [type(r).__name__ for r in rows] == [
        "StoredRow", "BrokenRow", "BrokenRow", "BrokenRow", "StoredRow", "StoredRow"]


def test_show_subject_and_export_report_malformed_rows_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p, _ = _broken_ledger(tmp_path)
    code, out, err = run(capsys, "show", "--ledger", str(p))
    assert code == 0 and "Traceback" not in out + err
    assert out.count("broken row:") == 3 and "page_views row 4" in out
    assert sum(" /p" in line for line in out.splitlines()) == 2 * 3, "3 good views x 2 partners"
    code, out, _ = run(capsys, "show", "--ledger", str(p), "--json")
    kinds = [r["kind"] for r in json.loads(out)]
    assert kinds.count("broken") == 3 and kinds.count("page_view") == 3
    code, out, _ = run(capsys, "subject", "c0", "--ledger", str(p))
    assert code == 0 and "broken row:" in out  # v3 (c0) is one of the broken ones
    code, out, _ = run(capsys, "export", "--ledger", str(p))
    assert code == 0 and sum('"kind":"broken"' in line for line in out.splitlines()) == 3
    with SqliteStore(p) as store:
        assert all(isinstance(r, StoredRow | BrokenRow) for r in store.disclosures(Filters()))


def test_edited_partner_set_cannot_hide_a_view_from_partner_queries(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    write(p, [view(1)])
    with sqlite3.connect(p) as c:
        c.execute("UPDATE page_views SET partner_set = ' google-adsense '")
    with SqliteStore(p) as store:
        report = verify(store)
    assert not report.ok and "partner_set" in str(report.first_problem)
