"""The child of tests/test_rewrite_sanitizers.py: every C function of middleware/_speedups.c
run from a build with ``-fsanitize=address,undefined`` over adversarial inputs, each answer
compared with its Python reference (or with the regular build where the reference is C).

``python -m tests.support.sanitized_child SANITIZED_SO EXAMPLES`` with libasan preloaded and
``PYTHONMALLOC=malloc`` (so a read one past a Python object's block is seen). The sanitized
build is installed as ``middleware._speedups`` before anything of the middleware is imported,
so the gate, the tokenizer and the start decision all run on it; the regular build (the one in
the tree) is loaded beside it under the same name for the C-to-C checks of ``scan_end``. Any
out-of-bounds access or undefined behaviour aborts the process (the parent reads its stderr).

Cost: each check runs in time linear in its input. A buffer cut at every length is scanned
from the start and from the few tokens before the cut (where a read past the end can happen),
not from every ``<`` before it, which was quadratic: ~2.3 M scan calls and 20 s of the child
on the three corpus pages and the documents, now a few per cut.
"""

from __future__ import annotations

import asyncio
import ctypes
import importlib.machinery
import importlib.util
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any


def _load(path: str) -> ModuleType:
    spec = importlib.util.spec_from_loader(
        "middleware._speedups", importlib.machinery.ExtensionFileLoader("middleware._speedups", path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


san = _load(sys.argv[1])
sys.modules["middleware._speedups"] = san  # what `from . import _speedups` finds from now on

import sysconfig  # noqa: E402

from hypothesis import HealthCheck, example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from middleware import rewrite  # noqa: E402
from middleware.accel import speedups  # noqa: E402
from middleware.gate import decision, start  # noqa: E402
from middleware.gate import request as req  # noqa: E402
from middleware.gate.decision import decide_py  # noqa: E402
from middleware.gate.send import pass_send_py, responder_for  # noqa: E402
from middleware.gate.state import ConsentState  # noqa: E402
from middleware.headers import CONSENT_INPUT_NAMES, consent_inputs_py  # noqa: E402
from middleware.html import native  # noqa: E402
from middleware.html.tokenizer import splice_py  # noqa: E402
from middleware.memo import _key_py  # noqa: E402
from middleware.sniff import WIDE_STARTS, BodyKind  # noqa: E402
from tests import test_gate_decision_native as gdn  # noqa: E402
from tests import test_gate_send as gsend  # noqa: E402
from tests import test_gate_start_native as gs  # noqa: E402
from tests import test_memo_key_native as mkn  # noqa: E402
from tests import test_rewrite_native as nat  # noqa: E402
from tests import test_rewrite_speedups as t  # noqa: E402
from tests.asgi_helpers import make_gate  # noqa: E402

assert speedups is san and native.scan_end is san.scan_end, "the gate does not run the sanitized build"
assert req.app_headers is san.app_headers and start.start_kind is san.start_kind
ROOT = Path(__file__).resolve().parents[2]
regular = _load(str(ROOT / "middleware" / ("_speedups" + sysconfig.get_config_var("EXT_SUFFIX"))))
GRAMMAR_NAMES = (tuple(rewrite._NAME_SET), rewrite._END_NAMES, rewrite._PLAIN_URL_TAGS)
assert GRAMMAR_NAMES == (san.NAMES, san.END_NAMES, san.PLAIN_URL_TAGS)
N = int(sys.argv[2])

Buffer = bytes | ctypes.Array[ctypes.c_char]


def exact_block(buf: bytes) -> ctypes.Array[ctypes.c_char]:
    """An exactly sized malloc block (PYTHONMALLOC=malloc): a read one past the end is seen
    (a bytes object would hide it behind its trailing NUL)."""
    return (ctypes.c_char * len(buf)).from_buffer_copy(buf)


# --------------------------------------------------------------------------- the skip


def check_skip(buf: bytes) -> None:
    block = exact_block(buf)
    for pos in range(-1, len(buf) + 2):
        assert san.skip_end(block, pos) == t.regex_end(buf, pos), (buf, pos)


# --------------------------------------------------------------------------- the native pass

SAN_TABLE = san.make_hosts(*nat.MATCHER.table())
TABLE = regular.make_hosts(*nat.MATCHER.table())
ALLOWED = frozenset({"yt", "fb"})


ADS = frozenset({"ads"})


def _scans(mod: ModuleType, tab: object, data: Buffer, pos: int,
           allowed: frozenset[str] | None) -> tuple[object, ...]:
    """scan_end's answers from ``pos``: plain, with the edits of blocked partners' tags, and
    with the injections (each call's sets and lists as it left them)."""
    f1: set[str] = set()
    e1: set[str] = set()
    r1 = mod.scan_end(data, pos, tab, f1, allowed, e1)
    f2: set[str] = set()
    e2: set[str] = set()
    o2: set[str] = set()
    d2: list[Any] = []
    r2 = mod.scan_end(data, pos, tab, f2, allowed, e2, o2, d2)
    f3: set[str] = set()
    e3: set[str] = set()
    o3: set[str] = set()
    d3: list[Any] = []
    inj: list[bytes | None] = [b"<!--H-->", b"", b"E"]
    r3 = mod.scan_end(data, pos, tab, f3, allowed, e3, o3, d3, inj, ADS, nat.PARTS, ADS, True)
    return r1, f1, e1, r2, f2, e2, o2, d2, r3, f3, e3, o3, d3, inj


def check_scan(buf: bytes, positions: Iterable[int] | None = None) -> None:
    """scan_end of the sanitized build on an exact block == the regular build's on bytes, from
    each position, with no partner allowed and with some."""
    block = exact_block(buf)
    for pos in range(-1, len(buf) + 2) if positions is None else positions:
        for allowed in (None, ALLOWED):
            assert _scans(san, SAN_TABLE, block, pos, allowed) == _scans(
                regular, TABLE, buf, pos, allowed), (buf, pos, allowed)


#: Scans per cut from the tokens just before it: a token cut by the end of the buffer is
#: where a read past the end happens, and a scan from an earlier '<' reaches it in one of the
#: states these starts (and the scan from 0) already give.
NEAR = 2


def check_prefixes(buf: bytes) -> None:
    """Every prefix of ``buf``, scanned from 0 and from the NEAR last '<' before its end (a
    token cut off there), and the whole buffer from every '<': linear in the cuts."""
    starts = [i for i in range(len(buf)) if buf[i] == 0x3C]
    k = 0  # starts[:k] are the starts before the cut
    for cut in range(1, len(buf) + 1):
        while k < len(starts) and starts[k] < cut:
            k += 1
        check_scan(buf[:cut], {0, *starts[max(0, k - NEAR):k]})
    check_scan(buf, [-1, 0, *starts, len(buf), len(buf) + 1])


# --------------------------------------------------------------------------- splice


def check_splice(buf: bytes, edits: list[tuple[int, int, bytes]]) -> None:
    block = exact_block(buf)
    for stop in (0, len(buf) // 2, len(buf), len(buf) + 1):
        assert san.splice(block, edits, stop) == splice_py(buf, edits, stop), (buf, edits, stop)


def check_spare() -> None:
    """Large outputs: written into the last one's bytes object when nobody holds it (resized)."""
    kept = []
    for size, seed in ((300_000, 1), (300_000, 2), (420_000, 3), (280_000, 4), (280_000, 5)):
        buf, edits, want = t.big_splice(size, seed)
        got = san.splice(buf, edits, len(buf))
        assert got == want and hash(got) == hash(want)
        if seed % 2:
            kept.append((got, want))
    assert all(got == want for got, want in kept)


# --------------------------------------------------------------------------- speculation rules

SPECULATION_TYPES = ["speculationrules", "SpeculationRules", " speculationrules\t",
                     "&#x73;peculationrules", "speculationrule", "xspeculationrulesx",
                     "speculationrules&", "&", "", "module", "peculationrules", "SPECULATIONRULE"]
SPECULATION_TEXT = ['{"prefetch":[{"source":"list","urls":["https://www.youtube.com/x"]}]}',
                    '{"prefetch":[{"where":{"href_matches":"/*"}}]}', "not json",
                    '{"prefetch":[{"source":"list","urls":["/a<!--"]}]}', "", "<img src=//ad.doubleclick.net/x>"]
speculation_tags = st.builds(
    "<{}{}{}{}{}>{}{}".format,
    st.sampled_from(["script", "SCRIPT", "Script"]),
    st.sampled_from(["", " async", " src=//www.youtube.com/s.js", " type=module"]),
    st.sampled_from([" type", " TYPE", " Type", "\ttype", "/type"]),
    st.one_of(st.sampled_from(SPECULATION_TYPES).flatmap(lambda v: st.sampled_from(
        [f'="{v}"', f"='{v}'", f"={v}" if v and " " not in v else "=x", f" = '{v}'"])),
              st.just("")),
    st.sampled_from(["", " type=text/plain", " data-consent=ads"]),
    st.sampled_from(SPECULATION_TEXT),
    st.sampled_from(["</script>", "</SCRIPT >", "</script", ""]))
speculation_documents = st.lists(st.one_of(speculation_tags, speculation_tags, nat.tag(),
                                           st.sampled_from(nat.TEXT_BITS)),
                                 min_size=1, max_size=6).map("".join)
SPECULATION_FIXED = [
    b'<head><script type="speculationrules">{"prefetch":[{"source":"list","urls":'
    b'["https://www.youtube.com/x"]}]}</script></head><p><img src=//ad.doubleclick.net/i>',
    b"<script type=SpeculationRules>{}</script><script type=&#x73;peculationrules>x</script>",
    b"<p><script type='speculationrule'>x</script><script src=//i.ytimg.com/v type=speculationrules",
]


def check_rewriter_chunkings(doc: bytes) -> None:
    """The rewriter on the sanitized native pass == the pure-Python rewriter, for ``doc`` cut
    once at every position and fed one byte at a time (and as one chunk)."""
    for allowed in (frozenset(), frozenset({"ads", "yt"})):
        for cut in range(len(doc) + 1):
            nat.check(doc, [cut], allowed, inject=cut % 2 == 0)
        p = nat.plan(allowed, True)
        fed = [doc[i:i + 1] for i in range(len(doc))] or [b""]
        native_trace = nat.trace(p, fed)
        with nat.pure():
            assert native_trace == nat.trace(p, fed), doc


# --------------------------------------------------------------------------- start_kind


def _outcome(fn: Callable[[Any], Any], arg: Any) -> Any:
    try:
        return ("ok", fn(arg))
    except Exception as exc:  # the exception type is the answer compared
        return ("raised", type(exc))


def check_start_kind(make: Callable[[], Any]) -> None:
    """The same answer as start_kind_py, the same object (the responder tests answers by
    identity: FETCHING_PASS is equal to PASSES but not it), or the same exception type.
    ``make()`` gives each its own headers (an iterator is read once)."""
    headers = make()
    got, want = _outcome(san.start_kind, headers), _outcome(start.start_kind_py, make())
    assert got == want, (headers, got, want)
    if got[0] == "ok":
        assert got[1] is want[1], (headers, got, want)


FETCHING = [b"link", b"refresh", b"report-to", b"speculation-rules", b"reporting-endpoints",
            b"content-security-policy", b"content-security-policy-report-only", b"lin",
            b"refresh ", b"Link", b"speculation-rule"]
huge = st.sampled_from([b"", b"a" * 70_000, b"application/json" + b" " * 65_536,
                        b"text/html;" + b"x" * 100_000, b"\x00" * 4096])
start_values = st.one_of(gs.values, huge)
start_lists = st.lists(st.tuples(st.one_of(gs.names, st.sampled_from(FETCHING)), start_values),
                       max_size=8)
json_with_fetching = st.tuples(
    st.sampled_from([[(b"content-type", b"application/json")], [(b"content-type", b"image/png")],
                     [(b"content-type", b"text/plain")], [], [(b"content-type", b"text/html")]]),
    st.lists(st.tuples(st.sampled_from(FETCHING), start_values), min_size=1, max_size=3),
    st.booleans()).map(lambda t: t[0] + t[1] + ([(b"set-cookie", b"a=1")] if t[2] else []))


# --------------------------------------------------------------------------- app_headers

REQUEST_NAMES = [*gsend.NAMES, b"accept-encoding" * 2, b"x-consent-gate-scanx", b"\x00" * 15]
request_values = st.one_of(st.sampled_from(gsend.VALUES), st.binary(max_size=8), huge)
request_lists = st.lists(st.tuples(st.one_of(st.sampled_from(REQUEST_NAMES), st.binary(max_size=16)),
                                   request_values), max_size=9)
odd_request_items = st.one_of(
    gsend.odd_items, st.none(), st.integers(), st.text(max_size=3), st.binary(max_size=3),
    st.tuples(st.sampled_from(REQUEST_NAMES), st.binary(max_size=3), st.binary(max_size=3)),
    st.tuples(st.sampled_from(REQUEST_NAMES), st.none()),
    st.tuples(st.sampled_from(REQUEST_NAMES).map(memoryview), st.binary(max_size=3)),
    st.lists(st.sampled_from(REQUEST_NAMES), min_size=2, max_size=2).map(tuple).map(
        lambda p: type("TupleKind", (tuple,), {})(p)))


def check_app_headers(make: Callable[[], Any]) -> None:
    """app_headers (sanitized) == app_headers_py: the same object back when nothing is
    dropped, a copy that leaves the caller's list as it was, or the same exception type.
    ``make()`` gives each its own headers (an iterator is read once)."""
    headers, theirs = make(), make()
    before = list(headers) if isinstance(headers, list | tuple) else None
    got, want = _outcome(san.app_headers, headers), _outcome(req.app_headers_py, theirs)
    # the headers given back as they came (no copy) are the same answer, whatever they are
    if got[0] == "ok" and got[1] is headers:
        got = ("given back",)
    if want[0] == "ok" and want[1] is theirs:
        want = ("given back",)
    assert got == want, (headers, got, want)
    if before is not None:
        assert list(headers) == before, "the server's header list was changed"


# --------------------------------------------------------------------------- consent_inputs

INPUT_NAMES = [*CONSENT_INPUT_NAMES, b"Cookie", b"cookies", b"cooki", b"dnt ", b"sec-gp",
               b"accept-languages", b"c" * 15, b""]
input_lists = st.lists(st.tuples(st.one_of(st.sampled_from(INPUT_NAMES), st.binary(max_size=16)),
                                 st.one_of(request_values, st.text(max_size=3), st.none(),
                                           st.integers())), max_size=10)


def check_consent_inputs(make: Callable[[], Any]) -> None:
    """consent_inputs (sanitized) == consent_inputs_py, value for value (the very objects:
    the values are handed on as they are), or the same exception type."""
    got, want = _outcome(san.consent_inputs, make()), _outcome(consent_inputs_py, make())
    assert got == want, (got, want)
    if got[0] == "ok":
        assert all(a is b for a, b in zip(got[1], want[1], strict=True)), (got, want)


# --------------------------------------------------------------------------- pass_send


class Sink:
    """The server's send: records what it is given; raises if told to (sync or when awaited)."""

    def __init__(self, fail: str) -> None:
        self.sent: list[Any] = []
        self.fail = fail

    def __call__(self, message: Any) -> Any:
        if self.fail == "call":
            raise ConnectionResetError("the server's send raised")
        self.sent.append(message)

        async def done() -> None:
            if self.fail == "await":
                raise OSError("the server's send failed")
        return done()


MESSAGE_TYPES = ["http.response.start", "http.response.body", "http.response.pathsend",
                 "http.response.trailers", "http.response.zerocopysend", "http.disconnect",
                 "lifespan.startup", "", None, 7, b"http.response.start"]
START_HEADERS = [*gsend.START_HEADERS, [(b"content-type", b"application/json"), (b"link", b"</x>; rel=preload")],
                 [(b"content-type", b"application/json"), (b"refresh", b"0;url=//ad.doubleclick.net/")],
                 [(b"content-type", b"image/png"), (b"Link", b"<//ad.doubleclick.net/>; rel=preload")],
                 ((b"content-type", b"application/json"),), [(b"content-type", "application/json")],
                 [("content-type", b"application/json")], [b"content-type"], "not headers", 3,
                 [(b"content-type", b"application/json" + b" " * 70_000)]]


@st.composite
def messages(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["dict", "dict", "dict", "dict", "none", "list", "str"]))
    if shape == "none":
        return None
    if shape == "list":
        return [("type", "http.response.start")]
    if shape == "str":
        return "http.response.start"
    message: dict[Any, Any] = {}
    kind = draw(st.sampled_from(MESSAGE_TYPES))
    if kind is not None:
        message["type"] = kind
    if draw(st.booleans()):
        message["status"] = draw(st.sampled_from([200, 204, 304, 404, 500, "200", None]))
    if draw(st.integers(0, 3)):
        headers = draw(st.sampled_from(START_HEADERS))
        if headers is not None:
            message["headers"] = list(headers) if isinstance(headers, list) else headers
    if draw(st.booleans()):
        message["body"] = draw(st.sampled_from([b"{}", b"", b"<p>x</p>", "text", None, b"x" * 70_000]))
    if draw(st.booleans()):
        message["more_body"] = draw(st.sampled_from([True, False, 1, None]))
    if kind == "http.response.pathsend" or draw(st.integers(0, 7)) == 0:
        message["path"] = "/x"
    return message


SCOPES = [{"method": "GET"}, {"method": "HEAD"}, {"method": "POST"}, {}, {"method": None},
          {"method": b"GET"}, {"method": "head"}]


def _summary(sink: Sink) -> list[Any]:
    def headers(m: dict[Any, Any]) -> Any:
        h = m.get("headers", [])
        return sorted(map(repr, h)) if isinstance(h, list | tuple) else repr(h)

    return [(m.get("type"), m.get("status"), headers(m), m.get("body"))
            if isinstance(m, dict) else repr(m) for m in sink.sent]


async def _drive(make: str, gate: Any, scope_base: dict[str, Any], read: bool, fail: str,
                 sequence: list[Any]) -> Any:
    scope = {"type": "http", "path": "/api", "headers": [], "state": {}, **scope_base}
    state = ConsentState()
    state._gate, state._scope, state._resolved, state.consent_read = gate, scope, False, read
    sink = Sink(fail)
    if make == "responder":
        send: Any = responder_for(gate, scope, sink, state).send
    elif make == "py":
        send = pass_send_py(gate, scope, sink, state)
    else:
        send = san.pass_send(gate, scope, sink, state)
    outcome = []
    for message in sequence:
        try:
            await send(message)
            outcome.append("ok")
        except Exception as exc:  # compared by type
            outcome.append(type(exc).__name__)
    made = getattr(getattr(send, "__self__", send), "responder", "n/a")
    return outcome, _summary(sink), made


#: One event loop for every drive (a loop per drive cost more than the drives).
LOOP = asyncio.new_event_loop()


def check_pass_send(gate: Any, scope: dict[str, Any], read: bool, fail: str,
                    sequence: list[Any]) -> None:
    """san.pass_send == pass_send_py (the same outcomes, the same messages to the server, a
    responder made or not alike) == an HtmlResponder given every message (outcomes and
    messages). Each driver gets its own copies: a responder may change a message it is given."""
    import copy

    results = {make: LOOP.run_until_complete(_drive(make, gate, scope, read, fail,
                                                    copy.deepcopy(sequence)))
               for make in ("responder", "py", "c")}
    assert results["c"][:2] == results["py"][:2] == results["responder"][:2], (sequence, results)
    # Whether a responder was made: alike, but where the C takes the responder's way for what
    # is unusual (a first message that is no dict or has no str "type", a method not a str),
    # which raises as the responder always did while Python raises before making one.
    first = sequence[0]
    if (isinstance(scope.get("method"), str) and type(first) is dict
            and isinstance(first.get("type"), str)):
        assert (results["c"][2] is None) == (results["py"][2] is None), (sequence, results)


class ScopeChangingState(ConsentState):
    """A state whose consent flag, when read, replaces the scope's method with a new string:
    the C must not hold the old one (borrowed from the scope) across that read."""

    __slots__ = ("replacement",)

    @property  # type: ignore[override]
    def consent_read(self) -> bool:
        self._scope["method"] = "".join(self.replacement)
        return False


def check_pass_send_scope_changed_by_the_flag(gate: Any) -> None:
    """The start decision reads the flag, then the method (as passes_untouched does): the
    method the flag's read put there decides, in C as in Python, and nothing freed is read."""
    json = {"type": "http.response.start", "status": 200,
            "headers": [(b"content-type", b"application/json")]}
    for replacement in (["H", "EAD"], ["G", "ET" * 40]):
        outcomes = []
        for make in (pass_send_py, san.pass_send):
            scope = {"type": "http", "path": "/api", "headers": [], "state": {},
                     "method": "".join(["G", "ET", "x" * 64])}
            state = ScopeChangingState()
            state._gate, state._scope, state._resolved = gate, scope, False
            state.replacement = replacement
            sink = Sink("")
            send = make(gate, scope, sink, state)

            async def drive(send: Any) -> None:
                await send(dict(json))
                await send({"type": "http.response.body", "body": b"{}"})

            LOOP.run_until_complete(drive(send))
            made = getattr(getattr(send, "__self__", send), "responder", "n/a")
            outcomes.append((_summary(sink), made is None))
        assert outcomes[0] == outcomes[1], (replacement, outcomes)
        assert outcomes[0][1] == (replacement[0] != "H"), "HEAD makes a responder, GET passes"


# --------------------------------------------------------------------------- the runs


def run_corpus() -> None:
    for page in sorted((ROOT / "tests" / "corpus").glob("*.html")):
        raw = page.read_bytes()
        data = raw.lower()
        for cut in range(0, len(data), 1499):
            check_skip(data[:cut])
        check_prefixes(raw)
    for doc in SPECULATION_FIXED:
        check_prefixes(doc)
        check_rewriter_chunkings(doc)


@settings(max_examples=N, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(t.buffers())
def run_skip(buf: bytes) -> None:
    check_skip(buf)


@settings(max_examples=N, deadline=None, database=None)
@given(st.binary(max_size=40).flatmap(lambda b: st.tuples(st.just(b), t.edit_lists(len(b)))))
def run_splice(case: tuple[bytes, list[tuple[int, int, bytes]]]) -> None:
    check_splice(*case)


@settings(max_examples=max(N // 3, 10), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(nat.documents, t.buffers(), st.lists(st.sampled_from(nat.SVG_BITS), max_size=12),
       nat.svgs, st.lists(st.one_of(nat.optin_tags, nat.refresh_tag(), nat.srcdoc_tags),
                          max_size=3))
def run_scan(doc: str, buf: bytes, svg: list[str], careful_svg: str, optin: list[str]) -> None:
    check_prefixes(doc.encode("utf-8", "replace"))
    check_prefixes("".join(optin).encode())
    check_scan(buf)
    check_prefixes(("<svg" + "".join(svg)).encode())
    check_prefixes(careful_svg.encode())


@settings(max_examples=max(N // 2, 10), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(speculation_documents, st.lists(st.integers(0, 400), max_size=4),
       st.sampled_from([frozenset(), frozenset({"ads", "yt"}), frozenset(nat.PARTNERS)]),
       st.booleans())
def run_speculation(doc: str, cuts: list[int], allowed: frozenset[str], inject: bool) -> None:
    """Speculation-rule script tags (the C stops where the type may spell it: maybe_speculation)
    in random chunkings: the rewriter on the sanitized pass == pure Python; every prefix scanned."""
    raw = doc.encode()
    nat.check(raw, cuts, allowed, inject)
    check_prefixes(raw)


@settings(max_examples=N, deadline=None, database=None)
@given(st.one_of(start_lists, json_with_fetching, gs.odd_lists), st.sampled_from([list, tuple, iter]))
@example([(b"content-type", b"application/json"), (b"link", b"</a>; rel=preload")], list)
@example([(b"link", b"</a>"), (b"content-type", b"application/json")], tuple)
@example([(b"content-type", b"image/png"), (b"refresh", b"0")], list)
def run_start(headers: list[Any], kind: Any) -> None:
    check_start_kind(lambda: kind(headers))


@settings(max_examples=N, deadline=None, database=None)
@given(st.one_of(request_lists,
                 st.lists(st.one_of(st.tuples(st.sampled_from(REQUEST_NAMES), request_values),
                                    odd_request_items), min_size=1, max_size=6)),
       st.sampled_from([list, tuple, iter, "subclass", "none"]))
def run_app_headers(headers: list[Any], kind: Any) -> None:
    if kind == "subclass":
        check_app_headers(lambda: type("HeaderList", (list,), {})(headers))
    elif kind == "none":
        check_app_headers(lambda: None)
    else:
        check_app_headers(lambda: kind(headers))


@settings(max_examples=N, deadline=None, database=None)
@given(st.one_of(input_lists,
                 st.lists(st.one_of(st.tuples(st.sampled_from(INPUT_NAMES), request_values),
                                    odd_request_items), min_size=1, max_size=6)),
       st.sampled_from([list, tuple, iter, "subclass"]))
def run_consent_inputs(headers: list[Any], kind: Any) -> None:
    if kind == "subclass":
        check_consent_inputs(lambda: type("HeaderList", (list,), {})(headers))
    else:
        check_consent_inputs(lambda: kind(headers))


def run_page_decision(gate: Any) -> None:
    """page_decision (sanitized): None or decide_py's very object, on random and near-plain
    starts and bodies (decide_py run first, so its tables hold the charsets and decisions)."""
    @settings(max_examples=N, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(gdn.methods, st.one_of(gdn.statuses, st.just(200)),
           st.one_of(gdn.header_lists, gdn.near_headers), st.one_of(gdn.bodies, st.just(gdn.PAGE)),
           gdn.mores)
    def run(method: str, status: Any, headers: Any, body: Any, more: Any) -> None:
        def make() -> tuple[dict[str, Any], dict[str, Any]]:
            return (gdn.message(type="http.response.start", status=status,
                                headers=list(headers) if isinstance(headers, list) else headers),
                    gdn.message(type="http.response.body", body=body, more_body=more))
        want = _outcome(lambda _: decide_py(BodyKind.HTML, method, *make(), gate), None)
        got = san.page_decision(method, *make(), gate.content_types, decision._WHOLE,
                                decision._STREAMED, WIDE_STARTS)
        assert got is None or (want[0] == "ok" and got is want[1]), (got, want)

    run()


def run_memo_key() -> None:
    @settings(max_examples=N, deadline=None, database=None)
    @given(mkn.body_pairs(), st.sampled_from([(0, 0), (0, 1)]))
    def run(pair: tuple[bytes, bytes], plans: tuple[int, int]) -> None:
        a, b = pair
        pa, pb = mkn.PLANS[plans[0]], mkn.PLANS[plans[1]]
        assert (san.memo_key(pa, a) == san.memo_key(pb, b)) == (_key_py(pa, a) == _key_py(pb, b))

    run()


def run_pass_send(gate: Any) -> None:
    @settings(max_examples=N, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.sampled_from(SCOPES), st.booleans(), st.sampled_from(["", "", "call", "await"]),
           st.lists(messages(), min_size=1, max_size=4))
    def run(scope: dict[str, Any], read: bool, fail: str, sequence: list[Any]) -> None:
        check_pass_send(gate, scope, read, fail, sequence)

    run()
    check_pass_send_scope_changed_by_the_flag(gate)


def main() -> None:
    import logging
    import time

    # The gate logs what it drops and why (a Refresh header to a partner...): noise here.
    logging.getLogger("consent_gate").disabled = True

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover - unused
        pass

    with tempfile.TemporaryDirectory() as tmp:
        gate = make_gate(app, Path(tmp))
        steps: list[tuple[str, Callable[[], None]]] = [
            ("corpus", run_corpus), ("skip_end", run_skip), ("scan_end", run_scan),
            ("speculation", run_speculation), ("splice", run_splice), ("spare", check_spare),
            ("start_kind", run_start), ("app_headers", run_app_headers),
            ("consent_inputs", run_consent_inputs),
            ("pass_send", lambda: run_pass_send(gate)),
            ("page_decision", lambda: run_page_decision(gate)), ("memo_key", run_memo_key)]
        print(f"imports: {time.process_time():.2f} s CPU", flush=True)
        for name, step in steps:
            began, cpu = time.perf_counter(), time.process_time()
            step()
            print(f"{name}: {time.perf_counter() - began:.2f} s, {time.process_time() - cpu:.2f} s CPU",
                  flush=True)
    print("sanitized skip_end, scan_end, splice, start_kind, app_headers, consent_inputs, "
          "pass_send, page_decision, memo_key: ok")


if __name__ == "__main__":
    main()
