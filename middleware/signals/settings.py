"""The TOML sections for consent signals, read into frozen values (registered in config.py).

``[jurisdictions]``, ``[tcf]``, ``[gpp]``, ``[consent_mode]``, ``[consent_sources.TOOL]`` and
the per-partner keys ``tcf_vendor_id``, ``tcf_purposes``, ``tcf_special_features`` and
``google_tag``. Problems go to the config's Table, so one run reports all of them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError
from .consent_mode import SIGNALS, ConsentModeConfig, Mode
from .foreign import DEFAULT_COOKIES, TOOLS, ForeignSource, Tool
from .gvl import GlobalVendorList, load_gvl
from .jurisdiction import JurisdictionConfig, read_config

if TYPE_CHECKING:
    from ..config import Partner, Purpose, Table

_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def _cookie_name(v: str) -> str | None:
    return None if _COOKIE_NAME.match(v) else f"expected a cookie name, got {v!r}"
#: TCF v2.3 purposes and special features.
TCF_PURPOSES = range(1, 12)
TCF_SPECIAL_FEATURES = range(1, 3)


@dataclass(frozen=True)
class PartnerSignals:
    """A partner's place in the ad industry's signals (all optional)."""

    tcf_vendor_id: int | None = None
    tcf_purposes: tuple[int, ...] = ()
    tcf_special_features: tuple[int, ...] = ()
    #: A Google tag: Consent Mode calls go before it.
    google_tag: bool = False


@dataclass(frozen=True)
class TcfConfig:
    cookie: str = "euconsent-v2"
    gvl_path: str | None = None
    gvl: GlobalVendorList | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class GppConfig:
    #: Build a usnat GPP string and serve the __gpp stub where a jurisdiction is opt-out or notice-only.
    enabled: bool = False
    #: A GPP string another tool wrote (used instead of ours when it parses).
    cookie: str | None = None


def _int_list(t: Table, name: str, allowed: range, what: str) -> tuple[int, ...]:
    t.used.add(name)
    value = t.data.get(name)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        t.error(name, f"expected a list of {what} numbers, got {value!r}")
        return ()
    bad = [v for v in value if v not in allowed]
    if bad:
        t.error(name, f"{what} {bad[0]} does not exist; expected {allowed.start}..{allowed.stop - 1}")
    if len(set(value)) != len(value):
        t.error(name, "duplicate entries")
    return tuple(v for v in value if v in allowed)


def read_partner_signals(p: Table) -> PartnerSignals:
    vendor = p.data.get("tcf_vendor_id")
    p.used.add("tcf_vendor_id")
    if vendor is not None and (not isinstance(vendor, int) or isinstance(vendor, bool)
                               or not 1 <= vendor <= 65535):
        p.error("tcf_vendor_id", f"expected a TCF vendor id (1..65535), got {vendor!r}")
        vendor = None
    purposes = _int_list(p, "tcf_purposes", TCF_PURPOSES, "TCF purpose")
    features = _int_list(p, "tcf_special_features", TCF_SPECIAL_FEATURES, "TCF special feature")
    if (purposes or features) and vendor is None and "tcf_vendor_id" not in p.data:
        p.error("tcf_purposes", "TCF purposes need a tcf_vendor_id")
    return PartnerSignals(tcf_vendor_id=vendor, tcf_purposes=purposes, tcf_special_features=features,
                          google_tag=p.get("google_tag", bool, False))


def read_jurisdictions(t: Table, done: Mapping[str, Any]) -> JurisdictionConfig:
    t.used.update(t.data)  # the reader below reports unknown keys itself
    try:
        return read_config(t.data if t.present else None, t.problems.source, t.path)
    except ConfigError as exc:
        for key, message in exc.problems:
            t.problems.add(key, message)
        return JurisdictionConfig()


def read_tcf(t: Table, done: Mapping[str, Any]) -> TcfConfig:
    cookie = t.get("cookie", str, "euconsent-v2",
                   check=_cookie_name)
    gvl_path = t.optional_str("gvl")
    gvl = None
    if gvl_path:
        try:
            gvl = load_gvl(gvl_path)
        except ConfigError as exc:
            t.error("gvl", str(exc))
    partners: Mapping[str, Partner] = done.get("partners", {})
    for pid, partner in partners.items():
        s = partner.signals
        if s.tcf_vendor_id is None:
            continue
        where = f"partners.{pid}"
        if not s.tcf_purposes and gvl is None:
            t.problems.add(f"{where}.tcf_purposes", "expected the TCF purposes this vendor needs "
                           "(or a [tcf] gvl file to take them from)")
        if gvl is not None and s.tcf_vendor_id not in gvl.vendors:
            t.problems.add(f"{where}.tcf_vendor_id", f"vendor {s.tcf_vendor_id} is not in the Global "
                           f"Vendor List {gvl_path} (v{gvl.version})")
    return TcfConfig(cookie=cookie, gvl_path=gvl_path, gvl=gvl)


def read_gpp(t: Table, done: Mapping[str, Any]) -> GppConfig:
    jurisdictions: JurisdictionConfig = done.get("jurisdictions", JurisdictionConfig())
    us_like = any(s in ("opt-out", "notice-only") for s in jurisdictions.regions.values())
    cookie = t.optional_str("cookie")
    if cookie is not None and not _COOKIE_NAME.match(cookie):
        t.error("cookie", f"expected a cookie name, got {cookie!r}")
    return GppConfig(enabled=t.get("enabled", bool, us_like), cookie=cookie)


def _purpose_list(t: Table, name: str, purposes: Mapping[str, Purpose]) -> tuple[str, ...]:
    items = t.str_list(name)
    for i, item in enumerate(items):
        if purposes and item not in purposes:
            t.error(f"{name}[{i}]", f"unknown purpose {item!r}; known: {', '.join(sorted(purposes))}")
    return items


def read_consent_mode(t: Table, done: Mapping[str, Any]) -> ConsentModeConfig:
    mode = cast(Mode, t.choice("mode", ("off", "basic", "advanced"), "basic" if t.present else "off"))
    purposes: Mapping[str, Purpose] = done.get("purposes", {})
    signals = {s: _purpose_list(t, s, purposes) for s in SIGNALS}
    wait = t.get("wait_for_update_ms", int, 500,
                 check=lambda v: None if 0 <= v <= 10_000 else f"expected 0..10000, got {v}")
    partners: Mapping[str, Partner] = done.get("partners", {})
    if mode != "off" and partners and not any(p.signals.google_tag for p in partners.values()):
        t.error("mode", "no partner has google_tag = true: Consent Mode calls go before Google tags")
    if mode != "off" and not any(signals.values()):
        t.error_here("map each Consent Mode signal to our purposes, e.g. ad_storage = [\"ads\"]")
    return ConsentModeConfig(mode=mode, signals=MappingProxyType(signals), wait_for_update_ms=wait)


def read_consent_sources(t: Table, done: Mapping[str, Any]) -> tuple[ForeignSource, ...]:
    purposes: Mapping[str, Purpose] = done.get("purposes", {})
    out: list[ForeignSource] = []
    for name in list(t.data):
        if name not in TOOLS:
            t.used.add(name)
            t.error(name, f"unknown consent tool; known: {', '.join(TOOLS)}")
            continue
        tool: Tool = name
        s = t.table(name)
        cookie = s.get("cookie", str, DEFAULT_COOKIES[tool],
                       check=_cookie_name)
        m = s.table("purposes")
        mapping: dict[str, tuple[str, ...]] = {}
        for purpose, raw in m.data.items():
            m.used.add(purpose)
            if purposes and purpose not in purposes:
                m.error(purpose, f"unknown purpose {purpose!r}; known: {', '.join(sorted(purposes))}")
                continue
            if (not isinstance(raw, list) or not raw
                    or not all(isinstance(v, str | int) and not isinstance(v, bool) for v in raw)):
                m.error(purpose, f"expected a non-empty list of {tool} categories, got {raw!r}")
                continue
            mapping[purpose] = tuple(str(v) for v in raw)
        if not mapping:
            s.error("purposes", f"expected a table: our purpose = [{tool} categories it needs]")
        out.append(ForeignSource(tool=tool, cookie=cookie, purposes=MappingProxyType(mapping)))
    return tuple(out)
