"""Consent macros filled on the server: ``${GDPR}``, ``${GDPR_CONSENT_<id>}``, ``${GPP_STRING_<id>}``,
``${GPP_STRING}``, ``${GPP_SID}``, and their URL-encoded forms (``%24%7BGDPR%7D``).

A vendor id no partner declares gets an empty consent string, as the specs ask. Values in
the URL-encoded form are URL-encoded. ``MacroStream`` fills a body chunk by chunk: a macro
split across two chunks is held back (at most a few dozen bytes) until it is whole.

References: IAB TCF v2 "Consent string and vendor list formats", URL-based services
(``${GDPR}``, ``${GDPR_CONSENT_XXXXX}``); IAB GPP "Consent String Specification", URL-based
services (``${GPP_STRING_XXXXX}``, ``${GPP_SID}``).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

_NAME = rb"(GDPR|GDPR_CONSENT_[0-9]{1,5}|GPP_STRING(?:_[0-9]{1,5})?|GPP_SID)"
_MACRO = re.compile(rb"\$\{" + _NAME + rb"\}|%24%7[Bb]" + _NAME + rb"%7[Dd]")
#: The end of a chunk that may be the start of a macro.
_PARTIAL = re.compile(
    rb"(?:\$(?:\{[A-Z0-9_]{0,20})?|%(?:2(?:4(?:%(?:7(?:[Bb][A-Z0-9_]{0,20}(?:%7?)?)?)?)?)?)?)\Z")
_MAX_MACRO = 32


@dataclass(frozen=True)
class MacroValues:
    """What the macros expand to for one response."""

    gdpr: str = "0"
    tc_string: str = ""
    gpp_string: str = ""
    gpp_sid: str = ""
    #: Vendor ids that may receive the strings (the configured partners' TCF vendors).
    vendors: frozenset[int] = frozenset()

    def value(self, name: str) -> str:
        if name == "GDPR":
            return self.gdpr
        if name == "GPP_SID":
            return self.gpp_sid
        if name == "GPP_STRING":
            return self.gpp_string
        prefix, _, vendor = name.rpartition("_")
        known = int(vendor) in self.vendors
        if prefix == "GDPR_CONSENT":
            return self.tc_string if known else ""
        return self.gpp_string if known else ""


def has_macros(data: bytes) -> bool:
    return _MACRO.search(data) is not None


def fill(data: bytes, values: MacroValues) -> bytes:
    def replace(m: re.Match[bytes]) -> bytes:
        if m.group(1) is not None:
            return values.value(m.group(1).decode()).encode()
        return urllib.parse.quote(values.value(m.group(2).decode()), safe="").encode()

    return _MACRO.sub(replace, data)


class MacroStream:
    """Fills macros in a stream of chunks; bytes are released as soon as no macro can span them."""

    def __init__(self, values: MacroValues) -> None:
        self.values = values
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk
        tail = _PARTIAL.search(data, max(0, len(data) - _MAX_MACRO))
        cut = tail.start() if tail is not None else len(data)
        self._held = data[cut:]
        return fill(data[:cut], self.values)

    def finish(self) -> bytes:
        held, self._held = self._held, b""
        return fill(held, self.values)
