"""Tamper evidence: edits, deletions and insertions made with sqlite3 directly on the file."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from middleware.ledger import (
    ConsentEvent,
    DisclosureRecord,
    LedgerWriter,
    SqliteStore,
    VerifyReport,
    purge,
    verify,
)
from middleware.ledger.chain import record_hash
from middleware.ledger.records import record_from_dict

NOW = datetime.now(UTC)



def check(p: Path, key: bytes | None = None) -> VerifyReport:
    with SqliteStore(p) as store:
        return verify(store, key)

def disclosure(i: int, t: datetime | None = None) -> DisclosureRecord:
    return DisclosureRecord(
        time=t or NOW, request_id=f"r{i}", consent_id=f"c{i % 3}", path=f"/p{i}",
        partner="google-adsense", purposes=("ads",), legal_basis="consent",
        data_categories=("ip_address",), cookies=("__gads",), policy_version="v1",
        ip="203.0.113.0/24", ua_family="Chrome 124",
    )


def event(i: int, t: datetime | None = None) -> ConsentEvent:
    return ConsentEvent(time=t or NOW, consent_id=f"c{i % 3}", action="given",
                        choices={"ads": True}, policy_version="v1", source="banner")


def fill(path: Path, n: int = 10, t: datetime | None = None) -> str:
    """n records from one writer: disclosures, every 4th a consent event; 3 batches."""
    w = LedgerWriter(SqliteStore(path))
    recs = [event(i, t) if i % 4 == 3 else disclosure(i, t) for i in range(n)]
    for chunk in (recs[:3], recs[3:7], recs[7:]):
        w.write_sync(chunk)
    w.close()
    return w.writer_id


def db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


def test_verify_passes_on_an_untouched_ledger(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    fill(p)
    fill(p)  # a second writer (another worker process)
    report = check(p)
    assert report.ok, report.problems
    assert (report.rows, report.writers) == (20, 2)


def test_verify_names_an_edited_row(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    writer = fill(p)
    with db(p) as c:
        c.execute("UPDATE disclosures SET partner = 'someone-else' WHERE seq = 5")
        (rowid,) = c.execute("SELECT id FROM disclosures WHERE seq = 5").fetchone()
    report = check(p)
    assert not report.ok
    first = report.first_problem
    assert first is not None
    assert (first.table, first.rowid, first.writer_id, first.seq) == (
        "disclosures", rowid, writer, 5)
    assert "edited" in first.what
    assert len(report.problems) == 1


def test_verify_names_an_edited_and_rehashed_row_by_its_successor(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    fill(p)
    store = SqliteStore(p)
    row5 = next(r for r in store.chain_rows() if r.seq == 5)
    body = row5.record.to_dict() | {"path": "/innocent"}
    forged = record_hash("disclosure", body, row5.writer_id, 5, row5.prev_hash)
    assert record_from_dict("disclosure", body) != row5.record
    with db(p) as c:
        c.execute("UPDATE disclosures SET path = '/innocent', hash = ? WHERE id = ?",
                  (forged, row5.rowid))
    report = verify(store)
    assert [(x.seq, "prev_hash" in x.what) for x in report.problems] == [(6, True)]


@pytest.mark.parametrize("seq", [1, 5, 9])
def test_verify_names_the_row_after_a_deleted_one(tmp_path: Path, seq: int) -> None:
    p = tmp_path / "l.db"
    fill(p)
    with db(p) as c:
        c.execute("DELETE FROM disclosures WHERE seq = ?", (seq,))
        (after,) = c.execute(
            "SELECT id FROM disclosures WHERE seq = ? UNION ALL "
            "SELECT id FROM consent_events WHERE seq = ?", (seq + 1, seq + 1)).fetchone()
    report = check(p)
    assert not report.ok
    first = report.first_problem
    assert first is not None and first.seq == seq + 1 and first.rowid == after
    assert f"seq {seq} missing" in first.what and "deleted" in first.what


def test_verify_finds_a_deleted_consent_event(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    fill(p)
    with db(p) as c:
        c.execute("DELETE FROM consent_events WHERE seq = 4")
    report = check(p)
    assert report.first_problem is not None and report.first_problem.seq == 5
    assert "seq 4 missing" in report.first_problem.what


def test_verify_names_an_inserted_duplicate_row(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    fill(p)
    store = SqliteStore(p)
    row5 = next(r for r in store.chain_rows() if r.seq == 5)
    body = row5.record.to_dict() | {"partner": "sneaky", "request_id": "fake"}
    h = record_hash("disclosure", body, row5.writer_id, 5, row5.prev_hash)
    with db(p) as c:
        c.execute(
            "INSERT INTO disclosures (time, request_id, consent_id, path, partner, purposes, "
            "legal_basis, data_categories, cookies, policy_version, ip, ua_family, fields, "
            "writer_id, seq, prev_hash, hash) SELECT time, 'fake', consent_id, path, 'sneaky', "
            "purposes, legal_basis, data_categories, cookies, policy_version, ip, ua_family, "
            "fields, writer_id, seq, prev_hash, ? FROM disclosures WHERE id = ?",
            (h, row5.rowid))
        (new_id,) = c.execute("SELECT max(id) FROM disclosures").fetchone()
    report = verify(store)
    assert [(x.table, x.rowid, x.seq) for x in report.problems] == [("disclosures", new_id, 5)]
    assert "inserted" in report.problems[0].what


def test_verify_names_an_appended_row_that_does_not_chain(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    writer = fill(p)
    with db(p) as c:
        c.execute(
            "INSERT INTO disclosures (time, request_id, consent_id, path, partner, purposes, "
            "legal_basis, data_categories, cookies, policy_version, ip, ua_family, fields, "
            "writer_id, seq, prev_hash, hash) SELECT time, request_id, consent_id, path, "
            "partner, purposes, legal_basis, data_categories, cookies, policy_version, ip, "
            "ua_family, fields, writer_id, 11, prev_hash, hash FROM disclosures WHERE seq = 1")
    report = check(p)
    assert [(x.writer_id, x.seq) for x in report.problems] == [(writer, 11), (writer, 11)]
    assert {("edited" in x.what) or ("prev_hash" in x.what) for x in report.problems} == {True}


def test_purge_then_verify_passes_and_counts(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    fill(p, 10, t=NOW - timedelta(days=400))
    w = LedgerWriter(SqliteStore(p))
    w.write_sync([disclosure(1), event(2)])
    w.close()
    store = SqliteStore(p)
    cps = purge(store, timedelta(days=395), key=b"secret")
    assert [cp.purged for cp in cps] == [10]
    assert cps[0].last_seq == 10 and cps[0].signature
    report = verify(store, key=b"secret")
    assert report.ok, report.problems
    assert (report.rows, report.checkpoints) == (2, 1)
    # Idempotent: nothing more is old enough.
    assert purge(store, timedelta(days=395), key=b"secret") == []


def test_purge_keeps_a_chain_prefix_only(tmp_path: Path) -> None:
    """A young record in the middle of old ones stops the purge for that writer."""
    p = tmp_path / "l.db"
    old = NOW - timedelta(days=500)
    w = LedgerWriter(SqliteStore(p))
    w.write_sync([disclosure(0, old), disclosure(1, old), disclosure(2, NOW), disclosure(3, old)])
    w.close()
    store = SqliteStore(p)
    (cp,) = purge(store, timedelta(days=395))
    assert (cp.last_seq, cp.purged) == (2, 2)
    assert sorted(r.seq for r in store.chain_rows()) == [3, 4]
    assert verify(store).ok


def test_purge_of_a_live_writer_keeps_its_chain_valid(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    w = LedgerWriter(SqliteStore(p))
    w.write_sync([disclosure(0, NOW - timedelta(days=2))])
    purge(SqliteStore(p), timedelta(days=1))
    w.write_sync([disclosure(1)])  # chains onto the purged row
    w.close()
    report = check(p)
    assert report.ok and report.rows == 1


def test_verify_tells_a_deletion_from_a_purge(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    fill(p, 10, t=NOW - timedelta(days=400))
    fill(p, 10)
    store = SqliteStore(p)
    purge(store, timedelta(days=395))
    assert verify(store).ok
    with db(p) as c:  # now delete a young row by hand
        c.execute("DELETE FROM disclosures WHERE id = (SELECT max(id) - 3 FROM disclosures)")
    report = verify(store)
    assert not report.ok and "deleted" in report.problems[0].what


def test_verify_with_key_rejects_a_forged_checkpoint(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    writer = fill(p)
    with db(p) as c:  # hide rows 1-3 behind a fake, unsigned "purge"
        (h,) = c.execute("SELECT hash FROM consent_events WHERE seq = 3 UNION ALL "
                         "SELECT hash FROM disclosures WHERE seq = 3").fetchone()
        c.execute("DELETE FROM disclosures WHERE seq <= 3")
        c.execute("DELETE FROM consent_events WHERE seq <= 3")
        c.execute("INSERT INTO checkpoints (writer_id, last_seq, last_hash, purged, time, "
                  "signature) VALUES (?, 3, ?, 3, '2024-01-01T00:00:00.000000Z', NULL)",
                  (writer, h))
    store = SqliteStore(p)
    assert verify(store).ok  # without a key a checkpoint cannot be checked
    report = verify(store, key=b"secret")
    assert not report.ok
    first = report.first_problem
    assert first is not None and first.table == "checkpoints"
    assert "signature" in first.what


def test_verify_with_key_rejects_an_edited_signed_checkpoint(tmp_path: Path) -> None:
    p = tmp_path / "l.db"
    fill(p, 10, t=NOW - timedelta(days=400))
    store = SqliteStore(p)
    purge(store, timedelta(days=1), key=b"secret")
    with db(p) as c:
        c.execute("UPDATE checkpoints SET purged = 3")
    assert not verify(store, key=b"secret").ok
    assert not verify(store, key=b"other").ok
