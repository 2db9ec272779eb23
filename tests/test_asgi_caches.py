"""The middleware's per-request memories (consent, plan, CSP, headers, language, charset,
rewritten bodies) never answer one request with another's result: on one gate, any
sequence of requests gets exactly what a fresh gate gives each of them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware import ConsentMiddleware
from middleware.disclosure import Discloser

from .asgi_helpers import ADS_SNIPPET, SECRET, SOCIAL_SNIPPET, cookie_for, http_scope, make_config

BODY = (b"<!DOCTYPE html><html><head><title>T</title>"
        b'<script async src="https://pagead2.googlesyndication.com/pagead/js/a.js"></script>'
        b"</head><body><p>" + "caf\u00e9".encode() + b"</p>"
        b'<script src="https://platform.twitter.com/widgets.js"></script></body></html>')


def app_for(pages: dict[str, tuple[bytes, list[tuple[bytes, bytes]]]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body, headers = pages[scope["path"]]
        await send({"type": "http.response.start", "status": 200, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    return app


def long_page(token: bytes) -> bytes:
    """Pages of the same length, start, middle and end: they differ only at ``token``."""
    filler = b"<p>" + b"x" * 400 + b"</p>"
    return (b"<!DOCTYPE html><html><head></head><body>" + filler * 3 + b"<p>" + token + b"</p>"
            + filler * 6 + b'<img src="https://pagead2.googlesyndication.com/p.gif"></body></html>')


PAGES: dict[str, tuple[bytes, list[tuple[bytes, bytes]]]] = {
    "/utf8": (BODY, [(b"content-type", b"text/html; charset=utf-8")]),
    "/latin1": (BODY, [(b"content-type", b"text/html; charset=iso-8859-1"),
                       (b"vary", b"Accept-Encoding"), (b"cache-control", b"public, max-age=60")]),
    "/plain": (BODY, [(b"content-type", b"text/html"), (b"etag", b'"v1"'),
                      (b"x-frame-options", b"DENY")]),
    "/a": (long_page(b"AAAA"), [(b"content-type", b"text/html; charset=utf-8")]),
    "/b": (long_page(b"BBBB"), [(b"content-type", b"text/html; charset=utf-8")]),
}

REQUEST = st.tuples(st.sampled_from(sorted(PAGES)),
                    st.sampled_from(["none", "ads", "social", "both", "old"]),
                    st.booleans(), st.sampled_from([None, b"en-US,en;q=0.9", b"ja,en;q=0.5"]))


def _gate(tmp: Path) -> ConsentMiddleware:
    config = make_config(tmp, ui={"texts": {"ja": {"accept_all": "\u3059\u3079\u3066\u540c\u610f"}}})
    return ConsentMiddleware(app_for(PAGES), config=config, secret=SECRET,
                             ledger=Discloser(config, None, None))


async def _get(gate: ConsentMiddleware, path: str, cookie: str | None, gpc: bool,
               lang: bytes | None) -> tuple[list[tuple[bytes, bytes]], bytes]:
    headers = [(b"sec-gpc", b"1")] if gpc else []
    if lang is not None:
        headers.append((b"accept-language", lang))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await gate(http_scope(path, cookie=cookie, headers=headers), receive, send)
    return sent[0]["headers"], b"".join(m.get("body", b"") for m in sent[1:])


@settings(max_examples=25, deadline=None)
@given(st.lists(REQUEST, min_size=2, max_size=12))
def test_caches_same_answers_as_a_fresh_gate(tmp_path_factory: Any,
                                             requests: list[tuple[str, str, bool, bytes | None]]) -> None:
    tmp = Path(str(tmp_path_factory.mktemp("g")))
    gate = _gate(tmp)
    cookies = {"none": None, "ads": cookie_for(gate, {"ads"}), "social": cookie_for(gate, {"social"}),
               "both": cookie_for(gate, {"ads", "social"}), "old": cookie_for(gate, {"ads"}, "v0")}

    async def scenario() -> None:
        for path, who, gpc, lang in requests:
            got = await _get(gate, path, cookies[who], gpc, lang)
            want = await _get(_gate(tmp), path, cookies[who], gpc, lang)
            assert got == want, (path, who, gpc, lang)

    asyncio.run(scenario())


def test_caches_cookies_differing_only_in_consent_never_share_plan_or_csp(tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    ads, social = cookie_for(gate, {"ads"}), cookie_for(gate, {"social"})

    async def scenario() -> None:
        for _ in range(3):  # the second and third rounds answer from the memories
            ads_headers, ads_body = await _get(gate, "/utf8", ads, False, None)
            social_headers, social_body = await _get(gate, "/utf8", social, False, None)
            ads_csp = dict(ads_headers)[b"content-security-policy"]
            social_csp = dict(social_headers)[b"content-security-policy"]
            assert b"pagead2.googlesyndication.com" in ads_csp
            assert b"platform.twitter.com" not in ads_csp
            assert b"platform.twitter.com" in social_csp
            assert b"pagead2.googlesyndication.com" not in social_csp
            assert ADS_SNIPPET.encode() in ads_body and SOCIAL_SNIPPET.encode() not in ads_body
            assert SOCIAL_SNIPPET.encode() in social_body and ADS_SNIPPET.encode() not in social_body

    asyncio.run(scenario())


def test_caches_pages_sharing_the_memo_sample_never_share_a_rewrite(tmp_path: Path) -> None:
    gate = _gate(tmp_path)

    async def scenario() -> None:
        for _ in range(3):
            _, a = await _get(gate, "/a", None, False, None)
            _, b = await _get(gate, "/b", None, False, None)
            assert b"AAAA" in a and b"BBBB" not in a
            assert b"BBBB" in b and b"AAAA" not in b

    asyncio.run(scenario())


def test_caches_own_routes_read_once_same_as_ui_owns(tmp_path: Path) -> None:
    for honor_gpc in (True, False):
        config = make_config(tmp_path, policy={"honor_gpc": honor_gpc})
        gate = ConsentMiddleware(app_for(PAGES), config=config, secret=SECRET,
                                 ledger=Discloser(config, None, None))
        for path in ("/.consent/", "/.consent", "/.consent/choice", "/.consentx", "/",
                     "/.well-known/gpc.json", "/.well-known/gpc.jsonx", "/utf8"):
            inline = path.startswith(gate.own_prefix) or path in gate.own_paths
            assert inline == gate.ui.owns(path), (honor_gpc, path)


def test_caches_request_inputs_read_as_privacy_signal_and_cookie_value(tmp_path: Path) -> None:
    """The one-pass reading of the request headers answers what cookie_value and
    privacy_signal answer, for GPC/DNT settings and repeated or empty headers."""
    from middleware.consent import privacy_signal
    from middleware.headers import cookie_value

    cases: list[list[tuple[bytes, bytes]]] = [
        [], [(b"sec-gpc", b"1")], [(b"sec-gpc", b" 1 ")], [(b"sec-gpc", b"")], [(b"dnt", b"1")],
        [(b"sec-gpc", b"0"), (b"sec-gpc", b"1")], [(b"cookie", b"consent=abc; x=1")],
        [(b"cookie", b"x=1"), (b"cookie", b"consent=def")], [(b"cookie", b'consent="q"')],
        [(b"cookie", b"consent=")], [(b"dnt", b"1"), (b"cookie", b"a=1; consent=z"), (b"sec-gpc", b"1")],
    ]
    for honor_gpc, honor_dnt in ((True, False), (False, True), (True, True), (False, False)):
        config = make_config(tmp_path, policy={"honor_gpc": honor_gpc, "honor_dnt": honor_dnt})
        gate = ConsentMiddleware(app_for(PAGES), config=config, secret=SECRET,
                                 ledger=Discloser(config, None, None))
        for headers in cases * 2:  # the second time from the remembered cookie values
            want = (cookie_value(headers, gate.cookie_name),
                    privacy_signal(headers, honor_gpc=honor_gpc, honor_dnt=honor_dnt))
            assert gate._request_inputs(headers) == want, (honor_gpc, honor_dnt, headers)
