"""ResponseHeaders.rewritten remembers a rewritten page's edited start headers per (the app's
raw headers, allowed set, enforced, drop_length, length): any sequence of calls on one
ResponseHeaders gives what a fresh one gives each time, and what differs in the key (another
visitor's allowed set, another length, the enforced no-partner CSP) never shares an answer."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.config import load_config
from middleware.csp import CspBuilder
from middleware.gate.response_headers import ResponseHeaders
from middleware.headers import GatedHeaders
from middleware.hosts import HostMatcher
from tests.support.budget import examples

CONFIG = load_config(Path(__file__).resolve().parent.parent / "examples/japan_talk/partners.toml")
PARTNERS = sorted(CONFIG.partners)
VARY = ["Cookie", "Accept-Language", "Sec-GPC"]
MATCHER = HostMatcher({pid: p.hosts for pid, p in CONFIG.partners.items()})
CSP = CspBuilder(CONFIG)
SCOPE = {"type": "http", "method": "GET", "path": "/a", "headers": []}


def fresh() -> ResponseHeaders:
    return ResponseHeaders(GatedHeaders(VARY, CSP.frame_options), CSP, MATCHER)


def edited(headers: ResponseHeaders, raw: list[tuple[bytes, bytes]], allowed: frozenset[str], *,
           enforced: bool = False, drop_length: bool = False,
           length: bytes | None = None) -> list[tuple[bytes, bytes]]:
    start = {"type": "http.response.start", "status": 200, "headers": raw}
    headers.rewritten(start, SCOPE, allowed, enforced_no_partner=enforced,
                      drop_length=drop_length, length=length)
    result: list[tuple[bytes, bytes]] = start["headers"]
    return result


def csp_of(raw: list[tuple[bytes, bytes]]) -> bytes:
    return next(v for k, v in raw if k == b"content-security-policy")


PAGE = [(b"content-length", b"30319"), (b"content-type", b"text/html; charset=utf-8")]


def test_gate_headers_cache_another_visitors_allowed_set_gets_its_own_csp() -> None:
    headers = fresh()
    everyone = frozenset(PARTNERS)
    first = edited(headers, list(PAGE), everyone, length=b"31420")
    second = edited(headers, list(PAGE), frozenset(), length=b"31420")
    assert csp_of(first) == CSP.value(everyone)
    assert csp_of(second) == CSP.value(frozenset()) != csp_of(first)
    assert edited(headers, list(PAGE), everyone, length=b"31420") == first


def test_gate_headers_cache_length_and_enforced_csp_are_part_of_the_key() -> None:
    headers = fresh()
    everyone = frozenset(PARTNERS)
    a = edited(headers, list(PAGE), everyone, length=b"31420")
    b = edited(headers, list(PAGE), everyone, length=b"31898")
    assert (b"content-length", b"31420") in a and (b"content-length", b"31898") in b
    enforced = edited(headers, list(PAGE), everyone, enforced=True, length=b"31420")
    assert csp_of(enforced) == CSP.value(frozenset()) != csp_of(a)
    dropped = edited(headers, list(PAGE), everyone, drop_length=True)
    assert not any(k == b"content-length" for k, _ in dropped)


def test_gate_headers_cache_returns_a_list_of_its_own_each_time() -> None:
    headers = fresh()
    first = edited(headers, list(PAGE), frozenset(), length=b"1")
    first.append((b"x-later", b"edit"))  # a later edit of one response (a server, a middleware)
    assert edited(headers, list(PAGE), frozenset(), length=b"1") == first[:-1]


def test_gate_headers_cache_fetching_headers_are_gated_every_time() -> None:
    headers = fresh()
    host = next(iter(CONFIG.partners["google-adsense"].hosts)).replace("*.", "x.")
    raw = [*PAGE, (b"link", f"<https://{host}/a.js>; rel=preload; as=script".encode())]
    for _ in range(2):
        out = edited(headers, list(raw), frozenset(PARTNERS), length=b"5")
        assert not any(k == b"link" for k, _ in out)


def test_gate_headers_cache_unhashable_pairs_are_edited_afresh() -> None:
    headers = fresh()
    raw = [[b"content-type", b"text/html"], [b"x-other", b"1"]]  # list pairs: not hashable
    for _ in range(2):
        got = edited(headers, [list(item) for item in raw], frozenset(), length=b"3")  # type: ignore[misc]
        assert got == edited(fresh(), [list(item) for item in raw], frozenset(), length=b"3")  # type: ignore[misc]
    assert not headers._edited


NAMES = st.sampled_from([b"vary", b"cache-control", b"etag", b"content-length", b"content-type",
                         b"x-frame-options", b"set-cookie", b"refresh", b"x-other"])
VALUES = st.sampled_from([b"", b"Origin", b"public, max-age=60", b'"e1"', b"12", b"DENY",
                          b"text/html", b"0; url=https://pagead2.googlesyndication.com/x", b"5"])
CALL = st.tuples(st.lists(st.tuples(NAMES, VALUES), max_size=5),
                 st.frozensets(st.sampled_from(PARTNERS)), st.booleans(), st.booleans(),
                 st.sampled_from([None, b"0", b"31420"]))


@settings(max_examples=examples(300), deadline=None)
@given(st.lists(CALL, min_size=1, max_size=12))
def test_gate_headers_cache_same_as_a_fresh_response_headers(calls: list[tuple[
        list[tuple[bytes, bytes]], frozenset[str], bool, bool, bytes | None]]) -> None:
    shared = fresh()
    for raw, allowed, enforced, drop_length, length in calls + calls:  # each key seen twice
        got = edited(shared, list(raw), allowed, enforced=enforced, drop_length=drop_length,
                     length=length)
        want = edited(fresh(), list(raw), allowed, enforced=enforced, drop_length=drop_length,
                      length=length)
        assert got == want
