"""consent-gate's own routes under ``[policy] prefix`` and the UI fragments it injects.

:class:`ConsentUI` answers ``POST {prefix}choice``, ``GET {prefix}preferences``,
``{prefix}partners``, ``{prefix}banner.css``, ``{prefix}banner.js`` and
``/.well-known/gpc.json``; it also hands the middleware the precomputed banner, footer
link and click-to-load placeholder bytes. Everything that does not depend on the
request is built in ``__init__``: a request costs a dict lookup or a short join.

CSRF and clickjacking: choices are accepted only from same-origin POSTs (``Sec-Fetch-Site``
and ``Origin``; with neither, a same-origin ``Referer``), never from a form submitted inside
a frame (``Sec-Fetch-Dest``) nor from the banner script running in another site's frame
(it says so in the ``framed`` field): a cookie set there is not stored by the browser, so
the ledger would record a consent the visitor does not have. Our pages may be framed only
by the site itself (``frame-ancestors 'self'``, ``X-Frame-Options``). Redirects go only to
same-site relative paths.

References: Fetch Metadata, https://www.w3.org/TR/fetch-metadata/ ;
GPC well-known resource, https://privacycg.github.io/gpc-spec/#gpc-support-resource
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from importlib import resources
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import Receive, Scope, Send

from .config import Config, Partner
from .consent import Consent, ConsentResolver
from .errors import ConfigError, ConsentGateError
from .ui import templates
from .ui.texts import DEFAULT_TEXTS

#: Distinct Accept-Language values whose best language is remembered.
_MAX_REMEMBERED_LANGUAGES = 1024

__all__ = ["ACTIONS", "SOURCES", "ConsentUI", "RecordEvent", "safe_return_path"]

logger = logging.getLogger("consent_gate")

#: (action "given"|"changed"|"withdrawn", new consent, previous consent, source, scope)
RecordEvent = Callable[[str, Consent, "Consent | None", str, Scope], Awaitable[None]]
#: ``POST {prefix}collect`` after the same-origin and size checks: (scope, consent, JSON body)
#: -> (status, JSON answer). Server-side forwarding provides it (forward/collect.py).
Collect = Callable[[Scope, Consent, bytes], Awaitable[tuple[int, Mapping[str, Any]]]]
COLLECT_MAX_BODY = 4096

ACTIONS = frozenset({"accept-all", "reject-all", "save", "withdraw"})
SOURCES = frozenset({"banner", "preferences", "form", "placeholder"})
#: Form fields that carry control data; a purpose may not use these ids.
RESERVED_FIELDS = frozenset({"action", "source", "return_to", "granted", "framed"})
MAX_BODY = 16 * 1024
MAX_FIELDS = 200
WELL_KNOWN_GPC = "/.well-known/gpc.json"

# img-src 'self': the owner's header may carry the site's logo ([site] header_html).
PAGE_CSP = ("default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; "
            "form-action 'self'; frame-ancestors 'self'; base-uri 'none'")
_SECURITY_HEADERS = {
    "Content-Security-Policy": PAGE_CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "SAMEORIGIN",
}
_NO_STORE = {**_SECURITY_HEADERS, "Cache-Control": "no-store"}
#: A refusal has no buttons: it may show inside the frame the refused choice came from.
_REFUSAL_HEADERS = {
    **{k: v for k, v in _NO_STORE.items() if k != "X-Frame-Options"},
    "Content-Security-Policy": PAGE_CSP.replace("frame-ancestors 'self'", "frame-ancestors *"),
}
_ON = frozenset({"on", "1", "true", "yes"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def safe_return_path(value: str | None) -> str | None:
    """``value`` when it is a same-site relative path (``/...``), else None.

    Refuses other hosts, scheme-relative ``//host``, ``/\\host`` (browsers read ``\\`` as
    ``/``), ``javascript:`` and anything with whitespace or control characters (browsers
    strip tabs and newlines from URLs, turning ``/\\t/evil`` into ``//evil``). Browsers
    percent-encode ``"<>`` in ``location.pathname``/``search``, so refusing them costs nothing.
    """
    if not value or len(value) > 2048 or value[0] != "/":
        return None
    if value.startswith("//") or "\\" in value:
        return None
    if any(not 0x21 <= ord(c) <= 0x7E or c in '"<>`' for c in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message


class ConsentUI:
    """The consent UI and routes; one instance per middleware, stateless across requests."""

    def __init__(self, config: Config, resolver: ConsentResolver, *,
                 record_event: RecordEvent | None = None, collect: Collect | None = None) -> None:
        self.config = config
        self.collect = collect
        self.resolver = resolver
        self.record_event = record_event
        policy = config.policy
        self.prefix = policy.prefix
        reserved = sorted(RESERVED_FIELDS & set(config.purposes))
        if reserved:
            raise ConfigError(config.source, f"purposes.{reserved[0]}",
                              "this id is reserved by the consent form; rename the purpose")
        others = (lang for lang in config.ui.texts if lang != "en")
        self.languages: tuple[str, ...] = ("en", *others)
        self.default_language = config.ui.default_language
        self._lang_lookup = {lang.lower(): lang for lang in self.languages}
        self._languages_by_header: dict[bytes, str] = {}

        self.css = resources.files("middleware.ui").joinpath("banner.css").read_bytes()
        self.js = resources.files("middleware.ui").joinpath("banner.js").read_bytes()
        css_etag, js_etag = _etag(self.css), _etag(self.js)
        self._assets: Mapping[str, tuple[bytes, str, str]] = MappingProxyType({
            self.prefix + "banner.css": (self.css, "text/css; charset=utf-8", css_etag),
            self.prefix + "banner.js": (self.js, "text/javascript; charset=utf-8", js_etag),
        })
        urls = templates.Urls(prefix=self.prefix,
                              css=f"{self.prefix}banner.css?v={css_etag[1:9]}",
                              js=f"{self.prefix}banner.js?v={js_etag[1:9]}")
        self.urls = urls

        self._banners: dict[tuple[str, bool, bool, bool | None], bytes] = {}
        self._footers: dict[str, bytes] = {}
        self._opt_out_footers: dict[tuple[str, bool], bytes] = {}
        self._skip_links: dict[str, bytes] = {}
        self._partners_pages: dict[str, tuple[bytes, str]] = {}
        self._preferences: dict[str, templates.PreferencesTemplate] = {}
        self._placeholders: dict[tuple[str, str], tuple[bytes, bytes]] = {}
        self._placeholder_parts: dict[str, dict[str, tuple[bytes, bytes]]] = {}
        for lang in self.languages:
            texts = self.texts(lang)
            for stale in (False, True):
                for gpc in (False, True):
                    for opt_out in (None, False, True):
                        self._banners[(lang, stale, gpc, opt_out)] = templates.banner(
                            config, texts, lang, urls, stale=stale, gpc=gpc, opt_out=opt_out).encode()
                    self._opt_out_footers[(lang, gpc)] = templates.footer_link(
                        texts, lang, urls, do_not_sell=True, gpc=gpc).encode()
            self._footers[lang] = templates.footer_link(texts, lang, urls).encode()
            self._skip_links[lang] = templates.skip_link(texts, lang).encode()
            body = templates.partners_page(config, texts, lang, urls).encode()
            self._partners_pages[lang] = (body, _etag(body))
            self._preferences[lang] = templates.preferences_template(config, texts, lang, urls)
            for partner in config.partners.values():
                head, tail = templates.placeholder_parts(config, partner, texts, lang, urls)
                self._placeholders[(partner.id, lang)] = (head.encode(), tail.encode())
                self._placeholder_parts.setdefault(lang, {})[partner.id] = (
                    self._placeholders[(partner.id, lang)])
        self._gpc_json = json.dumps(
            {"gpc": True, "lastUpdate": policy.effective.isoformat()}).encode()

        cookie = policy.cookie
        self._cookie_max_age = cookie.max_age_days * 86400
        self._routes: Mapping[str, tuple[tuple[str, ...], Callable[..., Awaitable[Response]]]] = {
            self.prefix + "choice": (("POST",), self._choice),
            self.prefix + "preferences": (("GET", "HEAD"), self._preferences_page),
            self.prefix + "partners": (("GET", "HEAD"), self._partners_page),
            self.prefix + "banner.css": (("GET", "HEAD"), self._asset),
            self.prefix + "banner.js": (("GET", "HEAD"), self._asset),
        }
        if policy.honor_gpc:
            self._routes = {**self._routes, WELL_KNOWN_GPC: (("GET", "HEAD"), self._gpc)}
        if collect is not None:
            self._routes = {**self._routes, self.prefix + "collect": (("POST",), self._collect)}

    def mount(self, name: str, endpoint: Callable[[Scope, Receive, Consent], Awaitable[Response]],
              methods: tuple[str, ...] = ("GET", "HEAD")) -> None:
        """Add a page at ``{prefix}{name}`` (the my-data page); it gets the pages' strict CSP."""

        async def page(scope: Scope, receive: Receive, consent: Consent) -> Response:
            response = await endpoint(scope, receive, consent)
            for key, value in _SECURITY_HEADERS.items():
                response.headers.setdefault(key, value)
            return response

        self._routes = {**self._routes, self.prefix + name: (methods, page)}

    # ------------------------------------------------------------------ for the middleware

    def texts(self, lang: str) -> Mapping[str, str]:
        """DEFAULT_TEXTS overridden by ``[ui.texts.LANG]``."""
        return {**DEFAULT_TEXTS, **self.config.ui.texts.get(lang, {})}

    def owns(self, path: str) -> bool:
        if path.startswith(self.prefix) or path == self.prefix[:-1]:
            return True
        return path == WELL_KNOWN_GPC and self.config.policy.honor_gpc

    def language(self, scope: Scope) -> str:
        """The best configured language for the request's ``Accept-Language`` (a pure
        function of the header's value: remembered per value, bounded)."""
        raw = b""
        for key, value in scope.get("headers", ()):
            if key == b"accept-language":
                raw = value
                break
        return self.language_of(raw)

    def language_of(self, raw: bytes) -> str:
        """``language`` for the request's first raw ``Accept-Language`` value (b"": none)."""
        known = self._languages_by_header.get(raw)
        if known is None:
            known = self._language(raw.decode("latin-1"))
            if len(self._languages_by_header) < _MAX_REMEMBERED_LANGUAGES:
                self._languages_by_header[raw] = known
        return known

    def _language(self, header: str) -> str:
        ranges: list[tuple[float, int, str]] = []
        for i, item in enumerate(header.split(",")[:32]):
            tag, _, params = item.strip().partition(";")
            q = 1.0
            params = params.strip()
            if params.startswith("q="):
                try:
                    q = float(params[2:])
                except ValueError:
                    continue
            if tag and q > 0:
                ranges.append((-q, i, tag.strip().lower()))
        for _, _, tag in sorted(ranges):
            if tag == "*":
                return self.default_language
            found = self._lang_lookup.get(tag) or self._lang_lookup.get(tag.split("-")[0])
            if found is None:
                primary = tag.split("-")[0]
                found = next((lang for lang in self.languages
                              if lang.lower().split("-")[0] == primary), None)
            if found is not None:
                return found
        return self.default_language

    def _lang(self, lang: str) -> str:
        return lang if lang in self._footers else self.default_language

    def banner(self, consent: Consent, lang: str) -> bytes:
        """The banner for an undecided visitor (b"" once a choice is stored)."""
        if not consent.needs_banner:
            return b""
        stance = consent.stance
        return self._banners[(self._lang(lang), consent.stale_version is not None, consent.gpc,
                              None if stance is None else stance != "opt-in")]

    def skip_link(self, consent: Consent, lang: str) -> bytes:
        """Injected right after ``<body>`` while the banner is shown (b"" otherwise)."""
        return self._skip_links[self._lang(lang)] if consent.needs_banner else b""

    def footer_link(self, lang: str, consent: Consent | None = None) -> bytes:
        if consent is not None and consent.stance == "opt-out":
            return self._opt_out_footers[(self._lang(lang), consent.gpc)]
        return self._footers[self._lang(lang)]

    def placeholder_parts(self, lang: str) -> Mapping[str, tuple[bytes, bytes]]:
        """Each partner's placeholder around its size: ``placeholder(pid, attrs, lang) ==
        head + templates.placeholder_size(attrs).encode() + tail``."""
        return self._placeholder_parts.get(self._lang(lang), {})

    def placeholder(self, partner_id: str, attrs: Mapping[str, str], lang: str) -> bytes:
        parts = self._placeholders.get((partner_id, self._lang(lang)))
        if parts is None:
            return b""
        head, tail = parts
        return head + templates.placeholder_size(attrs).encode() + tail

    # ------------------------------------------------------------------ routing

    async def handle(self, scope: Scope, receive: Receive, send: Send, consent: Consent) -> None:
        path: str = scope["path"]
        route = self._routes.get(path)
        if route is None:
            response: Response = _plain(404, self.texts(self.language(scope))["not_found"])
        else:
            methods, endpoint = route
            method = scope["method"].upper()
            if method not in methods:
                response = _plain(405, "Method not allowed.", {"Allow": ", ".join(methods)})
            else:
                response = await endpoint(scope, receive, consent)
        await _send(response, scope, receive, send)

    # ------------------------------------------------------------------ endpoints

    async def _asset(self, scope: Scope, receive: Receive, consent: Consent) -> Response:
        body, media_type, etag = self._assets[scope["path"]]
        headers = {"Cache-Control": "public, max-age=86400", "ETag": etag,
                   "X-Content-Type-Options": "nosniff"}
        if _etag_matches(Headers(scope=scope).get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=media_type, headers=headers)

    async def _gpc(self, scope: Scope, receive: Receive, consent: Consent) -> Response:
        return Response(self._gpc_json, media_type="application/json",
                        headers={"Cache-Control": "public, max-age=86400",
                                 "X-Content-Type-Options": "nosniff"})

    async def _partners_page(self, scope: Scope, receive: Receive, consent: Consent) -> Response:
        body, etag = self._partners_pages[self.language(scope)]
        headers = {**_SECURITY_HEADERS, "Cache-Control": "public, max-age=300",
                   "Vary": "Accept-Language", "ETag": etag}
        if _etag_matches(Headers(scope=scope).get("if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="text/html; charset=utf-8", headers=headers)

    async def _preferences_page(self, scope: Scope, receive: Receive,
                                consent: Consent) -> Response:
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                               max_num_fields=MAX_FIELDS) if _qs_ok(scope) else [])
        headers = Headers(scope=scope)
        # Without JS the banner's "Choose" link cannot carry the page: the Referer can.
        return_to = (safe_return_path(query.get("return_to"))
                     or _referer_path(headers.get("referer"), self._own_origin(scope, headers))
                     or "")
        if return_to.startswith(self.prefix):
            return_to = ""
        granted = consent.chosen if consent.decided else consent.granted
        if consent.gpc:
            granted = consent.granted
        html = self._preferences[self.language(scope)].render(
            consent_id=consent.consent_id, granted=granted, gpc=consent.gpc, return_to=return_to)
        return Response(html, media_type="text/html; charset=utf-8", headers=_NO_STORE)

    async def _choice(self, scope: Scope, receive: Receive, consent: Consent) -> Response:
        headers = Headers(scope=scope)
        own_origin = self._own_origin(scope, headers)
        refusal = _cross_site_refusal(headers, own_origin)
        if refusal is not None:
            return self._refused(refusal)
        try:
            fields = _parse_body(headers, await _read_body(headers, receive))
            if _one(fields, "framed"):
                return self._refused(_FRAMED)
            action = _one(fields, "action")
            if action not in ACTIONS:
                raise _BadRequest(400, "Unknown or missing action; expected one of: "
                                  + ", ".join(sorted(ACTIONS)) + ".")
            source = _one(fields, "source") or "form"
            if source not in SOURCES:
                raise _BadRequest(400, "Unknown source; expected one of: "
                                  + ", ".join(sorted(SOURCES)) + ".")
        except _BadRequest as exc:
            return _plain(exc.status, exc.message)
        except _Disconnected:
            return _plain(400, "The request body was not received.")

        granted = self._granted_for(action, source, fields, consent)
        new, cookie_value = self.resolver.choose(granted, source, previous=consent)
        secure = self._secure(scope, headers)
        expire = self._partners_to_expire(consent, new, withdraw=action == "withdraw")

        if self.record_event is not None:
            event = ("withdrawn" if action == "withdraw"
                     else "changed" if consent.decided else "given")
            try:
                await self.record_event(event, new, consent, source, scope)
            except ConsentGateError as exc:
                # The visitor's choice still applies; the disclosure log fails closed on its own.
                logger.error("consent event not recorded: %s", exc)

        if "application/json" in headers.get("accept", ""):
            response: Response = JSONResponse(
                {"granted": sorted(new.granted), "allowed_partners": sorted(new.allowed_partners),
                 "reload": True}, headers=_NO_STORE)
        else:
            target = (safe_return_path(_one(fields, "return_to"))
                      or _referer_path(headers.get("referer"), own_origin) or "/")
            response = RedirectResponse(target, status_code=303, headers=_NO_STORE)
        cookie = self.config.policy.cookie
        response.set_cookie(cookie.name, cookie_value, max_age=self._cookie_max_age, path="/",
                            domain=cookie.domain, secure=secure, httponly=True, samesite="lax")
        for header in _expiry_headers(expire, secure):
            response.raw_headers.append((b"set-cookie", header.encode("latin-1")))
        return response

    async def _collect(self, scope: Scope, receive: Receive, consent: Consent) -> Response:
        """A first-party event for server-side forwarding: same-origin JSON only (a cross-site
        page cannot send JSON without a CORS preflight, which is never granted)."""
        headers = Headers(scope=scope)
        refusal = _cross_site_refusal(headers, self._own_origin(scope, headers))
        if refusal is not None:
            return _plain(403, refusal)
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _plain(415, "Expected application/json.")
        try:
            body = await _read_body(headers, receive, COLLECT_MAX_BODY)
        except _BadRequest as exc:
            return _plain(exc.status, exc.message)
        except _Disconnected:
            return _plain(400, "The request body was not received.")
        if self.collect is None:  # the route is registered only with a handler
            return _plain(404, "Not found.")
        status, answer = await self.collect(scope, consent, body)
        return JSONResponse(answer, status_code=status, headers=_NO_STORE)

    # ------------------------------------------------------------------ helpers

    def _refused(self, reason: str) -> Response:
        """403 with a page that says why and how to choose (in a page of its own)."""
        page = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>Choice not saved</title><link rel=\"stylesheet\" href=\"{self.urls.css}\">"
                "</head><body class=\"consent-gate-page\"><main><h1>Your choice was not saved</h1>"
                f"<p>{html.escape(reason)}</p><p><a href=\"{self.prefix}preferences\" target=\"_top\">"
                "Open the privacy choices page</a> to choose again.</p></main></body></html>")
        return Response(page, status_code=403, media_type="text/html; charset=utf-8",
                        headers=_REFUSAL_HEADERS)

    def _granted_for(self, action: str, source: str, fields: Mapping[str, list[str]],
                     previous: Consent) -> frozenset[str]:
        if action == "accept-all":
            return frozenset(self.config.purposes)
        if action in ("reject-all", "withdraw"):
            return frozenset()
        picked = {p for p in self.config.purposes
                  if any(v.lower() in _ON for v in fields.get(p, ()))}
        picked.update(g for g in fields.get("granted", ()) if g in self.config.purposes)
        if source == "placeholder":
            # A placeholder's form only knows its partner's purposes: it adds, never narrows.
            picked |= previous.chosen if previous.decided else previous.granted
        return frozenset(picked)

    def _partners_to_expire(self, previous: Consent, new: Consent, *,
                            withdraw: bool) -> list[Partner]:
        removed = (previous.granted | previous.chosen) - new.granted
        out = []
        for partner in self.config.partners.values():
            if new.allows_partner(partner.id):
                continue
            if withdraw or removed.intersection(partner.purposes):
                out.append(partner)
        return out

    def _scheme(self, scope: Scope, headers: Headers) -> str:
        scheme = str(scope.get("scheme", "http")).lower()
        if self.config.policy.trust_proxy:
            forwarded = headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
            if forwarded in ("http", "https"):
                scheme = forwarded
        return scheme

    def _secure(self, scope: Scope, headers: Headers) -> bool:
        mode = self.config.policy.cookie.secure
        if mode != "auto":
            return mode == "always"
        return self._scheme(scope, headers) == "https"

    def _own_origin(self, scope: Scope, headers: Headers) -> tuple[str, str] | None:
        """(scheme, host[:port]) of this request, from the Host header."""
        host = headers.get("host")
        if not host:
            server = scope.get("server")
            if not server:
                return None
            host = f"{server[0]}:{server[1]}"
        return self._scheme(scope, headers), _normal_host(self._scheme(scope, headers), host)


class _Disconnected(Exception):
    pass


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = (t.strip().removeprefix("W/") for t in header.split(","))
    return header.strip() == "*" or etag in tags


def _plain(status: int, message: str, extra: Mapping[str, str] | None = None) -> Response:
    return Response(message + "\n", status_code=status, media_type="text/plain; charset=utf-8",
                    headers={**_NO_STORE, **(extra or {})})


async def _send(response: Response, scope: Scope, receive: Receive, send: Send) -> None:
    if scope.get("method", "").upper() == "HEAD":
        await send({"type": "http.response.start", "status": response.status_code,
                    "headers": response.raw_headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await response(scope, receive, send)


def _qs_ok(scope: Scope) -> bool:
    return len(scope.get("query_string", b"")) <= 4096


def _normal_host(scheme: str, host: str) -> str:
    host = host.strip().lower()
    name, sep, port = host.rpartition(":")
    if sep and port == _DEFAULT_PORTS.get(scheme) and (":" not in name or name.endswith("]")):
        return name
    return host


def _origin_of(url: str) -> tuple[str, str] | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return parts.scheme, _normal_host(parts.scheme, parts.netloc)


def _same_origin(origin: tuple[str, str] | None, own: tuple[str, str] | None) -> bool:
    if origin is None or own is None or origin[1] != own[1]:
        return False
    # Behind a TLS-terminating proxy without trust_proxy the app sees http while the
    # browser says https: the same host over https is still this site.
    return origin[0] == own[0] or (origin[0] == "https" and own[0] == "http")


#: Sec-Fetch-Dest of a form submitted inside a frame (a nested navigation).
_FRAME_DESTS = frozenset({"iframe", "frame", "embed", "object", "fencedframe"})
_FRAMED = ("Refused: this choice was made inside a frame of another site. Your browser would "
           "not keep it there, so it was neither saved nor recorded.")


def _cross_site_refusal(headers: Headers, own: tuple[str, str] | None) -> str | None:
    """Why a consent POST is refused, or None when it comes from one of our own pages."""
    dest = (headers.get("sec-fetch-dest") or "").strip().lower()
    if dest in _FRAME_DESTS:
        return ("Refused: this choice was made in a form inside a frame (Sec-Fetch-Dest: "
                + dest + "), so it was neither saved nor recorded.")
    site = headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() != "same-origin":
        return ("Refused: consent choices are accepted only from this site's own pages "
                "(Sec-Fetch-Site is not same-origin).")
    origin = headers.get("origin")
    if origin is not None and origin.strip() == "null" and site is not None:
        # Sec-Fetch-Site said same-origin: a page with Referrer-Policy: no-referrer sends
        # "Origin: null" with its POSTs. An opaque (sandboxed) initiator is cross-site.
        origin = None
    if origin is not None and not _same_origin(_origin_of(origin.strip()), own):
        return ("Refused: consent choices are accepted only from this site's own pages "
                "(the Origin header names another site).")
    if site is None and origin is None and not _same_origin(_origin_of(headers.get("referer", "")), own):
        # Every current browser sends Origin or Sec-Fetch-Site with a POST; without them the
        # Referer is the only sign that the form was on our page.
        return ("Refused: your browser sent neither Origin, Sec-Fetch-Site nor a Referer from "
                "this site, so this choice cannot be told apart from a forged one. A privacy "
                "extension that strips these headers can cause this; allow them for this site.")
    return None


def _referer_path(referer: str | None, own: tuple[str, str] | None) -> str | None:
    if not referer or not _same_origin(_origin_of(referer), own):
        return None
    parts = urlsplit(referer)
    path = parts.path + ("?" + parts.query if parts.query else "")
    return safe_return_path(path)


async def _read_body(headers: Headers, receive: Receive, limit: int = MAX_BODY) -> bytes:
    length = headers.get("content-length")
    if length is not None:
        length = length.strip()
        # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
        if not (length.isascii() and length.isdigit()):
            raise _BadRequest(400, "Invalid Content-Length.")
        if len(length) > 18 or int(length) > limit:
            raise _BadRequest(413, f"Request body too large (limit {limit} bytes).")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body = message.get("body", b"")
        size += len(body)
        if size > limit:
            raise _BadRequest(413, f"Request body too large (limit {limit} bytes).")
        chunks.append(body)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse_body(headers: Headers, body: bytes) -> dict[str, list[str]]:
    content_type = headers.get("content-type", "application/x-www-form-urlencoded")
    media = content_type.split(";")[0].strip().lower()
    fields: dict[str, list[str]] = {}
    if media == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True,
                              encoding="utf-8", errors="strict", max_num_fields=MAX_FIELDS)
        except ValueError:  # UnicodeDecodeError included
            raise _BadRequest(400, "Malformed form body.") from None
        for key, value in pairs:
            fields.setdefault(key, []).append(value)
        return fields
    if media == "application/json":
        try:
            data: Any = json.loads(body)
        except (ValueError, RecursionError):
            raise _BadRequest(400, "Malformed JSON body.") from None
        if not isinstance(data, dict):
            raise _BadRequest(400, "Expected a JSON object.")
        for key, value in data.items():
            values = _json_values(value)
            if values is None:
                raise _BadRequest(400, "Expected strings, booleans or lists of strings.")
            fields[str(key)] = values
        return fields
    raise _BadRequest(415, "Expected application/x-www-form-urlencoded or application/json.")


def _json_values(value: object) -> list[str] | None:
    if value is True:
        return ["on"]
    if value is False or value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


def _one(fields: Mapping[str, list[str]], name: str) -> str | None:
    values = fields.get(name)
    return values[0] if values else None


def _expiry_headers(partners: Iterable[Partner], secure: bool) -> list[str]:
    """``NAME=; Max-Age=0; Path=/`` per partner cookie, once more per declared domain."""
    out: list[str] = []
    suffix = "; Secure" if secure else ""
    for partner in partners:
        for name in partner.cookies:
            out.append(f"{name}=; Max-Age=0; Path=/{suffix}")
            for domain in partner.cookie_domains:
                out.append(f"{name}=; Max-Age=0; Path=/; Domain={domain}{suffix}")
    # Two partners may share a cookie name; one header per cookie is enough.
    return list(dict.fromkeys(out))
