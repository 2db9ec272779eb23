"""Load and validate the one TOML file that declares the policy, purposes and partners.

Everything is checked at start-up and frozen: a bad file stops the process with the
file, the key path and what was expected, so nothing can fail at the first request.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar, cast

from .errors import ConfigError

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

CSP_DIRECTIVES = (
    "script-src",
    "frame-src",
    "img-src",
    "connect-src",
    "style-src",
    "font-src",
    "media-src",
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


@dataclass(frozen=True)
class CspConfig:
    mode: Literal["enforce", "report-only", "off"] = "enforce"
    #: Extra sources per directive (a CDN, a map tile server): ``{"script-src": ("cdn.example",)}``.
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))


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

    def partners_for_purpose(self, purpose: str) -> tuple[Partner, ...]:
        return tuple(p for p in self.partners.values() if purpose in p.purposes)

    @property
    def necessary_purposes(self) -> frozenset[str]:
        return frozenset(p.id for p in self.purposes.values() if p.necessary)


# --------------------------------------------------------------------------- reading

T = TypeVar("T")


class _Table:
    """A TOML table being read: remembers its key path and which keys were used."""

    def __init__(self, source: str, path: str, data: Mapping[str, Any]) -> None:
        self.source = source
        self.path = path
        self.data = data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str, expected: str) -> ConfigError:
        return ConfigError(self.source, self.key(name), expected)

    def get(self, name: str, kind: type[T], default: T | None = None, *, required: bool = False) -> T:
        self.used.add(name)
        if name not in self.data:
            if required or default is None:
                raise self.error(name, f"missing; expected {_kind_name(kind)}")
            return default
        value = self.data[name]
        # bool is an int subclass in Python; keep them apart so `max_age_days = true` is an error.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise self.error(name, f"expected {_kind_name(kind)}, got {_show(value)}")
        return value

    def optional_str(self, name: str) -> str | None:
        self.used.add(name)
        value = self.data.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.error(name, f"expected a string, got {_show(value)}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(name, str, default)
        if value not in choices:
            raise self.error(name, f"expected one of {', '.join(map(repr, choices))}, got {value!r}")
        return value

    def str_list(self, name: str, *, required: bool = False, pattern: re.Pattern[str] | None = None,
                 what: str = "a string") -> tuple[str, ...]:
        self.used.add(name)
        if name not in self.data:
            if required:
                raise self.error(name, "missing; expected a list of strings")
            return ()
        value = self.data[name]
        if not isinstance(value, list):
            raise self.error(name, f"expected a list of strings, got {_show(value)}")
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str) or (pattern is not None and not pattern.match(item)):
                raise self.error(f"{name}[{i}]", f"expected {what}, got {_show(item)}")
            if item in out:
                raise self.error(f"{name}[{i}]", f"duplicate {item!r}")
            out.append(item)
        return tuple(out)

    def table(self, name: str) -> _Table:
        self.used.add(name)
        value = self.data.get(name, {})
        if not isinstance(value, dict):
            raise self.error(name, f"expected a table, got {_show(value)}")
        return _Table(self.source, self.key(name), value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            known = ", ".join(sorted(self.used))
            raise self.error(unknown[0], f"unknown key; known keys here: {known}")


def _kind_name(kind: type[Any]) -> str:
    return {str: "a string", bool: "true or false", int: "an integer", dict: "a table",
            list: "a list", dt.date: "a date (YYYY-MM-DD)"}.get(kind, kind.__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"


# --------------------------------------------------------------------------- sections


def _read_policy(root: _Table) -> Policy:
    t = root.table("policy")
    if "policy" not in root.data:
        raise root.error("policy", "missing; expected a [policy] table with at least version and effective")
    version = t.get("version", str, required=True)
    if not version.strip() or len(version) > 64:
        raise t.error("version", "expected a non-empty string of at most 64 characters")
    effective_raw = t.get("effective", object, required=True)
    if isinstance(effective_raw, dt.datetime) or not isinstance(effective_raw, dt.date):
        raise t.error("effective", f"expected a date (YYYY-MM-DD, unquoted), got {_show(effective_raw)}")
    prefix = t.get("prefix", str, "/.consent/")
    if not re.fullmatch(r"/([A-Za-z0-9._~-]+/)+", prefix):
        raise t.error("prefix",
                      f"expected a path like '/.consent/' (leading and trailing '/'), got {prefix!r}")
    secret_env = t.get("secret_env", str, "CONSENT_GATE_SECRET")
    if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", secret_env):
        raise t.error("secret_env", f"expected an environment variable name, got {secret_env!r}")

    c = t.table("cookie")
    cookie = CookieConfig(
        name=c.get("name", str, "consent"),
        max_age_days=c.get("max_age_days", int, 180),
        domain=c.optional_str("domain"),
        secure=cast(Any, c.choice("secure", ("auto", "always", "never"), "auto")),
    )
    if not _COOKIE_NAME.match(cookie.name):
        raise c.error("name", f"expected a cookie name (letters, digits, -_.), got {cookie.name!r}")
    if not 1 <= cookie.max_age_days <= 400:
        # Browsers cap cookie lifetime at 400 days; regulators expect far less.
        raise c.error("max_age_days", f"expected 1..400, got {cookie.max_age_days}")
    c.done()

    policy = Policy(
        version=version,
        effective=effective_raw,
        default=cast(Any, t.choice("default", ("deny", "allow"), "deny")),
        honor_gpc=t.get("honor_gpc", bool, True),
        honor_dnt=t.get("honor_dnt", bool, False),
        secret_env=secret_env,
        prefix=prefix,
        trust_proxy=t.get("trust_proxy", bool, False),
        cookie=cookie,
    )
    t.done()
    return policy


def _read_purposes(root: _Table) -> dict[str, Purpose]:
    t = root.table("purposes")
    purposes: dict[str, Purpose] = {}
    for pid in t.data:
        if not _ID.match(pid):
            raise t.error(pid, "expected a purpose id of lowercase letters, digits, '-' or '_'")
        p = t.table(pid)
        purposes[pid] = Purpose(
            id=pid,
            title=p.get("title", str, required=True),
            description=p.get("description", str, required=True),
            necessary=p.get("necessary", bool, False),
            sale_or_sharing=p.get("sale_or_sharing", bool, False),
        )
        p.done()
    if not purposes:
        raise root.error("purposes", "expected at least one [purposes.ID] table")
    return purposes


def _read_partners(root: _Table, purposes: Mapping[str, Purpose]) -> dict[str, Partner]:
    t = root.table("partners")
    known_purposes = ", ".join(sorted(purposes))
    partners: dict[str, Partner] = {}
    for pid in t.data:
        if not _ID.match(pid):
            raise t.error(pid, "expected a partner id of lowercase letters, digits, '-' or '_'")
        p = t.table(pid)
        name = p.get("name", str, required=True)
        its_purposes = p.str_list("purposes", required=True)
        if not its_purposes:
            raise p.error("purposes", f"expected at least one purpose; known: {known_purposes}")
        for i, purpose in enumerate(its_purposes):
            if purpose not in purposes:
                raise p.error(f"purposes[{i}]", f"unknown purpose {purpose!r}; known: {known_purposes}")
        hosts = p.str_list("hosts", required=True, pattern=_HOST,
                           what="a lowercase host name, optionally starting with '*.' (no scheme, no path)")
        if not hosts:
            raise p.error("hosts", "expected at least one host")
        receives = p.str_list("receives", required=True)
        for i, category in enumerate(receives):
            if category not in DATA_CATEGORIES:
                raise p.error(f"receives[{i}]", f"unknown data category {category!r}; known: "
                              + ", ".join(DATA_CATEGORIES))
        cookies = p.str_list("cookies", pattern=_COOKIE_NAME, what="a cookie name")
        cookie_domains = p.str_list("cookie_domains", pattern=re.compile(r"^\.?[a-z0-9.-]+$"),
                                    what="a cookie domain like '.example.com'")
        privacy_url = p.get("privacy_url", str, required=True)
        if not privacy_url.startswith("https://"):
            raise p.error("privacy_url", f"expected an https:// URL, got {privacy_url!r}")
        snippets: list[Snippet] = []
        p.used.add("inject")
        raw_inject = p.data.get("inject", [])
        if not isinstance(raw_inject, list):
            raise p.error("inject", "expected an array of tables ([[partners.ID.inject]])")
        for i, raw in enumerate(raw_inject):
            if not isinstance(raw, dict):
                raise p.error(f"inject[{i}]", "expected a table with 'at' and 'html'")
            s = _Table(p.source, p.key(f"inject[{i}]"), raw)
            at = s.choice("at", POSITIONS, "")
            html = s.get("html", str, required=True)
            if not html.strip():
                raise s.error("html", "expected non-empty HTML")
            s.done()
            snippets.append(Snippet(at=cast(Position, at), html=html))
        partners[pid] = Partner(id=pid, name=name, purposes=its_purposes, hosts=hosts,
                                receives=receives, cookies=cookies, cookie_domains=cookie_domains,
                                privacy_url=privacy_url, inject=tuple(snippets))
        p.done()
    return partners


def _read_csp(root: _Table) -> CspConfig:
    t = root.table("csp")
    mode = t.choice("mode", ("enforce", "report-only", "off"), "enforce")
    e = t.table("extra")
    extra: dict[str, tuple[str, ...]] = {}
    for directive in e.data:
        if directive not in CSP_DIRECTIVES:
            raise e.error(directive, f"unknown directive; known: {', '.join(CSP_DIRECTIVES)}")
        extra[directive] = e.str_list(directive, pattern=re.compile(r"^[^;,\s]+$"),
                                      what="a CSP source such as 'cdn.example.com' or 'https:'")
    e.done()
    t.done()
    return CspConfig(mode=cast(Any, mode), extra=MappingProxyType(extra))


def _read_ledger(root: _Table) -> LedgerConfig:
    t = root.table("ledger")
    cfg = LedgerConfig(
        path=t.get("path", str, "consent-ledger.sqlite3"),
        fail=cast(Any, t.choice("fail", ("closed", "open"), "closed")),
        ip=cast(Any, t.choice("ip", ("truncate", "hash", "none"), "truncate")),
        keep_query=t.get("keep_query", bool, False),
        retention_days=t.get("retention_days", int, 395),
        purge_on_start=t.get("purge_on_start", bool, False),
        synchronous=cast(Any, t.choice("synchronous", ("full", "normal"), "full")),
    )
    if not cfg.path.strip():
        raise t.error("path", "expected a file path or a postgresql:// URL")
    if cfg.retention_days < 1:
        raise t.error("retention_days", f"expected a positive number of days, got {cfg.retention_days}")
    t.done()
    return cfg


def _read_ui(root: _Table) -> UiConfig:
    from .ui.texts import DEFAULT_TEXTS  # the text keys belong to the UI

    t = root.table("ui")
    default_language = t.get("default_language", str, "en")
    footer_link = t.get("footer_link", bool, True)
    texts_table = t.table("texts")
    texts: dict[str, Mapping[str, str]] = {}
    for lang in texts_table.data:
        if not _LANG.match(lang):
            raise texts_table.error(lang, "expected a language tag such as 'ja' or 'pt-BR'")
        lt = texts_table.table(lang)
        entries: dict[str, str] = {}
        for key in lt.data:
            if key not in DEFAULT_TEXTS:
                raise lt.error(key, "unknown text key; known: " + ", ".join(sorted(DEFAULT_TEXTS)))
            entries[key] = lt.get(key, str, required=True)
        lt.done()
        texts[lang] = MappingProxyType(entries)
    texts_table.done()
    if default_language != "en" and default_language not in texts:
        raise t.error("default_language",
                      f"no [ui.texts.{default_language}] table; known: en, {', '.join(sorted(texts))}")
    t.done()
    return UiConfig(default_language=default_language, footer_link=footer_link,
                    texts=MappingProxyType(texts))


def parse_config(data: Mapping[str, Any], source: str = "<config>") -> Config:
    """Validate an already-parsed TOML document."""
    root = _Table(source, "", data)
    policy = _read_policy(root)
    purposes = _read_purposes(root)
    partners = _read_partners(root, purposes)
    csp = _read_csp(root)
    ledger = _read_ledger(root)
    ui = _read_ui(root)
    root.done()
    return Config(source=source, policy=policy, purposes=MappingProxyType(purposes),
                  partners=MappingProxyType(partners), csp=csp, ledger=ledger, ui=ui)


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
    config = parse_config(data, source)
    return config
