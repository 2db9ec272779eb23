"""The pass path's two C twins answer what their Python references answer: ``app_headers``
(the request headers the app is given, gate/request.py) on random header lists, and the send
the app is given (gate/send.py: ``_speedups.pass_send`` vs ``pass_send_py``) on random first
messages. Both sends deliver to the server exactly what an HtmlResponder given every message
delivers (the path before them), raise the same exception types, and make no responder for
a response that passes (JSON, no Set-Cookie, consent unread, not HEAD)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from middleware.accel import speedups
from middleware.gate import request as req
from middleware.gate.send import pass_send_py, responder_for
from middleware.gate.state import ConsentState
from tests.asgi_helpers import make_gate
from tests.support.budget import examples

#: The extension as the gate uses it (set up by gate/request.py and gate/send.py at import);
#: None in pure-Python mode, where the references are what runs.
_speedups = speedups
needs_c = pytest.mark.skipif(_speedups is None, reason="C off (not built or pure Python)")

NAMES = [b"accept-encoding", b"x-consent-gate-scan", b"host", b"cookie", b"Accept-Encoding",
         b"accept-encodin", b"accept-encoding ", b"", b"sec-fetch-dest", b"accept",
         b"Sec-Fetch-Dest", b"accept "]
#: Values that may or may not ask for a style sheet (gate/request.py _asks_for_a_sheet).
VALUES = [b"style", b" Style\t", b"STYLE", b"styles", b"sty le", b"document", b"", b"text/css",
          b"\t TEXT/CSS,*/*;q=0.1", b"text/cs", b"text/html", b"*/*", b"style\x00"]
header_lists = st.lists(st.tuples(st.one_of(st.sampled_from(NAMES), st.binary(max_size=16)),
                                  st.sampled_from(VALUES) | st.binary(max_size=8)), max_size=7)
odd_items = st.one_of(st.lists(st.sampled_from(NAMES), min_size=2, max_size=2),
                      st.tuples(st.sampled_from(NAMES).map(bytearray), st.binary(max_size=4)),
                      st.tuples(st.sampled_from(NAMES), st.text(max_size=4)),
                      st.tuples(st.sampled_from(NAMES)))


def _outcome(f: Any, arg: Any) -> Any:
    try:
        return ("ok", f(arg))
    except Exception as exc:  # (the exception type is the answer compared)
        return ("raised", type(exc))


@needs_c
@settings(max_examples=examples(400), deadline=None)
@given(header_lists, st.booleans())
def test_app_headers_c_matches_python(headers: list[tuple[bytes, bytes]], as_tuple: bool) -> None:
    given_ = tuple(headers) if as_tuple else headers
    assert _speedups is not None
    got, want = _speedups.app_headers(given_), req.app_headers_py(given_)
    assert got == want
    if want is given_:  # nothing dropped: the same object, no copy
        assert got is given_


@needs_c
@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.one_of(st.tuples(st.sampled_from(NAMES), st.binary(max_size=4)), odd_items),
                min_size=1, max_size=5))
def test_app_headers_odd_items_deferred(headers: list[Any]) -> None:
    assert _speedups is not None
    assert _outcome(_speedups.app_headers, headers) == _outcome(req.app_headers_py, headers)


def test_app_headers_drops_accept_encoding_keeps_the_rest() -> None:
    headers = [(b"host", b"h"), (b"accept-encoding", b"gzip"), (b"cookie", b"c=1"),
               (b"accept-encoding", b"br")]
    for f in (req.app_headers_py, req.app_headers):
        assert f(headers) == [(b"host", b"h"), (b"cookie", b"c=1")]
        assert f([(b"host", b"h")]) == [(b"host", b"h")]
        assert f([*headers, (b"x-consent-gate-scan", b"t")]) is None
        # a style sheet request (Sec-Fetch-Dest first; Accept only without one)
        assert f([(b"sec-fetch-dest", b"style"), *headers]) is None
        assert f([(b"accept", b"text/css,*/*;q=0.1")]) is None
        assert f([(b"sec-fetch-dest", b"empty"), (b"accept", b"text/css")]) == [
            (b"sec-fetch-dest", b"empty"), (b"accept", b"text/css")]
        assert f([(b"sec-fetch-dest", b"image"), (b"sec-fetch-dest", b"style")]) is not None
    assert len(headers) == 4  # the server's list is not changed


START_HEADERS = [
    [(b"content-type", b"application/json")],
    [(b"content-type", b"application/json"), (b"set-cookie", b"a=1")],
    [(b"content-type", b"text/html; charset=utf-8")],
    [(b"Content-Type", b"application/json")],
    [(b"content-type", b"image/png")],
    [],
    None,  # no "headers" key
]
FIRST_TYPES = ["http.response.start", "http.response.body", "http.response.pathsend", None, 7]


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def __call__(self, message: Any) -> None:
        self.sent.append(message)


def _message(kind: Any, headers: Any) -> dict[str, Any]:
    message: dict[str, Any] = {} if kind is None else {"type": kind}
    if kind == "http.response.start":
        message["status"] = 200
        if headers is not None:
            message["headers"] = list(headers)
    elif kind == "http.response.body":
        message.update(body=b"{}", more_body=False)
    elif kind == "http.response.pathsend":
        message["path"] = "/x"
    return message


async def _drive(make: str, gate: Any, kind: Any, headers: Any, method: str, read: bool) -> Any:
    scope = {"type": "http", "method": method, "path": "/api", "headers": [], "state": {}}
    state = ConsentState()
    state._gate, state._scope, state._resolved, state.consent_read = gate, scope, False, read
    raw = Recorder()
    if make == "responder":
        send: Any = responder_for(gate, scope, raw, state).send
    elif make == "py":
        send = pass_send_py(gate, scope, raw, state)
    else:
        assert _speedups is not None
        send = _speedups.pass_send(gate, scope, raw, state)
    outcome = []
    for message in (_message(kind, headers), _message("http.response.body", None)):
        try:
            await send(message)
            outcome.append("ok")
        except Exception as exc:  # (compared by type)
            outcome.append(type(exc).__name__)
    sent = [(m.get("type"), sorted(m.get("headers", [])), m.get("body")) for m in raw.sent]
    made = getattr(getattr(send, "__self__", send), "responder", "n/a")
    return outcome, sent, made


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - unused
        pass
    return make_gate(app, Path(tmp_path_factory.mktemp("send")))


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(FIRST_TYPES), st.sampled_from(START_HEADERS),
       st.sampled_from(["GET", "HEAD"]), st.booleans())
def test_pass_send_delivers_what_the_responder_delivers(gate: Any, kind: Any, headers: Any,
                                                       method: str, read: bool) -> None:
    want = asyncio.run(_drive("responder", gate, kind, headers, method, read))
    for make in ("py", "c") if _speedups is not None else ("py",):
        outcome, sent, made = asyncio.run(_drive(make, gate, kind, headers, method, read))
        assert (outcome, sent) == want[:2], make
        passes = (kind == "http.response.start" and method == "GET" and not read
                  and headers in (START_HEADERS[0], START_HEADERS[4]))  # JSON, a PNG
        assert (made is None) == passes, make  # no responder made for a passing response
