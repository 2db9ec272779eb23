"""The unauthenticated CSP-report endpoint under forged floods: bounded per client, real
partners' and recent hosts kept, real violations still counted and logged afterwards."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from middleware import csp_reports
from middleware.csp_reports import CspReports
from middleware.hosts import HostMatcher

from .asgi_helpers import Recorder, html_app, http_scope, make_gate

MATCHER = HostMatcher({"adsense": ["pagead2.googlesyndication.com", "*.doubleclick.net"],
                       "x": ["platform.twitter.com"]})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def report(host: str) -> dict[str, Any]:
    return {"csp-report": {"blocked-uri": f"https://{host}/x.js", "violated-directive": "script-src"}}


def post(reports: CspReports, client: str, host: str) -> bool:
    """What the endpoint does for one report: charge the client, then count."""
    if not reports.allow_client(client):
        return False
    reports.count(report(host))
    return True


def test_csp_reports_flood_from_one_client_is_bounded() -> None:
    clock = Clock()
    reports = CspReports(MATCHER, clock=clock)
    accepted = sum(post(reports, "198.51.100.9", f"forged{i}.example") for i in range(10_000))
    assert accepted == csp_reports.CLIENT_BURST
    assert reports.refused == 10_000 - accepted
    # Another visitor is not affected by that client's flood.
    assert post(reports, "203.0.113.7", "platform.twitter.com")
    assert reports.blocked["platform.twitter.com"] == 1
    # The flooder earns reports back slowly, not all at once.
    clock.now += 30
    assert sum(post(reports, "198.51.100.9", "again.example") for _ in range(100)) == 10


def test_csp_reports_flood_from_many_clients_keeps_partners_and_recent_hosts(
        caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    reports = CspReports(MATCHER, clock=clock)
    caplog.set_level(logging.WARNING, "consent_gate")
    assert post(reports, "203.0.113.7", "pagead2.googlesyndication.com")
    assert post(reports, "203.0.113.7", "tracker.example")
    for i in range(5000):  # a botnet: one forged unknown host from each address
        clock.now += 0.01
        post(reports, f"10.{i // 250}.{i % 250}.1", f"forged{i}.example")
        if i % 100 == 0:  # a real unknown host keeps being reported during the flood
            post(reports, f"203.0.113.{100 + i // 100}", "tracker.example")
    assert len(reports.unknown_hosts) == csp_reports.MAX_UNKNOWN_HOSTS
    assert reports.blocked["pagead2.googlesyndication.com"] == 1, "partner host never evicted"
    assert reports.blocked["tracker.example"] == 51, "a recently seen host stays"
    assert "forged0.example" not in reports.blocked
    logged = caplog.text.count("unknown third party")
    assert logged < 200, "warnings about forged hosts are budgeted"

    # After the flood, real violations are counted and logged again.
    caplog.clear()
    clock.now += 120
    assert post(reports, "203.0.113.9", "new-leak.example")
    assert post(reports, "203.0.113.9", "stats.g.doubleclick.net")
    assert reports.blocked["new-leak.example"] == 1
    assert reports.blocked["stats.g.doubleclick.net"] == 1
    assert "new-leak.example" in caplog.text and "stats.g.doubleclick.net" in caplog.text
    assert "were not logged" in caplog.text, "the held-back warnings are summed up"


def test_csp_reports_wildcard_partner_hosts_are_bounded() -> None:
    reports = CspReports(MATCHER, clock=Clock())
    for i in range(500):
        reports.count(report(f"h{i}.doubleclick.net"))
    counts = reports.partner_hosts["adsense"]
    assert len(counts) == csp_reports.MAX_HOSTS_PER_PARTNER + 1
    assert counts["(other hosts of partner adsense)"] == 500 - csp_reports.MAX_HOSTS_PER_PARTNER


@pytest.mark.parametrize(("client", "forwarded", "trust", "expected"), [
    ("203.0.113.7", None, False, "203.0.113.7"),
    ("2001:db8:1:2:3:4:5:6", None, False, "2001:db8:1:2::/64"),
    ("127.0.0.1", b"198.51.100.1, 127.0.0.1", True, "198.51.100.1"),
    ("127.0.0.1", b"198.51.100.1", False, "127.0.0.1"),
])
def test_csp_reports_client_key(client: str, forwarded: bytes | None, trust: bool, expected: str) -> None:
    headers = [(b"x-forwarded-for", forwarded)] if forwarded else []
    scope = {"client": (client, 1), "headers": headers}
    assert CspReports(MATCHER, trust_proxy=trust).client_of(scope) == expected


def test_csp_reports_endpoint_answers_429_after_the_burst(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    body = json.dumps(report("forged.example")).encode()

    async def send_one(client: str) -> int:
        scope = http_scope("/.consent/csp-report", method="POST",
                           headers=[(b"content-type", b"application/csp-report")])
        scope["client"] = (client, 1)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        recorder = Recorder()
        await gate(scope, receive, recorder)
        return int(recorder.start["status"])

    async def flood() -> list[int]:
        return [await send_one("198.51.100.9") for _ in range(50)]

    statuses = asyncio.run(flood())
    assert statuses.count(204) == csp_reports.CLIENT_BURST
    assert statuses[-1] == 429
    assert asyncio.run(send_one("203.0.113.7")) == 204


def test_csp_reports_batch_is_charged_per_violation() -> None:
    reports = CspReports(MATCHER, clock=Clock())
    batch = [{"type": "csp-violation", "body": {"blockedURL": f"https://forged{i}.example/"}}
             for i in range(50)]
    assert reports.may_report("198.51.100.9")
    reports.count(batch, "198.51.100.9")
    assert len(reports.unknown_hosts) == csp_reports.CLIENT_BURST
    assert not reports.may_report("198.51.100.9")


@pytest.mark.parametrize("host", ["evil\x1b[2j.example", "a b.example", "x\x0b.example",
                                  'q"uote.example', "<script>.example", "a%00b.example"])
def test_csp_reports_forged_host_that_is_no_host_name_is_ignored(
        host: str, caplog: pytest.LogCaptureFixture) -> None:
    """A forged report's host went into the log (terminal escapes included), the table and
    the discovery rows: only a host name a browser could have contacted counts."""
    seen: list[str] = []
    reports = CspReports(MATCHER, clock=Clock(), on_unknown=lambda h, page: seen.append(h))
    with caplog.at_level(logging.WARNING, logger="consent_gate"):
        reports.count(report(host), "198.51.100.9")
    assert reports.blocked == {} and seen == [] and caplog.text == ""
    reports.count(report("cdn.tracker-9.example"), "198.51.100.9")
    reports.count(report("[2001:db8::1]"), "198.51.100.9")
    assert seen == ["cdn.tracker-9.example", "[2001:db8::1]"]
