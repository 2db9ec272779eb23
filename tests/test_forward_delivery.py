"""Delivery to real loopback partners: schemas, consent first, ledger first, retries with the
same event id, the 7-day limit, the circuit breaker, GPC and limited-data-use flags."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from middleware.forward.outbox import status_of
from tests.forward_helpers import (
    ENV,
    Clock,
    consent,
    ledger_rows,
    make_config,
    make_forwarder,
    outbox_rows,
    scope,
)
from tests.support.partners import PartnerRequest, PartnerServer

ALL = {"ads", "analytics", "measurement"}
DATA: dict[str, Any] = {"value": 12.5, "currency": "EUR", "email": " Jo.Doe@Gmail.com ",
                        "phone": "+1 (555) 123-4567", "order_id": "o-17"}
COOKIES = "_fbp=fb.1.1700000000.42; _ga=GA1.1.1234567.1700000000; _ttp=tt-1; other=zzz"


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


async def drain(fw: Any, clock: Clock | None = None, rounds: int = 30, step: float = 0.0) -> None:
    for _ in range(rounds):
        await fw.sender.run_once()
        if outbox_rows(fw.outbox.path) == 0:
            return
        if clock is not None:
            clock.advance(step)


async def close(fw: Any) -> None:
    await fw.aclose()
    await fw.writer.aclose()


def one_purchase_to_meta_and_tiktok(
        tmp_path: Path, *, meta: Sequence[tuple[Any, ...]] = (),
        tiktok: Sequence[tuple[Any, ...]] = ()) -> tuple[tuple[int, int], dict[str, Any]]:
    """One purchase forwarded to partner servers answering as scripted, retried to the end
    (2-minute steps): (requests meta saw, requests tiktok saw), ledger rows by partner."""
    async def go() -> tuple[int, int]:
        with PartnerServer("meta") as meta_server, PartnerServer("tiktok") as tt_server:
            meta_server.script(*meta)
            tt_server.script(*tiktok)
            config = make_config({"meta": meta_server.url, "tiktok": tt_server.url},
                                 tmp_path / "l.sqlite3")
            clock = Clock()
            fw = make_forwarder(config, clock)
            await fw.forward(scope(), consent(config, ALL), "purchase", DATA)
            await drain(fw, clock, step=120)
            await close(fw)
            return len(meta_server.requests), len(tt_server.requests)
    sent = asyncio.run(go())
    rows = {r["partner"]: r for r in ledger_rows(tmp_path / "l.sqlite3") if r["delivery"] != "queued"}
    return sent, rows


def test_forward_payloads_match_each_partners_schema(tmp_path: Path) -> None:
    async def go() -> None:
        with PartnerServer("meta") as meta, PartnerServer("ga4") as ga4, \
                PartnerServer("tiktok") as tt, PartnerServer("webhook") as hook:
            config = make_config({"meta": meta.url, "ga4": ga4.url, "tiktok": tt.url, "hook": hook.url},
                                 tmp_path / "l.sqlite3")
            fw = make_forwarder(config, Clock())
            result = await fw.forward(scope(cookies=COOKIES), consent(config, ALL), "purchase", DATA)
            assert set(result.queued) == {"meta", "ga4", "tiktok", "hook"}
            await drain(fw)
            await close(fw)
            for p in (meta, ga4, tt, hook):
                assert len(p.requests) == 1 and p.requests[0].schema_errors == [], (p.kind, p.requests)
            m = meta.requests[0]
            ev = m.body["data"][0]
            assert m.query["access_token"] == [ENV["META_TOKEN"]]
            assert ev["event_name"] == "Purchase" and ev["event_id"] == result.event_id
            assert ev["user_data"]["em"] == [sha("jo.doe@gmail.com")]       # Meta keeps gmail dots
            assert ev["user_data"]["ph"] == [sha("15551234567")]            # digits, no '+'
            assert ev["user_data"]["client_ip_address"] == "203.0.113.0"    # /24, never the address
            assert ev["user_data"]["fbp"] == "fb.1.1700000000.42"
            assert ev["event_source_url"] == "https://shop.example/checkout"  # no query
            assert "order_id" not in ev.get("custom_data", {})               # not in meta's allow-list
            g = ga4.requests[0]
            assert g.query["api_secret"] == [ENV["GA4_SECRET"]] and g.query["measurement_id"] == ["G-TEST1234"]
            assert g.body["client_id"] == "1234567.1700000000"
            assert g.body["user_data"] == {"sha256_email_address": [sha("jodoe@gmail.com")]}  # Google rule
            assert "ip_override" not in g.body  # ip not in ga4's allow-list
            t = tt.requests[0]
            assert t.headers["access-token"] == ENV["TIKTOK_TOKEN"]
            tev = t.body["data"][0]
            assert tev["event"] == "CompletePayment" and tev["user"]["email"] == sha("jo.doe@gmail.com")
            assert tev["page"]["referrer"] == "https://search.example/" and "ttp" not in tev["user"]
            h = hook.requests[0]
            assert h.headers["authorization"] == f"Bearer {ENV['HOOK_TOKEN']}"
            assert h.body["fields"] == {"page_url": "https://shop.example/checkout", "value": 12.5}
            # nothing the allow-lists do not name, anywhere: no cookie "other", no full UA, no query
            for p in (meta, ga4, tt, hook):
                raw = p.requests[0].raw.decode()
                assert "zzz" not in raw and "Mozilla" not in raw and "q=secret" not in raw
                # the phone as given or as digits (not "555" alone: event_time, a Unix time,
                # holds it on some days, 1796355581 on 2026-12-04)
                assert "Jo.Doe" not in raw and "(555)" not in raw and "123-4567" not in raw
                assert "15551234567" not in raw
    asyncio.run(go())


def test_forward_no_consent_sends_and_queues_nothing(tmp_path: Path) -> None:
    async def go() -> None:
        with PartnerServer("meta") as meta, PartnerServer("ga4") as ga4:
            config = make_config({"meta": meta.url, "ga4": ga4.url}, tmp_path / "l.sqlite3")
            fw = make_forwarder(config, Clock())
            for c in (consent(config, set()), consent(config, {"analytics"}),
                      consent(config, ALL, decided=False)):
                await fw.forward(scope(), c, "purchase", DATA)
            result = await fw.forward(scope(), consent(config, {"analytics"}), "purchase", DATA)
            assert result.queued == ("ga4",) and "no consent for ads" in result.skipped["meta"]
            await drain(fw)
            await close(fw)
            assert meta.requests == [] and len(ga4.requests) == 2
            assert {r["partner"] for r in ledger_rows(tmp_path / "l.sqlite3")} == {"ga4"}
    asyncio.run(go())


def test_forward_ledger_record_is_durable_before_the_request_leaves(tmp_path: Path) -> None:
    db = tmp_path / "l.sqlite3"
    seen: list[list[dict[str, Any]]] = []

    def on_request(req: PartnerRequest) -> None:
        conn = sqlite3.connect(db)  # another connection: only committed rows are visible
        try:
            seen.append([dict(zip(("partner", "fields"), r, strict=True)) for r in conn.execute(
                "SELECT partner, fields FROM disclosures")])
        finally:
            conn.close()

    async def go() -> None:
        with PartnerServer("meta", on_request=on_request) as meta:
            config = make_config({"meta": meta.url}, db)
            fw = make_forwarder(config, Clock())
            result = await fw.forward(scope(), consent(config, ALL), "purchase", DATA)
            await drain(fw)
            await close(fw)
        assert len(seen) == 1 and len(seen[0]) == 1 and result.event_id in seen[0][0]["fields"]
        queued, delivered = ledger_rows(db)
        assert queued["delivery"] == "queued" and delivered["delivery"] == "accepted"
        assert set(queued["sent"]) == {"email_sha256", "phone_sha256", "ip", "page_url", "ua_family",
                                       "value", "currency"}
        assert all(v.startswith("hmac-sha256:") for v in queued["sent"].values())
        assert "Jo.Doe" not in str(queued) and sha("jo.doe@gmail.com") not in str(queued)
        assert queued["not_allowed"] == ["order_id"] and delivered["attempts"] == 1
    asyncio.run(go())


def test_forward_summary_counts_each_event_once_with_its_delivery_outcome(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from middleware.cli import main as cli_main
    from middleware.ledger.query import open_store, summary

    db = tmp_path / "l.sqlite3"

    async def go() -> None:
        with PartnerServer("meta") as meta:
            config = make_config({"meta": meta.url}, db)
            fw = make_forwarder(config, Clock())
            for _ in range(3):
                await fw.forward(scope(), consent(config, ALL), "purchase", DATA)
            await drain(fw)
            await close(fw)
            assert len(meta.requests) >= 1
    asyncio.run(go())
    assert sorted(r["delivery"] for r in ledger_rows(db) if r["partner"] == "meta") == \
        ["accepted"] * 3 + ["queued"] * 3
    store = open_store(str(db))
    try:
        by = {s.partner: s.page_views for s in summary(store)}
    finally:
        store.close()
    assert by["meta"] == 3
    out = tmp_path / "report.html"
    assert cli_main(["report", "--ledger", str(db), "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {p["partner"]: p["page_views"] for p in report["partners"]}["meta"] == 3


@pytest.mark.parametrize("failure", [("status", 500), ("status", 503), ("status", 429, 1), ("reset",)])
def test_forward_retries_with_the_same_event_id(tmp_path: Path, failure: tuple[Any, ...]) -> None:
    async def go() -> None:
        with PartnerServer("meta") as meta:
            meta.script(failure, failure)
            config = make_config({"meta": meta.url}, tmp_path / "l.sqlite3")
            clock = Clock()
            fw = make_forwarder(config, clock)
            result = await fw.forward(scope(), consent(config, ALL), "purchase", DATA)
            await drain(fw, clock, step=120)
            await close(fw)
            assert len(meta.requests) == 3
            ids = {r.body["data"][0]["event_id"] for r in meta.requests}
            assert ids == {result.event_id}
            bodies = {r.raw for r in meta.requests}
            assert len(bodies) == 1  # byte-identical retries
        final = ledger_rows(tmp_path / "l.sqlite3")[-1]
        assert final["delivery"] == "accepted" and final["attempts"] == 3
    asyncio.run(go())


def test_forward_retry_after_is_honoured(tmp_path: Path) -> None:
    async def go() -> None:
        with PartnerServer("meta") as meta:
            meta.script(("status", 429, 600))
            config = make_config({"meta": meta.url}, tmp_path / "l.sqlite3")
            clock = Clock()
            fw = make_forwarder(config, clock)
            await fw.forward(scope(), consent(config, ALL), "purchase", DATA)
            await fw.sender.run_once()
            clock.advance(599)
            assert await fw.sender.run_once() == 0  # not yet
            clock.advance(2 * 600)
            assert await fw.sender.run_once() == 1
            await close(fw)
            assert len(meta.requests) == 2
    asyncio.run(go())


@pytest.mark.parametrize("value", ["\u00b2", "1e3", "-5", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_forward_odd_retry_after_is_no_wait_and_the_round_settles(tmp_path: Path,
                                                                  value: str) -> None:
    """A partner's Retry-After is the partner's text: '²' (a digit to str.isdigit, not to
    float) raised out of the round, so no outcome of that round was written and every
    partner in it was posted again after the lease."""
    sent, rows = one_purchase_to_meta_and_tiktok(tmp_path, meta=[("status", 429, value), ("ok",)])
    assert sent == (2, 1)
    assert rows["meta"]["delivery"] == "accepted" and rows["meta"]["attempts"] == 2
    assert rows["tiktok"]["delivery"] == "accepted" and rows["tiktok"]["attempts"] == 1


def test_forward_unexpected_error_for_one_partner_keeps_the_rounds_other_outcomes(
        tmp_path: Path) -> None:
    async def go() -> None:
        with PartnerServer("meta") as meta, PartnerServer("tiktok") as tt:
            config = make_config({"meta": meta.url, "tiktok": tt.url}, tmp_path / "l.sqlite3")
            clock = Clock()
            fw = make_forwarder(config, clock)
            real_post = fw.sender._post

            async def post(spec: Any, body: str, gpc: bool) -> Any:
                if spec.partner == "meta":
                    raise RuntimeError("simulated bug")
                return await real_post(spec, body, gpc)

            fw.sender._post = post
            await fw.forward(scope(), consent(config, ALL), "purchase", DATA)
            await drain(fw, clock, step=3600)
            await close(fw)
            assert len(tt.requests) == 1 and meta.requests == []
        rows = {r["partner"]: r for r in ledger_rows(tmp_path / "l.sqlite3") if r["delivery"] != "queued"}
        assert rows["tiktok"]["delivery"] == "accepted" and rows["tiktok"]["attempts"] == 1
        assert rows["meta"]["delivery"] == "gave-up" and "simulated bug" in rows["meta"]["detail"]
    asyncio.run(go())


def test_forward_rejected_request_is_final_and_recorded(tmp_path: Path) -> None:
    sent, rows = one_purchase_to_meta_and_tiktok(tmp_path, meta=[("status", 400)],
                                                 tiktok=[("tiktok-error",)])
    assert sent == (1, 1)
    assert rows["meta"]["delivery"] == "rejected" and rows["meta"]["http_status"] == 400
    assert rows["tiktok"]["delivery"] == "rejected" and "code 40001" in rows["tiktok"]["detail"]


def test_forward_slow_partner_times_out_and_is_retried(tmp_path: Path) -> None:
    slow = 'kind = "webhook"\nendpoint = "{url}/events"\nfields = ["value"]\ntest_loopback = true\ntimeout_s = 0.3'

    async def go() -> None:
        with PartnerServer("webhook") as hook:
            hook.script(("slow", 1.0))
            config = make_config({"hook": hook.url}, tmp_path / "l.sqlite3",
                                 hook=slow.format(url=hook.url))
            clock = Clock()
            fw = make_forwarder(config, clock)
            await fw.forward(scope(), consent(config, ALL), "purchase", {"value": 1})
            await drain(fw, clock, step=120)
            await close(fw)
            assert len(hook.requests) == 2
        final = ledger_rows(tmp_path / "l.sqlite3")[-1]
        assert final["delivery"] == "accepted" and final["attempts"] == 2
    asyncio.run(go())


def test_forward_meta_event_older_than_7_days_is_dropped_and_recorded(tmp_path: Path) -> None:
    async def go() -> None:
        with PartnerServer("meta") as meta:
            config = make_config({"meta": meta.url}, tmp_path / "l.sqlite3")
            clock = Clock()
            fw = make_forwarder(config, clock)
            meta.script(("status", 503))
            await fw.forward(scope(), consent(config, ALL), "purchase", DATA)
            await fw.sender.run_once()
            clock.advance(7 * 86400 + 1)
            await fw.sender.run_once()
            await close(fw)
            assert len(meta.requests) == 1
        final = ledger_rows(tmp_path / "l.sqlite3")[-1]
        assert final["delivery"] == "expired" and "7 days" in final["detail"]
        conn = sqlite3.connect(tmp_path / "l.sqlite3")
        (st,) = status_of(conn)
        assert st.dropped == 1 and st.pending == 0 and st.retries == 1
    asyncio.run(go())


def test_forward_partner_down_opens_breaker_and_memory_stays_bounded(tmp_path: Path) -> None:
    """A partner that is down for an hour: a handful of attempts, events wait on disk."""
    async def go() -> None:
        config = make_config({"meta": "http://127.0.0.1:9"}, tmp_path / "l.sqlite3")  # port 9: closed
        clock = Clock()
        fw = make_forwarder(config, clock)
        for i in range(300):
            await fw.forward(scope(), consent(config, ALL), "purchase", {"event_id": f"e-{i}", "value": 1})
        for _ in range(120):  # one hour in 30 s steps
            await fw.sender.run_once()
            clock.advance(30)
        breaker = fw.sender.breakers["meta"]
        # One batch before the breaker opened, then one probe per cool-down (30 s doubling to
        # 10 min): not 300 events x 120 rounds.
        assert fw.sender.attempts <= 64 + 12, fw.sender.attempts
        assert breaker.state in ("open", "half-open") and breaker.failures >= 5
        assert outbox_rows(tmp_path / "l.sqlite3") == 300  # nothing lost, nothing held in memory
        await close(fw)
    asyncio.run(go())


def test_forward_gpc_sets_limited_data_use_and_strips_identifiers(tmp_path: Path) -> None:
    async def go() -> None:
        with PartnerServer("meta") as meta, PartnerServer("tiktok") as tt, PartnerServer("webhook") as hook:
            # ads is sale/sharing: under GPC its purposes are not granted unless chosen on the
            # preferences page; this visitor did, so the partners get the opt-out flags.
            config = make_config({"meta": meta.url, "tiktok": tt.url, "hook": hook.url},
                                 tmp_path / "l.sqlite3")
            fw = make_forwarder(config, Clock())
            await fw.forward(scope(cookies=COOKIES, gpc=True), consent(config, ALL, gpc=True),
                             "purchase", DATA)
            await drain(fw)
            await close(fw)
            ev = meta.requests[0].body["data"][0]
            assert ev["data_processing_options"] == ["LDU"]
            assert ev["data_processing_options_country"] == 0 and ev["data_processing_options_state"] == 0
            assert "em" not in ev["user_data"] and "fbp" not in ev["user_data"]
            assert ev["user_data"]["client_ip_address"] == "203.0.0.0"  # masked further
            assert meta.requests[0].schema_errors == []
            assert tt.requests[0].body["data"][0]["limited_data_use"] is True
            assert hook.requests[0].headers.get("sec-gpc") == "1"
            assert "sec-gpc" not in meta.requests[0].headers  # Meta takes the LDU flag instead
        queued = [r for r in ledger_rows(tmp_path / "l.sqlite3") if r["delivery"] == "queued"]
        meta_rec = next(r for r in queued if r["partner"] == "meta")
        assert meta_rec["action"] == "mask_ip+strip_extended_ids+strip_user_ids"
        assert set(meta_rec["removed"]) == {"email_sha256", "phone_sha256", "cookie._fbp"}
        assert meta_rec["limited_data_use"] is True
    asyncio.run(go())


def test_forward_credentials_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async def go() -> None:
        config = make_config({"meta": "http://127.0.0.1:9", "ga4": "http://127.0.0.1:9"},
                             tmp_path / "l.sqlite3")
        clock = Clock()
        fw = make_forwarder(config, clock)
        await fw.forward(scope(), consent(config, ALL), "purchase", DATA)
        for _ in range(3):
            await fw.sender.run_once()
            clock.advance(3600)
        await close(fw)
    caplog.set_level("DEBUG")
    asyncio.run(go())
    db = (tmp_path / "l.sqlite3").read_bytes() + (tmp_path / "l.sqlite3-wal").read_bytes() \
        if (tmp_path / "l.sqlite3-wal").exists() else (tmp_path / "l.sqlite3").read_bytes()
    for secret in ENV.values():
        assert secret not in caplog.text and secret.encode() not in db
    conn = sqlite3.connect(tmp_path / "l.sqlite3")
    assert all(s.last_error for s in status_of(conn))


def test_forward_meta_events_travel_in_batches_and_retry_together(tmp_path: Path) -> None:
    async def go() -> None:
        with PartnerServer("meta") as meta, PartnerServer("ga4") as ga4:
            meta.script(("status", 500))
            config = make_config({"meta": meta.url, "ga4": ga4.url}, tmp_path / "l.sqlite3")
            clock = Clock()
            fw = make_forwarder(config, clock)
            for i in range(30):
                await fw.forward(scope(), consent(config, ALL), "purchase", {"event_id": f"b-{i}", "value": i})
            await drain(fw, clock, step=120)
            await close(fw)
            assert len(meta.requests) == 2  # one batch, refused with 500, then sent again whole
            assert all(r.schema_errors == [] for r in meta.requests)
            assert [e["event_id"] for e in meta.requests[1].body["data"]] == [f"b-{i}" for i in range(30)]
            assert meta.requests[0].raw == meta.requests[1].raw
            assert len(ga4.requests) == 30  # GA4: one client id per request, so one event each
        accepted = [r for r in ledger_rows(tmp_path / "l.sqlite3")
                    if r["partner"] == "meta" and r["delivery"] == "accepted"]
        assert len(accepted) == 30 and {r["attempts"] for r in accepted} == {2}
    asyncio.run(go())


def test_forward_outbox_full_refuses_new_events_for_that_partner(tmp_path: Path) -> None:
    hook = 'kind = "webhook"\nendpoint = "http://127.0.0.1:9/events"\nfields = ["value"]\ntest_loopback = true\nmax_pending = 2'

    async def go() -> None:
        config = make_config({"hook": "http://127.0.0.1:9"}, tmp_path / "l.sqlite3", hook=hook)
        fw = make_forwarder(config, Clock())
        results = [await fw.forward(scope(), consent(config, ALL), "purchase", {"value": i}) for i in range(3)]
        await close(fw)
        assert [r.queued for r in results] == [("hook",), ("hook",), ()]
        assert "outbox full" in results[2].skipped["hook"]
        assert outbox_rows(tmp_path / "l.sqlite3") == 2
        assert len([r for r in ledger_rows(tmp_path / "l.sqlite3") if r["delivery"] == "queued"]) == 2
    asyncio.run(go())
