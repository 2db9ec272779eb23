"""IAB TCF v2.3 TC strings: read the one a registered CMP wrote, never write one.

consent-gate is not a registered CMP, so it only decodes. What v2.3 requires of a string
is checked here: version 2, a TCF policy version of at least 4, and the disclosed-vendors
segment present. Anything else that does not parse is an error (the caller treats it as
no consent).

References: IAB Europe TCF v2.3, "Transparency and Consent String with Global Vendor List
Format" (core, disclosed vendors, allowed vendors, publisher TC segments).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from enum import IntEnum

from .bits import BitReader, BitsError, IdRanges

#: Longer than any cookie a browser keeps; nothing longer is decoded.
MAX_TC_STRING_LENGTH = 8192
MIN_POLICY_VERSION = 4


class TCStringError(ValueError):
    """The TC string cannot be used; the message says why."""


class RestrictionType(IntEnum):
    NOT_ALLOWED = 0
    REQUIRE_CONSENT = 1
    REQUIRE_LEGITIMATE_INTEREST = 2
    UNDEFINED = 3


class Segment(IntEnum):
    CORE = 0
    DISCLOSED_VENDORS = 1
    ALLOWED_VENDORS = 2
    PUBLISHER_TC = 3


@dataclass(frozen=True)
class PublisherRestriction:
    purpose: int
    restriction: RestrictionType
    vendors: IdRanges


@dataclass(frozen=True)
class PublisherTC:
    consents: frozenset[int]
    legitimate_interests: frozenset[int]
    num_custom_purposes: int
    custom_consents: frozenset[int]
    custom_legitimate_interests: frozenset[int]


@dataclass(frozen=True)
class TCString:
    """Every field of a v2 TC string, as decoded."""

    version: int
    created: dt.datetime
    last_updated: dt.datetime
    cmp_id: int
    cmp_version: int
    consent_screen: int
    consent_language: str
    vendor_list_version: int
    policy_version: int
    is_service_specific: bool
    use_non_standard_stacks: bool
    special_feature_optins: frozenset[int]
    purpose_consents: frozenset[int]
    purpose_legitimate_interests: frozenset[int]
    purpose_one_treatment: bool
    publisher_country_code: str
    vendor_consents: IdRanges
    vendor_legitimate_interests: IdRanges
    publisher_restrictions: tuple[PublisherRestriction, ...]
    disclosed_vendors: IdRanges
    allowed_vendors: IdRanges | None = None
    publisher: PublisherTC | None = None
    #: The string as received, for the ledger and for ``${GDPR_CONSENT_<id>}``.
    raw: str = ""

    def restrictions_for(self, vendor_id: int, purpose: int) -> tuple[RestrictionType, ...]:
        return tuple(r.restriction for r in self.publisher_restrictions
                     if r.purpose == purpose and vendor_id in r.vendors)


def decode(text: str) -> TCString:
    """Decode a v2.3 TC string, or raise TCStringError."""
    if not isinstance(text, str) or not text:
        raise TCStringError("empty TC string")
    if len(text) > MAX_TC_STRING_LENGTH:
        raise TCStringError(f"TC string longer than {MAX_TC_STRING_LENGTH} characters")
    try:
        return _decode(text)
    except BitsError as exc:
        raise TCStringError(str(exc)) from None


def read(text: str | None) -> TCString | None:
    """The decoded string, or None for anything unusable (fail closed)."""
    if not text:
        return None
    try:
        return decode(text)
    except TCStringError:
        return None


def _decode(text: str) -> TCString:
    parts = text.split(".")
    core = BitReader(parts[0])
    version = core.uint(6)
    if version != 2:
        raise TCStringError(f"TC string version {version}; only version 2 is read")
    created = _time(core.uint(36))
    last_updated = _time(core.uint(36))
    cmp_id, cmp_version, consent_screen = core.uint(12), core.uint(12), core.uint(6)
    consent_language = _letters(core)
    vendor_list_version, policy_version = core.uint(12), core.uint(6)
    if policy_version < MIN_POLICY_VERSION:
        raise TCStringError(f"TCF policy version {policy_version}; v2.3 needs {MIN_POLICY_VERSION} or later")
    is_service_specific, use_non_standard_stacks = core.flag(), core.flag()
    special_features = core.bitfield(12)
    purpose_consents, purpose_li = core.bitfield(24), core.bitfield(24)
    purpose_one_treatment = core.flag()
    country = _letters(core)
    vendor_consents = _vendor_vector(core)
    vendor_li = _vendor_vector(core)
    restrictions = _restrictions(core)

    seen: dict[Segment, BitReader] = {}
    for i, part in enumerate(parts[1:], start=1):
        reader = BitReader(part)
        kind = reader.uint(3)
        if kind not in (1, 2, 3):
            raise TCStringError(f"segment {i}: unknown segment type {kind}")
        segment = Segment(kind)
        if segment in seen:
            raise TCStringError(f"segment {i}: a second {segment.name.lower()} segment")
        seen[segment] = reader
    if Segment.DISCLOSED_VENDORS not in seen:
        raise TCStringError("no disclosed-vendors segment (TCF v2.3 requires it)")
    disclosed = _vendor_vector(seen[Segment.DISCLOSED_VENDORS])
    allowed = _vendor_vector(seen[Segment.ALLOWED_VENDORS]) if Segment.ALLOWED_VENDORS in seen else None
    publisher = _publisher(seen[Segment.PUBLISHER_TC]) if Segment.PUBLISHER_TC in seen else None
    return TCString(
        version=version, created=created, last_updated=last_updated, cmp_id=cmp_id,
        cmp_version=cmp_version, consent_screen=consent_screen, consent_language=consent_language,
        vendor_list_version=vendor_list_version, policy_version=policy_version,
        is_service_specific=is_service_specific, use_non_standard_stacks=use_non_standard_stacks,
        special_feature_optins=special_features, purpose_consents=purpose_consents,
        purpose_legitimate_interests=purpose_li, purpose_one_treatment=purpose_one_treatment,
        publisher_country_code=country, vendor_consents=vendor_consents,
        vendor_legitimate_interests=vendor_li, publisher_restrictions=restrictions,
        disclosed_vendors=disclosed, allowed_vendors=allowed, publisher=publisher, raw=text)


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _time(deciseconds: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(milliseconds=100 * deciseconds)


def _letters(reader: BitReader) -> str:
    first, second = reader.uint(6), reader.uint(6)
    if first > 25 or second > 25:
        raise TCStringError("a two-letter code holds a value past 'Z'")
    return chr(65 + first) + chr(65 + second)


def _vendor_vector(reader: BitReader) -> IdRanges:
    max_id = reader.uint(16)
    if not reader.flag():
        return IdRanges.from_ids(reader.bitfield(max_id))
    return _range_entries(reader, max_id)


def _range_entries(reader: BitReader, max_id: int | None) -> IdRanges:
    pairs: list[tuple[int, int]] = []
    for _ in range(reader.uint(12)):
        is_range = reader.flag()
        start = reader.uint(16)
        end = reader.uint(16) if is_range else start
        if start < 1 or end < start:
            raise TCStringError(f"bad vendor range {start}-{end}")
        if max_id is not None and end > max_id:
            raise TCStringError(f"vendor id {end} above the declared maximum {max_id}")
        pairs.append((start, end))
    return IdRanges.of(pairs)


def _restrictions(reader: BitReader) -> tuple[PublisherRestriction, ...]:
    out: list[PublisherRestriction] = []
    for _ in range(reader.uint(12)):
        purpose = reader.uint(6)
        restriction = RestrictionType(reader.uint(2))
        out.append(PublisherRestriction(purpose, restriction, _range_entries(reader, None)))
    return tuple(out)


def _publisher(reader: BitReader) -> PublisherTC:
    consents, li = reader.bitfield(24), reader.bitfield(24)
    custom = reader.uint(6)
    return PublisherTC(consents=consents, legitimate_interests=li, num_custom_purposes=custom,
                       custom_consents=reader.bitfield(custom),
                       custom_legitimate_interests=reader.bitfield(custom))
