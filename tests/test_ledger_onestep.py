"""``Discloser.page_view`` (the record built in one step from the ASGI scope, with its caches)
is the record the two steps built before it: ``RequestInfo.from_scope``, then a ``PageView``
of ``page_path``, ``minimise_ip``, ``ua_family`` and ``ledger_fields`` (the code of 00880e6,
kept here as the reference, with the full ``PageView`` constructor and its checks). Field by
field, with types, the record hash, and the bytes the worker sends to the writer process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.config import Config, load_config
from middleware.consent import Consent
from middleware.disclosure import Discloser, RequestInfo
from middleware.ledger import PageView, minimise_ip, page_path, ua_family
from middleware.ledger.chain import hash_record
from middleware.ledger.wire import Encoder
from middleware.signals import gpp
from middleware.signals.jurisdiction import Jurisdiction
from middleware.signals.page import ledger_fields
from middleware.signals.tcf import TCString
from tests.support.budget import examples

ROOT = Path(__file__).resolve().parent.parent
BASE = load_config(ROOT / "examples/japan_talk/partners.toml")
PARTNERS = sorted(BASE.partners)
_ID = re.compile(r"([0-9a-f]+)-[0-9a-f]{12}")


def _config(trust_proxy: bool, keep_query: bool, ip: str) -> Config:
    return dataclasses.replace(
        BASE, policy=dataclasses.replace(BASE.policy, trust_proxy=trust_proxy),
        ledger=dataclasses.replace(BASE.ledger, keep_query=keep_query, ip=ip))  # type: ignore[arg-type]


def _two_steps(disc: Discloser, partners: frozenset[str], scope: dict[str, Any],
               consent: Consent) -> PageView:
    """The record as 00880e6 built it (RequestInfo.from_scope, then Discloser.disclose)."""
    request = RequestInfo.from_scope(scope, consent, trust_proxy=disc.config.policy.trust_proxy)
    ledger = disc.config.ledger
    basis = "consent" if request.consent.decided else "opt-out-not-exercised"
    return PageView(
        time=dt.datetime.now(dt.UTC), request_id=request.request_id,
        consent_id=request.consent.consent_id,
        path=page_path(request.path, request.query, ledger.keep_query),
        partners=tuple(disc._shares[(pid, basis)] for pid in sorted(partners)),
        policy_version=request.consent.policy_version,
        ip=minimise_ip(request.client_ip, ledger.ip, disc.ip_key),
        ua_family=ua_family(request.user_agent),
        fields=ledger_fields(request.consent, partners, disc._tcf_partners))


_UAS = st.sampled_from([
    b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    b"Chrome/124.0.0.0 Safari/537.36",
    b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
    b"like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    b"Googlebot/2.1 (+http://www.google.com/bot.html)", b"", b"curl/8.5.0",
    "Mozilla/5.0 Firefox/125.0 caf\u00e9".encode("latin-1"),
]) | st.binary(max_size=40)
_ADDRESSES = st.sampled_from(["203.0.113.5", "198.51.100.7", "2001:db8::1", "::ffff:192.0.2.1",
                              "unix-socket", "", " 10.0.0.1 "]) | st.text(max_size=12)
_FORWARDED = st.lists(_ADDRESSES, max_size=3).map(lambda xs: ",".join(xs).encode("latin-1",
                                                                               "replace"))
_HEADER = st.one_of(
    st.tuples(st.just(b"user-agent"), _UAS),
    st.tuples(st.just(b"x-forwarded-for"), _FORWARDED | st.binary(max_size=20)),
    st.tuples(st.sampled_from([b"accept", b"cookie", b"host", b"user-agentx", b"x-forwarded"]),
              st.binary(max_size=10)),
)
_PATHS = st.sampled_from(["/", "", "/articles/kyoto-autumn", "/caf\u00e9/\u65e5\u672c", "/a%00b",
                          "/a\x00b", "/q?x", "/100%", "/bad\udce9", "/lone\ud800"]) | st.text(max_size=16)
_QUERIES = st.sampled_from([b"", b"q=1", b"email=a%40b.c&x=\xe9", b"nul=\x00"]) | st.binary(max_size=12)


@st.composite
def _consents(draw: st.DrawFn) -> Consent:
    decided = draw(st.booleans())
    where = draw(st.none() | st.builds(Jurisdiction, st.none() | st.sampled_from(["US-CA", "DE"]),
                                       st.sampled_from(["opt-in", "opt-out"]),
                                       st.sampled_from(["US-CA", "EEA", "*", "unknown"])))
    tc = draw(st.none() | st.just(TCString(
        2, dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 1, tzinfo=dt.UTC), 1, 1,
        1, "EN", 1, 4, False, False, frozenset(), frozenset(), frozenset(), False, "JP",
        frozenset(), frozenset(), (), frozenset(), raw="CPtcString")))  # type: ignore[arg-type]
    gpp_string = draw(st.none() | st.just(gpp.decode(gpp.encode(gpp.UsNat()))))
    return Consent(
        consent_id=draw(st.none() | st.text(max_size=8)), granted=frozenset({"ads"}),
        policy_version=draw(st.text(max_size=6)), decided=decided,
        source=draw(st.none() | st.sampled_from(["banner", "preferences", "form", "placeholder",
                                                  "gpc", "api", "", "foreign:cmp", "foreign:",
                                                  "foreign", "Foreign:x"]) | st.text(max_size=10)),
        jurisdiction=where, tc=tc, gpp=gpp_string)


@settings(max_examples=examples(300), deadline=None)
@given(headers=st.lists(_HEADER, max_size=6), client=st.none() | st.tuples(_ADDRESSES, st.just(1)),
       path=st.none() | _PATHS, query=st.none() | _QUERIES, trust_proxy=st.booleans(),
       keep_query=st.booleans(), ip=st.sampled_from(["truncate", "hash", "none"]),
       partners=st.sets(st.sampled_from(PARTNERS), min_size=1).map(frozenset),
       consent=_consents(), again=st.booleans())
def test_one_step_record_is_the_two_step_record(
        headers: list[tuple[bytes, bytes]], client: tuple[str, int] | None, path: str | None,
        query: bytes | None, trust_proxy: bool, keep_query: bool, ip: str,
        partners: frozenset[str], consent: Consent, again: bool) -> None:
    disc = Discloser(_config(trust_proxy, keep_query, ip), None,
                     b"consent-gate.ip.k" if ip == "hash" else None)
    scope: dict[str, Any] = {"type": "http", "headers": headers}
    if client is not None:
        scope["client"] = client
    if path is not None:
        scope["path"] = path
    if query is not None:
        scope["query_string"] = query
    before = time.time()
    if again:  # the caches warm (the same visitor and page seen before)
        disc.page_view(partners, scope, consent)
    new = disc.page_view(partners, scope, consent)
    after = time.time()
    old = _two_steps(disc, partners, scope, consent)
    # Time and request id differ between any two records; the rest must not.
    assert type(new.time) is dt.datetime and new.time.tzinfo is dt.UTC
    assert before - 1e-6 <= new.time.timestamp() <= after + 1e-6
    stamp = _ID.fullmatch(new.request_id)
    assert stamp and int(before) <= int(stamp.group(1), 16) <= int(after)
    assert new.request_id != old.request_id
    expected = dataclasses.replace(old, time=new.time, request_id=new.request_id)
    for f in dataclasses.fields(PageView):
        assert getattr(new, f.name) == getattr(expected, f.name), f.name
        assert type(getattr(new, f.name)) is type(getattr(expected, f.name)), f.name
    assert new == expected and new.to_dict() == expected.to_dict()
    assert hash_record(new, "w", 7, "0" * 64) == hash_record(expected, "w", 7, "0" * 64)
    sent: list[bytes] = []
    sent_expected: list[bytes] = []
    assert (Encoder().encode([new], sent) == Encoder().encode([expected], sent_expected)
            and sent == sent_expected)
    # A second record of the same request (a later chunk's partners): its id, path, address
    # and browser, this moment's time, these partners and their fields.
    more = frozenset(PARTNERS) - partners or partners
    second = disc.page_view(more, scope, consent, new)
    assert (second.request_id, second.path, second.ip, second.ua_family) == (
        new.request_id, new.path, new.ip, new.ua_family)
    assert second.time >= new.time
    assert second.partner_ids == tuple(sorted(more))
    assert dict(second.fields) == ledger_fields(consent, more, disc._tcf_partners)


def test_one_step_record_ids_are_fresh_per_view_and_caches_stay_bounded() -> None:
    disc = Discloser(_config(False, False, "truncate"), None, None)
    consent = Consent(consent_id="c", granted=frozenset({"ads"}), policy_version="v",
                      decided=True)
    ids = set()
    for i in range(9000):
        scope = {"type": "http", "path": f"/p/{i}", "client": (f"10.{i >> 8 & 255}.{i & 255}.1", 1),
                 "headers": [(b"user-agent", f"agent/{i}".encode())]}
        view = disc.page_view(frozenset({PARTNERS[0]}), scope, consent)
        ids.add(view.request_id)
        assert view.path == f"/p/{i}" and view.ip == f"10.{i >> 8 & 255}.{i & 255}.0/24"
    assert len(ids) == 9000  # one getrandom per 512 views, no id twice
    assert len(disc._paths) <= 4096 and len(disc._agents) <= 4096
    assert len(disc._addresses) <= 8192
    # An empty partner set is refused as PageView refuses it.
    try:
        disc.page_view(frozenset(), {"type": "http"}, consent)
    except ValueError as exc:
        assert "at least one partner" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("an empty partner list was recorded")
