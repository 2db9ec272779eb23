"""The header edits of a response the gate touches, made once per gate.

A page we rewrite is private, loses its validators (its bytes depend on the consent) and
carries the CSP of its allowed partners; a document we cannot read goes out behind an
enforced CSP that allows no partner; a response that read the consent is kept out of shared
caches. ``Link`` and ``Refresh`` headers aimed at a partner are dropped (they act before any
HTML is read), and so are the ``Speculation-Rules``, ``Reporting-Endpoints``, ``Report-To``
and site-CSP ``report-uri`` parts that name one (no CSP stops those fetches).
"""

from __future__ import annotations

import logging

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Scope

from ..csp import CspBuilder
from ..headers import (
    FETCHING_HEADERS,
    GatedHeaders,
    gated_csp,
    gated_link,
    gated_members,
    gated_report_to,
    set_header,
)
from ..hosts import HostMatcher
from ..html.fetch import refresh_url

logger = logging.getLogger("consent_gate")

_NO_PARTNER: frozenset[str] = frozenset()
#: Enforced on every rewritten page whatever [csp] mode says (off, report-only): a ``<base
#: href>`` on another origin would resolve the gate's own injected URLs (banner.css, banner.js,
#: the consent form's action) and kept relative speculation rules against that origin, even a
#: ``<base>`` after them (measured in Chromium: tests/browser/test_redteam_speculation.py).
#: Chromium then ignores such a base; a same-origin base still applies. The full policy
#: already has ``base-uri 'self'``.
_BASE_URI_ONLY = (b"content-security-policy", b"base-uri 'self'")
_REPORTING = FETCHING_HEADERS - {b"link", b"refresh"}
#: Distinct allowed sets whose CSP header is remembered (a site has few consent states).
_MAX_ALLOWED_SETS = 1024
#: Distinct (app start headers, allowed set, length) whose rewritten-page edit is remembered.
_MAX_EDITS = 1024


class ResponseHeaders:
    """Edits a held start message in place (``start["headers"]`` replaced)."""

    def __init__(self, gated: GatedHeaders, csp: CspBuilder, matcher: HostMatcher) -> None:
        self.gated = gated
        self.csp = csp
        self.matcher = matcher
        #: What a rewritten page appends, per allowed set: ((CSP name, value),), or () with
        #: [csp] mode = "off". A pure function of the set (CspBuilder.value is); bounded.
        self._appended: dict[frozenset[str], tuple[tuple[bytes, bytes], ...]] = {}
        self._enforced_none = ((b"content-security-policy", csp.value(_NO_PARTNER)),)
        #: A rewritten page's edited headers per (the app's raw start headers, allowed set,
        #: enforced, drop_length, length): ``rewritten`` is a pure function of these when no
        #: fetching header (Link, Refresh ...) is among them, and a site sends few distinct
        #: starts (a memo hit sends the same one). Oldest out first; bounded.
        self._edited: dict[tuple[object, ...], tuple[tuple[bytes, bytes], ...]] = {}

    def _csp_for(self, allowed: frozenset[str]) -> tuple[tuple[bytes, bytes], ...]:
        appended = self._appended.get(allowed)
        if appended is None:
            csp = self.csp
            if csp.enforced:
                appended = ((csp.header_name, csp.value(allowed)),)
            elif csp.enabled:  # report-only: the report-only policy, and the base rule enforced
                appended = ((csp.header_name, csp.value(allowed)), _BASE_URI_ONLY)
            else:
                appended = (_BASE_URI_ONLY,)
            if len(self._appended) < _MAX_ALLOWED_SETS:
                self._appended[allowed] = appended
        return appended

    def edit(self, start: Message, scope: Scope, *, private: bool,
             drop_validators: bool = False, frame_options: bool = False,
             csp: tuple[bytes, bytes] | None = None, drop_length: bool = False,
             length: bytes | None = None) -> None:
        """One pass over the raw start headers (see GatedHeaders.edit), ``csp`` appended;
        then the fetching headers, when there are any; then Content-Length = ``length``."""
        self._apply(start, scope, private=private, drop_validators=drop_validators,
                    frame_options=frame_options, append=(csp,) if csp is not None else (),
                    drop_length=drop_length, length=length)

    def _apply(self, start: Message, scope: Scope, *, private: bool, drop_validators: bool,
               frame_options: bool, append: tuple[tuple[bytes, bytes], ...],
               drop_length: bool, length: bytes | None) -> None:
        """The header pass, then the fetching headers (Link, Refresh ...) when there are any."""
        edited, fetching = self.gated.edit(
            start.get("headers", ()), private=private, drop_validators=drop_validators,
            frame_options=frame_options, append=append, drop_length=drop_length, length=length)
        start["headers"] = edited
        if fetching:
            self.gate_fetching(start, scope)
            if length is not None:  # after the fetching headers, as MutableHeaders put it
                set_header(start["headers"], b"content-length", length)

    def rewritten(self, start: Message, scope: Scope, allowed: frozenset[str], *,
                  enforced_no_partner: bool, drop_length: bool = False,
                  length: bytes | None = None) -> None:
        """A rewritten page: private, no validators, the CSP of its ``allowed`` partners.
        (``_apply``'s steps written out: this runs on every page.)"""
        raw = start.get("headers", ())
        key: tuple[object, ...] | None = None
        if type(raw) is list:
            key = (tuple(raw), allowed, enforced_no_partner, drop_length, length)
            try:
                done = self._edited.get(key)
            except TypeError:  # an unhashable pair (a list, a bytearray): edited afresh
                key = done = None
            if done is not None:
                start["headers"] = list(done)
                return
        append: tuple[tuple[bytes, bytes], ...]
        if enforced_no_partner:
            append = self._enforced_none
        else:
            known = self._appended.get(allowed)
            append = self._csp_for(allowed) if known is None else known
        edited, fetching = self.gated.edit(
            raw, private=True, drop_validators=True, frame_options=True,
            append=append, drop_length=drop_length, length=length)
        start["headers"] = edited
        if fetching:
            self.gate_fetching(start, scope)
            if length is not None:  # after the fetching headers, as MutableHeaders put it
                set_header(start["headers"], b"content-length", length)
        elif key is not None:
            edits = self._edited
            if len(edits) >= _MAX_EDITS:
                del edits[next(iter(edits))]
            edits[key] = tuple(edited)

    def no_partner(self, start: Message, scope: Scope, what: str | None, *, private: bool,
                   drop_length: bool = False) -> None:
        """A document passed as sent: the browser enforces 'no partner' whatever [csp] mode
        says, because we could not read (or log) what it loads. ``drop_length``: its body
        leaves changed (decoded, http-equiv respelled), so its Content-Length and validators
        go: a strong ETag names the bytes the app sent, and a cache or a Range request with
        If-Range would pair the app's ETag with the gate's bytes."""
        if what is not None:
            logger.warning(
                "consent-gate: %s %s sent %s, which cannot be rewritten; it goes out as sent with "
                "an enforced CSP that allows no partner. Fix: let the app send identity UTF-8 (or "
                "other ASCII-compatible) HTML and put compression (GZipMiddleware, the reverse "
                "proxy) outside ConsentMiddleware.", scope["method"], scope["path"], what)
        self.edit(start, scope, private=private, frame_options=True,
                  csp=(b"content-security-policy", self.csp.value(_NO_PARTNER)),
                  drop_length=drop_length, drop_validators=drop_length)

    def _blocked(self, url: str) -> bool:
        host = HostMatcher.host_of_url(url)
        if host is None:
            return "//" in url  # an absolute URL we cannot read: fail closed
        return self.matcher.partner_for_host(host) is not None

    def _gate_reporting(self, start: Message) -> None:
        """``Speculation-Rules`` (a rule set fetched from its URL, with our enforced CSP too:
        measured in Chromium 156), ``Reporting-Endpoints``/``Report-To`` and a site CSP's
        ``report-uri`` (the page's reports, with its URL, POSTed there): what names a partner
        is dropped. Our own CSP (appended last) reports to our own endpoint only."""
        out: list[tuple[bytes, bytes]] = []
        for key, value in start.get("headers", ()):
            if key in _REPORTING:
                text = value.decode("latin-1")
                kept: str | None
                if key == b"report-to":
                    kept = gated_report_to(text, self._blocked)
                elif key == b"speculation-rules" or key == b"reporting-endpoints":
                    kept = gated_members(text, self._blocked)
                else:
                    kept = gated_csp(text, self._blocked)
                if kept is None:
                    continue
                value = kept.encode("latin-1")
            out.append((key, value))
        start["headers"] = out

    def gate_fetching(self, start: Message, scope: Scope) -> None:
        """``Link`` (preload, preconnect, prefetch) and ``Refresh`` act before any HTML is read,
        and preconnect is governed by no CSP: entries aimed at any partner are dropped, even a
        consented one (no ledger row would precede that contact; the partner's tags in the
        page still load it, after their record)."""
        raw = start.get("headers", ())
        if not any(k in FETCHING_HEADERS for k, _ in raw):
            return
        if any(k in _REPORTING for k, _ in raw):
            self._gate_reporting(start)
            if not any(k == b"link" or k == b"refresh" for k, _ in start["headers"]):
                return
        headers = MutableHeaders(scope=start)
        blocked = self._blocked

        links = headers.getlist("link")
        if links:
            del headers["link"]
            for value in links:
                kept = gated_link(value, blocked)
                if kept is not None:
                    headers.append("link", kept)
        refreshes = headers.getlist("refresh")
        if any(blocked(refresh_url(v)) for v in refreshes):
            logger.warning("consent-gate: %s %s: a Refresh header to a partner was dropped "
                           "(it would navigate there before any record)",
                           scope["method"], scope["path"])
            del headers["refresh"]
