"""Ledger schema v4: a page view refers to its partner list (``list_id``) instead of holding
its text. A v3 file migrates without rewriting a row; old and new rows read, verify and
report alike; a list's text edited in ``partner_lists`` fails every view that uses it."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from middleware.cli import main
from middleware.ledger import Filters, LedgerWriter, PageView, PartnerShare, SqliteStore, verify
from middleware.ledger import sqlite as sqlite_store
from middleware.ledger.chain import ChainCursor, shares_text, time_text
from middleware.ledger.query import show, subject
from middleware.review.db import ReviewDb
from middleware.review.facts import Health, collect
from tests.ledger_helpers import append_v3_rows

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
ADS = PartnerShare("google-adsense", ("ads",), "consent", ("ip_address", "cookies"), ("__gads",))
FB = PartnerShare("facebook", ("social",), "consent", ("ip_address",), ())
X = PartnerShare("x-twitter", ("social",), "opt-out-not-exercised")
BOTH, ONLY_X, ONLY_ADS = (FB, ADS), (X,), (ADS,)


def view(i: int, shares: tuple[PartnerShare, ...]) -> PageView:
    return PageView(time=NOW + timedelta(seconds=i), request_id=f"v{i}", consent_id=f"c{i % 2}",
                    path=f"/p{i}", partners=shares, policy_version="v1", ip="203.0.113.0/24",
                    ua_family="Chrome 124", fields={"i": i})


def v3_file(p: Path) -> None:
    """An empty ledger as consent-gate made it at schema v3 (the migrations' own DDL)."""
    with sqlite3.connect(p) as c:
        c.execute("PRAGMA journal_mode = WAL")
        c.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                  "description TEXT NOT NULL, applied_at TEXT NOT NULL)")
        for v, description, statements in sqlite_store._MIGRATIONS:
            if v > 3:
                break
            for stmt in statements:
                c.execute(stmt)
            c.execute("INSERT INTO schema_migrations VALUES (?, ?, ?)",
                      (v, description, "2026-11-30T00:00:00Z"))
        c.execute("PRAGMA user_version = 3")


def v3_append(p: Path, cursor: ChainCursor, records: list[PageView]) -> None:
    """Rows as schema v3's SqliteStore.append wrote them: the partner list's text in every row."""
    with sqlite3.connect(p) as c:
        append_v3_rows(c.execute, "?", cursor, records, time_text)


def append(store: SqliteStore, cursor: ChainCursor, records: list[PageView]) -> None:
    rows = cursor.link(records)
    store.append(rows)
    cursor.advance(rows)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(["log", *argv])
    return code, capsys.readouterr().out


def mixed_ledger(p: Path) -> tuple[list[PageView], str]:
    """Views 1-4 written at schema v3, 5-8 after the migration, on one writer's chain."""
    v3_file(p)
    cursor = ChainCursor()
    old = [view(1, BOTH), view(2, ONLY_X), view(3, BOTH), view(4, BOTH)]
    v3_append(p, cursor, old)
    new = [view(5, BOTH), view(6, ONLY_ADS), view(7, BOTH), view(8, ONLY_X)]
    with SqliteStore(p) as store:
        append(store, cursor, new[:2])
        append(store, cursor, new[2:])
    return old + new, cursor.writer_id


def test_ledger_v3_file_migrates_and_old_and_new_rows_read_and_verify(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "l.db"
    records, _ = mixed_ledger(p)
    with sqlite3.connect(p) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 4
        raw = c.execute("SELECT request_id, partners, list_id FROM page_views ORDER BY id").fetchall()
        lists = dict(c.execute("SELECT id, partners FROM partner_lists").fetchall())
    # Nothing rewritten: v3 rows keep their text; v4 rows hold '' and their list's id.
    assert [(rid, text == shares_text(r.partners), ref) for (rid, text, ref), r
            in zip(raw[:4], records, strict=False)] == [(f"v{i}", True, None) for i in (1, 2, 3, 4)]
    assert all(text == "" and lists[ref] == shares_text(r.partners)
               for (_, text, ref), r in zip(raw[4:], records[4:], strict=True))
    assert sorted(lists.values()) == sorted({shares_text(s) for s in (BOTH, ONLY_X, ONLY_ADS)})
    assert raw[4][2] == raw[6][2], "one list, one id"

    with SqliteStore(p) as store:
        assert [r.record for r in store.chain_rows()] == records
        report = verify(store)
        assert report.ok and report.rows == 8, report.problems
        assert [r.record.request_id for r in show(store, Filters(partner="x-twitter"))] == [
            "v8", "v2"]
        assert [r.record.request_id for r in subject(store, "c1").disclosures] == [
            "v1", "v3", "v5", "v7"]
    code, out = run(capsys, "verify", "--ledger", str(p))
    assert code == 0 and "ok: 8 records, 1 writer" in out, out
    code, out = run(capsys, "export", "--ledger", str(p))
    exported = [json.loads(line) for line in out.splitlines()]
    assert [(x["request_id"], x["partners"]) for x in exported] == [
        (r.request_id, r.to_dict()["partners"]) for r in records]
    code, out = run(capsys, "show", "--ledger", str(p), "--partner", "google-adsense", "--json")
    assert sorted(x["request_id"] for x in json.loads(out)) == [
        "v1", "v3", "v4", "v5", "v6", "v7"]

    db = ReviewDb(p, create=False)
    data = collect(db, None, None, NOW + timedelta(days=1),
                   Health(None, 0, 0, 0, None, 0, None))
    assert data.page_views == 8 and data.visitors == 2
    assert {f.partner: (f.page_views, f.data_categories) for f in data.partners} == {
        "facebook": (5, ("ip_address",)), "google-adsense": (6, ("cookies", "ip_address")),
        "x-twitter": (2, ())}


def test_edited_partner_list_fails_verify_for_every_view_that_refers_to_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "l.db"
    _, writer = mixed_ledger(p)
    with sqlite3.connect(p) as c:
        # One list shared by v4 views 5 and 7 (and by v3 views 1, 3, 4, which hold their own
        # copy): the partner set is left as it was, so only the hash can tell.
        n = c.execute("UPDATE partner_lists SET partners = replace(partners, '\"ip_address\"]', "
                      "'\"precise_location\"]') WHERE partner_set = ' facebook google-adsense '"
                      ).rowcount
        assert n == 1
    code, out = run(capsys, "verify", "--ledger", str(p))
    assert code == 1
    problems = [line for line in out.splitlines() if "hash does not match" in line]
    assert len(problems) == 2 and all(f"writer {writer} seq {s})" in problems[i]
                                      for i, s in enumerate((5, 7))), out
    # A list deleted outright: its views come back as broken rows, they do not vanish.
    with sqlite3.connect(p) as c:
        c.execute("DELETE FROM partner_lists WHERE partner_set = ' google-adsense '")
    with SqliteStore(p) as store:
        rows = list(store.chain_rows())
        assert len(rows) == 8 and type(rows[5]).__name__ == "BrokenRow"
        assert [type(r).__name__ for r in store.disclosures(Filters(consent_id="c0"))].count(
            "BrokenRow") == 1
        report = verify(store)
    assert not report.ok and any("seq 6" in str(x) and "broken row" in str(x)
                                 for x in report.problems)
    # Named as what it is, with the list's id, not as the JSON parser's complaint.
    with sqlite3.connect(p) as c:
        (gone,) = c.execute("SELECT list_id FROM page_views WHERE seq = 6").fetchone()
    code, out = run(capsys, "verify", "--ledger", str(p))
    assert code == 1
    line = next(x for x in out.splitlines() if f"writer {writer} seq 6)" in x)
    assert f"broken row: partner list {gone} is missing" in line, out
    assert "JSONDecodeError" not in out


def test_rolled_back_transaction_leaves_no_list_id_behind(tmp_path: Path) -> None:
    """The id of a list inserted by a transaction that then failed is never reused: the next
    write of that list inserts it again (a stale id would point at no row, or another's)."""
    p = tmp_path / "l.db"
    store = SqliteStore(p)
    cursor = ChainCursor()
    append(store, cursor, [view(1, BOTH)])
    with sqlite3.connect(p) as c:
        c.execute("CREATE TRIGGER boom BEFORE INSERT ON page_views WHEN NEW.request_id = 'v2' "
                  "BEGIN SELECT RAISE(ABORT, 'disk full, say'); END")
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        store.append(cursor.link([view(2, ONLY_X)]))  # a new list, then the failure
    with sqlite3.connect(p) as c:
        c.execute("DROP TRIGGER boom")
        assert c.execute("SELECT COUNT(*) FROM partner_lists").fetchone()[0] == 1
    append(store, cursor, [view(2, ONLY_X), view(3, BOTH)])
    assert verify(store).ok
    store.close()


def test_list_ids_are_learnt_again_after_a_reconnect_to_another_file(tmp_path: Path) -> None:
    p, other = tmp_path / "l.db", tmp_path / "other.db"
    store = SqliteStore(p)
    cursor = ChainCursor()
    append(store, cursor, [view(1, BOTH), view(2, ONLY_X)])  # BOTH is id 1 in this file
    store.close()
    with SqliteStore(other) as o:
        append(o, ChainCursor(), [view(9, ONLY_X)])  # there, id 1 is ONLY_X
    for suffix in ("", "-wal", "-shm"):
        Path(f"{p}{suffix}").unlink(missing_ok=True)
    other.rename(p)
    append(store, ChainCursor(), [view(3, BOTH)])
    assert verify(store).ok
    assert sorted((r.record.request_id, r.record.partners) for r in store.chain_rows()
                  if isinstance(r.record, PageView)) == [("v3", BOTH), ("v9", ONLY_X)]
    store.close()


def test_two_writers_of_one_file_share_one_row_per_list(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    a, b = SqliteStore(p), SqliteStore(p)
    ca, cb = ChainCursor(), ChainCursor()
    append(a, ca, [view(1, BOTH)])
    append(b, cb, [view(2, ONLY_X), view(3, BOTH)])  # b has never seen BOTH
    append(a, ca, [view(4, ONLY_X)])  # nor a ONLY_X
    with sqlite3.connect(p) as c:
        assert c.execute("SELECT COUNT(*) FROM partner_lists").fetchone()[0] == 2
        assert c.execute("SELECT COUNT(DISTINCT list_id) FROM page_views").fetchone()[0] == 2
    assert verify(a).ok and verify(a).writers == 2
    a.close()
    b.close()


def test_writer_thread_writes_list_references(tmp_path: Path) -> None:
    """Through the LedgerWriter the middleware uses; each row holds no partner list text."""
    p = tmp_path / "l.db"
    w = LedgerWriter(SqliteStore(p))
    w.write_sync([view(i, BOTH if i % 2 else ONLY_ADS) for i in range(20)])
    w.close()
    with sqlite3.connect(p) as c:
        assert c.execute("SELECT COUNT(*) FROM page_views WHERE partners = '' "
                         "AND list_id IS NOT NULL").fetchone()[0] == 20
        plan = " ".join(str(r) for r in c.execute(
            f"EXPLAIN QUERY PLAN SELECT {SqliteStore._select_cols('page_views')} FROM "
            f"{SqliteStore._from('page_views')} ORDER BY writer_id, seq, id"))
    assert "page_views_chain" in plan and "INTEGER PRIMARY KEY" in plan, plan
    with SqliteStore(p) as store:
        assert verify(store).ok
