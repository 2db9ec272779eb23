"""The C answer of ``decide`` for the plain page (``_speedups.page_decision``) is decide_py's own
answer, object for object, or None (then decide_py decides): on random starts and first body
messages (statuses, methods, Content-Type and Content-Encoding headers in any case and number,
comma lists, charsets a browser does not know or the rewriter cannot read, wide byte order
marks, odd objects), ``decide`` gives what ``decide_py`` gives, the same object or the same
exception. The responder uses it unless CONSENT_GATE_PURE_PYTHON is set."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from middleware.gate import decision
from middleware.gate.decision import decide, decide_py
from middleware.sniff import WIDE_STARTS, BodyKind
from tests.support.budget import examples

from .asgi_helpers import html_app, make_gate

try:
    from middleware import _speedups
except ImportError:  # pragma: no cover - a pure-Python install
    _speedups = None  # type: ignore[assignment]

needs_c = pytest.mark.skipif(_speedups is None, reason="middleware._speedups not built")

PAGE = b"<!DOCTYPE html><html><head></head><body><p>x</p></body></html>"
NAMES = [b"content-type", b"content-encoding", b"content-length", b"Content-Type",
         b"CONTENT-ENCODING", b"content-typ", b"content-type ", b"vary", b"", b"x-custom"]
TYPES = [b"text/html; charset=utf-8", b"text/html", b"text/html; charset=UTF-8",
         b"text/html; charset=x-unknown", b"text/html; charset=utf-16", b"text/html;charset=utf-16le",
         b"text/html; charset=iso-2022-jp", b"text/html; charset=shift_jis",
         b"text/html; charset=windows-1252", b"text/html, text/plain", b"text/html;charset=utf-8,",
         b"", b"text/html; charset=", b"text/html; charset=\"utf-8\"", b"text/html; charset= utf-32 "]
CODINGS = [b"gzip", b"identity", b"", b"br", b"zstd", b"gzip, gzip", b"x-unknown"]
BODIES = [PAGE, b"", b"\xff\xfe<\x00p\x00", b"\xfe\xff\x00<", b"\x00\x00\xfe\xff\x00\x00\x00<",
          b"<\x00?\x00x\x00m\x00l\x00", b"\x00<\x00?\x00x\x00m", b"\xff", b"\xfe", b"\x00\x00\xfe",
          b"<?xml version='1.0' encoding='iso-2022-jp'?><p>", b'<meta charset="iso-2022-jp">',
          b"\xef\xbb\xbf<p>x</p>"]

values = st.one_of(st.sampled_from(TYPES), st.sampled_from(CODINGS), st.binary(max_size=16))
pairs = st.tuples(st.sampled_from(NAMES), values)
odd_pairs = st.one_of(
    st.tuples(st.sampled_from(NAMES), st.text(max_size=8)),
    st.tuples(st.sampled_from(NAMES).map(bytearray), st.sampled_from(TYPES)),
    st.tuples(st.sampled_from(NAMES), st.sampled_from(TYPES).map(bytearray)),
    st.lists(st.sampled_from(NAMES), min_size=2, max_size=2),
    st.tuples(st.sampled_from(NAMES), st.sampled_from(TYPES), st.just(b"x")),
)
header_lists = st.one_of(
    st.lists(pairs, max_size=5),
    st.lists(st.one_of(pairs, odd_pairs), min_size=1, max_size=4),
).flatmap(lambda h: st.sampled_from([h, tuple(h), "absent"]))
statuses = st.sampled_from([200, 200, 404, 500, 204, 205, 304, "200", "204", True, 2 ** 70,
                            200.0, "absent"])
methods = st.sampled_from(["GET", "GET", "POST", "HEAD", "head", "OPTIONS"])
bodies = st.one_of(st.sampled_from(BODIES), st.binary(max_size=12),
                   st.sampled_from(BODIES).map(bytearray), st.sampled_from(BODIES).map(memoryview),
                   st.just("absent"))
mores = st.sampled_from(["absent", False, True, 0, 1, None, "yes"])
kinds = st.sampled_from([BodyKind.HTML, BodyKind.HTML, BodyKind.SNIFF, BodyKind.OTHER,
                         BodyKind.CSS, BodyKind.DOCUMENT])


def message(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if not (isinstance(v, str) and v == "absent")}


def _outcome(fn: Any, *args: Any, **kw: Any) -> Any:
    try:
        return ("ok", fn(*args, **kw))
    except Exception as exc:  # the same exception type, as decide_py raises it
        return ("raised", type(exc))


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_gate(html_app((PAGE,)), tmp_path_factory.mktemp("decide"))


def test_the_responder_uses_the_c_answer() -> None:
    assert (decision._page is not None) == (_speedups is not None and decision.speedups is not None)


@needs_c
def test_the_plain_page_is_answered_in_c_with_decide_pys_object(gate: Any) -> None:
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-length", b"62"), (b"content-type", b"text/html; charset=utf-8")]}
    first = {"type": "http.response.body", "body": PAGE}
    want = decide_py(BodyKind.HTML, "GET", start, first, gate)  # fills the tables
    assert _speedups.page_decision("GET", start, first, gate.content_types, decision._WHOLE,
                                   decision._STREAMED, WIDE_STARTS) is want
    assert decide(BodyKind.HTML, "GET", start, first, gate) is want
    streamed = {**first, "more_body": True}
    want_streamed = decide_py(BodyKind.HTML, "GET", start, streamed, gate)
    assert want_streamed.route is decision.STREAM
    assert _speedups.page_decision("GET", start, streamed, gate.content_types, decision._WHOLE,
                                   decision._STREAMED, WIDE_STARTS) is want_streamed
    # a charset not yet read, a BOM, HEAD: not the plain page, decide_py decides
    fresh = {**start, "headers": [(b"content-type", b"text/html; charset=euc-kr")]}
    assert _speedups.page_decision("GET", fresh, first, gate.content_types, decision._WHOLE,
                                   decision._STREAMED, WIDE_STARTS) is None
    bom = {**first, "body": b"\xff\xfe" + PAGE}
    assert _speedups.page_decision("GET", start, bom, gate.content_types, decision._WHOLE,
                                   decision._STREAMED, WIDE_STARTS) is None
    assert decide(BodyKind.HTML, "GET", start, bom, gate).route is decision.RESPELLED
    assert _speedups.page_decision("HEAD", start, first, gate.content_types, decision._WHOLE,
                                   decision._STREAMED, WIDE_STARTS) is None
    assert decide(BodyKind.HTML, "HEAD", start, first, gate).route is decision.HEAD


@needs_c
@settings(max_examples=examples(400), deadline=None)
@given(kinds, methods, statuses, header_lists, bodies, mores, st.booleans(), st.booleans())
@example(BodyKind.HTML, "GET", 200, [(b"content-type", b"text/html; charset=utf-8")], PAGE,
         "absent", True, False)
@example(BodyKind.HTML, "GET", 200, [(b"content-type", b"text/html; charset=x-unknown")],
         b'<meta charset="iso-2022-jp">', "absent", True, False)
@example(BodyKind.HTML, "GET", 304, [(b"content-type", b"text/html")], PAGE, "absent", True, False)
@example(BodyKind.HTML, "GET", 200, [(b"content-type", b"text/html"), (b"content-type", b"text/html")],
         PAGE, "absent", True, False)
def test_decide_is_decide_py(gate: Any, kind: BodyKind, method: str, status: Any, headers: Any,
                             body: Any, more: Any, warm: bool, sniffed: bool) -> None:
    def make() -> tuple[dict[str, Any], dict[str, Any]]:
        start = message(type="http.response.start", status=status,
                        headers=list(headers) if isinstance(headers, list) else headers)
        return start, message(type="http.response.body", body=body, more_body=more)

    if warm:  # the tables decide_py fills (a charset read, its Decision made)
        _outcome(decide_py, kind, method, *make(), gate, sniffed=sniffed)
    start, first = make()
    c = _speedups.page_decision(method, start, first, gate.content_types, decision._WHOLE,
                                decision._STREAMED, WIDE_STARTS)
    got = _outcome(decide, kind, method, *make(), gate, sniffed=sniffed)
    want = _outcome(decide_py, kind, method, *make(), gate, sniffed=sniffed)
    assert got == want
    if c is not None and kind is BodyKind.HTML:  # an answer of the C: decide_py's very object
        assert want[0] == "ok" and c is want[1]  # (decide asks the C for an HTML start only)
    if got[0] == "ok" and kind is BodyKind.HTML and want[1] in (
            decision._WHOLE.get(want[1].charset), decision._STREAMED.get(want[1].charset)):
        assert got[1] is want[1]


#: Pages one change or two away from the plain one: most of them the C answers.
near_headers = st.lists(st.one_of(
    st.tuples(st.just(b"content-type"), st.sampled_from(TYPES)),
    st.tuples(st.sampled_from([b"content-length", b"vary", b"content-encoding"]),
              st.sampled_from([b"62", b"Cookie", b"gzip", b"identity"]))), min_size=1, max_size=3)


@needs_c
@settings(max_examples=examples(300), deadline=None)
@given(st.sampled_from(["GET", "GET", "POST", "HEAD"]), st.sampled_from([200, 200, 404, 304, "absent"]),
       near_headers, st.sampled_from(BODIES), st.sampled_from(["absent", False, True]))
def test_near_plain_pages(gate: Any, method: str, status: Any, headers: list[Any], body: bytes,
                          more: Any) -> None:
    start = message(type="http.response.start", status=status, headers=headers)
    first = message(type="http.response.body", body=body, more_body=more)
    want = decide_py(BodyKind.HTML, method, start, first, gate)  # (tables warm from here on)
    assert decide_py(BodyKind.HTML, method, start, first, gate) == want
    c = _speedups.page_decision(method, start, first, gate.content_types, decision._WHOLE,
                                decision._STREAMED, WIDE_STARTS)
    assert c is None or c is decide_py(BodyKind.HTML, method, start, first, gate)
    got = decide(BodyKind.HTML, method, start, first, gate)
    assert got == want
    types = [v for k, v in headers if k == b"content-type"]
    plain = (method != "HEAD" and status != 304 and not any(k == b"content-encoding" for k, _ in headers)
             and len(types) == 1 and b"," not in types[0] and want.route in (
                 decision.WHOLE, decision.STREAM) and want.label_known)
    # The C answers exactly the plain pages (a label no browser knows: decide_py reads the
    # body for an ISO-2022-JP declaration)
    assert (c is not None) == plain


@needs_c
def test_odd_arguments_leave_it_to_decide_py(gate: Any) -> None:
    start = {"status": 200, "headers": [(b"content-type", b"text/html; charset=utf-8")]}
    first = {"body": PAGE}
    decide_py(BodyKind.HTML, "GET", start, first, gate)
    args = ["GET", start, first, gate.content_types, decision._WHOLE, decision._STREAMED,
            WIDE_STARTS]
    for i, odd in [(0, b"GET"), (1, list(start.items())), (2, None), (3, {}), (4, []),
                   (6, [b"\xff\xfe"])]:
        changed = list(args)
        changed[i] = odd
        assert _speedups.page_decision(*changed) is None
    with pytest.raises(TypeError):
        _speedups.page_decision(*args[:6])
