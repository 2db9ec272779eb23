"""One request's consent signals besides our own cookie, read once and remembered per value.

Where the visitor is (jurisdiction), the TC string a registered CMP wrote, a GPP string
another tool wrote, and the first configured foreign consent tool whose cookie is present.
Decoding is cached by the raw cookie value: a returning visitor sends the same strings.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ..headers import cookie_value
from . import gpp, tcf
from .foreign import ForeignConsent, ForeignSource, read_foreign
from .jurisdiction import GeoLookup, Jurisdiction, JurisdictionConfig, JurisdictionResolver, MaxMindLookup

if TYPE_CHECKING:
    from ..config import Config

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        if key in self._data:
            self._data.move_to_end(key)
            return True, self._data[key]
        return False, None

    def put(self, key: K, value: V) -> V:
        self._data[key] = value
        if len(self._data) > self.size:
            self._data.popitem(last=False)
        return value


@dataclass(frozen=True)
class RequestSignals:
    jurisdiction: Jurisdiction | None = None
    tc: tcf.TCString | None = None
    gpp: gpp.GppString | None = None
    foreign: ForeignConsent | None = None


class SignalReader:
    """Built once per middleware from the config; ``read`` per request."""

    def __init__(self, jurisdictions: JurisdictionConfig, *, tcf_cookie: str | None,
                 gpp_cookie: str | None, sources: Iterable[ForeignSource],
                 geo: GeoLookup | None = None, always: bool = False) -> None:
        if geo is None and jurisdictions.geoip_db:
            geo = MaxMindLookup(jurisdictions.geoip_db)
        self.jurisdictions = JurisdictionResolver(jurisdictions, geo) if jurisdictions.enabled else None
        self.tcf_cookie = tcf_cookie
        self.gpp_cookie = gpp_cookie
        self.sources = tuple(sources)
        #: Read (and build a GPP string) even without any source configured.
        self.always = always
        self._tc: _Lru[str, tcf.TCString | None] = _Lru()
        self._gpp: _Lru[str, gpp.GppString | None] = _Lru()
        self._foreign: _Lru[tuple[str, str], ForeignConsent | None] = _Lru()

    @property
    def vary(self) -> tuple[str, ...]:
        return self.jurisdictions.config.vary if self.jurisdictions is not None else ()

    @property
    def needs_ip(self) -> bool:
        """Only a geo database reads the client's address (headers decide otherwise)."""
        return self.jurisdictions is not None and self.jurisdictions.geo is not None

    @property
    def active(self) -> bool:
        return bool(self.jurisdictions or self.tcf_cookie or self.gpp_cookie or self.sources
                    or self.always)

    def read(self, headers: Iterable[tuple[bytes, bytes]], client_ip: str | None) -> RequestSignals | None:
        """None when the TOML configures no signal: the request costs nothing extra."""
        if not self.active:
            return None
        items = list(headers)
        where = self.jurisdictions.decide(items, client_ip) if self.jurisdictions is not None else None
        return RequestSignals(jurisdiction=where, tc=self._read_tc(items), gpp=self._read_gpp(items),
                              foreign=self._read_foreign(items))

    def _read_tc(self, headers: list[tuple[bytes, bytes]]) -> tcf.TCString | None:
        raw = cookie_value(headers, self.tcf_cookie) if self.tcf_cookie else None
        if not raw:
            return None
        hit, value = self._tc.get(raw)
        return value if hit else self._tc.put(raw, tcf.read(raw))

    def _read_gpp(self, headers: list[tuple[bytes, bytes]]) -> gpp.GppString | None:
        raw = cookie_value(headers, self.gpp_cookie) if self.gpp_cookie else None
        if not raw:
            return None
        hit, value = self._gpp.get(raw)
        return value if hit else self._gpp.put(raw, gpp.read(raw))

    def _read_foreign(self, headers: list[tuple[bytes, bytes]]) -> ForeignConsent | None:
        for source in self.sources:
            raw = cookie_value(headers, source.cookie)
            if raw is None:
                continue
            hit, value = self._foreign.get((source.tool, raw))
            return value if hit else self._foreign.put((source.tool, raw), read_foreign(source, raw))
        return None


def signal_reader(config: Config) -> SignalReader:
    """The reader for a config: only the sources the TOML names are looked at."""
    return SignalReader(config.jurisdictions,
                        tcf_cookie=config.tcf.cookie if any(
                            p.signals.tcf_vendor_id for p in config.partners.values()) else None,
                        gpp_cookie=config.gpp.cookie, sources=config.consent_sources,
                        always=config.gpp.enabled or config.consent_mode.mode == "advanced")
