"""The middleware and the ledger together: what is recorded, log before disclose, fail closed."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from middleware.ledger import open_store, verify

from .asgi_helpers import (
    ADS_SNIPPET,
    PAGE,
    SOCIAL_SNIPPET,
    cookie_for,
    html_app,
    http_scope,
    make_gate,
    run,
)

YOUTUBE_PAGE = (b"<!DOCTYPE html><html><head></head><body>"
                b'<iframe width="560" height="315" src="https://www.youtube.com/embed/x"></iframe>'
                b"</body></html>")
VIDEO_PARTNER = {
    "youtube": {"name": "YouTube", "purposes": ["social"], "hosts": ["www.youtube.com"],
                "receives": ["ip_address", "cookies"], "cookies": ["VISITOR_INFO1_LIVE"],
                "privacy_url": "https://policies.google.com/privacy"},
}


def rows(path: Path, table: str = "disclosures") -> list[dict[str, Any]]:
    """The rows of ``table``; ``disclosures``: the old per-partner table's rows, then one dict
    per (page view record, partner) in that same shape (JSON columns as text)."""
    if not path.exists():
        return []
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        if table != "disclosures":
            return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY id")]
        out = [dict(r) for r in conn.execute("SELECT * FROM disclosures ORDER BY id")]
        # partners: the row's own text (schema v3), else its partner list's (v4: list_id).
        for r in conn.execute(
                "SELECT v.*, COALESCE(NULLIF(v.partners, ''), l.partners) AS partners_text "
                "FROM page_views v LEFT JOIN partner_lists l ON l.id = v.list_id ORDER BY v.id"):
            view = dict(r)
            del view["partners"], view["list_id"]
            shares = json.loads(view.pop("partners_text"))
            assert view.pop("partner_set") == " " + " ".join(s["partner"] for s in shares) + " "
            for share in shares:
                out.append({**view, **{k: json.dumps(v) if isinstance(v, list) else v
                                       for k, v in share.items()}})
        return out


def ledger_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


def test_disclosure_recorded_for_injected_partner_with_minimised_fields(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    scope = http_scope(cookie=cookie_for(gate, {"ads"}),
                       headers=[(b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
                                                b"(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36")])
    scope["path"], scope["query_string"] = "/article", b"utm_source=mail&email=a@b.c"
    asyncio.run(run(gate, scope))
    recorded = rows(ledger_path(tmp_path))
    assert len(recorded) == 1
    row = recorded[0]
    assert row["partner"] == "adsense"
    assert row["path"] == "/article", "query string dropped by default"
    assert json.loads(row["purposes"]) == ["ads"]
    assert row["legal_basis"] == "consent"
    assert json.loads(row["data_categories"]) == ["ip_address", "cookies", "page_url"]
    assert json.loads(row["cookies"]) == ["__gads"]
    assert row["policy_version"] == "v1"
    assert row["ip"] == "203.0.113.0/24"
    assert row["ua_family"].startswith("Chrome")
    assert row["consent_id"] == "cid-" + "a" * 12


def test_disclosure_recorded_for_hard_coded_consented_tag_only(tmp_path: Path) -> None:
    gate = make_gate(html_app([YOUTUBE_PAGE]), tmp_path, partners=VIDEO_PARTNER)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"social"}))))
    assert b'src="https://www.youtube.com/embed/x"' in out.body
    assert sorted(r["partner"] for r in rows(ledger_path(tmp_path))) == ["x", "youtube"]


def test_disclosure_nothing_recorded_without_consent(tmp_path: Path) -> None:
    gate = make_gate(html_app([YOUTUBE_PAGE]), tmp_path, partners=VIDEO_PARTNER)
    out = asyncio.run(run(gate, http_scope()))
    assert b'src="https://www.youtube.com/embed/x"' not in out.body
    assert rows(ledger_path(tmp_path)) == []


def test_disclosure_opt_out_stance_records_legal_basis(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, policy={"default": "allow"})
    out = asyncio.run(run(gate, http_scope()))
    assert ADS_SNIPPET.encode() in out.body
    assert {r["legal_basis"] for r in rows(ledger_path(tmp_path))} == {"opt-out-not-exercised"}


def test_disclosure_is_durable_before_enabling_chunk_is_sent(tmp_path: Path) -> None:
    """Hold the ledger's store: the chunk with the partner snippet must wait for the commit.
    (The thread writer, whose store this process can hold; the process writer: next test.)"""
    chunks = [b"<html><head><title>x</title>", b"</head><body>" + b"<p>text</p>" * 50, b"</body></html>"]
    gate = make_gate(html_app(chunks), tmp_path, ledger={"writer": "thread"})
    store = gate.discloser.writer.store  # type: ignore[union-attr]
    held, entered = threading.Event(), threading.Event()
    original_append = store.append

    def slow_append(batch: Any) -> None:
        entered.set()
        held.wait(10)
        original_append(batch)

    store.append = slow_append  # type: ignore[method-assign]

    async def scenario() -> tuple[list[bytes], list[bytes], int]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        task = asyncio.create_task(
            gate(http_scope(cookie=cookie_for(gate, {"ads"})), _receive, send))
        while not entered.is_set():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)
        while_held = [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]
        rows_while_held = len(rows(ledger_path(tmp_path)))
        held.set()
        await task
        after = [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]
        return while_held, after, rows_while_held

    while_held, after, rows_while_held = asyncio.run(scenario())
    assert rows_while_held == 0
    assert not any(ADS_SNIPPET.encode() in b for b in while_held), "partner bytes left before the commit"
    assert ADS_SNIPPET.encode() in b"".join(after)
    assert [r["partner"] for r in rows(ledger_path(tmp_path))] == ["adsense"]


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _broken_ledger(tmp_path: Path) -> str:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a regular file: nothing can be created under it, not even by root")
    return str(blocker / "ledger.sqlite3")


def test_disclosure_unwritable_ledger_fails_closed(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    page = PAGE.replace(b"</body>", b'<script src="https://platform.twitter.com/widgets.js"></script></body>')
    gate = make_gate(html_app([page]), tmp_path, ledger={"path": _broken_ledger(tmp_path)})
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads", "social"}))))
    assert out.start["status"] == 200
    assert ADS_SNIPPET.encode() not in out.body and SOCIAL_SNIPPET.encode() not in out.body
    assert b'type="text/plain"' in out.body, "the hard-coded partner script is neutralised"
    assert b"<h1>Hello</h1>" in out.body
    assert "the ledger cannot write" in caplog.text
    # Within the retry interval, the next page is served with partners off straight away.
    again = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads", "social"}))))
    assert ADS_SNIPPET.encode() not in again.body
    assert caplog.text.count("the ledger cannot write") == 1, "logged once per minute, not per page"


def test_disclosure_unwritable_ledger_fail_open_still_serves_partners(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, ledger={"fail": "open", "path": _broken_ledger(tmp_path)})
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    assert ADS_SNIPPET.encode() in out.body


def test_disclosure_consent_events_prove_choices(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    with TestClient(gate, base_url="http://testserver") as client:
        given = client.post("/.consent/choice", data={"action": "accept-all", "source": "banner"},
                            headers={"Origin": "http://testserver"}, follow_redirects=False)
        assert given.status_code == 303
        withdrawn = client.post("/.consent/choice", data={"action": "withdraw", "source": "preferences"},
                                headers={"Origin": "http://testserver"}, follow_redirects=False)
        assert withdrawn.status_code == 303
    events = rows(ledger_path(tmp_path), "consent_events")
    assert [e["action"] for e in events] == ["given", "withdrawn"]
    assert [e["source"] for e in events] == ["banner", "preferences"]
    assert json.loads(events[0]["choices"]) == {"necessary": True, "ads": True, "social": True}
    assert json.loads(events[1]["choices"])["ads"] is False
    assert events[0]["consent_id"] == events[1]["consent_id"] != ""
    assert verify(open_store(str(ledger_path(tmp_path)))).ok


def test_disclosure_remembered_rewrite_still_logs_every_view(tmp_path: Path) -> None:
    """A repeated page view reuses the rewritten bytes (kept from the second view on), never
    the ledger write."""
    gate = make_gate(html_app(), tmp_path)
    cookie = cookie_for(gate, {"ads"})
    first = asyncio.run(run(gate, http_scope(cookie=cookie)))
    asyncio.run(run(gate, http_scope(cookie=cookie)))
    third = asyncio.run(run(gate, http_scope(cookie=cookie)))
    assert gate.memo.hits == 1
    assert first.body == third.body and ADS_SNIPPET.encode() in third.body
    recorded = rows(ledger_path(tmp_path))
    assert [r["partner"] for r in recorded] == ["adsense", "adsense", "adsense"]
    assert len({r["request_id"] for r in recorded}) == 3


def test_disclosure_process_writer_acknowledges_only_after_the_commit(tmp_path: Path) -> None:
    """[ledger] writer = "process": hold SQLite's write lock from here, and the chunk with
    the partner snippet waits until the child process could commit."""
    chunks = [b"<html><head><title>x</title>", b"</head><body>" + b"<p>text</p>" * 50, b"</body></html>"]
    gate = make_gate(html_app(chunks), tmp_path, ledger={"writer": "process"})
    cookie = cookie_for(gate, {"ads"})
    lock = sqlite3.connect(ledger_path(tmp_path), isolation_level=None)

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        # The child process belongs to the loop that started it: start it here, with a write
        # that waits as long as the start takes (a loaded host may need seconds).
        import datetime as dt

        from middleware.ledger import ConsentEvent

        assert gate.discloser.writer is not None
        await gate.discloser.writer.write([ConsentEvent(
            time=dt.datetime.now(dt.UTC), consent_id="warm-up", action="given", choices={},
            policy_version="v1", source="banner")])
        lock.execute("BEGIN IMMEDIATE")
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        task = asyncio.create_task(gate(http_scope(cookie=cookie), _receive, send))
        await asyncio.sleep(0.5)
        while_held = [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]
        lock.execute("COMMIT")
        await task
        return while_held, [m.get("body", b"") for m in sent if m["type"] == "http.response.body"]

    while_held, after = asyncio.run(scenario())
    lock.close()
    assert not any(ADS_SNIPPET.encode() in b for b in while_held), "partner bytes left before the commit"
    assert ADS_SNIPPET.encode() in b"".join(after)
    assert len(rows(ledger_path(tmp_path))) == 1


def test_disclosure_remembered_rewrite_fails_closed_when_ledger_breaks(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, ledger={"writer": "thread"})
    cookie = cookie_for(gate, {"ads"})
    for _ in range(2):  # the page is remembered from its second view on
        asyncio.run(run(gate, http_scope(cookie=cookie)))
    gate.discloser.writer.store = open_store(_broken_ledger(tmp_path))  # type: ignore[union-attr]
    out = asyncio.run(run(gate, http_scope(cookie=cookie)))
    assert gate.memo.hits == 1
    assert ADS_SNIPPET.encode() not in out.body
    assert b"googlesyndication" not in out.header(b"content-security-policy")[0]


def test_disclosure_purge_on_start_keeps_chain_verifiable(tmp_path: Path) -> None:
    import datetime as dt

    from middleware.ledger import DisclosureRecord, LedgerWriter

    path = str(ledger_path(tmp_path))
    old, new = (dt.datetime.now(dt.UTC) - dt.timedelta(days=d) for d in (500, 1))
    writer = LedgerWriter(open_store(path))
    writer.write_sync([DisclosureRecord(time=t, request_id=f"r{i}", consent_id="c", path="/",
                                        partner="adsense", purposes=("ads",), legal_basis="consent")
                       for i, t in enumerate([old, old, new])])
    writer.close()
    gate = make_gate(html_app(), tmp_path, ledger={"purge_on_start": True, "retention_days": 395})
    with TestClient(gate):
        pass
    assert [r["request_id"] for r in rows(ledger_path(tmp_path))] == ["r2"]
    report = verify(open_store(path))
    assert report.ok, report.first_problem
