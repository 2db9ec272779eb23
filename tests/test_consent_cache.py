"""The resolver's memory of resolved consents: keyed by everything a Consent depends on,
kept only for verified cookies, and never past a cookie's expiry or re-prompt date."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.consent import ConsentCodec, ConsentResolver, StoredChoice
from middleware.signals.jurisdiction import Jurisdiction
from middleware.signals.reader import RequestSignals

from .asgi_helpers import make_config

KEY = "k" * 40
MAX_AGE = 3600


class CountingCodec(ConsentCodec):
    """A codec that counts how often the resolver asks it (the cache's misses)."""

    calls = 0

    def loads(self, value: str | None) -> StoredChoice | None:
        self.calls += 1
        return super().loads(value)


def _resolver(tmp_path: Path, clock: list[float] | None = None,
              **policy: object) -> tuple[ConsentResolver, CountingCodec]:
    codec = CountingCodec([KEY], max_age_seconds=MAX_AGE)
    config = make_config(tmp_path, policy=policy) if policy else make_config(tmp_path)
    if clock is None:
        return ConsentResolver(config, codec), codec
    return ConsentResolver(config, codec, clock=lambda: clock[0]), codec


def _cookie(codec: ConsentCodec, granted: set[str], *, version: str = "v1",
            source: str = "banner", cid: str = "cid-aaaaaaaa") -> str:
    return codec.dumps(StoredChoice(cid, frozenset(granted), version, source,
                                    dt.datetime.now(dt.UTC)))


def test_consent_cache_cookies_differing_only_in_consent_never_share(tmp_path: Path) -> None:
    resolver, codec = _resolver(tmp_path)
    ads, social = _cookie(codec, {"ads"}), _cookie(codec, {"social"})
    for _ in range(3):
        assert resolver.resolve(ads, False).granted == {"necessary", "ads"}
        assert resolver.resolve(social, False).granted == {"necessary", "social"}
        assert resolver.resolve(ads, False).allowed_partners == {"adsense"}
        assert resolver.resolve(social, False).allowed_partners == {"x"}
        assert resolver.resolve(None, False).allowed_partners == frozenset()
    assert codec.calls == 3, "one verification per distinct cookie, then remembered"


def test_consent_cache_signal_is_part_of_the_key(tmp_path: Path) -> None:
    resolver, codec = _resolver(tmp_path)
    both = _cookie(codec, {"ads", "social"})
    for _ in range(2):
        assert resolver.resolve(both, False).granted == {"necessary", "ads", "social"}
        with_gpc = resolver.resolve(both, True)
        assert with_gpc.gpc and with_gpc.granted == {"necessary", "social"}, "ads is sale/sharing"
        assert not resolver.resolve(None, False).gpc and resolver.resolve(None, True).gpc


def test_consent_cache_jurisdiction_is_part_of_the_key(tmp_path: Path) -> None:
    resolver, _ = _resolver(tmp_path)
    opt_in = RequestSignals(jurisdiction=Jurisdiction("DE", "opt-in", "EEA"))
    opt_out = RequestSignals(jurisdiction=Jurisdiction("US-CA", "opt-out", "US"))
    for _ in range(2):
        assert resolver.resolve(None, False, opt_in).granted == {"necessary"}
        assert resolver.resolve(None, False, opt_out).granted == {"necessary", "ads", "social"}
        assert resolver.resolve(None, False, opt_out).jurisdiction == opt_out.jurisdiction
        assert resolver.resolve(None, False).jurisdiction is None


def test_consent_cache_bad_or_old_cookies_are_not_remembered(tmp_path: Path) -> None:
    resolver, codec = _resolver(tmp_path)
    forged = _cookie(ConsentCodec(["other-key" * 5], max_age_seconds=MAX_AGE), {"ads"})
    for _ in range(3):
        assert not resolver.resolve(forged, False).decided
    assert codec.calls == 3, "a cookie that did not verify is checked again every time"
    old = _cookie(codec, {"ads"}, version="v0")
    first = resolver.resolve(old, False)
    assert not first.decided and first.stale_version == "v0"
    assert resolver.resolve(old, False) == first


def test_consent_cache_entry_ends_before_the_cookie_expires(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC).timestamp()
    clock = [now]
    resolver, codec = _resolver(tmp_path, clock)
    cookie = _cookie(codec, {"ads"})
    resolver.resolve(cookie, False)
    clock[0] = now + MAX_AGE - 60
    resolver.resolve(cookie, False)
    assert codec.calls == 1, "remembered while the cookie is valid"
    clock[0] = now + MAX_AGE
    resolver.resolve(cookie, False)
    assert codec.calls == 2, "at the expiry the cookie is verified again (expiry re-checked)"


def test_consent_cache_entry_ends_before_the_reprompt_date(tmp_path: Path) -> None:
    now = dt.datetime.now(dt.UTC).timestamp()
    clock = [now]
    codec = CountingCodec([KEY], max_age_seconds=400 * 86400)
    config = make_config(tmp_path, policy={"cookie": {"max_age_days": 400},
                                           "reprompt_after_days": {"*": 30}})
    resolver = ConsentResolver(config, codec, clock=lambda: clock[0])
    cookie = _cookie(codec, {"ads"})
    resolver.resolve(cookie, False)
    clock[0] = now + 29 * 86400
    resolver.resolve(cookie, False)
    assert codec.calls == 1
    clock[0] = now + 30 * 86400
    resolver.resolve(cookie, False)
    assert codec.calls == 2, "the re-prompt date ends the entry, well before the expiry"


def test_consent_cache_is_bounded(tmp_path: Path) -> None:
    from middleware import consent as consent_module

    resolver, codec = _resolver(tmp_path)
    for i in range(consent_module._RESOLVED_CACHE_SIZE + 50):
        resolver.resolve(_cookie(codec, {"ads"}, cid=f"cid-{i:08d}"), False)
    assert len(resolver._resolved) == consent_module._RESOLVED_CACHE_SIZE


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["none", "ads", "social", "both", "old", "forged"]),
                          st.booleans(), st.sampled_from([None, "DE", "US-CA"])),
                min_size=1, max_size=25))
def test_consent_cache_same_as_resolving_afresh(tmp_path_factory: object,
                                                requests: list[tuple[str, bool, str | None]]) -> None:
    """Any sequence of requests: the remembering resolver answers what a new one would."""
    tmp = Path(str(tmp_path_factory.mktemp("c")))  # type: ignore[attr-defined]
    resolver, codec = _resolver(tmp)
    cookies: dict[str, str | None] = {
        "none": None, "ads": _cookie(codec, {"ads"}), "social": _cookie(codec, {"social"}),
        "both": _cookie(codec, {"ads", "social"}, source="preferences"),
        "old": _cookie(codec, {"ads"}, version="v0"),
        "forged": _cookie(ConsentCodec(["z" * 40], max_age_seconds=MAX_AGE), {"ads"}),
    }
    stances = {"DE": "opt-in", "US-CA": "opt-out"}
    for name, signal, region in requests:
        signals = (RequestSignals(jurisdiction=Jurisdiction(region, stances[region], region))  # type: ignore[arg-type]
                   if region else None)
        fresh, _ = _resolver(tmp)
        got = resolver.resolve(cookies[name], signal, signals)
        want = fresh.resolve(cookies[name], signal, signals)
        assert got == want
        assert got.allowed_partners == want.allowed_partners
