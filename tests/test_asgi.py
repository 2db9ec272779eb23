"""ConsentMiddleware at the ASGI level: what is rewritten, what passes untouched, and headers."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from pathlib import Path
from typing import Any

import pytest

from middleware import Consent, consent_of

from .asgi_helpers import (
    ADS_SNIPPET,
    PAGE,
    SOCIAL_SNIPPET,
    cookie_for,
    enforced_no_partner,
    html_app,
    http_scope,
    make_gate,
    receive_nothing,
    run,
)


def test_middleware_no_cookie_injects_no_partner_but_shows_banner(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    out = asyncio.run(run(gate, http_scope()))
    assert ADS_SNIPPET.encode() not in out.body and SOCIAL_SNIPPET.encode() not in out.body
    assert b'id="consent-gate-banner"' in out.body


@pytest.mark.parametrize(("granted", "ads", "social"), [
    (set(), False, False), ({"ads"}, True, False), ({"social"}, False, True),
    ({"ads", "social"}, True, True),
])
def test_middleware_injects_exactly_consented_partners(tmp_path: Path, granted: set[str], ads: bool,
                                                       social: bool) -> None:
    gate = make_gate(html_app(), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, granted))))
    assert (ADS_SNIPPET.encode() + b"</head>" in out.body) is ads
    assert (SOCIAL_SNIPPET.encode() in out.body) is social
    assert b'id="consent-gate-banner"' not in out.body


def test_middleware_bytes_outside_injection_points_unchanged(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    body = out.body
    head_at = body.index(b"</head>")
    assert body.startswith(PAGE[: PAGE.index(b"</head>")])
    assert body[head_at - len(ADS_SNIPPET):head_at] == ADS_SNIPPET.encode()
    body_end_at = body.index(b"</body>")
    assert body[body_end_at:] == b"</body></html>"
    assert b"<body><h1>Hello</h1><p>text</p>" in body


def test_middleware_streams_chunks_without_buffering(tmp_path: Path) -> None:
    log: list[str] = []
    chunks = [b"<html><head></head><body>", b"<p>one</p>" * 100, b"<p>two</p>" * 100, b"</body></html>"]
    gate = make_gate(html_app(chunks, log=log), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, set())), log=log))
    # The first chunk leaves before the app produces the second: nothing waits for the whole body.
    assert log.index("sent-0") < log.index("app-sends-1")
    assert len(out.bodies) >= 3
    assert out.header(b"content-length") == []
    assert out.messages[-1]["more_body"] is False


def test_middleware_tag_split_across_chunks_still_injects(tmp_path: Path) -> None:
    page = PAGE
    cut = page.index(b"</head>") + 3
    gate = make_gate(html_app([page[:cut], page[cut:]]), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    assert ADS_SNIPPET.encode() + b"</head>" in out.body


def test_middleware_single_chunk_keeps_exact_content_length(tmp_path: Path) -> None:
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", str(len(PAGE)).encode())]
    gate = make_gate(html_app(headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads", "social"}))))
    assert out.header(b"content-length") == [str(len(out.body)).encode()]
    assert len(out.body) > len(PAGE)


def test_middleware_html_is_private_and_varies_on_cookie(tmp_path: Path) -> None:
    headers = [(b"content-type", b"text/html"), (b"cache-control", b"public, max-age=600"),
               (b"vary", b"Accept-Encoding"), (b"etag", b'"abc"')]
    gate = make_gate(html_app(headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope()))
    assert out.header(b"cache-control") == [b"private, max-age=600"]
    vary = out.header(b"vary")[0].decode()
    assert vary.startswith("Accept-Encoding,Cookie")
    assert out.header(b"etag") == []


def test_middleware_keeps_stricter_cache_control(tmp_path: Path) -> None:
    headers = [(b"content-type", b"text/html"), (b"cache-control", b"no-store")]
    gate = make_gate(html_app(headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope()))
    assert out.header(b"cache-control") == [b"no-store"]


@pytest.mark.parametrize(("status", "content_type", "method"), [
    (200, b"application/json", "GET"),
    (200, b"text/plain", "GET"),
    (404, b"image/png", "GET"),
    (204, b"text/html", "GET"),
    (304, b"text/html", "GET"),
    (200, b"application/json", "HEAD"),
])
def test_middleware_passes_through_untouched(tmp_path: Path, status: int, content_type: bytes,
                                             method: str) -> None:
    headers = [(b"content-type", content_type), (b"x-app", b"1")]
    body = PAGE if status not in (204, 304) else b""
    inner = html_app([body], status=status, headers=headers)
    gate = make_gate(inner, tmp_path)
    out = asyncio.run(run(gate, http_scope(method=method)))
    assert out.body == body
    assert out.start["status"] == status
    assert out.start["headers"] == headers


@pytest.mark.parametrize(("extension", "message"), [
    ("http.response.pathsend", {"type": "http.response.pathsend", "path": "/tmp/x.html"}),
    ("http.response.zerocopysend", {"type": "http.response.zerocopysend", "file": 3}),
])
def test_middleware_server_file_sends_pass_behind_no_partner_csp(
        tmp_path: Path, extension: str, message: dict[str, Any]) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["extensions"] = scope.get("extensions")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html")]})
        await send(message)

    gate = make_gate(app, tmp_path)
    scope = http_scope(cookie=cookie_for(gate, {"ads"}))
    scope["extensions"] = {extension: {}, "other": {}}
    out = asyncio.run(run(gate, scope))
    assert [m["type"] for m in out.messages] == ["http.response.start", message["type"]]
    # The app is asked for a body it would stream through us instead of a file...
    assert seen["extensions"] == {"other": {}}
    # ...and a file HTML page that bypasses us anyway is enforced to load no partner.
    assert enforced_no_partner(out)


def test_middleware_gzip_html_is_decoded_and_rewritten(tmp_path: Path) -> None:
    compressed = gzip.compress(PAGE)
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-encoding", b"gzip"),
               (b"content-length", str(len(compressed)).encode())]
    chunks = [compressed[:20], compressed[20:]]
    gate = make_gate(html_app(chunks, headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    assert out.header(b"content-encoding") == []
    assert out.header(b"content-length") == []
    assert ADS_SNIPPET.encode() + b"</head>" in out.body


def test_middleware_deflate_html_is_decoded(tmp_path: Path) -> None:
    headers = [(b"content-type", b"text/html; charset=utf-8"), (b"content-encoding", b"deflate")]
    gate = make_gate(html_app([zlib.compress(PAGE)], headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"social"}))))
    assert SOCIAL_SNIPPET.encode() in out.body


def test_middleware_unknown_encoding_is_read_as_identity(tmp_path: Path) -> None:
    """Chromium passes a coding it does not know as if absent (measured: the HTML rendered
    and its meta refresh was followed), so the gate rewrites what it renders."""
    headers = [(b"content-type", b"text/html"), (b"content-encoding", b"compress")]
    tag = ADS_SNIPPET.encode()
    gate = make_gate(html_app([PAGE.replace(b"</head>", tag + b"</head>")], headers=headers),
                     tmp_path)
    out = asyncio.run(run(gate, http_scope(path="/compressed")))
    assert tag not in out.body and b"data-consent-src" in out.body
    assert out.header(b"content-encoding") == [b"compress"]
    csp = out.header(b"content-security-policy")
    assert csp and b"googlesyndication" not in csp[0]


def test_middleware_strips_accept_encoding_and_exposes_consent(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["headers"] = dict(scope["headers"])
        seen["consent"] = consent_of(scope)
        await html_app()(scope, receive, send)

    gate = make_gate(app, tmp_path)
    asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    assert b"accept-encoding" not in seen["headers"]
    consent: Consent = seen["consent"]
    assert consent.allows("ads") and consent.allows_partner("adsense") and not consent.allows("social")


@pytest.mark.parametrize("codings", [1, 2])
def test_middleware_strips_every_accept_encoding_keeping_the_rest_in_order(
        tmp_path: Path, codings: int) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(list(scope["headers"]))
        await html_app()(scope, receive, send)

    gate = make_gate(app, tmp_path)
    scope = http_scope(headers=[(b"x-a", b"1"), *[(b"accept-encoding", b"zstd")] * (codings - 1),
                                (b"x-b", b"2")])
    sent = list(scope["headers"])
    asyncio.run(run(gate, scope))
    assert seen == [[item for item in sent if item[0] != b"accept-encoding"]]
    assert scope["headers"] == sent  # the server's list is not edited


def test_middleware_lifespan_and_websocket_pass_through(tmp_path: Path) -> None:
    seen: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            for answer in ("lifespan.startup.complete", "lifespan.shutdown.complete"):
                await receive()
                await send({"type": answer})

    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, Any]:
        return next(messages)

    sent: list[str] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    gate = make_gate(app, tmp_path)
    asyncio.run(gate({"type": "lifespan"}, receive, send))
    asyncio.run(gate({"type": "websocket", "path": "/ws", "headers": []}, receive_nothing,
                     lambda m: None))
    assert seen == ["lifespan", "websocket"]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_middleware_app_csp_is_kept_and_ours_added(tmp_path: Path) -> None:
    headers = [(b"content-type", b"text/html"), (b"content-security-policy", b"default-src 'self'")]
    gate = make_gate(html_app(headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    policies = out.header(b"content-security-policy")
    assert policies[0] == b"default-src 'self'"
    assert len(policies) == 2 and b"pagead2.googlesyndication.com" in policies[1]
    assert b"platform.twitter.com" not in policies[1]


def test_middleware_tampered_cookie_is_no_consent_not_error(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    cookie = cookie_for(gate, {"ads", "social"})
    tampered = cookie[:-3] + ("AAA" if not cookie.endswith("AAA") else "BBB")
    out = asyncio.run(run(gate, http_scope(cookie=tampered)))
    assert out.start["status"] == 200
    assert ADS_SNIPPET.encode() not in out.body and b'id="consent-gate-banner"' in out.body


def test_middleware_old_policy_version_cookie_gets_banner_again(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}, version="v0"))))
    assert ADS_SNIPPET.encode() not in out.body
    assert b'id="consent-gate-banner"' in out.body


def test_middleware_mixed_case_response_headers_are_rewritten(tmp_path: Path) -> None:
    """Django sends "Content-Type" and "Vary" capitalised: they must be understood and merged."""
    headers = [(b"Content-Type", b"text/html; charset=utf-8"), (b"Vary", b"Accept-Encoding"),
               (b"Content-Length", str(len(PAGE)).encode())]
    gate = make_gate(html_app(headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    assert ADS_SNIPPET.encode() in out.body
    names = [k for k, _ in out.start["headers"]]
    assert names.count(b"content-length") == 1 and b"Content-Length" not in names
    assert out.header(b"content-length") == [str(len(out.body)).encode()]
    assert out.header(b"vary")[0].startswith(b"Accept-Encoding,Cookie")


def test_middleware_json_that_read_consent_is_private(tmp_path: Path) -> None:
    """A view that reads the consent makes its response consent-dependent, HTML or not."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    async def app(scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        reads = request.url.path == "/reads"
        body = {"ads": request.state.consent.allows("ads")} if reads else {"ok": True}
        await JSONResponse(body, headers={"Cache-Control": "public, max-age=60"})(scope, receive, send)

    gate = make_gate(app, tmp_path)
    reads = asyncio.run(run(gate, http_scope("/reads")))
    plain = asyncio.run(run(gate, http_scope("/plain")))
    assert reads.header(b"cache-control") == [b"private, max-age=60"]
    assert b"Cookie" in reads.header(b"vary")[0]
    assert plain.header(b"cache-control") == [b"public, max-age=60"] and plain.header(b"vary") == []


def test_middleware_short_secret_in_code_stops_start_up(tmp_path: Path) -> None:
    from middleware import ConsentMiddleware, SecretError

    from .asgi_helpers import make_config

    with pytest.raises(SecretError, match="at least 32"):
        ConsentMiddleware(html_app(), config=make_config(tmp_path), secret="short", dev=False)


@pytest.mark.parametrize("csp_mode", ["enforce", "off"])
def test_middleware_rewriter_failure_serves_page_behind_no_partner_csp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        csp_mode: str) -> None:
    """A bug in the rewriter is neither a 500 nor a leak: the browser enforces 'no partner'."""
    from middleware.rewrite import HtmlRewriter

    def broken(self: HtmlRewriter, chunk: bytes) -> bytes:
        raise RuntimeError("simulated rewriter bug")

    monkeypatch.setattr(HtmlRewriter, "feed", broken)
    gate = make_gate(html_app(), tmp_path, csp={"mode": csp_mode})
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads", "social"}))))
    assert out.start["status"] == 200 and out.body == PAGE
    assert enforced_no_partner(out)
    assert "the rewriter failed on /" in caplog.text


@pytest.mark.parametrize("who", [set(), {"ads", "social"}])
def test_middleware_one_message_page_headers_edited_before_the_start_leaves(
        tmp_path: Path, who: set[str]) -> None:
    """A server writes the start message when it is sent: its headers (CSP, Vary, private
    Cache-Control, exact Content-Length) are edited before that, with or without a ledger
    write to await first."""
    gate = make_gate(html_app(), tmp_path)
    seen: list[tuple[str, list[tuple[bytes, bytes]], bytes]] = []

    async def send(message: dict[str, Any]) -> None:
        seen.append((message["type"], list(message.get("headers", ())), message.get("body", b"")))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    cookie = cookie_for(gate, who) if who else None
    for _ in range(3):  # the memo answers the second and third time
        seen.clear()
        asyncio.run(gate(http_scope(cookie=cookie), receive, send))
        (kind, headers, _), (_, _, body) = seen
        names = dict(headers)
        assert kind == "http.response.start"
        assert b"content-security-policy" in names and b"cookie" in names[b"vary"].lower()
        assert names[b"cache-control"].startswith(b"private")
        assert names[b"content-length"] == b"%d" % len(body)
