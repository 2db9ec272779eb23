"""PostgresStore against a real PostgreSQL server started (and stopped) by a fixture.

The fixture looks for ``initdb``/``pg_ctl`` on PATH and in /usr/lib/postgresql/*/bin.
initdb refuses to run as root, so as root the cluster belongs to ``nobody``.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from middleware.errors import LedgerUnavailable
from middleware.ledger import (
    ConsentEvent,
    DisclosureRecord,
    Filters,
    LedgerWriter,
    PageView,
    PartnerShare,
    StoredRow,
    VerifyReport,
    page_path,
    purge,
    verify,
)
from middleware.ledger.chain import ChainCursor, canonical_text, partner_set_text, shares_text
from middleware.ledger.query import export, show, subject, summary

psycopg = pytest.importorskip("psycopg")

from middleware.ledger.postgres import PostgresStore  # noqa: E402
from tests.ledger_helpers import append_v3_rows  # noqa: E402

pytestmark = pytest.mark.postgres

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                    key=lambda s: int(s.split("/")[-2]) if s.split("/")[-2].isdigit() else 0,
                    reverse=True):
        if (Path(d) / "initdb").exists() and (Path(d) / "pg_ctl").exists():
            return Path(d)
    return None


def _held_port() -> socket.socket:
    """A loopback port bound here and not listening: a connect to it is refused, and no other
    server can take it while the socket is open (close it when done)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def _start_postgres(run: Callable[..., None], pg_ctl: Path, data: Path, base: Path,
                    ports: Iterable[int]) -> int:
    """Start PostgreSQL on the first of ``ports`` it can bind. pg_ctl cannot take a socket we
    bound, so a port another process took between the pick and the bind is met by the next
    pick instead of a failed fixture."""
    log = base / "log"
    last: subprocess.CalledProcessError | None = None
    for port in ports:
        log.unlink(missing_ok=True)
        try:
            run(str(pg_ctl), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                "-o", f"-h 127.0.0.1 -p {port} -k {base} -F", "start")
            return port
        except subprocess.CalledProcessError as exc:
            last = exc
            if "could not bind" not in (log.read_text() if log.exists() else ""):
                raise
    assert last is not None
    raise last


def _picked_ports(tries: int = 5) -> Iterator[int]:
    for _ in range(tries):
        with _held_port() as s:
            port = int(s.getsockname()[1])
        yield port


@pytest.fixture(scope="module")
def pg_server() -> Iterator[str]:
    """A throwaway PostgreSQL on a free loopback port; yields the admin DSN."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl) in PATH or /usr/lib/postgresql/*/bin")
    base = Path(tempfile.mkdtemp(prefix="ledger-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(base, nobody.pw_uid, nobody.pw_gid)
        prefix = ["runuser", "-u", "nobody", "--"]
    data = base / "data"

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8")
        port = _start_postgres(run, bindir / "pg_ctl", data, base, _picked_ports())
    except subprocess.CalledProcessError as exc:
        log = (base / "log").read_text() if (base / "log").exists() else ""
        shutil.rmtree(base, ignore_errors=True)
        pytest.fail(f"could not start PostgreSQL: {exc.stderr!r} {log}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def test_postgres_fixture_takes_the_next_port_when_the_picked_one_was_taken(
    pg_server: str, tmp_path: Path
) -> None:
    """The race of a pick-then-bind: the first port is taken (here by the running server)."""
    taken = int(pg_server.rsplit(":", 1)[1])
    tried: list[int] = []

    def run(*cmd: str) -> None:
        port = int(cmd[cmd.index("-o") + 1].split("-p ")[1].split()[0])
        tried.append(port)
        if port == taken:
            (tmp_path / "log").write_text('LOG:  could not bind IPv4 address "127.0.0.1"\n')
            raise subprocess.CalledProcessError(1, cmd)

    with _held_port() as free:
        nxt = int(free.getsockname()[1])
        assert _start_postgres(run, Path("pg_ctl"), tmp_path / "d", tmp_path, [taken, nxt]) == nxt
    assert tried == [taken, nxt]


@pytest.fixture
def dsn(pg_server: str, request: pytest.FixtureRequest) -> str:
    """A fresh database per test."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name)[:50].lower()
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}"'.encode())
        c.execute(f'CREATE DATABASE "{name}"'.encode())
    return f"{pg_server}/{name}"


def disclosure(i: int, partner: str = "adsense", t: datetime | None = None,
               path: str = "/a", consent_id: str | None = "c1",
               purposes: tuple[str, ...] = ("ads",)) -> DisclosureRecord:
    return DisclosureRecord(
        time=t or NOW, request_id=f"r{i}", consent_id=consent_id, path=path, partner=partner,
        purposes=purposes, legal_basis="consent", data_categories=("ip_address", "cookies"),
        cookies=("__gads",), policy_version="v1", ip="2001:db8::/48", ua_family="Firefox 125",
        fields={"i": i, "nested": {"b": [1, 2.5, 1e16, None, True], "a": "ü"}},
    )


def event(consent_id: str, action: str = "given", t: datetime | None = None) -> ConsentEvent:
    return ConsentEvent(time=t or NOW, consent_id=consent_id, action=action,  # type: ignore[arg-type]
                        choices={"ads": action != "withdrawn", "social": False},
                        policy_version="v1", source="preferences")


def check(dsn: str, key: bytes | None = None) -> VerifyReport:
    with PostgresStore(dsn) as store:
        return verify(store, key)


def sql(dsn: str, statement: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as c:
        cur = c.execute(statement.encode())
        return list(cur.fetchall()) if cur.description else []


def test_postgres_round_trip_and_verify(dsn: str) -> None:
    store = PostgresStore(dsn)
    w = LedgerWriter(store)
    recs: list[DisclosureRecord | ConsentEvent] = [
        disclosure(1), event("c1"), disclosure(2, t=NOW + timedelta(microseconds=7))]
    w.write_sync(recs)
    w.close()
    with PostgresStore(dsn) as store:
        rows = list(store.chain_rows())
    assert [r.record for r in rows] == recs
    assert [r.computed_hash() for r in rows] == [r.hash for r in rows]
    assert check(dsn).ok
    assert sql(dsn, "SELECT version FROM schema_migrations") == [(1,), (2,), (3,), (4,), (5,)]


def test_postgres_verify_names_edited_deleted_and_inserted_rows(dsn: str) -> None:
    w = LedgerWriter(PostgresStore(dsn))
    for i in range(0, 9, 3):
        w.write_sync([disclosure(i), disclosure(i + 1), event("c1")])
    w.close()
    (rid,) = sql(dsn, "SELECT id FROM disclosures WHERE seq = 2")[0]
    sql(dsn, "UPDATE disclosures SET path = '/x' WHERE seq = 2")
    sql(dsn, "DELETE FROM consent_events WHERE seq = 6")
    sql(dsn, "INSERT INTO disclosures (time, request_id, consent_id, path, partner, purposes, "
             "legal_basis, data_categories, cookies, policy_version, ip, ua_family, fields, "
             "writer_id, seq, prev_hash, hash) SELECT time, 'fake', consent_id, path, partner, "
             "purposes, legal_basis, data_categories, cookies, policy_version, ip, ua_family, "
             "fields, writer_id, seq, prev_hash, hash FROM disclosures WHERE seq = 8")
    (fake,) = sql(dsn, "SELECT id FROM disclosures WHERE request_id = 'fake'")[0]
    report = check(dsn)
    got = [(p.table, p.seq) for p in report.problems]
    assert got == [("disclosures", 2), ("disclosures", 7), ("disclosures", 8),
                   ("disclosures", 8)]
    assert report.problems[0].rowid == rid and "edited" in report.problems[0].what
    assert "seq 6 missing" in report.problems[1].what
    # The copy has a wrong hash (request_id changed) and a duplicate seq.
    assert {p.rowid for p in report.problems[2:]} == {fake}
    assert "inserted" in report.problems[3].what


def test_postgres_purge_then_verify(dsn: str) -> None:
    w = LedgerWriter(PostgresStore(dsn))
    w.write_sync([disclosure(i, t=NOW - timedelta(days=400)) for i in range(5)])
    w.write_sync([disclosure(9)])
    w.close()
    store = PostgresStore(dsn)
    (cp,) = purge(store, timedelta(days=395), key=b"k")
    assert (cp.last_seq, cp.purged) == (5, 5)
    report = verify(store, key=b"k")
    assert report.ok and report.rows == 1 and report.checkpoints == 1
    store.close()


def test_postgres_queries(dsn: str) -> None:
    day = timedelta(days=1)
    w = LedgerWriter(PostgresStore(dsn))
    w.write_sync([
        event("c1", "given", NOW - 2 * day),
        disclosure(1, "adsense", NOW - 2 * day, "/blog/a", "c1"),
        disclosure(2, "adsense", NOW - day, "/b_c", "c2", ("ads", "measure")),
        disclosure(3, "twitter", NOW, "/a", "c1", ("social",)),
        event("c1", "withdrawn", NOW),
    ])
    w.close()
    store = PostgresStore(dsn)
    rows = summary(store)
    assert [(r.partner, r.page_views, r.consent_ids) for r in rows] == [
        ("adsense", 2, 2), ("twitter", 1, 1)]
    assert rows[0].purposes == ("ads", "measure")
    assert rows[0].per_day == ((NOW.date() - 2 * day, 1), (NOW.date() - day, 1))

    def ids(f: Filters) -> list[str]:
        return [r.record.request_id for r in show(store, f)]  # type: ignore[union-attr]

    assert ids(Filters()) == ["r3", "r2", "r1"]
    assert ids(Filters(purpose="measure")) == ["r2"]
    assert ids(Filters(path="/blog/*")) == ["r1"]
    assert ids(Filters(path="/b_*")) == ["r2"]
    assert ids(Filters(consent_id="c1", since=NOW - day)) == ["r3"]
    assert ids(Filters(limit=1)) == ["r3"]
    rep = subject(store, "c1")
    assert [e.record.action for e in rep.events] == ["given", "withdrawn"]  # type: ignore[union-attr]
    assert len(rep.disclosures) == 2
    assert sum(1 for _ in export(store, Filters())) == 3
    store.close()


def test_postgres_export_uses_a_server_side_cursor(dsn: str) -> None:
    w = LedgerWriter(PostgresStore(dsn))
    w.write_sync([disclosure(i) for i in range(2500)])
    w.close()
    store = PostgresStore(dsn)
    it = export(store, Filters())
    next(it)
    cursors = sql(dsn, "SELECT name FROM pg_cursors")  # other sessions' cursors are hidden
    assert cursors == []
    active = sql(dsn, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE "
                      "'%DECLARE \"ledger_stream_%'")
    assert int(str(active[0][0])) >= 1  # the export runs DECLARE ... CURSOR (server side)
    assert sum(1 for _ in it) == 2499
    store.close()


def test_postgres_concurrent_writers_each_keep_a_chain(dsn: str) -> None:
    writers = [LedgerWriter(PostgresStore(dsn)) for _ in range(3)]

    async def main() -> None:
        await asyncio.gather(*(w.write([disclosure(i)]) for i in range(100) for w in writers))

    asyncio.run(main())
    for w in writers:
        w.close()
    assert sql(dsn, "SELECT count(*) FROM disclosures") == [(300,)]
    report = check(dsn)
    assert report.ok and report.writers == 3
    assert sum(w.stats.transactions for w in writers) < 300


def test_postgres_unreachable_raises_ledger_unavailable_then_recovers(
    pg_server: str, dsn: str
) -> None:
    with _held_port() as held:  # refused, and nobody else can listen there meanwhile
        port = int(held.getsockname()[1])
        bad = PostgresStore(f"postgresql://postgres@127.0.0.1:{port}/nope", connect_timeout_s=2)
        w = LedgerWriter(bad)
        with pytest.raises(LedgerUnavailable, match="cannot open PostgreSQL ledger"):
            w.write_sync([disclosure(1)])
    bad.dsn = dsn  # the ledger "comes back"
    w.write_sync([disclosure(2)])
    w.close()
    assert sql(dsn, "SELECT request_id, seq FROM disclosures") == [("r2", 1)]


def test_postgres_summary_counts_a_forwarded_event_once_not_its_delivery_outcome(dsn: str) -> None:
    def forwarded(i: int, delivery: str) -> DisclosureRecord:
        return DisclosureRecord(
            time=NOW, request_id="r1", consent_id="c1", path="/checkout", partner="meta",
            purposes=("ads",), legal_basis="consent",
            data_categories=("ip_address",) if delivery == "queued" else (),
            fields={"channel": "server", "event_id": "e1", "delivery": delivery, "i": i})

    w = LedgerWriter(PostgresStore(dsn))
    w.write_sync([forwarded(1, "queued"), forwarded(2, "accepted"), disclosure(3, "adsense")])
    w.close()
    with PostgresStore(dsn) as store:
        assert [(r.partner, r.page_views) for r in summary(store)] == [("adsense", 1), ("meta", 1)]
        assert len(list(show(store, Filters(partner="meta")))) == 2  # both rows stay reviewable


def test_postgres_cli_verify_and_summary(dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    from middleware.cli import main

    w = LedgerWriter(PostgresStore(dsn))
    w.write_sync([disclosure(1), disclosure(2, "twitter")])
    w.close()
    assert main(["log", "verify", "--ledger", dsn]) == 0
    assert "ok: 2 records" in capsys.readouterr().out
    assert main(["log", "summary", "--ledger", dsn, "--since", "30d"]) == 0
    out = capsys.readouterr().out
    assert "adsense" in out and "twitter" in out
    sql(dsn, "UPDATE disclosures SET partner = 'x' WHERE seq = 2")
    assert main(["log", "verify", "--ledger", dsn]) == 1
    assert "first bad record: disclosures row" in capsys.readouterr().out




_SHARES = (PartnerShare("adsense", ("ads",), "consent", ("ip_address",), ("__gads",)),
           PartnerShare("x", ("social",), "opt-out-not-exercised"))


def page_view(i: int, t: datetime | None = None,
              shares: tuple[PartnerShare, ...] = _SHARES) -> PageView:
    return PageView(time=t or NOW, request_id=f"v{i}", consent_id="c1", path=f"/v{i}",
                    partners=shares, policy_version="v1", ip="2001:db8::/48",
                    fields={"n": 1e16} if i == 1 else {})


def test_postgres_page_views_round_trip_query_and_verify(dsn: str) -> None:
    w = LedgerWriter(PostgresStore(dsn))
    recs = [page_view(i, NOW + timedelta(seconds=i), _SHARES if i % 2 else _SHARES[:1])
            for i in range(1, 7)]
    w.write_sync([*recs, disclosure(9, t=NOW - timedelta(hours=1))])
    w.close()
    with PostgresStore(dsn) as store:
        back = [r.record for r in store.chain_rows()]
        assert back[:6] == recs
        assert [r.record.request_id for r in show(store, Filters(partner="x"))] == ["v5", "v3", "v1"]
        by = {s.partner: s.page_views for s in summary(store, NOW - timedelta(days=1))}
        assert by == {"adsense": 7, "x": 3}
    assert check(dsn).ok
    sql(dsn, "UPDATE page_views SET partner_set = ' adsense ' WHERE request_id = 'v1'")
    assert "partner_set" in str(check(dsn).first_problem)


def test_postgres_page_views_partitioned_by_month(dsn: str) -> None:
    """The deployment docs: page_views created by the owner, partitioned by month, before
    first use; the migration keeps it, writes and verify work, a month is dropped whole."""
    sql(dsn, """CREATE TABLE page_views (
        id bigint GENERATED ALWAYS AS IDENTITY, time timestamptz NOT NULL,
        request_id text NOT NULL, consent_id text, path text NOT NULL, partners text NOT NULL,
        partner_set text NOT NULL, policy_version text NOT NULL, ip text,
        ua_family text NOT NULL, fields text NOT NULL, writer_id text NOT NULL,
        seq bigint NOT NULL, prev_hash text NOT NULL, hash text NOT NULL,
        PRIMARY KEY (id, time)) PARTITION BY RANGE (time)""")
    last = NOW.replace(day=1) - timedelta(days=1)
    for name, start, end in (("old", last.replace(day=1), NOW.replace(day=1)),
                             ("now", NOW.replace(day=1), NOW.replace(day=1) + timedelta(days=40))):
        sql(dsn, f"CREATE TABLE page_views_{name} PARTITION OF page_views FOR VALUES FROM "
                 f"('{start.isoformat()}') TO ('{end.isoformat()}')")
    w = LedgerWriter(PostgresStore(dsn))
    w.write_sync([page_view(1, last), page_view(2, last), page_view(3, NOW), page_view(4, NOW)])
    w.close()
    assert sql(dsn, "SELECT count(*) FROM page_views_old") == [(2,)]
    assert check(dsn).ok


def _schema_at(dsn: str, version: int) -> None:
    """An empty ledger as consent-gate made it at schema ``version`` (the migrations' own DDL)."""
    from middleware.ledger import postgres as pg_store

    sql(dsn, "CREATE TABLE schema_migrations (version integer PRIMARY KEY, description text "
             "NOT NULL, applied_at timestamptz NOT NULL)")
    for v, description, statements in pg_store._MIGRATIONS:
        if v > version:
            break
        for stmt in statements:
            sql(dsn, stmt)
        sql(dsn, f"INSERT INTO schema_migrations VALUES ({v}, '{description}', now())")


def _v3_append(dsn: str, cursor: ChainCursor, records: list[PageView]) -> None:
    """Rows as schema v3's append wrote them: the partner list's text in every row."""
    with psycopg.connect(dsn, autocommit=True) as c:
        append_v3_rows(c.execute, "%s", cursor, records, lambda t: t)


def test_postgres_v3_ledger_migrates_to_list_references_and_still_verifies(dsn: str) -> None:
    _schema_at(dsn, 3)
    cursor = ChainCursor()
    one = _SHARES[:1]
    old = [page_view(i, NOW + timedelta(seconds=i), _SHARES if i % 2 else one) for i in (1, 2, 3)]
    _v3_append(dsn, cursor, old)
    new = [page_view(i, NOW + timedelta(seconds=i), _SHARES if i % 2 else one) for i in (4, 5, 6)]
    with PostgresStore(dsn) as store:
        rows = cursor.link(new)
        store.append(rows)
        cursor.advance(rows)
    assert sql(dsn, "SELECT version FROM schema_migrations") == [(1,), (2,), (3,), (4,), (5,)]
    raw = sql(dsn, "SELECT request_id, partners = '', list_id IS NULL FROM page_views ORDER BY id")
    assert raw == [("v1", False, True), ("v2", False, True), ("v3", False, True),
                   ("v4", True, False), ("v5", True, False), ("v6", True, False)]
    assert sql(dsn, "SELECT count(*) FROM partner_lists") == [(2,)], "the v3 lists, reused"
    with PostgresStore(dsn) as store:
        assert [r.record for r in store.chain_rows()] == old + new
        assert [r.record.request_id for r in show(store, Filters(partner="x"))] == ["v5", "v3", "v1"]
        assert [r.record.request_id for r in subject(store, "c1").disclosures] == [
            "v1", "v2", "v3", "v4", "v5", "v6"]
        assert [r.record for r in export(store, Filters()) if isinstance(r, StoredRow)] == old + new
    report = check(dsn)
    assert report.ok and report.rows == 6, report.problems
    # The text of the list v5 refers to (v1, v3 hold their own copy): only v5 fails.
    sql(dsn, "UPDATE partner_lists SET partners = replace(partners, '\"ip_address\"', "
             "'\"precise_location\"') WHERE partner_set = ' adsense x '")
    report = check(dsn)
    assert [(p.seq, "hash does not match" in str(p)) for p in report.problems] == [(5, True)], \
        report.problems


def test_postgres_rolled_back_transaction_leaves_no_list_id_behind(dsn: str) -> None:
    """A failed commit that does not break the connection (here a trigger's error) must not
    leave the id of its rolled-back list in the store's cache: the next views of that list
    would refer to no row."""
    store = PostgresStore(dsn)
    cursor = ChainCursor()
    rows = cursor.link([page_view(1)])
    store.append(rows)
    cursor.advance(rows)
    sql(dsn, """CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
        IF NEW.request_id = 'v2' THEN RAISE EXCEPTION 'disk full, say'; END IF;
        RETURN NEW; END $$""")
    sql(dsn, "CREATE TRIGGER boom BEFORE INSERT ON page_views FOR EACH ROW EXECUTE FUNCTION boom()")
    with pytest.raises(psycopg.Error, match="disk full"):
        store.append(cursor.link([page_view(2, shares=_SHARES[:1])]))  # a new list
    sql(dsn, "DROP TRIGGER boom ON page_views")
    assert sql(dsn, "SELECT count(*) FROM partner_lists") == [(1,)]
    rows = cursor.link([page_view(2, shares=_SHARES[:1]), page_view(3)])
    store.append(rows)
    store.close()
    assert check(dsn).ok


def _long_list() -> tuple[PartnerShare, ...]:
    """A partner list whose canonical text is ~7 KB of incompressible cookie names: past the
    ~2.7 KB a PostgreSQL btree entry may hold, even compressed."""
    import base64
    import random

    rng = random.Random(10)
    cookies = tuple(base64.b64encode(rng.randbytes(18)).decode() for _ in range(250))
    return (PartnerShare("adsense", ("ads",), "consent", ("ip_address",), cookies),
            PartnerShare("x", ("social",), "opt-out-not-exercised"))


def test_postgres_v4_ledger_migrates_to_hashed_list_uniqueness_for_long_lists(dsn: str) -> None:
    """partner_lists.partners was UNIQUE: a btree of the text itself, which refuses an entry
    over ~2.7 KB (a list with many cookies), so such a page view failed to commit. From v5
    the uniqueness is an index of the text's md5; a v4 ledger migrates and keeps verifying."""

    _schema_at(dsn, 4)
    long = _long_list()
    assert len(canonical_text([s.to_dict() for s in long])) > 6000
    # What v4 did with it: the insert of the list fails, and so does the page's commit.
    with pytest.raises(psycopg.Error, match="index row"):
        sql(dsn, "INSERT INTO partner_lists (partners, partner_set) VALUES "
                 f"('{canonical_text([s.to_dict() for s in long])}', ' adsense x ')")
    cursor = ChainCursor()
    old = [page_view(1), page_view(2, shares=_SHARES[:1])]
    with psycopg.connect(dsn, autocommit=True) as c:  # v4 rows, as v4's append wrote them
        for rec in old:
            text, ps = shares_text(rec.partners), partner_set_text(rec.partners)
            c.execute("INSERT INTO partner_lists (partners, partner_set) VALUES (%s, %s) "
                      "ON CONFLICT DO NOTHING", (text, ps))
        rows = cursor.link(old)
        for r in rows:
            rec = r.record
            assert isinstance(rec, PageView)
            (lid,), = c.execute("SELECT id FROM partner_lists WHERE partners = %s",
                                (shares_text(rec.partners),)).fetchall()
            c.execute("INSERT INTO page_views (time, request_id, consent_id, path, partners, "
                      "partner_set, policy_version, ip, ua_family, fields, list_id, writer_id, "
                      "seq, prev_hash, hash) VALUES (%s, %s, %s, %s, '', %s, %s, %s, %s, %s, %s, "
                      "%s, %s, %s, %s)",
                      (rec.time, rec.request_id, rec.consent_id, rec.path,
                       partner_set_text(rec.partners), rec.policy_version, rec.ip,
                       rec.ua_family, canonical_text(dict(rec.fields)), lid, r.writer_id,
                       r.seq, r.prev_hash, r.hash))
        cursor.advance(rows)
    new = [page_view(3, shares=long), page_view(4), page_view(5, shares=long)]
    with PostgresStore(dsn) as store:
        rows = cursor.link(new[:2])
        store.append(rows)
        cursor.advance(rows)
    with PostgresStore(dsn) as store:  # a new connection: the long list's id read back
        rows = cursor.link(new[2:])
        store.append(rows)
        cursor.advance(rows)
        assert [r.record for r in store.chain_rows()] == old + new
    assert sql(dsn, "SELECT max(version) FROM schema_migrations") == [(5,)]
    assert sql(dsn, "SELECT count(*) FROM partner_lists") == [(3,)]
    # Still one row per list: a second copy of the long text is refused.
    with pytest.raises(psycopg.errors.UniqueViolation):
        sql(dsn, "INSERT INTO partner_lists (partners, partner_set) SELECT partners, "
                 "partner_set FROM partner_lists WHERE length(partners) > 6000")
    assert sql(dsn, "SELECT count(DISTINCT list_id) FROM page_views") == [(3,)]
    report = check(dsn)
    assert report.ok and report.rows == 5, report.problems


def _traced_append(store: PostgresStore, rows: list[Any], trace: Path) -> list[str]:
    """``store.append(rows)`` with libpq's protocol trace on: the messages the client sent."""
    store.open()
    assert store._conn is not None
    with trace.open("w") as f:
        store._conn.pgconn.trace(f.fileno())
        try:
            store.append(rows)
        finally:
            store._conn.pgconn.untrace()
    sent = [line.split("\t") for line in trace.read_text().splitlines()]
    # Each line: time, F (from the client) or B, length, message type, its contents.
    return [f"{p[3]} {' '.join(p[4:]).strip()[:40]}".strip()
            for p in sent if len(p) > 3 and p[1] == "F"]


def test_postgres_steady_state_commit_is_one_copy_without_begin(dsn: str, tmp_path: Path) -> None:
    """Once a view's partner list and set are committed, a commit of views is one COPY
    statement in autocommit (its own transaction): no BEGIN, no COMMIT, one message
    carrying the rows. A new list still goes through one explicit transaction."""
    store = PostgresStore(dsn)
    cursor = ChainCursor()
    first = cursor.link([page_view(1)])
    sent = _traced_append(store, first, tmp_path / "t1")  # the list is new: a transaction
    cursor.advance(first)
    assert sent[0].startswith("Query \"BEGIN") and sent[-1].startswith("Query \"COMMIT")
    rows = cursor.link([page_view(i) for i in range(2, 12)])
    sent = _traced_append(store, rows, tmp_path / "t2")
    cursor.advance(rows)
    assert [m.split(" ")[0] for m in sent] == ["Query", "CopyData", "CopyDone"], sent
    assert "COPY page_views" in sent[0]
    store.close()
    assert sql(dsn, "SELECT count(*) FROM page_views") == [(11,)]
    assert check(dsn).ok


def test_postgres_failed_copy_commits_none_of_its_views_and_the_next_one_commits(
    dsn: str
) -> None:
    """The one-statement commit is atomic: a bad view (a NUL byte, which PostgreSQL text
    cannot hold) fails its whole batch and leaves nothing behind; the connection stays
    usable and the chain goes on from the last committed row."""
    store = PostgresStore(dsn)
    cursor = ChainCursor()
    rows = cursor.link([page_view(1)])
    store.append(rows)
    cursor.advance(rows)
    bad = PageView(time=NOW, request_id="v3", consent_id="c1", path="/a\x00b", partners=_SHARES)
    with pytest.raises(psycopg.Error, match="NUL"):
        store.append(cursor.link([page_view(2), bad, page_view(4)]))
    rows = cursor.link([page_view(5)])
    store.append(rows)
    store.close()
    assert sql(dsn, "SELECT request_id, seq FROM page_views ORDER BY id") == [("v1", 1), ("v5", 2)]
    assert check(dsn).ok


def test_postgres_a_request_for_a_nul_or_non_utf8_path_commits_with_its_batch(dsn: str) -> None:
    """A request for ``/a%00b`` (or a path with a byte that is not UTF-8) goes through
    ``page_path``, so it cannot fail the group commit of every page written with it."""
    store = PostgresStore(dsn)
    cursor = ChainCursor()
    odd = [PageView(time=NOW, request_id=f"odd{i}", consent_id="c1", path=page_path(p),
                    partners=_SHARES) for i, p in enumerate(["/a\x00b", "/caf\udce9"])]
    rows = cursor.link([page_view(1), *odd, page_view(4)])
    store.append(rows)
    store.close()
    assert sql(dsn, "SELECT path FROM page_views WHERE request_id LIKE 'odd%' ORDER BY id") == [
        ("/a%00b",), ("/caf%E9",)]
    assert sql(dsn, "SELECT count(*) FROM page_views") == [(4,)]
    assert check(dsn).ok


_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
                max_size=30)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(views=st.lists(st.fixed_dictionaries({
    "request_id": _TEXT, "consent_id": st.none() | _TEXT, "path": _TEXT,
    "policy_version": _TEXT, "ip": st.none() | _TEXT, "ua_family": _TEXT,
    "fields": st.dictionaries(_TEXT, _TEXT | st.integers() | st.floats(allow_nan=False, allow_infinity=False),
                              max_size=3),
    "micros": st.integers(0, 10**9), "list": st.sampled_from([0, 1, 2]),
}), min_size=1, max_size=4))
def test_postgres_copy_round_trips_any_text_and_its_hashes_verify(
    dsn: str, views: list[dict[str, Any]]
) -> None:
    """The rows COPY sends are text with tabs, newlines, backslashes, quotes and any
    Unicode escaped by psycopg: what comes back is the record written (so its hash
    recomputes), through the steady-state COPY and, for a list not seen yet, the
    transaction."""
    lists = (_SHARES, _SHARES[:1], _SHARES[1:])
    recs = [PageView(time=NOW + timedelta(microseconds=v["micros"]), request_id=v["request_id"],
                     consent_id=v["consent_id"], path=v["path"], partners=lists[v["list"]],
                     policy_version=v["policy_version"], ip=v["ip"], ua_family=v["ua_family"],
                     fields=v["fields"]) for v in views]
    with PostgresStore(dsn) as store:
        before = sql(dsn, "SELECT count(*) FROM page_views")[0][0] if sql(
            dsn, "SELECT to_regclass('page_views')")[0][0] else 0
        cursor = ChainCursor()
        rows = cursor.link(recs)
        store.append(rows)
        back = [r for r in store.chain_rows() if isinstance(r, StoredRow)
                and r.writer_id == cursor.writer_id]
    assert [r.record for r in back] == recs
    assert [r.computed_hash() for r in back] == [r.hash for r in back]
    assert sql(dsn, "SELECT count(*) FROM page_views")[0][0] == before + len(recs)
