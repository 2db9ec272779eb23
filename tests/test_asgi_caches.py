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
from tests.support.budget import examples

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
            assert b"twitter.com" not in ads_csp
            assert b"platform.twitter.com" in social_csp
            assert b"googlesyndication" not in social_csp
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
            assert gate._request_inputs(headers)[:2] == want, (honor_gpc, honor_dnt, headers)


class _FakeWriter:
    """A ledger writer that keeps what it is given (the shortcut must never need one)."""

    store: Any = None
    writer_id = "fake"

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.written: list[tuple[str, tuple[str, ...]]] = []

    def start(self) -> None:
        pass

    async def write(self, records: Any, timeout: float | None = None) -> None:
        if self.fail:
            from middleware.errors import LedgerUnavailable

            raise LedgerUnavailable("held")
        self.written.extend((r.path, tuple(p.partner for p in r.partners)) for r in records)

    async def aclose(self) -> None:
        pass

    def close(self, timeout: float | None = 30.0) -> None:
        pass


_TYPES = [b"text/html; charset=utf-8", b"text/html", b"Text/HTML; charset=ISO-8859-1",
          b"text/html; charset=utf-16", b"application/json", b"application/xhtml+xml", None,
          b"text/html; charset=bogus", b"text/html; charset=utf-8, text/html; charset=utf-16le"]
RESPONSE = st.fixed_dictionaries({
    # Weighted towards what the shortcut takes, and what is one check away from it.
    "method": st.sampled_from(["GET", "GET", "GET", "HEAD"]),
    "status": st.sampled_from([200, 200, 200, 404, 304, 204]),
    "type": st.sampled_from(_TYPES),
    "encoding": st.sampled_from([None, None, None, b"identity", b"gzip", b"gzip", b"br"]),
    "extra": st.lists(st.sampled_from([
        (b"set-cookie", b"__gads=1"), (b"etag", b'"v1"'), (b"vary", b"Accept-Encoding"),
        (b"cache-control", b"public, max-age=60"), (b"content-length", b"123"),
        (b"link", b"<https://pagead2.googlesyndication.com/x.js>; rel=preload"),
        (b"x-frame-options", b"DENY"), (b"Content-Language", b"en"),
        (b"content-type", b"text/html; charset=utf-16"), (b"content-type", b"text/html; charset=utf-8")]),
        max_size=3),
    "body": st.sampled_from([BODY, long_page(b"CCCC"), b"", b"{}",
                             b"\xff\xfe" + "<html><body>x</body></html>".encode("utf-16-le"),
                             b'<meta charset="iso-2022-jp"><p>x</p><img src="https://pagead2.googlesyndication.com/p">']),
    "split": st.sampled_from([False, False, True]),
    "who": st.sampled_from(["none", "ads", "both", "old"]),
    "ledger": st.sampled_from(["off", "on", "failing"]),
})


def _response_app(r: dict[str, Any]) -> Any:
    import gzip

    body = gzip.compress(r["body"], mtime=0) if r["encoding"] == b"gzip" else r["body"]
    headers = [(b"content-type", r["type"])] if r["type"] is not None else []
    if r["encoding"] is not None:
        headers.append((b"content-encoding", r["encoding"]))
    headers += r["extra"]
    chunks = [body[:7], body[7:]] if r["split"] else [body]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": r["status"], "headers": list(headers)})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": i < len(chunks) - 1})

    return app


def _same_as_fresh_gate(tmp: Path, responses: list[dict[str, Any]]) -> None:
    """Each response, twice, on one gate per ledger kind == on a fresh gate (messages as a
    server reads them when sent; the same ledger records): the gate's memories (memo, plans,
    consents, Content-Type readings) change nothing."""
    config = make_config(tmp)
    current: list[dict[str, Any]] = [responses[0]]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _response_app(current[0])(scope, receive, send)

    def gate_for(ledger: str) -> tuple[ConsentMiddleware, _FakeWriter | None]:
        writer = None if ledger == "off" else _FakeWriter(fail=ledger == "failing")
        return ConsentMiddleware(app, config=config, secret=SECRET,
                                 ledger=Discloser(config, writer, None)), writer

    reused = {name: gate_for(name) for name in ("off", "on", "failing")}
    gate = reused["off"][0]
    cookies = {"none": None, "ads": cookie_for(gate, {"ads"}), "both": cookie_for(gate, {"ads", "social"}),
               "old": cookie_for(gate, {"ads"}, "v0")}

    async def one(g: ConsentMiddleware, r: dict[str, Any]) -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            # As a server reads it when it is sent (a later edit of the dict must not count).
            sent.append({**message, "headers": list(message.get("headers", ()))})

        scope = http_scope("/p", cookie=cookies[r["who"]], method=r["method"])
        await g(scope, receive, send)
        return sent

    async def scenario() -> None:
        for r in responses * 2:  # the second time, the memo and the other memories answer
            current[0] = r
            g, writer = reused[r["ledger"]]
            g.discloser._failed_at = None  # the retry pause after a failed write is state, not a memory
            before = len(writer.written) if writer is not None else 0
            got = await one(g, r)
            fresh, fresh_writer = gate_for(r["ledger"])
            want = await one(fresh, r)
            assert got == want, r
            if writer is not None and fresh_writer is not None:
                assert writer.written[before:] == fresh_writer.written, r

    asyncio.run(scenario())


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(RESPONSE, min_size=1, max_size=6))
def test_caches_reused_gate_same_as_fresh_gate(
        tmp_path_factory: Any, responses: list[dict[str, Any]]) -> None:
    """A gate that served these responses before sends exactly what a fresh gate sends, and
    writes the same records: any response, consent, ledger (off, on, failing), repeated. (Which
    route each response takes is tests/test_gate_decision.py's table.)"""
    _same_as_fresh_gate(Path(str(tmp_path_factory.mktemp("s"))), responses)
