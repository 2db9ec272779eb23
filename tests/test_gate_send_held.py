"""The C send (``_speedups.pass_send``) takes an HTML page's start and its first body itself:
it makes the responder as ``responder_for`` does, holds the start as ``start_message`` does and
hands a body that comes while the start is held to ``_send``, as ``HtmlResponder.send`` does.
Whole sequences of messages (one body, streamed bodies, a body after the page ended, trailers,
a second start) reach the server exactly as through the Python reference ``PassSend``, with
the same exceptions, and leave a responder in the same state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from middleware.accel import speedups
from middleware.gate.responder import HtmlResponder
from middleware.gate.send import pass_send_py
from middleware.gate.state import ConsentState
from tests.asgi_helpers import make_gate
from tests.support.budget import examples

needs_c = pytest.mark.skipif(speedups is None, reason="C off (not built or pure Python)")

PAGE = b"<!DOCTYPE html><html><head></head><body><p>x</p><img src='https://ads.example/x.gif'></body></html>"
STARTS = [[(b"content-type", b"text/html; charset=utf-8")],
          [(b"content-type", b"text/html; charset=utf-8"), (b"content-length", b"%d" % len(PAGE))],
          [(b"content-type", b"text/html")], [(b"content-type", b"application/json")]]
#: later messages: body pieces (more or not), a trailer, a second start, no type
later = st.one_of(
    st.tuples(st.just("body"), st.sampled_from([PAGE, PAGE[:20], PAGE[20:], b""]), st.booleans()),
    st.sampled_from([("trailers",), ("start",), ("untyped",)]))


def _message(item: Any) -> dict[str, Any]:
    if item[0] == "body":
        return {"type": "http.response.body", "body": item[1], "more_body": item[2]}
    if item[0] == "trailers":
        return {"type": "http.response.trailers", "headers": [], "more_trailers": False}
    if item[0] == "start":
        return {"type": "http.response.start", "status": 200, "headers": list(STARTS[0])}
    return {"body": b"x"}


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def __call__(self, message: Any) -> None:
        self.sent.append(message)


async def _drive(c: bool, gate: Any, headers: Any, sequence: list[Any], method: str) -> Any:
    scope = {"type": "http", "method": method, "path": "/page", "headers": [], "state": {}}
    state = ConsentState()
    state._gate, state._scope, state._resolved, state.consent_read = gate, scope, False, False
    state.raw_language = None
    raw = Recorder()
    assert speedups is not None
    send = speedups.pass_send(gate, scope, raw, state) if c else pass_send_py(gate, scope, raw, state)
    outcome = []
    for message in [{"type": "http.response.start", "status": 200, "headers": list(headers)},
                    *map(_message, sequence)]:
        try:
            await send(message)
            outcome.append("ok")
        except Exception as exc:  # (compared by type)
            outcome.append(type(exc).__name__)
    sent = [(m.get("type"), m.get("headers"), m.get("body"), m.get("more_body")) for m in raw.sent]
    responder = getattr(send, "responder", None)
    if responder is None:
        responder = getattr(getattr(send, "__self__", None), "responder", None)
    summary = None
    if responder is not None:
        assert type(responder) is HtmlResponder
        assert (responder.gate, responder.scope, responder.raw_send, responder.state) == (
            gate, scope, raw, state)
        summary = (responder.phase, responder.kind, responder.start is None, responder.sent)
    return outcome, sent, summary


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - unused
        pass
    return make_gate(app, Path(tmp_path_factory.mktemp("held")))


@needs_c
@settings(max_examples=examples(200), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(STARTS), st.lists(later, max_size=4), st.sampled_from(["GET", "HEAD"]))
def test_c_send_delivers_what_pass_send_py_delivers(gate: Any, headers: Any, sequence: list[Any],
                                                    method: str) -> None:
    want = asyncio.run(_drive(False, gate, headers, sequence, method))
    got = asyncio.run(_drive(True, gate, headers, sequence, method))
    assert got == want


@needs_c
def test_an_html_page_is_held_then_rewritten_through_the_c_send(gate: Any) -> None:
    outcome, sent, summary = asyncio.run(
        _drive(True, gate, STARTS[1], [("body", PAGE, False)], "GET"))
    assert outcome == ["ok", "ok"]
    assert [m[0] for m in sent] == ["http.response.start", "http.response.body"]
    assert b"ads.example/x.gif" in PAGE and sent[1][2] != PAGE  # rewritten, not passed
    assert summary is not None and summary[2], "the start left with the body"
