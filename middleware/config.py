"""Load and validate the one TOML file that declares the policy, purposes and partners.

Everything is checked at start-up and frozen: a bad file stops the process with the
file, the key path and what was expected, so nothing can fail at the first request.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast

from .errors import ConfigError
from .forward.spec import ForwardSpec, read_forward
from .signals import settings as signal_settings
from .signals.consent_mode import ConsentModeConfig
from .signals.foreign import ForeignSource
from .signals.jurisdiction import JurisdictionConfig
from .signals.reprompt import DEFAULTS as REPROMPT_DEFAULTS
from .signals.reprompt import read_reprompt
from .signals.settings import GppConfig, PartnerSignals, TcfConfig
from .ui.site import SiteConfig, read_site

Position = Literal["head-end", "body-start", "body-end"]
POSITIONS: tuple[Position, ...] = ("head-end", "body-start", "body-end")

#: Data categories a partner can be declared to receive (what the ledger records).
DATA_CATEGORIES = (
    "ip_address",
    "user_agent",
    "page_url",
    "referrer",
    "cookies",
    "device_info",
    "approximate_location",
    "browsing_activity",
    "identifiers",
)

#: What a partner may declare in ``csp = [...]``: ``object-src`` (its content is embedded with
#: ``<object>``/``<embed>`` in the site's pages), ``form-action`` (a form in the site's pages
#: posts to it). Its hosts always join the fetch directives.
PARTNER_CSP_DIRECTIVES = ("object-src", "form-action")

#: The directives of consent-gate's CSP, in header order; each accepts ``[csp.extra]`` sources.
CSP_DIRECTIVES = (
    "default-src",
    "script-src",
    "frame-src",
    "img-src",
    "connect-src",
    "style-src",
    "font-src",
    "media-src",
    "worker-src",
    "manifest-src",
    "object-src",
    "base-uri",
    "form-action",
)

_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_HOST = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_LANG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
_COOKIE_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


@dataclass(frozen=True)
class CookieConfig:
    name: str = "consent"
    max_age_days: int = 180
    domain: str | None = None
    secure: Literal["auto", "always", "never"] = "auto"


@dataclass(frozen=True)
class Policy:
    version: str
    effective: dt.date
    default: Literal["deny", "allow"] = "deny"
    honor_gpc: bool = True
    honor_dnt: bool = False
    secret_env: str = "CONSENT_GATE_SECRET"
    prefix: str = "/.consent/"
    trust_proxy: bool = False
    cookie: CookieConfig = field(default_factory=CookieConfig)
    #: Region -> days after which a decision is asked for again (ui/reprompt.py).
    reprompt_after_days: Mapping[str, int] = field(default_factory=lambda: REPROMPT_DEFAULTS)


@dataclass(frozen=True)
class Purpose:
    id: str
    title: str
    description: str
    necessary: bool = False
    sale_or_sharing: bool = False


@dataclass(frozen=True)
class Snippet:
    at: Position
    html: str


@dataclass(frozen=True)
class Partner:
    id: str
    name: str
    purposes: tuple[str, ...]
    hosts: tuple[str, ...]
    receives: tuple[str, ...]
    cookies: tuple[str, ...] = ()
    cookie_domains: tuple[str, ...] = ()
    privacy_url: str = ""
    inject: tuple[Snippet, ...] = ()
    #: ``[partners.ID.forward]``: server-side events to this partner (None: none are sent).
    forward: ForwardSpec | None = None
    #: TCF vendor id and purposes, Google tag flag (signals/settings.py).
    signals: PartnerSignals = field(default_factory=PartnerSignals)
    #: ``csp = [...]``: the non-fetch CSP directives this partner's hosts join when it is
    #: consented (PARTNER_CSP_DIRECTIVES). Empty by default: plugins are dead and a partner's
    #: own forms live in its own frames, so listing every host there only lengthens the header.
    csp: tuple[str, ...] = ()


@dataclass(frozen=True)
class CspConfig:
    mode: Literal["enforce", "report-only", "off"] = "enforce"
    #: Extra sources per directive (a CDN, a map tile server): ``{"script-src": ("cdn.example",)}``.
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: Who may frame the site's pages and consent-gate's own (CSP frame-ancestors):
    #: "'self'" (default, also X-Frame-Options: SAMEORIGIN), "'none'" (DENY) or origins.
    frame_ancestors: tuple[str, ...] = ("'self'",)


@dataclass(frozen=True)
class LedgerConfig:
    path: str = "consent-ledger.sqlite3"
    fail: Literal["closed", "open"] = "closed"
    ip: Literal["truncate", "hash", "none"] = "truncate"
    keep_query: bool = False
    retention_days: int = 395
    purge_on_start: bool = False
    #: SQLite only: "full" fsyncs every commit; "normal" survives a process crash, not power loss.
    synchronous: Literal["full", "normal"] = "full"
    #: "process": one ledger writer process per host and ledger, shared by the workers (never
    #: shares a GIL with an event loop; one commit for all workers); "thread": a writer
    #: thread in each worker (no extra process). Measured in bench_load.py: docs/ledger.md.
    writer: Literal["process", "thread"] = "process"
    #: After a failed write, pages are served with every partner off for this long before the
    #: ledger is tried again (0: every page view tries it).
    retry_seconds: float = 5.0
    #: Signed chain heads (``consent-gate log keygen``): the Ed25519 private key file, and the
    #: witnesses that receive a head every ``heads_every`` records or ``heads_seconds``.
    heads_key: str = ""
    witness_file: str = ""
    witness_url: str = ""
    heads_every: int = 1000
    heads_seconds: float = 60.0


@dataclass(frozen=True)
class UiConfig:
    default_language: str = "en"
    footer_link: bool = True
    #: Translations: language -> text key -> text. English defaults fill the gaps.
    texts: Mapping[str, Mapping[str, str]] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Config:
    source: str
    policy: Policy
    purposes: Mapping[str, Purpose]
    partners: Mapping[str, Partner]
    csp: CspConfig = field(default_factory=CspConfig)
    ledger: LedgerConfig = field(default_factory=LedgerConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    jurisdictions: JurisdictionConfig = field(default_factory=JurisdictionConfig)
    tcf: TcfConfig = field(default_factory=TcfConfig)
    gpp: GppConfig = field(default_factory=GppConfig)
    consent_mode: ConsentModeConfig = field(default_factory=ConsentModeConfig)
    consent_sources: tuple[ForeignSource, ...] = ()
    site: SiteConfig = field(default_factory=SiteConfig)

    def partners_for_purpose(self, purpose: str) -> tuple[Partner, ...]:
        return tuple(p for p in self.partners.values() if purpose in p.purposes)

    @property
    def necessary_purposes(self) -> frozenset[str]:
        return frozenset(p.id for p in self.purposes.values() if p.necessary)


# --------------------------------------------------------------------------- reading
#
# Reading never stops at the first problem: each one is recorded with its key path and
# the reader goes on with a stand-in value, so one run of `consent-gate check` lists every
# mistake in the file. parse_config raises a single ConfigError holding them all.

T = TypeVar("T")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


#: Default of a key that must be present.
REQUIRED: Any = _Required()


class Problems:
    """The problems found so far in one file, in the order they were found."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[tuple[str, str]] = []

    def add(self, key_path: str, message: str) -> None:
        self.items.append((key_path, message))

    def raise_if_any(self) -> None:
        if self.items:
            (key_path, message), *more = self.items
            raise ConfigError(self.source, key_path, message, more=more)


class Table:
    """A TOML table being read: knows its key path, which keys were read and what was missing.

    A getter that finds a problem records it and returns a stand-in (the default, or an
    empty value of the expected kind), so reading goes on. Unknown keys are reported when
    the whole file has been read (``finish``), with a "did you mean" from the keys read here.
    """

    def __init__(self, problems: Problems, path: str, data: Mapping[str, Any], *,
                 present: bool = True) -> None:
        self.problems = problems
        self.path = path
        self.data = data
        #: False when the table was not in the file (its reader may want to say so).
        self.present = present
        self.used: set[str] = set()
        self._missing: dict[str, str] = {}
        self._children: list[Table] = []

    # -- paths and problems

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, message: str) -> None:
        """Record a problem at ``path.name``."""
        self.problems.add(self.key(name), message)

    def error_here(self, message: str) -> None:
        """Record a problem about this table as a whole."""
        self.problems.add(self.path, message)

    # -- getters

    def get(self, name: str, kind: type[T], default: T = REQUIRED, *,
            check: Callable[[T], str | None] | None = None) -> T:
        """The value of ``name`` if it has type ``kind`` and passes ``check`` (which returns
        a message for a bad value, None for a good one)."""
        self.used.add(name)
        fallback = _empty(kind) if default is REQUIRED else default
        if name not in self.data:
            if default is REQUIRED:
                self._missing[name] = f"missing; expected {_kind_name(kind)}"
            return fallback
        value = self.data[name]
        if not _has_kind(value, kind):
            self.error(name, f"expected {_kind_name(kind)}, got {_show(value)}")
            return fallback
        if check is not None and (message := check(value)) is not None:
            self.error(name, message)
            return fallback
        return cast(T, value)

    def optional_str(self, name: str) -> str | None:
        self.used.add(name)
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(name, f"expected a string, got {_show(value)}")
            return None
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str = REQUIRED) -> str:
        def check(value: str) -> str | None:
            if value in choices:
                return None
            listed = ", ".join(map(repr, choices))
            return f"expected one of {listed}, got {value!r}{_did_you_mean(value, choices)}"

        value = self.get(name, str, default, check=check)
        return value if value in choices else choices[0]

    def str_list(self, name: str, *, required: bool = False, pattern: re.Pattern[str] | None = None,
                 what: str = "a string") -> tuple[str, ...]:
        """A list of distinct strings; bad items are reported one by one and left out."""
        self.used.add(name)
        if name not in self.data:
            if required:
                self._missing[name] = "missing; expected a list of strings"
            return ()
        value = self.data[name]
        if not isinstance(value, list):
            self.error(name, f"expected a list of strings, got {_show(value)}")
            return ()
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or (pattern is not None and not pattern.match(item)):
                self.error(f"{name}[{i}]", f"expected {what}, got {_show(item)}")
            elif item in out:
                self.error(f"{name}[{i}]", f"duplicate {item!r}")
            else:
                out.append(item)
        return tuple(out)

    def table(self, name: str) -> Table:
        """The sub-table ``name`` (an empty one, ``present=False``, when it is absent or bad)."""
        self.used.add(name)
        value = self.data.get(name)
        if value is not None and not isinstance(value, dict):
            self.error(name, f"expected a table, got {_show(value)}")
        child = Table(self.problems, self.key(name), value if isinstance(value, dict) else {},
                      present=isinstance(value, dict))
        self._children.append(child)
        return child

    def tables(self, id_pattern: re.Pattern[str], what: str) -> Iterator[tuple[str, Table]]:
        """Each ``[path.ID]`` sub-table whose ID matches ``id_pattern`` (others are reported)."""
        for name in list(self.data):
            if not id_pattern.match(name):
                self.used.add(name)
                self.error(name, f"expected {what} of lowercase letters, digits, '-' or '_'")
                continue
            child = self.table(name)
            if child.present:
                yield name, child

    def array_of_tables(self, name: str, what: str) -> Iterator[Table]:
        """Each table of ``[[path.name]]``."""
        self.used.add(name)
        raw = self.data.get(name, [])
        if not isinstance(raw, list):
            self.error(name, f"expected an array of tables ([[{self.key(name)}]])")
            return
        for i, item in enumerate(raw):
            if not isinstance(item, dict):
                self.error(f"{name}[{i}]", f"expected a table with {what}")
                continue
            child = Table(self.problems, self.key(f"{name}[{i}]"), item)
            self._children.append(child)
            yield child

    # -- the end

    def finish(self) -> None:
        """Report unknown keys (with the closest known key) and missing ones, here and below."""
        unknown = [k for k in self.data if k not in self.used]
        missing = dict(self._missing)
        for name in unknown:
            close = difflib.get_close_matches(name, sorted(self.used), n=1, cutoff=0.7)
            if close:
                # A typo of a required key: the typo is the problem, not the missing key.
                missing.pop(close[0], None)
                self.error(name, f"unknown key {name!r}; did you mean {close[0]!r}?")
            else:
                known = ", ".join(sorted(self.used)) or "none"
                self.error(name, f"unknown key {name!r}; known keys here: {known}")
        for name, message in missing.items():
            self.error(name, message)
        for child in self._children:
            child.finish()


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _has_kind(value: Any, kind: type[Any]) -> bool:
    # bool is an int subclass and datetime a date subclass: keep them apart, so that
    # `max_age_days = true` or `effective = 2008-01-23T00:00:00` are errors.
    if kind is int and isinstance(value, bool):
        return False
    if kind is dt.date and isinstance(value, dt.datetime):
        return False
    return isinstance(value, kind)


def _empty(kind: type[T]) -> T:
    if kind is dt.date:
        return cast(T, dt.date.min)
    return kind()


def _kind_name(kind: type[Any]) -> str:
    return {str: "a string", bool: "true or false", int: "an integer", dict: "a table",
            list: "a list", dt.date: "a date (YYYY-MM-DD, unquoted)"}.get(kind, kind.__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"


# --------------------------------------------------------------------------- sections
#
# Adding a top-level [name] table: a frozen dataclass for its values, a field `name` on
# Config (with a default when the table is optional), and one function decorated with
# @section("name") below. Readers run in the order they are defined; `done` holds the
# values of the sections read before (the partners reader looks at the purposes).

SectionReader = Callable[[Table, Mapping[str, Any]], Any]
_SECTIONS: dict[str, SectionReader] = {}

F = TypeVar("F", bound=SectionReader)


def section(name: str) -> Callable[[F], F]:
    """Register the reader of the top-level table ``[name]``; its result is ``Config.name``."""

    def register(reader: F) -> F:
        if name in _SECTIONS:
            raise RuntimeError(f"two readers for the config section [{name}]")
        _SECTIONS[name] = reader
        return reader

    return register


def _range(low: int, high: int) -> Callable[[int], str | None]:
    return lambda v: None if low <= v <= high else f"expected {low}..{high}, got {v}"


def _matches(pattern: str, expected: str) -> Callable[[str], str | None]:
    compiled = re.compile(pattern)
    return lambda v: None if compiled.fullmatch(v) else f"expected {expected}, got {v!r}"


@section("policy")
def _read_policy(t: Table, done: Mapping[str, Any]) -> Policy:
    if not t.present:
        t.error_here("missing; expected a [policy] table with at least version and effective")
        return Policy(version="", effective=dt.date.min)
    version = t.get("version", str, check=lambda v: None if v.strip() and len(v) <= 64
                    else "expected a non-empty string of at most 64 characters")
    effective = t.get("effective", dt.date)
    prefix = t.get("prefix", str, "/.consent/", check=_matches(
        r"/([A-Za-z0-9._~-]+/)+", "a path like '/.consent/' (leading and trailing '/')"))
    secret_env = t.get("secret_env", str, "CONSENT_GATE_SECRET", check=_matches(
        r"[A-Z_][A-Z0-9_]*", "an environment variable name"))

    c = t.table("cookie")
    cookie = CookieConfig(
        name=c.get("name", str, "consent", check=_matches(
            _COOKIE_NAME.pattern.strip("^$"), "a cookie name (letters, digits, -_.)")),
        # Browsers cap cookie lifetime at 400 days; regulators expect far less.
        max_age_days=c.get("max_age_days", int, 180, check=_range(1, 400)),
        domain=c.optional_str("domain"),
        secure=cast(Any, c.choice("secure", ("auto", "always", "never"), "auto")),
    )
    return Policy(
        version=version,
        effective=effective,
        default=cast(Any, t.choice("default", ("deny", "allow"), "deny")),
        honor_gpc=t.get("honor_gpc", bool, True),
        honor_dnt=t.get("honor_dnt", bool, False),
        secret_env=secret_env,
        prefix=prefix,
        trust_proxy=t.get("trust_proxy", bool, False),
        cookie=cookie,
        reprompt_after_days=read_reprompt(t.table("reprompt_after_days")),
    )


@section("purposes")
def _read_purposes(t: Table, done: Mapping[str, Any]) -> Mapping[str, Purpose]:
    purposes: dict[str, Purpose] = {}
    for pid, p in t.tables(_ID, "a purpose id"):
        purposes[pid] = Purpose(
            id=pid,
            title=p.get("title", str),
            description=p.get("description", str),
            necessary=p.get("necessary", bool, False),
            sale_or_sharing=p.get("sale_or_sharing", bool, False),
        )
    if not t.data:
        t.error_here("expected at least one [purposes.ID] table")
    return MappingProxyType(purposes)


@section("partners")
def _read_partners(t: Table, done: Mapping[str, Any]) -> Mapping[str, Partner]:
    purposes: Mapping[str, Purpose] = done["purposes"]
    known_purposes = ", ".join(sorted(purposes))
    partners: dict[str, Partner] = {}
    owner_of_host: dict[str, str] = {}
    for pid, p in t.tables(_ID, "a partner id"):
        its_purposes = p.str_list("purposes", required=True)
        if p.data.get("purposes") == []:
            p.error("purposes", f"expected at least one purpose; known: {known_purposes}")
        for i, purpose in enumerate(its_purposes):
            if purposes and purpose not in purposes:
                p.error(f"purposes[{i}]", f"unknown purpose {purpose!r}; known: {known_purposes}"
                        + _did_you_mean(purpose, purposes))
        hosts = p.str_list("hosts", required=True, pattern=_HOST,
                           what="a lowercase host name, optionally starting with '*.' (no scheme, no path)")
        if p.data.get("hosts") == []:
            p.error("hosts", "expected at least one host")
        for i, host in enumerate(hosts):
            # One host, one partner: the ledger must say who received a request, and a shared
            # host would make one partner's consent enable another's tags.
            first = owner_of_host.setdefault(host, pid)
            if first != pid:
                p.error(f"hosts[{i}]", f"host {host!r} is already declared by partner {first!r}; a host "
                        "belongs to one partner (declare it once, in a partner whose purposes list "
                        "everything it serves: it loads only when all of them are granted)")
        receives = p.str_list("receives", required=True)
        for i, category in enumerate(receives):
            if category not in DATA_CATEGORIES:
                p.error(f"receives[{i}]", f"unknown data category {category!r}; known: "
                        + ", ".join(DATA_CATEGORIES) + _did_you_mean(category, DATA_CATEGORIES))
        snippets: list[Snippet] = []
        for s in p.array_of_tables("inject", "'at' and 'html'"):
            at = s.choice("at", POSITIONS)
            html = s.get("html", str, check=lambda v: None if v.strip() else "expected non-empty HTML")
            snippets.append(Snippet(at=cast(Position, at), html=html))
        cookies = p.str_list("cookies", pattern=_COOKIE_NAME, what="a cookie name")
        f = p.table("forward")
        partners[pid] = Partner(
            id=pid,
            name=p.get("name", str),
            purposes=its_purposes,
            hosts=hosts,
            receives=receives,
            cookies=cookies,
            cookie_domains=p.str_list("cookie_domains", pattern=re.compile(r"^\.?[a-z0-9.-]+$"),
                                      what="a cookie domain like '.example.com'"),
            privacy_url=p.get("privacy_url", str, check=lambda v: None if v.startswith("https://")
                              else f"expected an https:// URL, got {v!r}"),
            inject=tuple(snippets),
            forward=read_forward(f, partner=pid, partner_cookies=cookies) if f.present else None,
            signals=signal_settings.read_partner_signals(p),
            csp=_partner_csp(p),
        )
    return MappingProxyType(partners)


def _partner_csp(p: Table) -> tuple[str, ...]:
    """``[partners.ID] csp``: only the directives a partner's hosts may be added to."""
    known = "|".join(map(re.escape, PARTNER_CSP_DIRECTIVES))
    return p.str_list("csp", pattern=re.compile(f"^({known})$"),
                      what="one of " + ", ".join(map(repr, PARTNER_CSP_DIRECTIVES)))


_FRAME_SOURCE = re.compile(r"^('self'|'none'|(https?://)?(\*\.)?[a-z0-9.-]+(:\d+)?)$")


@section("csp")
def _read_csp(t: Table, done: Mapping[str, Any]) -> CspConfig:
    mode = t.choice("mode", ("enforce", "report-only", "off"), "enforce")
    e = t.table("extra")
    extra: dict[str, tuple[str, ...]] = {}
    for directive in e.data:
        if directive not in CSP_DIRECTIVES:
            e.used.add(directive)
            e.error(directive, f"unknown directive; known: {', '.join(CSP_DIRECTIVES)}"
                    + _did_you_mean(directive, CSP_DIRECTIVES))
            continue
        extra[directive] = e.str_list(directive, pattern=re.compile(r"^[^;,\s]+$"),
                                      what="a CSP source such as 'cdn.example.com' or 'https:'")
    frame_ancestors = t.str_list("frame_ancestors", pattern=_FRAME_SOURCE,
                                 what="\"'self'\", \"'none'\" or a host such as 'https://partner.example'")
    if "frame_ancestors" not in t.data:
        frame_ancestors = ("'self'",)
    elif "'none'" in frame_ancestors and len(frame_ancestors) > 1:
        t.error("frame_ancestors", "\"'none'\" cannot be combined with other sources")
    elif not frame_ancestors and t.data["frame_ancestors"] == []:
        t.error("frame_ancestors", "expected at least one source; [\"'none'\"] forbids every frame")
    return CspConfig(mode=cast(Any, mode), extra=MappingProxyType(extra),
                     frame_ancestors=frame_ancestors)


@section("ledger")
def _read_ledger(t: Table, done: Mapping[str, Any]) -> LedgerConfig:
    return LedgerConfig(
        path=t.get("path", str, "consent-ledger.sqlite3", check=lambda v: None if v.strip()
                   else "expected a file path or a postgresql:// URL"),
        fail=cast(Any, t.choice("fail", ("closed", "open"), "closed")),
        ip=cast(Any, t.choice("ip", ("truncate", "hash", "none"), "truncate")),
        keep_query=t.get("keep_query", bool, False),
        retention_days=t.get("retention_days", int, 395, check=lambda v: None if v >= 1
                             else f"expected a positive number of days, got {v}"),
        purge_on_start=t.get("purge_on_start", bool, False),
        synchronous=cast(Any, t.choice("synchronous", ("full", "normal"), "full")),
        writer=cast(Any, t.choice("writer", ("process", "thread"), "process")),
        retry_seconds=_read_seconds(t, "retry_seconds", 5.0),
        **_read_heads(t),
    )


def _read_seconds(t: Table, name: str, default: float) -> float:
    """A duration in seconds, 0 or more: an integer or a float (TOML keeps them apart)."""
    t.used.add(name)
    value = t.data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        t.error(name, f"expected a number of seconds, got {_show(value)}")
        return default
    if not 0 <= value < float("inf"):
        t.error(name, f"expected 0 or more seconds, got {value}")
        return default
    return float(value)


def _read_heads(t: Table) -> dict[str, Any]:
    """The [ledger] keys of signed chain heads: a key and at least one witness, or neither."""
    key = t.get("heads_key", str, "")
    wfile = t.get("witness_file", str, "")
    url = t.get("witness_url", str, "", check=lambda v: None if not v or v.startswith(
        ("http://", "https://")) else "expected an http:// or https:// URL")
    every = t.get("heads_every", int, 1000, check=lambda v: None if v >= 1
                  else f"expected a positive number of records, got {v}")
    seconds = t.get("heads_seconds", int, 60, check=lambda v: None if v > 0
                    else f"expected a positive number of seconds, got {v}")
    if key and not (wfile or url):
        t.error("heads_key", "signed heads need a witness: set witness_file and/or witness_url")
    elif (wfile or url) and not key:
        t.error("witness_file" if wfile else "witness_url",
                "a witness needs signed heads: set heads_key (consent-gate log keygen)")
    return {"heads_key": key, "witness_file": wfile, "witness_url": url, "heads_every": every,
            "heads_seconds": float(seconds)}


@section("ui")
def _read_ui(t: Table, done: Mapping[str, Any]) -> UiConfig:
    from .ui.texts import DEFAULT_TEXTS  # the text keys belong to the UI

    default_language = t.get("default_language", str, "en")
    footer_link = t.get("footer_link", bool, True)
    texts_table = t.table("texts")
    texts: dict[str, Mapping[str, str]] = {}
    for lang in texts_table.data:
        if not _LANG.match(lang):
            texts_table.used.add(lang)
            texts_table.error(lang, "expected a language tag such as 'ja' or 'pt-BR'")
            continue
        lt = texts_table.table(lang)
        entries: dict[str, str] = {}
        for key in lt.data:
            if key not in DEFAULT_TEXTS:
                lt.used.add(key)
                lt.error(key, f"unknown text key {key!r}" + (_did_you_mean(key, DEFAULT_TEXTS)
                         or "; known: " + ", ".join(sorted(DEFAULT_TEXTS))))
                continue
            entries[key] = lt.get(key, str)
        texts[lang] = MappingProxyType(entries)
    if default_language != "en" and default_language not in texts:
        t.error("default_language",
                f"no [ui.texts.{default_language}] table; known: en, {', '.join(sorted(texts))}")
    return UiConfig(default_language=default_language, footer_link=footer_link,
                    texts=MappingProxyType(texts))


# Consent signals (signals/settings.py): region rules, TCF, GPP, Consent Mode, other tools.
section("jurisdictions")(signal_settings.read_jurisdictions)
section("tcf")(signal_settings.read_tcf)
section("gpp")(signal_settings.read_gpp)
section("consent_mode")(signal_settings.read_consent_mode)
section("consent_sources")(signal_settings.read_consent_sources)
# Who runs the site and the consent pages' branding (ui/site.py).
section("site")(read_site)


# --------------------------------------------------------------------------- entry points


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> Config:
    """Validate an already-parsed TOML document; one ConfigError lists every problem."""
    problems = Problems(source)
    root = Table(problems, "", data)
    values: dict[str, Any] = {}
    for name, reader in _SECTIONS.items():
        values[name] = reader(root.table(name), MappingProxyType(values))
    root.finish()
    problems.raise_if_any()
    return Config(source=source, **values)


def load_config(path: str | Path) -> Config:
    """Read and validate ``path``; raise ConfigError naming the file and key path."""
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read the file ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(source, "", "expected UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, "", f"invalid TOML: {exc}") from None
    return parse_config(data, source)
