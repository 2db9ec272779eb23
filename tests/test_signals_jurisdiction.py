"""Region -> stance decisions, table-driven; header and MaxMind-database sources; the TOML section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from middleware.errors import ConfigError
from middleware.signals.jurisdiction import (
    JurisdictionConfig,
    JurisdictionResolver,
    MaxMindLookup,
    client_ip,
    read_config,
)

REGIONS = {"EEA": "opt-in", "GB": "opt-in", "CH": "opt-in", "US-CA": "opt-out", "US-VA": "opt-out",
           "US": "notice-only", "*": "notice-only"}


def _resolver(regions: dict[str, Any] | None = None, **source: Any) -> JurisdictionResolver:
    data = {"regions": regions if regions is not None else REGIONS, **(source or {"provider": "cloudfront"})}
    return JurisdictionResolver(read_config(data, "t.toml"))


@pytest.mark.parametrize(("country", "region", "stance", "rule"), [
    ("DE", None, "opt-in", "EEA"),
    ("NO", None, "opt-in", "EEA"),           # EEA, not EU
    ("GB", None, "opt-in", "GB"),
    ("CH", None, "opt-in", "CH"),
    ("US", "CA", "opt-out", "US-CA"),
    ("us", "ca", "opt-out", "US-CA"),        # case from a sloppy proxy
    ("US", "US-VA", "opt-out", "US-VA"),     # subdivision sent with its country prefix
    ("US", "TX", "notice-only", "US"),       # state without a rule: the country's
    ("US", None, "notice-only", "US"),
    ("JP", None, "notice-only", "*"),
    ("JP", "13", "notice-only", "*"),
    ("XX", None, "opt-in", "unknown"),       # Cloudflare's "unknown"
    ("T1", None, "opt-in", "unknown"),       # Cloudflare's Tor
    ("", None, "opt-in", "unknown"),
    ("DEU", None, "opt-in", "unknown"),      # not a two-letter code
    (None, None, "opt-in", "unknown"),       # no header at all
    ("US", "C@", "notice-only", "US"),       # bad subdivision: the country still counts
])
def test_jurisdiction_decision_table(country: str | None, region: str | None, stance: str, rule: str) -> None:
    headers = []
    if country is not None:
        headers.append((b"cloudfront-viewer-country", country.encode()))
    if region is not None:
        headers.append((b"cloudfront-viewer-country-region", region.encode()))
    decision = _resolver().decide(headers, "203.0.113.9")
    assert (decision.stance, decision.rule) == (stance, rule)


def test_jurisdiction_unknown_region_gets_strictest_configured_stance() -> None:
    r = _resolver({"US-CA": "opt-out", "*": "notice-only"})
    assert r.decide([], None).stance == "opt-out"
    assert r.decide([(b"cloudfront-viewer-country", b"FR")], None).stance == "notice-only"
    # A known region that no rule matches (no "*") is treated like an unknown one.
    r2 = _resolver({"US-CA": "opt-out", "US": "notice-only"})
    assert (r2.decide([(b"cloudfront-viewer-country", b"FR")], None).rule) == "unmatched"
    assert r2.decide([(b"cloudfront-viewer-country", b"FR")], None).stance == "opt-out"


def test_jurisdiction_ignores_headers_the_toml_does_not_name() -> None:
    r = _resolver(country_header="X-Country")
    spoofed = [(b"cf-ipcountry", b"US"), (b"cloudfront-viewer-country", b"US")]
    assert r.decide(spoofed, None).rule == "unknown"
    assert r.decide([(b"x-country", b"US")], None).rule == "US"
    assert r.config.vary == ("x-country",)


@pytest.mark.parametrize(("provider", "country", "sub"), [
    ("cloudflare", b"cf-ipcountry", b"cf-region-code"),
    ("cloudfront", b"cloudfront-viewer-country", b"cloudfront-viewer-country-region"),
    ("vercel", b"x-vercel-ip-country", b"x-vercel-ip-country-region"),
])
def test_jurisdiction_provider_headers(provider: str, country: bytes, sub: bytes) -> None:
    r = _resolver(provider=provider)
    assert r.decide([(country, b"US"), (sub, b"CA")], None).region == "US-CA"
    assert set(r.config.vary) == {country.decode(), sub.decode()}


@pytest.fixture
def tiny_geo_db(tmp_path: Path) -> str:
    from mmdb_writer import MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoIP2-City", ipv4_compatible=True)
    writer.insert_network(IPSet(["203.0.113.0/24"]),
                          {"country": {"iso_code": "US"}, "subdivisions": [{"iso_code": "CA"}]})
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"country": {"iso_code": "DE"}})
    writer.insert_network(IPSet(["2001:db8::/32"]), {"country": {"iso_code": "GB"}})
    writer.insert_network(IPSet(["192.0.2.0/24"]), {"continent": {"code": "EU"}})  # no country
    path = tmp_path / "tiny.mmdb"
    writer.to_db_file(str(path))
    return str(path)


@pytest.mark.parametrize(("ip", "region", "stance"), [
    ("203.0.113.7", "US-CA", "opt-out"),
    ("198.51.100.1", "DE", "opt-in"),
    ("2001:db8::1", "GB", "opt-in"),
    ("192.0.2.1", None, "opt-in"),    # a record without a country
    ("10.1.2.3", None, "opt-in"),     # not in the database
    (None, None, "opt-in"),
])
def test_jurisdiction_from_maxmind_database(tiny_geo_db: str, ip: str | None, region: str | None,
                                            stance: str) -> None:
    config = read_config({"geoip_db": tiny_geo_db, "regions": REGIONS}, "t.toml")
    geo = MaxMindLookup(tiny_geo_db)
    try:
        decision = JurisdictionResolver(config, geo).decide([], ip)
    finally:
        geo.close()
    assert (decision.region, decision.stance) == (region, stance)


def test_jurisdiction_header_wins_over_database(tiny_geo_db: str) -> None:
    config = read_config({"geoip_db": tiny_geo_db, "country_header": "X-Country", "regions": REGIONS}, "t")
    r = JurisdictionResolver(config, MaxMindLookup(tiny_geo_db))
    assert r.decide([(b"x-country", b"JP")], "203.0.113.7").region == "JP"
    assert r.decide([], "203.0.113.7").region == "US-CA"


def test_jurisdiction_bad_database_path_is_a_config_error(tmp_path: Path) -> None:
    bogus = tmp_path / "nope.mmdb"
    bogus.write_bytes(b"not a database")
    with pytest.raises(ConfigError, match=r"jurisdictions\.geoip_db"):
        MaxMindLookup(str(bogus))


def test_jurisdiction_client_ip_from_scope() -> None:
    assert client_ip({"client": ("203.0.113.7", 5555)}) == "203.0.113.7"
    assert client_ip({"client": ("not-an-ip", 1)}) is None
    assert client_ip({}) is None


def test_jurisdiction_config_reports_every_problem() -> None:
    data = {"provider": "akamai", "country_header": "bad header", "regions": {"Germany": "opt-in", "US": "maybe"},
            "extra": 1}
    with pytest.raises(ConfigError) as info:
        read_config(data, "site.toml")
    keys = [k for k, _ in info.value.problems]
    assert keys == ["jurisdictions.extra", "jurisdictions.provider", "jurisdictions.country_header",
                    "jurisdictions.regions.Germany", "jurisdictions.regions.US"]
    assert "site.toml: jurisdictions.regions.US: expected one of 'opt-in', 'opt-out', 'notice-only'" in str(info.value)


@pytest.mark.parametrize(("data", "message"), [
    ({"regions": {"DE": "opt-in"}}, "name where the region comes from"),
    ({"region_header": "X-Region", "regions": {"DE": "opt-in"}}, "needs country_header"),
    ({"provider": "vercel", "country_header": "X-C", "regions": {"DE": "opt-in"}}, "not both"),
    ({"provider": "vercel"}, "at least one region"),
    ({"geoip_db": "", "regions": {"DE": "opt-in"}}, "mmdb"),
    ("opt-in", "expected a table"),
])
def test_jurisdiction_config_errors(data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_config(data, "t.toml")


def test_jurisdiction_absent_section_is_disabled() -> None:
    assert read_config(None, "t.toml") == JurisdictionConfig()
    assert not JurisdictionConfig().enabled
