"""Shared by the tests/test_forward_*.py files: a config with four forwarding partners on
loopback servers, and a Forwarder built from it with a real ledger and outbox."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from middleware.config import Config, parse_config
from middleware.consent import Consent
from middleware.forward.forwarder import Forwarder
from middleware.forward.outbox import Outbox
from middleware.ledger import LedgerWriter, SqliteStore
from tests.support.config_text import config_text, partner

ENV = {"GA4_SECRET": "ga4-secret-value", "META_TOKEN": "meta-token-value",
       "TIKTOK_TOKEN": "tiktok-token-value", "HOOK_TOKEN": "hook-token-value"}


def config_toml(urls: Mapping[str, str], ledger: str, **overrides: str) -> str:
    """partners ga4 (analytics), meta and tiktok (ads, sale/sharing), hook (measurement)."""
    forwards = {
        "ga4": f'''kind = "ga4-measurement-protocol"
endpoint = "{urls.get("ga4", "http://127.0.0.1:9")}/mp/collect"
account = "G-TEST1234"
credential_env = "GA4_SECRET"
fields = ["event_id", "page_url", "value", "currency", "order_id", "email_sha256"]
cookies = ["_ga"]
test_loopback = true''',
        "meta": f'''kind = "meta-conversions-api"
endpoint = "{urls.get("meta", "http://127.0.0.1:9")}/v21.0"
account = "1234567890"
credential_env = "META_TOKEN"
fields = ["event_id", "page_url", "ip", "ua_family", "email_sha256", "phone_sha256", "value", "currency"]
cookies = ["_fbp"]
test_loopback = true''',
        "tiktok": f'''kind = "tiktok-events-api"
endpoint = "{urls.get("tiktok", "http://127.0.0.1:9")}/open_api/v1.3/event/track/"
account = "CTESTPIXEL0001"
credential_env = "TIKTOK_TOKEN"
fields = ["event_id", "page_url", "referrer_host", "ip", "ua_family", "email_sha256", "value", "currency"]
test_loopback = true''',
        "hook": f'''kind = "webhook"
endpoint = "{urls.get("hook", "http://127.0.0.1:9")}/events"
credential_env = "HOOK_TOKEN"
fields = ["event_id", "page_url", "value"]
test_loopback = true''',
    }
    forwards.update(overrides)
    purposes = {
        "analytics": {"title": "Analytics", "description": "Counting visits."},
        "ads": {"title": "Advertising", "description": "Ads and their measurement.",
                "sale_or_sharing": True},
        "measurement": {"title": "Measurement", "description": "Our own conversion counts."},
    }
    kinds = {"ga4": ("analytics", "www.google-analytics.com", ["_ga"]),
             "meta": ("ads", "connect.facebook.net", ["_fbp", "_fbc"]),
             "tiktok": ("ads", "analytics.tiktok.com", ["_ttp"]),
             "hook": ("measurement", "hooks.example.com", [])}
    partners = {pid: partner([purpose], [host], name=pid, cookies=cookies,
                             receives=["ip_address", "user_agent", "page_url", "identifiers"],
                             privacy_url="https://example.com/privacy")
                for pid, (purpose, host, cookies) in kinds.items() if pid in urls}
    return config_text(ledger=ledger, version="2026-12-01", effective=dt.date(2026, 12, 1),
                       purposes=purposes, partners=partners,
                       after_partner={pid: f"[partners.{pid}.forward]\n{forwards[pid]}"
                                      for pid in partners})


def make_config(urls: Mapping[str, str], ledger: Path, **overrides: str) -> Config:
    import tomllib

    return parse_config(tomllib.loads(config_toml(urls, str(ledger), **overrides)), "test.toml")


def consent(config: Config, granted: set[str], *, decided: bool = True, gpc: bool = False) -> Consent:
    return Consent(consent_id="cid-test-0001" if decided else None, granted=frozenset(granted),
                   policy_version=config.policy.version, decided=decided, gpc=gpc,
                   partner_purposes={pid: p.purposes for pid, p in config.partners.items()})


class Clock:
    """A clock the test moves: backoff and leases without sleeping."""

    def __init__(self, now: float | None = None) -> None:
        import time

        self.now = time.time() if now is None else now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_forwarder(config: Config, clock: Clock | None = None, **options: Any) -> Forwarder:
    """A Forwarder on the config's ledger file; with ``clock`` the sender is driven by hand."""
    store = SqliteStore(config.ledger.path)
    store.open()
    sender = {"idle_s": 0.05, **options.pop("sender", {})}
    extra: dict[str, Any] = {"clock": clock, "autostart": False} if clock is not None else {}
    outbox = Outbox(config.ledger.path, **({"clock": clock} if clock is not None else {}))
    return Forwarder(config, {pid: p.forward for pid, p in config.partners.items() if p.forward},
                     LedgerWriter(store), outbox, digest_key=b"k" * 32,
                     environ=ENV, sender_options=sender, **extra, **options)


def scope(path: str = "/checkout", *, ip: str = "203.0.113.77", cookies: str = "",
          ua: str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
                    "Chrome/124.0.0.0 Safari/537.36",
          referer: str = "https://search.example/?q=secret", gpc: bool = False) -> dict[str, Any]:
    headers = [(b"host", b"shop.example"), (b"user-agent", ua.encode()), (b"referer", referer.encode())]
    if cookies:
        headers.append((b"cookie", cookies.encode()))
    if gpc:
        headers.append((b"sec-gpc", b"1"))
    return {"type": "http", "method": "POST", "path": path, "query_string": b"a=1", "scheme": "https",
            "headers": headers, "client": (ip, 50000), "state": {}}


def ledger_rows(path: Path) -> list[dict[str, Any]]:
    import json

    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT partner, legal_basis, data_categories, cookies, fields FROM disclosures"
                            " ORDER BY id").fetchall()
    finally:
        conn.close()
    return [{"partner": r[0], "legal_basis": r[1], "data_categories": json.loads(r[2]),
             "cookies": json.loads(r[3]), **json.loads(r[4])} for r in rows]


def outbox_rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM forward_outbox").fetchone()[0])
    finally:
        conn.close()
