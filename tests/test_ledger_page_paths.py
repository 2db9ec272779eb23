"""The page path a record keeps is unambiguous: distinct request paths give distinct records
(records.recorded_path), through a real uvicorn into SQLite and into PostgreSQL.

What the app sees (uvicorn, h11): scope ``path`` is the request line's path percent-decoded
as UTF-8 with replacement, ``raw_path`` the bytes as sent; so ``/a%2500b`` arrives as
``/a%00b`` and ``/a%00b`` as ``/a\\x00b``, which were recorded alike before."""

from __future__ import annotations

import secrets
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware import ConsentMiddleware
from middleware.ledger import PageView, page_path
from middleware.ledger.chain import ChainCursor
from tests.asgi_helpers import SECRET, cookie_for
from tests.support.budget import examples
from tests.support.servers import start_uvicorn
from tests.support.tracker_config import tracker_config
from tests.test_forward_api import ORIGIN, accept_all, collect, site  # noqa: F401

#: The characters the escapes are made of, and the ones that trigger them.
_TRICKY = st.text(st.sampled_from(["%", "?", "\x00", "\udce9", "\ud800", "\udc80", "u", "D",
                                   "8", "0", "2", "5", "3", "F", "E", "9", "a", "/", "é"]),
                  max_size=12)
_PATHS = st.one_of(st.text(max_size=12), _TRICKY)


def read_back(recorded: str) -> str:
    """The decoded path a record was made from (the inverse the docstring promises)."""
    if "%" not in recorded:
        return recorded
    out, i = [], 0
    while i < len(recorded):
        c = recorded[i]
        if c != "%":
            out.append(c)
            i += 1
        elif recorded[i + 1] == "u":
            out.append(chr(int(recorded[i + 2:i + 6], 16)))
            i += 6
        else:
            byte = int(recorded[i + 1:i + 3], 16)
            out.append({0x25: "%", 0x3F: "?", 0x00: "\x00"}.get(byte)
                       or bytes([byte]).decode("utf-8", "surrogateescape"))
            i += 3
    return "".join(out)


@settings(max_examples=examples(500), deadline=None)
@given(a=_PATHS, b=_PATHS)
def test_distinct_paths_give_distinct_records(a: str, b: str) -> None:
    ra, rb = page_path(a), page_path(b)
    assert (ra == rb) == ((a or "/") == (b or "/")), (a, b, ra, rb)
    for path, recorded in ((a, ra), (b, rb)):
        recorded.encode("utf-8")  # every store holds it
        assert "\x00" not in recorded
        assert read_back(recorded) == (path or "/")


@settings(max_examples=examples(300), deadline=None)
@given(a=_PATHS, b=_PATHS, qa=st.text(max_size=6).filter(lambda q: "\x00" not in q),
       qb=st.text(max_size=6).filter(lambda q: "\x00" not in q))
def test_kept_queries_do_not_make_two_requests_alike(a: str, b: str, qa: str, qb: str) -> None:
    """With ``keep_query`` the first ``?`` is the query's: a path's own ``?`` is escaped."""
    if page_path(a, qa, keep_query=True) == page_path(b, qb, keep_query=True):
        assert (a or "/", qa) == (b or "/", qb)


def test_common_paths_are_recorded_as_the_app_saw_them() -> None:
    for path in ("/", "/blog/2026/12/03/post", "/caf\u00e9", "/a b", "/\ufffd", "/~x;y=1"):
        assert page_path(path) == path


#: request-line path -> what the app sees (uvicorn) -> the record.
REQUESTS = {
    "/a%2500b": "/a%2500b",   # the app sees /a%00b (a percent sign, then 00)
    "/a%00b": "/a%00b",       # the app sees /a\x00b
    "/a%3Fb": "/a%3Fb",       # the app sees /a?b
    "/a?b": "/a",             # a query: not recorded by default
    "/100%25": "/100%25",     # the app sees /100%
    "/caf%C3%A9": "/caf\u00e9",
    "/caf%E9": "/caf\ufffd",  # not UTF-8: uvicorn replaces it (no surrogate reaches the app)
    "/plain": "/plain",
}


def _get(port: int, target: str, cookie: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: {cookie}\r\n"
                  "Connection: close\r\n\r\n".encode("ascii"))
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_real_uvicorn_requests_are_recorded_distinctly_in_sqlite(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    config = tmp_path / "partners.toml"
    config.write_text(tracker_config(ledger.as_posix()))
    cookie = cookie_for(ConsentMiddleware(lambda *a: None, config=str(config), secret=SECRET), {"ads"})
    env = {"CSP_SITE_CONFIG": str(config), "CONSENT_GATE_SECRET": SECRET}
    # Every path of the CSP site that it does not know is a 404 page with the partner's tags.
    with start_uvicorn("tests.browser.csp_site:create_app", env=env, extra_args=["--factory"],
                       log_level="warning") as server:
        for target in REQUESTS:
            answer = _get(server.port, target, cookie)
            assert answer.startswith(b"HTTP/1.1 404") and b"tracker.partner.example" in answer
        deadline = time.monotonic() + 10
        rows: list[tuple[str]] = []
        while time.monotonic() < deadline and len(rows) < len(REQUESTS):
            with sqlite3.connect(ledger) as db:
                rows = db.execute("SELECT path FROM page_views ORDER BY id").fetchall()
            time.sleep(0.05)
    assert [r[0] for r in rows] == list(REQUESTS.values())


psycopg = pytest.importorskip("psycopg")

from middleware.ledger.postgres import PostgresStore  # noqa: E402
from tests.test_ledger_postgres import _SHARES, NOW, dsn, pg_server, sql  # noqa: E402,F401

#: What servers hand apps (uvicorn's decoded paths, and surrogateescape servers' lone
#: surrogates): pairs that were recorded alike before.
ALIKE_BEFORE = ["/a\x00b", "/a%00b", "/caf\udce9", "/caf%E9", "/x\ud800", "/x\udced\udca0\udc80",
                "/a?b", "/a"]


@pytest.mark.postgres
def test_postgres_keeps_every_recorded_path_distinct(dsn: str) -> None:  # noqa: F811
    store = PostgresStore(dsn)
    views = [PageView(time=NOW, request_id=f"p{i}", consent_id="c1", path=page_path(p),
                      partners=_SHARES) for i, p in enumerate(ALIKE_BEFORE)]
    store.append(ChainCursor().link(views))
    store.close()
    got = [r[0] for r in sql(dsn, "SELECT path FROM page_views ORDER BY id")]
    assert got == ["/a%00b", "/a%2500b", "/caf%E9", "/caf%25E9", "/x%uD800", "/x%ED%A0%80",
                   "/a%3Fb", "/a"]
    assert [read_back(p) for p in got] == ALIKE_BEFORE


def test_sqlite_store_keeps_every_recorded_path_distinct(tmp_path: Path) -> None:
    from middleware.ledger.sqlite import SqliteStore

    store = SqliteStore(str(tmp_path / "l.sqlite3"))
    views = [PageView(time=NOW, request_id=f"s{i}-{secrets.token_hex(2)}", consent_id="c1",
                      path=page_path(p), partners=_SHARES) for i, p in enumerate(ALIKE_BEFORE)]
    store.append(ChainCursor().link(views))
    store.close()
    with sqlite3.connect(tmp_path / "l.sqlite3") as db:
        got = [r[0] for r in db.execute("SELECT path FROM page_views ORDER BY id")]
    assert len(set(got)) == len(ALIKE_BEFORE)
    assert [read_back(p) for p in got] == ALIKE_BEFORE


def test_collect_event_records_the_page_path_decoded_like_the_page_view(
        site: tuple[Any, Any, Path]) -> None:  # noqa: F811
    """``/.consent/collect`` names its page by URL (Referer or ``page_url``): its path is
    decoded before it is recorded, as the scope path of that page's own view is."""
    client, meta, ledger = site
    accept_all(client)
    r = collect(client, {"event": "lead", "value": 5}, referer=f"{ORIGIN}/caf%C3%A9/100%25?x=1")
    assert r.status_code == 202
    meta.wait_for(1)
    with sqlite3.connect(ledger) as db:
        paths = {row[0] for row in db.execute("SELECT path FROM disclosures")}
    assert "/caf\u00e9/100%25" in paths, paths
