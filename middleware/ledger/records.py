"""The two kinds of ledger record: a disclosure to a partner, and a consent event.

Records are values: frozen, validated on construction, times normalised to UTC.
``to_dict``/``from_dict`` give the JSON-able form that the hash chain and the
exports use, so a record read back from any store equals the one written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Literal, TypeAlias, get_args
from urllib.parse import unquote

LegalBasis: TypeAlias = Literal["consent", "opt-out-not-exercised", "necessary"]
ConsentAction: TypeAlias = Literal["given", "changed", "withdrawn"]
ConsentSource: TypeAlias = Literal["banner", "preferences", "gpc", "form", "placeholder"]
RecordKind: TypeAlias = Literal["disclosure", "consent", "page_view"]

LEGAL_BASES: frozenset[str] = frozenset(get_args(LegalBasis))
CONSENT_ACTIONS: frozenset[str] = frozenset(get_args(ConsentAction))
CONSENT_SOURCES: frozenset[str] = frozenset(get_args(ConsentSource))

_EMPTY: Mapping[str, Any] = MappingProxyType({})


def format_time(t: datetime) -> str:
    """Fixed-width UTC ISO form (``2024-05-01T12:00:00.000000Z``): sorts as text."""
    u = t if t.tzinfo is UTC else t.astimezone(UTC)
    # isoformat pads the year to four digits in every year; glibc's strftime("%Y") does not
    # before 1000 ("999-12-31..."), a text that neither sorts nor parses back.
    return u.isoformat(timespec="microseconds")[:26] + "Z"


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_time(value: str | datetime) -> datetime:
    t = value if isinstance(value, datetime) else _iso(value)
    if t.tzinfo is None:
        raise ValueError(f"time {value!r} has no timezone; ledger times are UTC")
    return t.astimezone(UTC)


def _utc(name: str, t: datetime) -> datetime:
    if not isinstance(t, datetime) or t.tzinfo is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {t!r}")
    # Microsecond precision is what every store keeps; truncate nothing, just normalise.
    return t.astimezone(UTC)


def _strs(name: str, values: Iterable[str]) -> tuple[str, ...]:
    if isinstance(values, str):
        raise ValueError(f"{name} must be a sequence of strings, not a string ({values!r})")
    out = tuple(values)
    for v in out:
        if not isinstance(v, str):
            raise ValueError(f"{name} must contain strings only, got {v!r}")
    return out


def _json_mapping(name: str, value: Mapping[str, Any]) -> Mapping[str, Any]:
    if not value:
        return _EMPTY
    try:
        # Round trip through JSON: proves it is JSON-able and detaches it from the caller.
        copied = json.loads(json.dumps(dict(value), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a JSON-able mapping with string keys: {exc}") from None
    return MappingProxyType(copied)


def page_path(path: str, query: str | bytes = "", keep_query: bool = False) -> str:
    """The page path as the ledger keeps it: without the query string unless asked.

    ``path`` is the decoded path (ASGI scope ``path``); it is kept as it is unless it holds a
    ``%``, a ``?``, a NUL or a lone surrogate (``recorded_path``). Query strings often carry
    personal data (search terms, e-mail addresses, tokens), so ``keep_query`` defaults to
    False. Accepts the ASGI ``query_string`` bytes as they are (never decoded, so only what
    no store can hold is spelled: ``storable_text``).
    """
    recorded = recorded_path(path) if path else "/"
    if keep_query:
        q = query.decode("latin-1") if isinstance(query, bytes) else query
        recorded = f"{recorded}?{storable_text(q)}" if q else recorded
    return recorded


def recorded_path(path: str) -> str:
    """The decoded ``path`` as text every store holds, and no two paths alike.

    A request for ``/a%00b`` reaches the app as ``/a\x00b`` (scope ``path`` is
    percent-decoded; ``raw_path`` is not): PostgreSQL text cannot hold a NUL and no UTF-8
    store can hold a lone surrogate (which servers that decode paths with
    ``surrogateescape`` hand over), so one such request would fail its whole group commit
    and serve every page of it without partners. Such a path is spelled with escapes, and
    then ``%`` must be escaped too, or ``/a%2500b`` (the app sees ``/a%00b``) would be
    recorded like ``/a%00b``; so must ``?`` (a ``%3F`` in the request line), or it would read
    as the query's start. So a path with none of ``%``, ``?``, NUL or a lone surrogate (nearly
    every one) is recorded as the app saw it, any other with every one of them escaped:
    ``%25``, ``%3F``, ``%00``, a ``surrogateescape`` byte as ``%XX`` (``%E9``, as the request
    line spelled it), any other lone surrogate as ``%uD800``. The two kinds cannot meet (only
    the second holds a ``%``) and the second reads back one way only.
    """
    if ("%" not in path and "?" not in path and "\x00" not in path
            and (path.isascii() or _encodable(path))):
        return path
    return "".join(_PATH_ESCAPES.get(c) or _storable_char(c) for c in path)


_PATH_ESCAPES = {"%": "%25", "?": "%3F", "\x00": "%00"}


def path_forms(text: str) -> tuple[str, ...]:
    """The recorded page paths a person means by ``text`` (``log show --path``): ``text`` as
    written (the recorded form, as ``log show`` prints it: ``/a%3Fb``), and ``text`` as a
    browser's address bar or a request line spells it, percent-decoded as servers decode it
    (UTF-8 with replacement, as uvicorn does; bytes kept, as surrogateescape servers do) and
    recorded as ``page_path`` records it (``/caf%C3%A9`` -> ``/café``, ``/100%25`` ->
    ``/100%25``). A ``?`` starts the query, kept as written (the ledger records it so).

    The forms name the same request: a recorded path holds a ``%`` only as one of
    ``recorded_path``'s escapes, which percent-decode to what they escape. The exception is
    ``%uXXXX`` (the record of a lone surrogate, which no browser sends; in an address bar it
    is a literal ``%u``): both pages are found then.
    """
    path, sep, query = text.partition("?")
    forms = [text]
    for errors in ("replace", "surrogateescape"):
        decoded = unquote(path, errors=errors)
        form = recorded_path(decoded) + (sep + storable_text(query) if sep else "")
        if form not in forms:
            forms.append(form)
    return tuple(forms)


def storable_text(text: str) -> str:
    """``text`` with what no store can hold escaped: NUL as ``%00`` and lone surrogates.

    For the query string, which the ledger records as the request line sent it (a raw
    ``%00`` in it and a NUL byte, which no server we know hands over: h11 and httptools
    refuse it in a request target, would read alike); the path goes through
    ``recorded_path``.
    """
    if "\x00" not in text and (text.isascii() or _encodable(text)):
        return text
    return "".join("%00" if c == "\x00" else _storable_char(c) for c in text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _storable_char(c: str) -> str:
    if "\udc80" <= c <= "\udcff":  # a byte that was not UTF-8, as surrogateescape keeps it
        return f"%{c.encode('utf-8', 'surrogateescape')[0]:02X}"
    if "\ud800" <= c <= "\udfff":  # any other lone surrogate
        return f"%u{ord(c):04X}"
    return c


@dataclass(frozen=True)
class DisclosureRecord:
    """A partner was enabled on a page: its tags could reach the visitor's browser."""

    time: datetime
    request_id: str
    consent_id: str | None
    path: str
    partner: str
    purposes: tuple[str, ...]
    legal_basis: LegalBasis
    data_categories: tuple[str, ...] = ()
    cookies: tuple[str, ...] = ()
    policy_version: str = ""
    ip: str | None = None
    ua_family: str = "other"
    #: Free-form JSON-able details, e.g. for future server-side disclosures.
    fields: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)

    kind: ClassVar[RecordKind] = "disclosure"

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", _utc("time", self.time))
        if self.legal_basis not in LEGAL_BASES:
            raise ValueError(
                f"legal_basis {self.legal_basis!r} is not one of {sorted(LEGAL_BASES)}"
            )
        if not self.partner:
            raise ValueError("partner must not be empty")
        object.__setattr__(self, "purposes", _strs("purposes", self.purposes))
        object.__setattr__(self, "data_categories", _strs("data_categories", self.data_categories))
        object.__setattr__(self, "cookies", _strs("cookies", self.cookies))
        object.__setattr__(self, "fields", _json_mapping("fields", self.fields))

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": format_time(self.time),
            "request_id": self.request_id,
            "consent_id": self.consent_id,
            "path": self.path,
            "partner": self.partner,
            "purposes": list(self.purposes),
            "legal_basis": self.legal_basis,
            "data_categories": list(self.data_categories),
            "cookies": list(self.cookies),
            "policy_version": self.policy_version,
            "ip": self.ip,
            "ua_family": self.ua_family,
            "fields": dict(self.fields),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DisclosureRecord:
        return cls(
            time=parse_time(d["time"]),
            request_id=d["request_id"],
            consent_id=d["consent_id"],
            path=d["path"],
            partner=d["partner"],
            purposes=tuple(d["purposes"]),
            legal_basis=d["legal_basis"],
            data_categories=tuple(d["data_categories"]),
            cookies=tuple(d["cookies"]),
            policy_version=d["policy_version"],
            ip=d["ip"],
            ua_family=d["ua_family"],
            fields=d.get("fields") or {},
        )


@dataclass(frozen=True)
class ConsentEvent:
    """Proof of consent: what the visitor chose, when, under which policy version."""

    time: datetime
    consent_id: str
    action: ConsentAction
    choices: Mapping[str, bool] = field(hash=False)
    policy_version: str
    source: ConsentSource
    ip: str | None = None
    ua_family: str = "other"

    kind: ClassVar[RecordKind] = "consent"

    def __post_init__(self) -> None:
        object.__setattr__(self, "time", _utc("time", self.time))
        if self.action not in CONSENT_ACTIONS:
            raise ValueError(f"action {self.action!r} is not one of {sorted(CONSENT_ACTIONS)}")
        if self.source not in CONSENT_SOURCES:
            raise ValueError(f"source {self.source!r} is not one of {sorted(CONSENT_SOURCES)}")
        for k, v in self.choices.items():
            if not isinstance(k, str) or not isinstance(v, bool):
                raise ValueError(f"choices must map purpose id -> bool, got {k!r}: {v!r}")
        object.__setattr__(self, "choices", MappingProxyType(dict(sorted(self.choices.items()))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": format_time(self.time),
            "consent_id": self.consent_id,
            "action": self.action,
            "choices": dict(self.choices),
            "policy_version": self.policy_version,
            "source": self.source,
            "ip": self.ip,
            "ua_family": self.ua_family,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ConsentEvent:
        return cls(
            time=parse_time(d["time"]),
            consent_id=d["consent_id"],
            action=d["action"],
            choices=dict(d["choices"]),
            policy_version=d["policy_version"],
            source=d["source"],
            ip=d["ip"],
            ua_family=d["ua_family"],
        )


@dataclass(frozen=True, slots=True)
class PartnerShare:
    """What one partner received on a page view, and on which legal basis.

    Fixed per (partner, legal basis) for a given config, so the middleware builds each
    one once and every page view record shares it.
    """

    partner: str
    purposes: tuple[str, ...]
    legal_basis: LegalBasis
    data_categories: tuple[str, ...] = ()
    cookies: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.legal_basis not in LEGAL_BASES:
            raise ValueError(
                f"legal_basis {self.legal_basis!r} is not one of {sorted(LEGAL_BASES)}"
            )
        if not self.partner or not isinstance(self.partner, str):
            raise ValueError(f"partner must be a non-empty string, got {self.partner!r}")
        object.__setattr__(self, "purposes", _strs("purposes", self.purposes))
        object.__setattr__(self, "data_categories", _strs("data_categories", self.data_categories))
        object.__setattr__(self, "cookies", _strs("cookies", self.cookies))

    def to_dict(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "purposes": list(self.purposes),
            "legal_basis": self.legal_basis,
            "data_categories": list(self.data_categories),
            "cookies": list(self.cookies),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PartnerShare:
        return cls(partner=d["partner"], purposes=tuple(d["purposes"]),
                   legal_basis=d["legal_basis"], data_categories=tuple(d["data_categories"]),
                   cookies=tuple(d["cookies"]))


#: Partner lists (tuples) that passed PageView's checks, by id; bounded (a site has a few).
_CHECKED_SHARES: dict[int, tuple[PartnerShare, ...]] = {}


@dataclass(frozen=True)
class PageView:
    """One page view that enabled partners: one record holding every partner's share.

    The successor of one ``DisclosureRecord`` per (page view, partner): a fifth of the rows,
    hashes and index entries for a page with five partners. ``partners`` is sorted by id
    and holds each partner once.
    """

    time: datetime
    request_id: str
    consent_id: str | None
    path: str
    partners: tuple[PartnerShare, ...]
    policy_version: str = ""
    ip: str | None = None
    ua_family: str = "other"
    fields: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, hash=False)

    kind: ClassVar[RecordKind] = "page_view"

    def __post_init__(self) -> None:
        t = self.time
        if type(t) is not datetime or t.tzinfo is not UTC:  # already UTC: nothing to do
            object.__setattr__(self, "time", _utc("time", t))
        if _CHECKED_SHARES.get(id(self.partners)) is self.partners:
            # The same partner list object as an earlier view's (the middleware shares one
            # per partner set): checked then. Built on the event loop for every page view.
            if self.fields:
                object.__setattr__(self, "fields", _json_mapping("fields", self.fields))
            return
        shares = tuple(self.partners)
        if not shares:
            raise ValueError("a page view record needs at least one partner")
        for s in shares:
            if not isinstance(s, PartnerShare):
                raise ValueError(f"partners must be PartnerShare values, got {s!r}")
        ids = [s.partner for s in shares]
        if ids != sorted(set(ids)):
            shares = tuple(sorted({s.partner: s for s in shares}.values(),
                                  key=lambda s: s.partner))
            if len(shares) != len(ids):
                raise ValueError(f"a partner appears twice in one page view: {ids}")
        object.__setattr__(self, "partners", shares)
        if shares is self.partners and len(_CHECKED_SHARES) < 4096:
            _CHECKED_SHARES[id(shares)] = shares  # kept alive here, so its id stays its own
        if self.fields:
            object.__setattr__(self, "fields", _json_mapping("fields", self.fields))

    @classmethod
    def on_loop(cls, time: datetime, request_id: str, consent_id: str | None, path: str,
                partners: tuple[PartnerShare, ...], policy_version: str, ip: str | None,
                ua_family: str, fields: Mapping[str, Any]) -> PageView:
        """``PageView(...)`` for the middleware's page views, built on the event loop: when
        ``__post_init__`` would change nothing (an aware UTC time, a partner list already
        checked, no fields), the fields are filled directly instead of through the frozen
        dataclass's ``object.__setattr__`` one by one (2.6 of 3.7 us per view, timeit);
        otherwise the full constructor. Equal to what ``PageView(...)`` returns either way."""
        if (fields or type(time) is not datetime or time.tzinfo is not UTC
                or _CHECKED_SHARES.get(id(partners)) is not partners):
            return cls(time=time, request_id=request_id, consent_id=consent_id, path=path,
                       partners=partners, policy_version=policy_version, ip=ip,
                       ua_family=ua_family, fields=fields)
        view = object.__new__(cls)
        view.__dict__.update(time=time, request_id=request_id, consent_id=consent_id,
                             path=path, partners=partners, policy_version=policy_version,
                             ip=ip, ua_family=ua_family, fields=fields)
        return view

    @property
    def partner_ids(self) -> tuple[str, ...]:
        return tuple(s.partner for s in self.partners)

    def disclosures(self) -> tuple[DisclosureRecord, ...]:
        """The same facts as one record per partner (the pre-page-view form), for display."""
        return tuple(
            DisclosureRecord(
                time=self.time, request_id=self.request_id, consent_id=self.consent_id,
                path=self.path, partner=s.partner, purposes=s.purposes,
                legal_basis=s.legal_basis, data_categories=s.data_categories,
                cookies=s.cookies, policy_version=self.policy_version, ip=self.ip,
                ua_family=self.ua_family, fields=self.fields)
            for s in self.partners)

    def to_dict(self) -> dict[str, Any]:
        return {
            "time": format_time(self.time),
            "request_id": self.request_id,
            "consent_id": self.consent_id,
            "path": self.path,
            "partners": [s.to_dict() for s in self.partners],
            "policy_version": self.policy_version,
            "ip": self.ip,
            "ua_family": self.ua_family,
            "fields": dict(self.fields),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PageView:
        return cls(
            time=parse_time(d["time"]),
            request_id=d["request_id"],
            consent_id=d["consent_id"],
            path=d["path"],
            partners=tuple(PartnerShare.from_dict(s) for s in d["partners"]),
            policy_version=d["policy_version"],
            ip=d["ip"],
            ua_family=d["ua_family"],
            fields=d.get("fields") or {},
        )


Record: TypeAlias = DisclosureRecord | ConsentEvent | PageView


def record_from_dict(kind: str, d: Mapping[str, Any]) -> Record:
    if kind == "disclosure":
        return DisclosureRecord.from_dict(d)
    if kind == "consent":
        return ConsentEvent.from_dict(d)
    if kind == "page_view":
        return PageView.from_dict(d)
    raise ValueError(f"unknown record kind {kind!r}; known: consent, disclosure, page_view")
