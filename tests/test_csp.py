"""The CSP built from consent, its report-only mode, and the violation-report counter."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from middleware import ConsentMiddleware

from .asgi_helpers import SECRET, cookie_for, html_app, http_scope, make_config, make_gate, run


def directives(value: bytes) -> dict[str, list[str]]:
    parts = [p.strip().split() for p in value.decode().split(";")]
    return {p[0]: p[1:] for p in parts if p}


@pytest.mark.parametrize(("granted", "present", "absent"), [
    (set(), set(), {"pagead2.googlesyndication.com", "platform.twitter.com"}),
    ({"ads"}, {"pagead2.googlesyndication.com", "*.doubleclick.net"}, {"platform.twitter.com"}),
    ({"ads", "social"}, {"pagead2.googlesyndication.com", "platform.twitter.com"}, set()),
])
def test_csp_allows_self_and_exactly_consented_partner_hosts(tmp_path: Path, granted: set[str],
                                                            present: set[str], absent: set[str]) -> None:
    gate = make_gate(html_app(), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, granted) if granted else None)))
    policy = directives(out.header(b"content-security-policy")[0])
    for directive in ("script-src", "frame-src", "img-src", "connect-src"):
        assert "'self'" in policy[directive]
        assert present <= set(policy[directive]), directive
        assert not absent & set(policy[directive]), directive
    assert policy["report-uri"] == ["/.consent/csp-report"]


def test_csp_extra_sources_and_report_only_mode(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path,
                     csp={"mode": "report-only", "extra": {"script-src": ["cdn.example.net"]}})
    out = asyncio.run(run(gate, http_scope()))
    assert out.header(b"content-security-policy") == []
    policy = directives(out.header(b"content-security-policy-report-only")[0])
    assert "cdn.example.net" in policy["script-src"] and "cdn.example.net" not in policy["img-src"]


def test_csp_off_sends_no_policy(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, csp={"mode": "off"})
    out = asyncio.run(run(gate, http_scope()))
    assert out.header(b"content-security-policy") == []
    assert out.header(b"content-security-policy-report-only") == []


def test_csp_reports_counted_per_blocked_host_in_both_formats(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    gate = make_gate(html_app(), tmp_path)
    client = TestClient(gate)
    legacy = {"csp-report": {"blocked-uri": "https://connect.facebook.net/en_US/fbevents.js",
                             "violated-directive": "script-src"}}
    modern = [{"type": "csp-violation", "body": {"blockedURL": "https://evil.example/x.js"}}]
    for _ in range(2):
        r = client.post("/.consent/csp-report", content=json.dumps(legacy),
                        headers={"content-type": "application/csp-report"})
        assert r.status_code == 204
    client.post("/.consent/csp-report", content=json.dumps(modern),
                headers={"content-type": "application/reports+json"})
    assert gate.csp_reports.blocked == {"connect.facebook.net": 2, "evil.example": 1}
    assert caplog.text.count("connect.facebook.net") == 1, "each host logged once"
    assert client.post("/.consent/csp-report", content=b"{not json").status_code == 204
    assert client.post("/.consent/csp-report", content=b"x" * 20000).status_code == 413
    assert client.get("/.consent/csp-report").status_code == 405


def test_starlette_middleware_list_wraps_the_site(tmp_path: Path) -> None:
    async def home(request: object) -> HTMLResponse:
        return HTMLResponse("<html><head></head><body><p>home</p></body></html>")

    config = make_config(tmp_path)
    app = Starlette(routes=[Route("/", home)],
                    middleware=[Middleware(ConsentMiddleware, config=config, secret=SECRET)])
    with TestClient(app) as client:
        page = client.get("/")
    assert 'id="consent-gate-banner"' in page.text and "<p>home</p>" in page.text
