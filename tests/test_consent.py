"""The consent cookie codec and resolver: round trip, rotation, and fail-closed on bad cookies."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st
from itsdangerous import URLSafeTimedSerializer

from middleware.config import parse_config
from middleware.consent import ConsentCodec, ConsentResolver, StoredChoice, privacy_signal
from middleware.errors import SecretError
from middleware.secrets import DEV_KEY, signing_keys

from .test_config import BASE

KEY = "k" * 40
OLD_KEY = "o" * 40


def stored(granted: set[str], version: str = "2008-01-23", source: str = "banner") -> StoredChoice:
    return StoredChoice("abcdefghijkl", frozenset(granted), version, source,
                        dt.datetime.now(dt.UTC))


def resolver(keys: tuple[str, ...] = (KEY,), **policy: object) -> ConsentResolver:
    data = {**BASE, "policy": {**BASE["policy"], **policy}}
    config = parse_config(data, "p.toml")
    return ConsentResolver(config, ConsentCodec(keys, max_age_seconds=3600))


def test_codec_round_trip_keeps_choice() -> None:
    codec = ConsentCodec([KEY], max_age_seconds=3600)
    value = codec.dumps(stored({"ads"}))
    back = codec.loads(value)
    assert back is not None
    assert back.granted == {"ads"} and back.consent_id == "abcdefghijkl"
    assert back.policy_version == "2008-01-23" and back.source == "banner"
    assert len(value) < 200, "compact payload"


def test_codec_rotation_newest_signs_all_verify() -> None:
    old_cookie = ConsentCodec([OLD_KEY], max_age_seconds=3600).dumps(stored({"ads"}))
    rotated = ConsentCodec([KEY, OLD_KEY], max_age_seconds=3600)
    assert rotated.loads(old_cookie) is not None
    new_cookie = rotated.dumps(stored({"social"}))
    assert ConsentCodec([KEY], max_age_seconds=3600).loads(new_cookie) is not None
    assert ConsentCodec([OLD_KEY], max_age_seconds=3600).loads(new_cookie) is None


def test_codec_expired_cookie_is_no_consent() -> None:
    # The codec's clock, moved past max_age instead of sleeping: from the real time (so the
    # system clock would call nothing expired), on a whole second (itsdangerous' stamps are).
    clock = [dt.datetime.now(dt.UTC).replace(microsecond=0)]
    codec = ConsentCodec([KEY], max_age_seconds=1, now=lambda: clock[0])
    value = codec.dumps(stored({"ads"}))
    other = codec.dumps(stored({"social"}))
    fresh = codec.dumps(stored({"ads", "social"}))
    assert codec.loads(other) is not None, "verified once, so remembered"
    clock[0] += dt.timedelta(seconds=0.4)
    assert codec.loads(fresh) is not None and codec.loads(other) is not None, "not expired yet"
    clock[0] += dt.timedelta(seconds=1.7)
    assert codec.loads(value) is None
    assert codec.loads(other) is None, "a remembered cookie still expires"


def test_codec_signs_and_expires_on_the_system_clock_by_default() -> None:
    codec = ConsentCodec([KEY], max_age_seconds=60)
    back = codec.loads(codec.dumps(stored({"ads"})))
    assert back is not None
    assert abs((back.given_at - dt.datetime.now(dt.UTC)).total_seconds()) < 5
    # A cookie signed by a clock two minutes behind is past the default codec's 60 s.
    behind = ConsentCodec([KEY], max_age_seconds=60,
                          now=lambda: dt.datetime.now(dt.UTC) - dt.timedelta(seconds=120))
    assert codec.loads(behind.dumps(stored({"ads"}))) is None


@pytest.mark.parametrize("bad", [
    "", "garbage", "a.b.c", "x" * 5000, "eyJpIjoiYWJjIn0.bad.sig",
    # Validly signed but not our payload shape: a foreign app's cookie with our key.
    URLSafeTimedSerializer(KEY, salt=ConsentCodec.salt).dumps([1, 2, 3]),
    URLSafeTimedSerializer(KEY, salt=ConsentCodec.salt).dumps({"i": "short", "g": [], "v": "x", "s": "banner"}),
    URLSafeTimedSerializer(KEY, salt=ConsentCodec.salt).dumps({"i": "abcdefghijkl", "g": "ads", "v": "x", "s": "banner"}),
    URLSafeTimedSerializer(KEY, salt="other").dumps({"i": "abcdefghijkl", "g": [], "v": "x", "s": "banner"}),
])
def test_codec_bad_cookie_is_no_consent(bad: str) -> None:
    assert ConsentCodec([KEY], max_age_seconds=3600).loads(bad) is None


def test_codec_tampered_cookie_is_no_consent() -> None:
    codec = ConsentCodec([KEY], max_age_seconds=3600)
    value = codec.dumps(stored({"ads"}))
    flipped = value[:5] + ("A" if value[5] != "A" else "B") + value[6:]
    assert codec.loads(flipped) is None


@given(st.text(max_size=300))
def test_codec_never_raises_on_any_text(value: str) -> None:
    assert ConsentCodec([KEY], max_age_seconds=3600).loads(value) is None


def test_resolver_no_cookie_opt_in_grants_only_necessary() -> None:
    consent = resolver().resolve(None, signal=False)
    assert not consent.decided and consent.needs_banner
    assert consent.granted == {"necessary"}
    assert not consent.allows("ads") and consent.allows("necessary")
    assert not consent.allows_partner("google-adsense")


def test_resolver_valid_cookie_allows_partner() -> None:
    r = resolver()
    consent = r.resolve(r.codec.dumps(stored({"ads"})), signal=False)
    assert consent.decided and consent.allows("ads") and consent.allows_partner("google-adsense")
    assert not consent.allows_partner("unknown-partner")
    assert consent.consent_id == "abcdefghijkl"


def test_resolver_old_policy_version_is_undecided_and_flags_change() -> None:
    r = resolver()
    consent = r.resolve(r.codec.dumps(stored({"ads"}, version="2007-01-01")), signal=False)
    assert not consent.decided and not consent.allows("ads")
    assert consent.stale_version == "2007-01-01"


def test_resolver_gpc_removes_sale_purposes_unless_explicit_on_preferences() -> None:
    r = resolver()
    via_banner = r.resolve(r.codec.dumps(stored({"ads", "social"})), signal=True)
    assert not via_banner.allows("ads") and via_banner.allows("social") and via_banner.gpc
    explicit = r.resolve(r.codec.dumps(stored({"ads"}, source="preferences")), signal=True)
    assert explicit.allows("ads")


def test_resolver_opt_out_stance_allows_until_objection_but_gpc_wins() -> None:
    r = resolver(default="allow")
    assert r.resolve(None, signal=False).allows_partner("google-adsense")
    assert not r.resolve(None, signal=True).allows("ads")


def test_resolver_choose_keeps_consent_id_and_signs() -> None:
    r = resolver()
    first, cookie = r.choose({"ads", "bogus"}, "banner", previous=None)
    assert first.granted == {"ads", "necessary"}
    again = r.resolve(cookie, signal=False)
    assert again.consent_id == first.consent_id and again.allows("ads")
    second, _ = r.choose(set(), "preferences", previous=again)
    assert second.consent_id == first.consent_id and not second.allows("ads")


@pytest.mark.parametrize(("headers", "gpc", "dnt", "expected"), [
    ([(b"sec-gpc", b"1")], True, False, True),
    ([(b"sec-gpc", b"0")], True, False, False),
    ([(b"sec-gpc", b"true")], True, False, False),
    ([(b"sec-gpc", b"1")], False, False, False),
    ([(b"dnt", b"1")], True, False, False),
    ([(b"dnt", b"1")], True, True, True),
    ([], True, True, False),
])
def test_privacy_signal_exact_values(headers: list[tuple[bytes, bytes]], gpc: bool, dnt: bool,
                                     expected: bool) -> None:
    assert privacy_signal(headers, honor_gpc=gpc, honor_dnt=dnt) is expected


def test_secret_missing_stops_unless_dev() -> None:
    with pytest.raises(SecretError, match="CONSENT_GATE_SECRET is not set"):
        signing_keys("CONSENT_GATE_SECRET", environ={})
    with pytest.raises(SecretError, match="at least 32"):
        signing_keys("CONSENT_GATE_SECRET", environ={"CONSENT_GATE_SECRET": "short"})
    assert signing_keys("CONSENT_GATE_SECRET", dev=True, environ={}) == (DEV_KEY,)
    assert signing_keys("S", environ={"S": f"{KEY}, {OLD_KEY}"}) == (KEY, OLD_KEY)
