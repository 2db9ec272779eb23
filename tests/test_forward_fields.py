"""The allow-list: only listed fields are read; identifiers hashed as each partner says."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.forward.fields import (
    BadEvent,
    Source,
    check_event,
    extract,
    normal_email,
    normal_phone,
    page_url,
)
from tests.support.budget import examples


def sha(s: str) -> str:
    return hashlib.sha256(s.encode()).hexdigest()


@pytest.mark.parametrize(("email", "hashing", "normal"), [
    ("  John.Doe@Example.COM ", "meta", "john.doe@example.com"),
    ("John.Doe@Gmail.com", "google", "johndoe@gmail.com"),       # Google: gmail dots removed
    ("John.Doe@googlemail.com", "google", "johndoe@googlemail.com"),
    ("John.Doe@Gmail.com", "meta", "john.doe@gmail.com"),         # Meta keeps them
    ("John.Doe@Gmail.com", "tiktok", "john.doe@gmail.com"),
    ("not-an-email", "meta", None),
    ("a@b", "meta", None),
])
def test_fields_email_normalised_per_partner(email: str, hashing: str, normal: str | None) -> None:
    assert normal_email(email, hashing) == normal  # type: ignore[arg-type]


@pytest.mark.parametrize(("phone", "hashing", "normal"), [
    ("+1 (555) 123-4567", "meta", "15551234567"),      # Meta: digits with country code, no '+'
    ("+1 (555) 123-4567", "google", "+15551234567"),   # Google and TikTok: E.164
    ("0049 30 1234567", "tiktok", "+49301234567"),
    ("030 1234567", "meta", None),                     # national form: country unknown -> not sent
    ("+0 123", "meta", None),
    # Other scripts' decimal digits are the same number; "²" passed str.isdigit and was sent.
    ("+\u0661 \u0665\u0665\u0665 123 4567", "meta", "15551234567"),
    ("+\uff14\uff19 30 1234567", "google", "+49301234567"),
    ("+1 555 123 456\u00b2", "meta", None),
])
def test_fields_phone_normalised_per_partner(phone: str, hashing: str, normal: str | None) -> None:
    assert normal_phone(phone, hashing) == normal  # type: ignore[arg-type]


def source(data: dict[str, object], calls: list[str]) -> Source:
    def rec(name: str, value: object):  # type: ignore[no-untyped-def]
        def read(*a: object) -> object:
            calls.append(name)
            return value
        return read
    return Source(data=data, client_ip=rec("ip", "198.51.100.23"), user_agent=rec("ua", "curl/8"),
                  request_url=rec("url", "https://s.example/p?q=1#f"),
                  referer=rec("referer", "https://r.example/x?y"), cookie=rec("cookie", "c"))


def test_fields_not_allowed_are_never_read() -> None:
    calls: list[str] = []
    got = extract(frozenset({"value"}), (), source({"value": 3, "email": "a@b.example"}, calls), "meta")
    assert got.values == {"value": 3}
    assert calls == []  # no IP, UA, URL, referer or cookie reader ran
    assert got.not_allowed == ("email_sha256",)


def test_fields_allowed_are_minimised_and_hashed() -> None:
    calls: list[str] = []
    allowed = frozenset({"ip", "page_url", "referrer_host", "email_sha256", "ua_family"})
    got = extract(allowed, ("_fbp",), source({"email": " A@B.example "}, calls), "meta")
    assert got.values == {"ip": "198.51.100.0", "page_url": "https://s.example/p",
                          "referrer_host": "r.example", "email_sha256": sha("a@b.example"),
                          "ua_family": "bot", "cookie._fbp": "c"}


def test_fields_ipv6_truncated_to_48() -> None:
    src = Source({}, lambda: "2001:db8:abcd:1234::1", lambda: "", lambda: None, lambda: None,
                 lambda n: None)
    assert extract(frozenset({"ip"}), (), src, "meta").values == {"ip": "2001:db8:abcd::"}


@pytest.mark.parametrize(("data", "message"), [
    ({"emial": "x"}, "unknown event key 'emial'"),
    ({"value": "12"}, "value: expected a number"),
    ({"value": True}, "value: expected a number"),
    ({"currency": "euro"}, "ISO 4217"),
    ({"event_id": "has space"}, "event_id"),
    ({"email": 5}, "email: expected a string"),
])
def test_fields_schema_rejects_bad_data(data: dict[str, object], message: str) -> None:
    with pytest.raises(BadEvent, match=message):
        check_event("purchase", data)


@pytest.mark.parametrize("name", ["Purchase", "1x", "a" * 41, "with-dash", ""])
def test_fields_schema_rejects_bad_event_names(name: str) -> None:
    with pytest.raises(BadEvent):
        check_event(name, {})


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=80))
def test_fields_page_url_never_keeps_query_fragment_or_userinfo(tail: str) -> None:
    out = page_url("https://user:pw@shop.example/" + tail)
    if out is not None:
        assert "?" not in out and "#" not in out and "@" not in out.split("/", 3)[2]
        assert out.startswith("https://shop.example/")


@pytest.mark.parametrize(("ga", "expected"), [
    ("GA1.1.1234567.1700000000", "1234567.1700000000"),
    ("GA1.1.\u0661\u0662\u0663.\u00b2", None),  # not Google's: a one-off id instead
])
def test_fields_ga4_client_id_only_from_ascii_digits(ga: str, expected: str | None) -> None:
    from middleware.forward.kinds.ga4 import client_id

    class Ev:
        event_time = 1_700_000_000.0

        def cookie(self, name: str) -> str | None:
            return ga if name == "_ga" else None

    got = client_id(Ev())  # type: ignore[arg-type]
    if expected is not None:
        assert got == expected
    else:
        stamp, _, rest = got.partition(".")
        assert got.isascii() and stamp.isdigit() and rest == "1700000000"
