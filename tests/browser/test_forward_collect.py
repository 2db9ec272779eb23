"""Chromium: a page's conversion goes through /.consent/collect; the partner (a loopback
server checking Meta's schema) sees nothing without consent and exactly the allowed fields
with it; the browser itself never contacts the partner."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.forward_helpers import ENV, config_toml, ledger_rows, outbox_rows
from tests.support.partners import PartnerServer
from tests.support.servers import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser


def buy(page: Page) -> str:
    page.click("#buy")
    page.wait_for_function("document.getElementById('result').textContent.startsWith('status')")
    return page.inner_text("#result")


def test_forward_collect_in_chromium_sends_exactly_the_allowed_fields(
        page: Page, recording_proxy: RecordingProxy, start_server: Callable[..., ServerProcess],
        tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.sqlite3"
    with PartnerServer("meta") as meta:
        config = tmp_path / "partners.toml"
        config.write_text(config_toml({"meta": meta.url}, str(ledger)))
        site = start_server("tests.support.forward_site:app", env={
            "CONSENT_GATE_SECRET": "s" * 48, "FORWARD_SITE_CONFIG": str(config), **ENV})

        page.goto(site.url + "/thanks")
        assert buy(page) == "status 202"  # the same answer without consent...
        assert outbox_rows(ledger) == 0 and meta.requests == []  # ...but nothing queued or sent

        with page.expect_navigation():  # the banner reloads the page once the choice is stored
            page.click("text=Accept all")
        page.wait_for_load_state("load")
        assert any(c["name"] == "consent" for c in page.context.cookies())
        assert buy(page) == "status 202"
        (req,) = meta.wait_for(1)
        time.sleep(0.2)
        assert len(meta.requests) == 1
    assert req.schema_errors == []
    ev = req.body["data"][0]
    assert set(ev) == {"event_name", "event_time", "event_id", "action_source", "user_data",
                       "event_source_url", "custom_data", "data_processing_options"}
    assert ev["event_name"] == "Purchase" and ev["event_source_url"] == f"{site.url}/thanks"
    assert ev["custom_data"] == {"value": 49.9, "currency": "EUR"}  # no order_id: not allowed
    ud = ev["user_data"]
    assert set(ud) == {"em", "client_ip_address", "client_user_agent", "fbp"}
    assert ud["em"] == [hashlib.sha256(b"shopper@example.com").hexdigest()]
    # the UA family, never the UA string (HeadlessChrome counts as "bot")
    assert ud["client_ip_address"] == "127.0.0.0" and ud["client_user_agent"] == "bot"
    assert ud["fbp"] == "fb.1.1700000000.777"
    assert b"Mozilla" not in req.raw and b"Shopper" not in req.raw and b"order-123" not in req.raw
    assert recording_proxy.hosts() == set()  # the browser never talked to a partner
    queued = [r for r in ledger_rows(ledger) if r.get("delivery") == "queued"]
    assert [r["event_id"] for r in queued] == [ev["event_id"]]
    assert set(queued[0]["sent"]) == {"email_sha256", "ip", "page_url", "ua_family", "value",
                                      "currency", "cookie._fbp"}
