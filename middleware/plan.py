"""Per-request RewritePlan: which snippets go where, which partners stay enabled.

A site has few distinct consent states, so plans are cached by what they depend on
(allowed partners, granted purposes, banner variant, language, charset); the per-request
cost is one dict lookup.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from starlette.types import Scope

from .config import POSITIONS, Config, Position
from .consent import Consent
from .headers import consent_inputs
from .hosts import HostMatcher
from .rewrite import RewritePlan
from .routes import ConsentUI
from .signals.page import SignalSnippets

logger = logging.getLogger("consent_gate")

_MAX_CACHED_PLANS = 4096
_MAX_UNKNOWN_REPORTS = 10_000


def _ascii_safe(data: bytes) -> bytes:
    """Re-encode UTF-8 text as ASCII with character references: safe in any ASCII-compatible charset."""
    return data.decode("utf-8").encode("ascii", "xmlcharrefreplace")


class PlanBuilder:
    def __init__(self, config: Config, matcher: HostMatcher, ui: ConsentUI) -> None:
        self.config = config
        self.matcher = matcher
        self.ui = ui
        self.necessary = config.necessary_purposes
        # Rendered once: partner -> position -> bytes.
        self.snippets: dict[str, dict[Position, bytes]] = {}
        for pid, partner in config.partners.items():
            per_position: dict[Position, bytes] = {}
            for snippet in partner.inject:
                per_position[snippet.at] = per_position.get(snippet.at, b"") + snippet.html.encode()
            self.snippets[pid] = per_position
        self._order = list(config.partners)
        self.signals = SignalSnippets(config)
        self._cache: dict[tuple[Any, ...], RewritePlan] = {}
        self._parts: dict[tuple[str, bool], Mapping[str, tuple[bytes, bytes]]] = {}
        self._by_consent: dict[tuple[Any, ...], tuple[Consent, RewritePlan]] = {}
        self._filled_plans: OrderedDict[tuple[Any, ...], tuple[RewritePlan, RewritePlan]] = OrderedDict()
        self.unknown_hosts: Counter[str] = Counter()
        self._reported: set[tuple[str, str]] = set()

    def plan(self, consent: Consent, allowed: frozenset[str], raw_language: bytes | None,
             charset: str | None) -> RewritePlan:
        """The plan of a response. ``raw_language``: the request's first Accept-Language
        value (``ConsentState.raw_language``, read with the consent; ``language_of_scope``
        for a scope), as ConsentUI.language reads it."""
        # Resolved consents are shared between requests (ConsentResolver remembers them), so
        # the same Consent object comes back: its plan is found by identity first, with the
        # raw Accept-Language and the charset (the language and ASCII-only below are pure
        # functions of them). The entry holds the Consent, so its id cannot be reused while
        # the entry lives.
        fast_key = (id(consent), allowed, raw_language, charset)
        known = self._by_consent.get(fast_key)
        if known is not None and known[0] is consent:
            return known[1]
        lang = self.ui.language_of(raw_language or b"")
        # Injected text is plain ASCII unless the page declares UTF-8 (Shift_JIS pages stay intact).
        ascii_only = not _declares_utf8(charset)
        result = self._plan(consent, allowed, lang, ascii_only)
        self._by_consent[fast_key] = (consent, result)
        if len(self._by_consent) > _MAX_CACHED_PLANS:
            self._by_consent.pop(next(iter(self._by_consent)))
        return result

    def _plan(self, consent: Consent, allowed: frozenset[str], lang: str,
              ascii_only: bool) -> RewritePlan:
        granted = consent.granted if allowed or not consent.allowed_partners else self.necessary
        key = (allowed, granted, consent.decided, consent.stale_version is not None, consent.gpc,
               lang, ascii_only, *self.signals.key(consent))
        cached = self._cache.get(key)
        if cached is None:
            cached = self._build(consent, allowed, granted, lang, ascii_only)
            if len(self._cache) < _MAX_CACHED_PLANS:
                self._cache[key] = cached
        if self.signals.uses_macros and cached.injected_partners:
            return self._filled(cached, consent)
        return cached

    def _filled(self, plan: RewritePlan, consent: Consent) -> RewritePlan:
        """``plan`` with ${GDPR_CONSENT_<id>} and friends filled: per visitor, so after the cache.
        The filled plan is remembered too (the memo of rewritten pages is keyed by plan)."""
        values = self.signals.values(consent)
        key = (id(plan), values)
        known = self._filled_plans.get(key)
        if known is not None and known[0] is plan:
            self._filled_plans.move_to_end(key)
            return known[1]
        filled = dataclasses.replace(plan, head_end=self.signals.fill(plan.head_end, values),
                                     body_start=self.signals.fill(plan.body_start, values),
                                     body_end=self.signals.fill(plan.body_end, values))
        self._filled_plans[key] = (plan, filled)
        if len(self._filled_plans) > _MAX_CACHED_PLANS:
            self._filled_plans.popitem(last=False)
        return filled

    def _build(self, consent: Consent, allowed: frozenset[str], granted: frozenset[str],
               lang: str, ascii_only: bool) -> RewritePlan:
        parts: dict[Position, bytes] = dict.fromkeys(POSITIONS, b"")
        injected: set[str] = set()
        for pid in self._order:
            if pid not in allowed:
                continue
            for position, html in self.snippets[pid].items():
                parts[position] += html
                injected.add(pid)
        # The __gpp stub and Consent Mode defaults run before any partner's snippet.
        parts["head-end"] = self.signals.head(consent, allowed) + parts["head-end"]
        tail = b""
        if consent.needs_banner:
            parts["body-start"] = self.ui.skip_link(consent, lang) + parts["body-start"]
            tail += self.ui.banner(consent, lang)
        if self.config.ui.footer_link:
            tail += self.ui.footer_link(lang, consent)
        parts["body-end"] += tail
        if ascii_only:
            parts = {pos: _ascii_safe(html) for pos, html in parts.items()}
        return RewritePlan(
            head_end=parts["head-end"],
            body_start=parts["body-start"],
            body_end=parts["body-end"],
            injected_partners=frozenset(injected),
            allowed_partners=allowed,
            granted_purposes=granted,
            matcher=self.matcher,
            placeholder=functools.partial(self._placeholder, lang=lang, ascii_only=ascii_only),
            placeholder_parts=self._placeholder_parts(lang, ascii_only),
        )

    def _placeholder_parts(self, lang: str, ascii_only: bool) -> Mapping[str, tuple[bytes, bytes]]:
        """``_placeholder`` in parts (RewritePlan.placeholder_parts), made once per language:
        the size between them is ASCII, so ``_ascii_safe`` of the whole is that of each part."""
        key = (lang, ascii_only)
        parts = self._parts.get(key)
        if parts is None:
            parts = {pid: ((_ascii_safe(head), _ascii_safe(tail)) if ascii_only else (head, tail))
                     for pid, (head, tail) in self.ui.placeholder_parts(lang).items()}
            self._parts[key] = parts
        return parts

    def _placeholder(self, partner_id: str, attrs: Any, *, lang: str, ascii_only: bool) -> bytes:
        html = self.ui.placeholder(partner_id, attrs, lang)
        return _ascii_safe(html) if ascii_only else html

    def blocked(self, consent: Consent, raw_language: bytes | None,
                charset: str | None) -> RewritePlan:
        """The plan with every partner disabled (the ledger could not record a disclosure)."""
        return self.plan(consent, frozenset(), raw_language, charset)

    def report_unknown(self, hosts: Iterable[str], path: str) -> None:
        """Warn once per (host, path) about third-party hosts that no partner declares."""
        for host in hosts:
            self.unknown_hosts[host] += 1
            key = (host, path)
            if key in self._reported or len(self._reported) >= _MAX_UNKNOWN_REPORTS:
                continue
            self._reported.add(key)
            logger.warning(
                "consent-gate: %s loads from third-party host %s, which no partner in %s declares; "
                "it is not gated. Add it to a partner's hosts (or to [csp.extra]) after review.",
                path, host, self.config.source)


def language_of_scope(scope: Scope) -> bytes | None:
    """A scope's first raw Accept-Language value (what ``PlanBuilder.plan`` takes)."""
    language: bytes | None = consent_inputs(scope.get("headers", ()))[4]
    return language


@functools.lru_cache(maxsize=256)
def _declares_utf8(charset: str | None) -> bool:
    return charset is not None and charset.replace("-", "").replace("_", "").lower() == "utf8"


def charset_of(content_type: str) -> str | None:
    """The charset parameter of a Content-Type value, lowercased, or None."""
    for param in content_type.split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower() or None
    return None


def document_charset(values: Iterable[str], unreadable: Callable[[str | None], bool]) -> str | None:
    """The charset a browser takes from every Content-Type value (several headers, or a comma
    list): the last type's, kept from an earlier part of the same type that named one
    (Fetch, "extract a MIME type"). Fail closed: any part naming an ``unreadable`` charset
    wins, since we cannot be sure which part a browser picks."""
    essence: str | None = None
    charset: str | None = None
    for value in values:
        for part in value.split(","):
            kind = part.split(";", 1)[0].strip().lower()
            if "/" not in kind:
                continue
            named = charset_of(part)
            if unreadable(named):
                return named
            if kind != essence:
                essence, charset = kind, named
            elif named is not None:
                charset = named
    return charset
