"""Which privacy rule applies to a visitor: region -> stance, decided from headers the owner trusts.

A region comes from a header the TOML names (a CDN's country header) or from a local
MaxMind-format database, never from a header the TOML does not name: anyone can send
``CF-IPCountry`` to an exposed origin. A region we cannot tell gets the strictest stance
the TOML configures.

Stances: ``opt-in`` (nothing before consent, banner), ``opt-out`` (partners run until the
visitor or GPC opts out; "Do not sell or share" link), ``notice-only`` (partners run, a notice).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol, cast

from ..errors import ConfigError

Stance = Literal["opt-in", "opt-out", "notice-only"]
STANCES: tuple[Stance, ...] = ("opt-in", "opt-out", "notice-only")
_STRICTNESS: Mapping[str, int] = {"opt-in": 2, "opt-out": 1, "notice-only": 0}

#: Region groups a rule may name. EEA: the 27 EU states plus Iceland, Liechtenstein, Norway.
_EU = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
})
GROUPS: Mapping[str, frozenset[str]] = MappingProxyType({"EU": _EU, "EEA": _EU | {"IS", "LI", "NO"}})

#: Header names of the CDNs that set them (country, subdivision).
PROVIDERS: Mapping[str, tuple[str, str | None]] = MappingProxyType({
    "cloudflare": ("cf-ipcountry", "cf-region-code"),
    "cloudfront": ("cloudfront-viewer-country", "cloudfront-viewer-country-region"),
    "vercel": ("x-vercel-ip-country", "x-vercel-ip-country-region"),
})

_COUNTRY = re.compile(r"^[A-Z]{2}$")
_SUBDIVISION = re.compile(r"^[A-Z0-9]{1,3}$")
_REGION_KEY = re.compile(r"^([A-Z]{2}(-[A-Z0-9]{1,3})?|EU|EEA|\*)$")
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
#: Country codes CDNs send for "we do not know" (Cloudflare: XX unknown, T1 Tor).
_UNKNOWN_COUNTRIES = frozenset({"XX", "T1", "A1", "A2", "O1", "ZZ"})


@dataclass(frozen=True)
class JurisdictionConfig:
    #: Region key ("US-CA", "DE", "EEA", "*") -> stance, as written in the TOML.
    regions: Mapping[str, Stance] = field(default_factory=lambda: MappingProxyType({}))
    country_header: str | None = None
    region_header: str | None = None
    geoip_db: str | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.regions)

    @property
    def strictest(self) -> Stance:
        return max(self.regions.values(), key=lambda s: _STRICTNESS[s], default="opt-in")

    @property
    def vary(self) -> tuple[str, ...]:
        """Request headers the decision depends on (for ``Vary``)."""
        return tuple(h for h in (self.country_header, self.region_header) if h)


@dataclass(frozen=True)
class Jurisdiction:
    """The decision for one request: where the visitor is and which rule applied."""

    region: str | None
    stance: Stance
    #: The TOML key that decided ("US-CA", "EEA", "*"), or "unknown" / "unmatched" (strictest).
    rule: str

    @property
    def opt_in(self) -> bool:
        return self.stance == "opt-in"


class GeoLookup(Protocol):
    def region_of(self, ip: str) -> str | None: ...


class MaxMindLookup:
    """Country (and first subdivision) of an IP from a local MaxMind-format database."""

    def __init__(self, path: str) -> None:
        try:
            import maxminddb
        except ImportError:  # pragma: no cover - depends on the install
            raise ConfigError(path, "jurisdictions.geoip_db",
                              "needs the 'maxminddb' package: pip install 'consent-gate[geo]'") from None
        try:
            self._reader = maxminddb.open_database(path)
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise ConfigError(path, "jurisdictions.geoip_db", f"cannot open the database ({exc})") from None

    def region_of(self, ip: str) -> str | None:
        try:
            record = self._reader.get(ip)
        except (ValueError, TypeError):
            return None
        if not isinstance(record, dict):
            return None
        country = _iso(record.get("country")) or _iso(record.get("registered_country"))
        if country is None:
            return None
        subdivisions = record.get("subdivisions")
        sub = _iso(subdivisions[0]) if isinstance(subdivisions, list) and subdivisions else None
        return _region(country, sub)

    def close(self) -> None:
        self._reader.close()


def _iso(entry: Any) -> str | None:
    if isinstance(entry, dict) and isinstance(entry.get("iso_code"), str):
        return str(entry["iso_code"])
    return None


def _region(country: str, subdivision: str | None) -> str | None:
    country = country.strip().upper()
    if not _COUNTRY.match(country) or country in _UNKNOWN_COUNTRIES:
        return None
    if subdivision is not None:
        sub = subdivision.strip().upper()
        # CloudFront and Vercel send the bare subdivision ("CA"); some proxies send "US-CA".
        sub = sub.removeprefix(country + "-")
        if _SUBDIVISION.match(sub):
            return f"{country}-{sub}"
    return country


class JurisdictionResolver:
    """Decides the stance for a request. Built once; ``decide`` is a few dict lookups."""

    def __init__(self, config: JurisdictionConfig, geo: GeoLookup | None = None) -> None:
        self.config = config
        self.geo = geo
        self._country = config.country_header.lower().encode() if config.country_header else None
        self._sub = config.region_header.lower().encode() if config.region_header else None
        self._rules = dict(config.regions)
        self._strictest = config.strictest

    def region(self, headers: Iterable[tuple[bytes, bytes]], client_ip: str | None) -> str | None:
        country = sub = None
        if self._country is not None:
            for name, value in headers:
                if name == self._country:
                    country = value.decode("latin-1")
                elif name == self._sub:
                    sub = value.decode("latin-1")
        if country:
            return _region(country, sub)
        if self.geo is not None and client_ip:
            return self.geo.region_of(client_ip)
        return None

    def decide_region(self, region: str | None) -> Jurisdiction:
        if region is None:
            return Jurisdiction(None, self._strictest, "unknown")
        country = region.split("-", 1)[0]
        for key in (region, country):
            if key in self._rules:
                return Jurisdiction(region, self._rules[key], key)
        for group in ("EEA", "EU"):
            if group in self._rules and country in GROUPS[group]:
                return Jurisdiction(region, self._rules[group], group)
        if "*" in self._rules:
            return Jurisdiction(region, self._rules["*"], "*")
        return Jurisdiction(region, self._strictest, "unmatched")

    def decide(self, headers: Iterable[tuple[bytes, bytes]], client_ip: str | None) -> Jurisdiction:
        return self.decide_region(self.region(headers, client_ip))


def client_ip(scope: Mapping[str, Any]) -> str | None:
    client = scope.get("client")
    if not client:
        return None
    try:
        return str(ipaddress.ip_address(client[0]))
    except (ValueError, TypeError, IndexError):
        return None


# --------------------------------------------------------------------------- TOML


def read_config(data: Any, source: str, path: str = "jurisdictions") -> JurisdictionConfig:
    """Validate the ``[jurisdictions]`` table; every problem is reported in one ConfigError."""
    problems: list[tuple[str, str]] = []

    def bad(key: str, message: str) -> None:
        problems.append((f"{path}.{key}" if key else path, message))

    if data is None:
        return JurisdictionConfig()
    if not isinstance(data, dict):
        raise ConfigError(source, path, f"expected a table, got {type(data).__name__}")
    known = {"provider", "country_header", "region_header", "geoip_db", "regions"}
    for key in sorted(set(data) - known):
        bad(key, f"unknown key; known keys here: {', '.join(sorted(known))}")
    country_header = region_header = None
    provider = data.get("provider")
    if provider is not None:
        if provider not in PROVIDERS:
            bad("provider", f"expected one of {', '.join(map(repr, PROVIDERS))}, got {provider!r}")
        else:
            country_header, region_header = PROVIDERS[provider]
    for key in ("country_header", "region_header"):
        value = data.get(key)
        if value is None:
            continue
        if provider is not None:
            bad(key, "give either provider or the header names, not both")
        elif not isinstance(value, str) or not _HEADER.match(value):
            bad(key, f"expected a header name such as 'X-Country', got {value!r}")
        elif key == "country_header":
            country_header = value.lower()
        else:
            region_header = value.lower()
    if region_header and not country_header:
        bad("region_header", "needs country_header too (the region is read with its country)")
    geoip_db = data.get("geoip_db")
    if geoip_db is not None and (not isinstance(geoip_db, str) or not geoip_db.strip()):
        bad("geoip_db", f"expected the path of a MaxMind-format .mmdb file, got {geoip_db!r}")
    regions: dict[str, Stance] = {}
    raw_regions = data.get("regions", {})
    if not isinstance(raw_regions, dict):
        bad("regions", "expected a table of region = stance")
        raw_regions = {}
    for key, stance in raw_regions.items():
        if not _REGION_KEY.match(key):
            bad(f"regions.{key}", "expected an ISO country ('DE'), country-subdivision ('US-CA'), "
                "a group (EU, EEA) or '*'")
        elif stance not in STANCES:
            bad(f"regions.{key}", f"expected one of {', '.join(map(repr, STANCES))}, got {stance!r}")
        else:
            regions[key] = cast(Stance, stance)
    if (raw_regions or country_header or geoip_db) and not regions and not problems:
        bad("regions", "expected at least one region = stance entry")
    if regions and not (country_header or geoip_db):
        bad("", "name where the region comes from: provider, country_header or geoip_db "
            "(without one every visitor gets the strictest stance)")
    if problems:
        (key, message), *more = problems
        raise ConfigError(source, key, message, more=more)
    return JurisdictionConfig(regions=MappingProxyType(regions), country_header=country_header,
                              region_header=region_header,
                              geoip_db=geoip_db if isinstance(geoip_db, str) else None)
