"""IAB GPP strings: the header and the ``usnat`` section, encoded and decoded.

Unlike TCF, a site may write its own GPP string: for US visitors consent-gate builds the
``usnat`` section from the visitor's choice and ``Sec-GPC``. Other sections of a string
another tool wrote are kept as text (listed, not interpreted).

References: IAB GPP v1.1 "Consent String Specification" (header section, fibonacci integer
range); "US National Privacy Technical Specification" (usnat v1 and v2, GPC subsection).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .bits import BitReader, BitsError, BitWriter

MAX_GPP_STRING_LENGTH = 8192
HEADER_TYPE = 3
HEADER_VERSION = 1
USNAT_ID = 7
USNAT_VERSION = 2

#: Section ids -> API prefixes (GPP section list), for the ones a stub may report as present.
SECTION_NAMES: Mapping[int, str] = MappingProxyType({
    2: "tcfeuv2", 5: "tcfcav1", 6: "uspv1", 7: "usnat", 8: "usca", 9: "usva", 10: "usco",
    11: "usut", 12: "usct", 13: "usfl", 14: "usmt", 15: "usor", 16: "ustx", 17: "usde",
    18: "usia", 19: "usne", 20: "usnh", 21: "usnj", 22: "ustn", 23: "usmn",
})

# usnat field values (the spec's "0 = not applicable, 1 = yes / opted out, 2 = no / did not").
NOT_APPLICABLE, YES, NO = 0, 1, 2
OPTED_OUT, DID_NOT_OPT_OUT = 1, 2

_NOTICES = ("SharingNotice", "SaleOptOutNotice", "SharingOptOutNotice",
            "TargetedAdvertisingOptOutNotice", "SensitiveDataProcessingOptOutNotice",
            "SensitiveDataLimitUseNotice")
_OPT_OUTS = ("SaleOptOut", "SharingOptOut", "TargetedAdvertisingOptOut")
_MSPA = ("MspaCoveredTransaction", "MspaOptOutOptionMode", "MspaServiceProviderMode")


class GppStringError(ValueError):
    """The GPP string cannot be used; the message says why."""


@dataclass(frozen=True)
class UsNat:
    """The ``usnat`` section. Field names follow the spec (and @iabgpp/cmpapi's ``getField``)."""

    version: int = USNAT_VERSION
    sharing_notice: int = 0
    sale_opt_out_notice: int = 0
    sharing_opt_out_notice: int = 0
    targeted_advertising_opt_out_notice: int = 0
    sensitive_data_processing_opt_out_notice: int = 0
    sensitive_data_limit_use_notice: int = 0
    sale_opt_out: int = 0
    sharing_opt_out: int = 0
    targeted_advertising_opt_out: int = 0
    sensitive_data_processing: tuple[int, ...] = (0,) * 16
    known_child_sensitive_data_consents: tuple[int, ...] = (0,) * 3
    personal_data_consents: int = 0
    mspa_covered_transaction: int = 1
    mspa_opt_out_option_mode: int = 0
    mspa_service_provider_mode: int = 0
    #: None: no GPC subsection in the string.
    gpc: bool | None = None

    def fields(self) -> dict[str, Any]:
        """The section as the GPP JavaScript API returns it (``getSection('usnat')``)."""
        out: dict[str, Any] = {"Version": self.version}
        for name in (*_NOTICES, *_OPT_OUTS):
            out[name] = getattr(self, _snake(name))
        out["SensitiveDataProcessing"] = list(self.sensitive_data_processing)
        out["KnownChildSensitiveDataConsents"] = list(self.known_child_sensitive_data_consents)
        out["PersonalDataConsents"] = self.personal_data_consents
        for name in _MSPA:
            out[name] = getattr(self, _snake(name))
        out["GpcSegmentType"] = 1
        out["GpcSegmentIncluded"] = self.gpc is not None
        out["Gpc"] = bool(self.gpc)
        return out


@dataclass(frozen=True)
class GppString:
    section_ids: tuple[int, ...]
    #: Encoded text of each section, by id, in header order.
    sections: Mapping[int, str] = field(default_factory=lambda: MappingProxyType({}))
    usnat: UsNat | None = None
    raw: str = ""


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


def _sizes(version: int) -> tuple[int, int]:
    """(sensitive data categories, known-child categories) of a usnat version."""
    return (12, 2) if version == 1 else (16, 3)


# --------------------------------------------------------------------------- encoding


def encode_usnat(section: UsNat) -> str:
    sensitive, child = _sizes(section.version)
    if (len(section.sensitive_data_processing), len(section.known_child_sensitive_data_consents)) != (
            sensitive, child):
        raise ValueError(f"usnat v{section.version} has {sensitive} sensitive and {child} child categories")
    w = BitWriter()
    w.uint(section.version, 6)
    for name in (*_NOTICES, *_OPT_OUTS):
        w.uint(getattr(section, _snake(name)), 2)
    for value in (*section.sensitive_data_processing, *section.known_child_sensitive_data_consents):
        w.uint(value, 2)
    w.uint(section.personal_data_consents, 2)
    for name in _MSPA:
        w.uint(getattr(section, _snake(name)), 2)
    core = w.pack()
    if section.gpc is None:
        return core
    g = BitWriter()
    g.uint(1, 2)
    g.flag(section.gpc)
    return core + "." + g.pack()


def encode_header(section_ids: tuple[int, ...]) -> str:
    w = BitWriter()
    w.uint(HEADER_TYPE, 6)
    w.uint(HEADER_VERSION, 6)
    ids = sorted(set(section_ids))
    runs: list[tuple[int, int]] = []
    for i in ids:
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    w.uint(len(runs), 12)
    last = 0
    for start, end in runs:
        w.flag(start != end)
        w.fibonacci(start - last)
        if start != end:
            w.fibonacci(end - start)
        last = end
    return w.pack()


def encode(usnat: UsNat) -> str:
    """A GPP string holding one ``usnat`` section."""
    return encode_header((USNAT_ID,)) + "~" + encode_usnat(usnat)


# --------------------------------------------------------------------------- decoding


def decode(text: str) -> GppString:
    if not isinstance(text, str) or not text:
        raise GppStringError("empty GPP string")
    if len(text) > MAX_GPP_STRING_LENGTH:
        raise GppStringError(f"GPP string longer than {MAX_GPP_STRING_LENGTH} characters")
    try:
        return _decode(text)
    except BitsError as exc:
        raise GppStringError(str(exc)) from None


def read(text: str | None) -> GppString | None:
    """The decoded string, or None for anything unusable (fail closed)."""
    if not text:
        return None
    try:
        return decode(text)
    except GppStringError:
        return None


def _decode(text: str) -> GppString:
    header, *parts = text.split("~")
    r = BitReader(header)
    if r.uint(6) != HEADER_TYPE:
        raise GppStringError("not a GPP header (type is not 3)")
    if (version := r.uint(6)) != HEADER_VERSION:
        raise GppStringError(f"GPP header version {version}; only 1 is read")
    ids: list[int] = []
    last = 0
    count = r.uint(12)
    if count > len(SECTION_NAMES) + 64:
        raise GppStringError(f"{count} section id entries")
    for _ in range(count):
        is_range = r.flag()
        start = last + r.fibonacci()
        end = start + r.fibonacci() if is_range else start
        if end - start > 64:
            raise GppStringError("section id range too long")
        ids.extend(range(start, end + 1))
        last = end
    if len(ids) != len(parts):
        raise GppStringError(f"header lists {len(ids)} sections, the string has {len(parts)}")
    if len(set(ids)) != len(ids):
        raise GppStringError("a section id listed twice")
    sections = dict(zip(ids, parts, strict=True))
    usnat = decode_usnat(sections[USNAT_ID]) if USNAT_ID in sections else None
    return GppString(section_ids=tuple(ids), sections=MappingProxyType(sections), usnat=usnat, raw=text)


def decode_usnat(text: str) -> UsNat:
    core, *rest = text.split(".")
    if len(rest) > 1:
        raise GppStringError("usnat has more than one subsection")
    r = BitReader(core)
    version = r.uint(6)
    if version not in (1, 2):
        raise GppStringError(f"usnat version {version}; 1 and 2 are read")
    values: dict[str, Any] = {"version": version}
    for name in (*_NOTICES, *_OPT_OUTS):
        values[_snake(name)] = r.uint(2)
    sensitive, child = _sizes(version)
    values["sensitive_data_processing"] = tuple(r.uint(2) for _ in range(sensitive))
    values["known_child_sensitive_data_consents"] = tuple(r.uint(2) for _ in range(child))
    values["personal_data_consents"] = r.uint(2)
    for name in _MSPA:
        values[_snake(name)] = r.uint(2)
    if rest:
        g = BitReader(rest[0])
        if g.uint(2) != 1:
            raise GppStringError("usnat subsection is not the GPC subsection")
        values["gpc"] = g.flag()
    return UsNat(**values)
