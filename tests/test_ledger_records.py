from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from middleware.ledger import ConsentEvent, DisclosureRecord, minimise_ip, page_path, ua_family
from middleware.ledger.chain import ChainCursor, record_hash
from middleware.ledger.records import record_from_dict

T0 = datetime(2024, 5, 1, 12, 30, 15, 123456, tzinfo=UTC)


def make_disclosure(**kw: object) -> DisclosureRecord:
    base: dict[str, object] = dict(
        time=T0, request_id="r1", consent_id="c1", path="/a", partner="google-adsense",
        purposes=("ads",), legal_basis="consent", data_categories=("ip_address", "cookies"),
        cookies=("__gads",), policy_version="2024-05-01", ip="203.0.113.0/24",
        ua_family="Chrome 124", fields={"server_side": False, "n": 3, "tags": ["x"]},
    )
    base.update(kw)
    return DisclosureRecord(**base)  # type: ignore[arg-type]


def make_event(**kw: object) -> ConsentEvent:
    base: dict[str, object] = dict(
        time=T0, consent_id="c1", action="given", choices={"social": False, "ads": True},
        policy_version="2024-05-01", source="banner", ip="2001:db8:1::/48", ua_family="Firefox 125",
    )
    base.update(kw)
    return ConsentEvent(**base)  # type: ignore[arg-type]


def test_records_round_trip_through_dict() -> None:
    for rec in (make_disclosure(), make_event(), make_disclosure(consent_id=None, ip=None)):
        again = record_from_dict(rec.kind, rec.to_dict())
        assert again == rec
        assert again.to_dict() == rec.to_dict()


def test_records_normalise_time_to_utc_and_lists_to_tuples() -> None:
    plus2 = timezone(timedelta(hours=2))
    rec = make_disclosure(time=T0.astimezone(plus2), purposes=["ads"], cookies=["a", "b"])
    assert rec.time.tzinfo == UTC and rec.time == T0
    assert rec.purposes == ("ads",) and rec.cookies == ("a", "b")
    assert rec.to_dict()["time"] == "2024-05-01T12:30:15.123456Z"


def test_records_choices_are_ordered_and_frozen() -> None:
    ev = make_event()
    assert list(ev.choices) == ["ads", "social"]
    with pytest.raises(TypeError):
        ev.choices["ads"] = False  # type: ignore[index]


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"legal_basis": "legitimate-interest"}, "legal_basis"),
        ({"time": datetime(2024, 1, 1)}, "timezone-aware"),
        ({"purposes": "ads"}, "not a string"),
        ({"fields": {"x": object()}}, "JSON-able"),
        ({"fields": {"x": float("nan")}}, "JSON-able"),
        ({"partner": ""}, "partner"),
    ],
)
def test_disclosure_record_rejects_bad_values(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_disclosure(**kw)


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"action": "maybe"}, "action"), ({"source": "api"}, "source"),
     ({"choices": {"ads": "yes"}}, "choices")],
)
def test_consent_event_rejects_bad_values(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_event(**kw)


def test_record_fields_are_detached_from_the_callers_dict() -> None:
    fields = {"a": [1]}
    rec = make_disclosure(fields=fields)
    fields["a"].append(2)
    assert rec.fields == {"a": [1]}


def test_hash_covers_every_record_field_and_chain_position() -> None:
    rec = make_disclosure()
    h = record_hash("disclosure", rec.to_dict(), "w1", 1, "0" * 64)
    changes: list[dict[str, object]] = [
        {"path": "/b"}, {"ip": None}, {"fields": {}}, {"purposes": ("ads", "x")}]
    for change in changes:
        other = make_disclosure(**change)
        assert record_hash("disclosure", other.to_dict(), "w1", 1, "0" * 64) != h
    assert record_hash("disclosure", rec.to_dict(), "w2", 1, "0" * 64) != h
    assert record_hash("disclosure", rec.to_dict(), "w1", 2, "0" * 64) != h
    assert record_hash("disclosure", rec.to_dict(), "w1", 1, "1" * 64) != h


def test_chain_cursor_links_and_advances_only_when_told() -> None:
    cur = ChainCursor("w")
    rows = cur.link([make_disclosure(), make_event()])
    assert [r.seq for r in rows] == [1, 2]
    assert rows[0].prev_hash == "0" * 64 and rows[1].prev_hash == rows[0].hash
    assert cur.seq == 0  # a failed commit must be retried with the same seqs
    again = cur.link([make_disclosure(), make_event()])
    assert [r.hash for r in again] == [r.hash for r in rows]
    cur.advance(rows)
    assert cur.link([make_event()])[0].prev_hash == rows[1].hash


@pytest.mark.parametrize(
    ("path", "query", "keep", "expected"),
    [
        ("/search", "q=alice@example.com", False, "/search"),
        ("/search", "q=x", True, "/search?q=x"),
        ("/search", b"q=x", True, "/search?q=x"),
        ("/search", "", True, "/search"),
        ("/a?b", "", False, "/a%3Fb"),  # a decoded path's '?' was %3F in the request line
        ("", "", False, "/"),
    ],
)
def test_page_path_drops_query_by_default(path: str, query: str | bytes, keep: bool,
                                          expected: str) -> None:
    assert page_path(path, query, keep) == expected


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ("/a\x00b", "", "/a%00b"),  # what uvicorn hands over for /a%00b
        ("/caf\udce9", "", "/caf%E9"),  # a non-UTF-8 byte kept by surrogateescape
        ("/x\ud800y", "", "/x%uD800y"),  # any other lone surrogate
        ("/ok", b"q=\x00", "/ok?q=%00"),
        ("/caf\u00e9", "", "/caf\u00e9"),  # text a store can hold is kept as it is
    ],
)
def test_page_path_spells_what_no_store_can_hold(path: str, query: str | bytes,
                                                 expected: str) -> None:
    assert page_path(path, query, keep_query=True) == expected


@given(st.text(), st.text())
def test_page_path_is_always_storable(path: str, query: str) -> None:
    """A NUL or a lone surrogate in one request would fail its whole group commit."""
    got = page_path(path, query, keep_query=True)
    assert "\x00" not in got
    got.encode("utf-8")


@pytest.mark.parametrize(
    ("ip", "expected"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        (" 198.51.100.1 ", "198.51.100.0/24"),
        ("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48"),
        ("[2001:db8::1]", "2001:db8::/48"),
        ("fe80::1%eth0", "fe80::/48"),
        ("::ffff:203.0.113.9", "203.0.113.0/24"),
        ("not-an-ip", None),
        ("", None),
        (None, None),
        ("999.1.1.1", None),
    ],
)
def test_minimise_ip_truncate(ip: str | None, expected: str | None) -> None:
    assert minimise_ip(ip, "truncate") == expected


def test_minimise_ip_hash_is_keyed_stable_and_short() -> None:
    a = minimise_ip("203.0.113.77", "hash", b"k1")
    assert a is not None and a.startswith("h:") and len(a) == 18
    assert minimise_ip("203.0.113.77", "hash", b"k1") == a
    assert minimise_ip("::ffff:203.0.113.77", "hash", b"k1") == a
    assert minimise_ip("203.0.113.78", "hash", b"k1") != a
    assert minimise_ip("203.0.113.77", "hash", b"k2") != a
    assert "203" not in a
    # No key: an unkeyed hash of the IPv4 space is reversible, so truncate instead.
    assert minimise_ip("203.0.113.77", "hash", None) == "203.0.113.0/24"


def test_minimise_ip_none_keeps_nothing() -> None:
    assert minimise_ip("203.0.113.77", "none") is None


@given(ip=st.one_of(st.text(max_size=60), st.ip_addresses().map(str)),
       mode=st.sampled_from(["truncate", "hash", "none", "bogus"]),
       key=st.one_of(st.none(), st.binary(max_size=16)))
def test_minimise_ip_never_raises_and_never_keeps_a_full_address(
    ip: str, mode: str, key: bytes | None
) -> None:
    out = minimise_ip(ip, mode, key)  # type: ignore[arg-type]
    assert out is None or isinstance(out, str)
    if out is not None and not out.startswith("h:"):
        net = ipaddress.ip_network(out)
        assert net.prefixlen in (24, 48)


@pytest.mark.parametrize(
    ("ua", "expected"),
    [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.6367.91 Safari/537.36", "Chrome 124"),
        ("Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0", "Firefox 125"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
         "Gecko) Version/17.4.1 Safari/605.1.15", "Safari 17"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
         "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Safari 17"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80", "Edge 124"),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "bot"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
         "HeadlessChrome/124.0.0.0 Safari/537.36", "bot"),
        ("curl/8.5.0", "bot"),
        ("", "other"),
        (None, "other"),
        ("SomethingElse/1.0", "other"),
    ],
)
def test_ua_family(ua: str | None, expected: str) -> None:
    assert ua_family(ua) == expected


@given(st.text(max_size=300))
def test_ua_family_is_short_and_never_the_user_agent(ua: str) -> None:
    fam = ua_family(ua)
    assert len(fam) <= 24
    assert fam in ("bot", "other", "Safari") or fam.split(" ")[0] in (
        "Edge", "Opera", "Samsung", "Firefox", "Chrome", "Safari")


def test_page_view_checks_hold_for_a_partner_list_seen_before() -> None:
    """PageView remembers partner lists it has checked (the middleware reuses one per set):
    a remembered list skips the checks, any other list is still checked and normalised."""
    from middleware.ledger import PageView, PartnerShare

    a = PartnerShare("a", ("ads",), "consent", ("ip_address",), ())
    b = PartnerShare("b", ("social",), "consent", ("ip_address",), ())
    shared = (a, b)
    when = datetime(2024, 5, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    first = PageView(time=when, request_id="r1", consent_id=None, path="/", partners=shared)
    again = PageView(time=when, request_id="r2", consent_id=None, path="/", partners=shared,
                     fields={"k": [1, 2]})
    assert first.partners is shared and again.partners is shared
    assert again.time == when and again.time.tzinfo is UTC
    assert dict(again.fields) == {"k": [1, 2]}
    unsorted = PageView(time=when, request_id="r3", consent_id=None, path="/", partners=(b, a))
    assert unsorted.partners == shared
    for bad in ((b, a, a), [a, a], ()):
        with pytest.raises(ValueError):
            PageView(time=when, request_id="r4", consent_id=None, path="/", partners=bad)
    with pytest.raises(ValueError, match="timezone"):
        PageView(time=datetime(2024, 5, 1), request_id="r5", consent_id=None, path="/",
                 partners=shared)
