"""ConsentMiddleware: wraps any ASGI app, enforcing the visitor's consent on every HTML page.

One request: read the consent once, answer our own routes, otherwise call the site with
``scope["state"]["consent"]`` and rewrite its HTML as it streams out. Work that does not
depend on the request (config, keys, host patterns, snippets, CSP values) is done once here.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from . import scan_token
from .config import Config, load_config
from .consent import Consent, ConsentCodec, ConsentResolver
from .csp import CspBuilder
from .csp_reports import CspReports
from .disclosure import Discloser, RequestInfo
from .errors import LedgerUnavailable
from .headers import (
    GatedHeaders,
    cookie_value,
    gated_link,
    header_value,
    set_header,
)
from .hosts import HostMatcher
from .html.fetch import refresh_url
from .html.refresh_guard import RefreshRespeller
from .inflate import DECODABLE, InflateError, Inflater
from .memo import RewriteMemo, Rewritten
from .plan import PlanBuilder, charset_of
from .review.mydata import MyDataPage
from .review.proof import BannerVersions
from .review.recorder import ReviewRecorder
from .rewrite import HtmlRewriter, RewritePlan
from .routes import WELL_KNOWN_GPC, ConsentUI
from .secrets import dev_mode_requested, signing_keys
from .signals.jurisdiction import client_ip
from .signals.macros import MacroStream
from .signals.reader import signal_reader
from .sniff import (
    SNIFF_BYTES,
    BodyKind,
    bom_prefix,
    classify,
    sniff,
    unreadable_charset,
    wide_bom,
)

if TYPE_CHECKING:
    from .forward.forwarder import Forwarder

logger = logging.getLogger("consent_gate")

#: Any ASGI 3 application; looser than starlette's alias so Litestar/Django apps type-check too.
AnyASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
#: Distinct raw Cookie headers whose consent cookie value is remembered.
_MAX_COOKIE_HEADERS = 4096
_NO_HOSTS: frozenset[str] = frozenset()
_SCAN_HEADER = scan_token.HEADER_BYTES


class ConsentMiddleware:
    """Pure ASGI middleware; stateless across requests (a responder object per response)."""

    def __init__(
        self,
        app: AnyASGIApp,
        config: str | Path | Config = "partners.toml",
        *,
        secret: str | Sequence[str] | None = None,
        dev: bool | None = None,
        ledger: Discloser | None = None,
    ) -> None:
        self.app = app
        self.config = config if isinstance(config, Config) else load_config(config)
        policy = self.config.policy
        dev_mode = dev_mode_requested() if dev is None else dev
        environ = None
        if secret is not None:
            # Keys given in code get the same checks as keys from the environment.
            given = (secret,) if isinstance(secret, str) else tuple(secret)
            environ = {policy.secret_env: ",".join(given)}
        keys = signing_keys(policy.secret_env, dev=dev_mode, environ=environ)
        self.keys = keys
        self.codec = ConsentCodec(keys, max_age_seconds=policy.cookie.max_age_days * 86400)
        self.resolver = ConsentResolver(self.config, self.codec)
        self.signals = signal_reader(self.config)
        self.signals_active = self.signals.active  # (both fixed by the config)
        self.signals_need_ip = self.signals.needs_ip
        self.matcher = HostMatcher({pid: p.hosts for pid, p in self.config.partners.items()})
        self.discloser = ledger if ledger is not None else Discloser.from_config(self.config, keys[0])
        self.forwarder = _forwarder(self.config, keys[0], self.discloser)
        self.review = ReviewRecorder(self.config, _sqlite_path(self.discloser))
        self.ui = ConsentUI(self.config, self.resolver,
                            record_event=self.review.wrap(self.discloser.record_event),
                            collect=self.forwarder.collector if self.forwarder else None)
        self.review.versions = BannerVersions(self.config, self.ui)
        self.my_data: MyDataPage | None = None
        if self.config.site.my_data_page:
            self.my_data = MyDataPage(self.config, self.ui, _sqlite_path(self.discloser)
                                      or _ledger_target(self.discloser))
            self.ui.mount("my-data", self.my_data)
        self.plans = PlanBuilder(self.config, self.matcher, self.ui)
        #: TCF or GPP in use: the page's own bytes get their consent macros filled.
        self.page_macros = self.plans.signals.signals_in_use
        self.csp = CspBuilder(self.config)
        self.csp_reports = CspReports(self.matcher, trust_proxy=policy.trust_proxy,
                                      on_unknown=self.review.saw_csp)
        self.memo = RewriteMemo()
        self.csp_report_path = self.csp.report_uri
        # What ConsentUI.owns answers, read once (its own routes all live under the prefix).
        self.own_prefix = self.ui.prefix
        self.own_paths = frozenset(p for p in (self.ui.prefix[:-1], WELL_KNOWN_GPC)
                                   if self.ui.owns(p))
        self.cookie_name = policy.cookie.name
        self.honor_gpc = policy.honor_gpc
        self.honor_dnt = policy.honor_dnt
        self.vary = (["Cookie", "Accept-Language"] + (["Sec-GPC"] if policy.honor_gpc else [])
                     + list(self.signals.vary))
        #: Vary, private Cache-Control, X-Frame-Options and CSP edits on raw start headers.
        self.gated_headers = GatedHeaders(self.vary, self.csp.frame_options)
        self._charsets: dict[bytes, str | None] = {}
        self._cookie_values: OrderedDict[bytes, str | None] = OrderedDict()

    def charset_of(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The charset of the first Content-Type header (remembered per value, bounded)."""
        value = header_value(headers, b"content-type") or b""
        if value in self._charsets:
            return self._charsets[value]
        known = charset_of(value.decode("latin-1"))
        if len(self._charsets) < 256:
            self._charsets[value] = known
        return known

    def _request_inputs(self, headers: Sequence[tuple[bytes, bytes]]) -> tuple[str | None, bool]:
        """(our cookie's value, the browser's privacy signal) in one pass over the request
        headers. The cookie value of the usual single Cookie header is remembered per raw
        header value (a pure function of it; bounded, least recently used out first)."""
        raw = gpc = dnt = None
        several = False
        for key, value in headers:
            if key == b"cookie":
                several = raw is not None
                raw = value if raw is None else raw
            elif key == b"sec-gpc":
                gpc = value if gpc is None else gpc
            elif key == b"dnt":
                dnt = value if dnt is None else dnt
        # The same as privacy_signal(): only the exact value "1" counts (first header wins).
        signal = bool((self.honor_gpc and gpc is not None and gpc.strip() == b"1")
                      or (self.honor_dnt and dnt is not None and dnt.strip() == b"1"))
        if raw is None:
            return None, signal
        if several:  # several Cookie headers (HTTP/2 may split them)
            return cookie_value(headers, self.cookie_name), signal
        if raw in self._cookie_values:
            self._cookie_values.move_to_end(raw)
            return self._cookie_values[raw], signal
        value_of = cookie_value(((b"cookie", raw),), self.cookie_name)
        self._cookie_values[raw] = value_of
        if len(self._cookie_values) > _MAX_COOKIE_HEADERS:
            self._cookie_values.popitem(last=False)
        return value_of, signal

    def consent_for(self, scope: Scope) -> Consent:
        headers = scope.get("headers", ())
        cookie, signal = self._request_inputs(headers)
        signals = self.signals
        return self.resolver.resolve(
            cookie, signal,
            signals.read(headers, client_ip(scope) if self.signals_need_ip else None)
            if self.signals_active else None,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if scope["path"] == self.csp_report_path:
            await self.csp_reports.handle(scope, receive, send)
            return
        path = scope["path"]
        if path.startswith(self.own_prefix) or path in self.own_paths:  # = self.ui.owns(path)
            await self.ui.handle(scope, receive, send, self.consent_for(scope))
            return
        inner = dict(scope)
        state = ConsentState(scope.get("state") or {}, self, scope)
        inner["state"] = state
        if self.forwarder is not None:
            inner[self.forwarder.SCOPE_KEY] = self.forwarder
        # Ask for identity bodies: compressed HTML could not be rewritten (compression goes
        # outside us). One pass also notices a scan token.
        encoding = scan = False
        for key, _ in scope["headers"]:
            if key == b"accept-encoding":
                encoding = True
            elif key == _SCAN_HEADER:
                scan = True
        if encoding:
            inner["headers"] = [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
        extensions = scope.get("extensions")
        if extensions and "http.response.pathsend" in extensions:
            # A file the server sends itself never passes through us: ask for a body instead.
            inner["extensions"] = {k: v for k, v in extensions.items()
                                   if k != "http.response.pathsend"}
        if scan and scan_token.owner_scan(scope, self.keys):  # the page as the site sends it
            await self.app(inner, receive, scan_token.mark_original(send))
            return
        responder = HtmlResponder(self, inner, send, state)
        await self.app(inner, receive, responder.send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Open the ledger at start-up (errors surface then, not at the first page) and flush
        it at shutdown, around the app's own lifespan handling. An app that does not speak
        the lifespan protocol (Django raises, others just return) gets it answered here, so
        the ledger still opens and ``purge_on_start`` still runs."""
        seen = _LifespanProgress()

        async def app_receive() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                seen.startup_received = True
                await self._open()
                seen.ledger_open = True
            elif message["type"] == "lifespan.shutdown":
                seen.shutdown_received = True
                await self._close()
            return message

        async def app_send(message: Message) -> None:
            if message["type"] in ("lifespan.startup.complete", "lifespan.startup.failed"):
                seen.answered = True
            await send(message)

        try:
            await self.app(scope, app_receive, app_send)
        except Exception as exc:
            if seen.answered:
                raise
            logger.info("consent-gate: the app does not support lifespan (%s: %s); consent-gate "
                        "answers it to open and close the ledger", type(exc).__name__, exc)
        else:
            if seen.answered:
                return
        await self._answer_lifespan(receive, send, seen)

    async def _open(self) -> None:
        await self.discloser.startup()
        await self.review.startup()
        if self.forwarder is not None:
            await self.forwarder.startup()

    async def _close(self) -> None:
        if self.forwarder is not None:
            await self.forwarder.aclose()
        await self.discloser.aclose()
        await self.review.aclose()
        if self.my_data is not None:
            await asyncio.to_thread(self.my_data.close)

    async def _answer_lifespan(self, receive: Receive, send: Send,
                               seen: _LifespanProgress) -> None:
        if not seen.startup_received:
            message = await receive()
            if message["type"] != "lifespan.startup":
                return
        if not seen.ledger_open:
            try:
                await self._open()
            except Exception as exc:
                await send({"type": "lifespan.startup.failed", "message": str(exc)})
                return
        await send({"type": "lifespan.startup.complete"})
        if not seen.shutdown_received:
            while (await receive())["type"] != "lifespan.shutdown":
                pass
            await self._close()
        await send({"type": "lifespan.shutdown.complete"})


@dataclass
class _LifespanProgress:
    """How far the app's own lifespan handling got (see ConsentMiddleware._lifespan)."""

    startup_received: bool = False
    ledger_open: bool = False
    shutdown_received: bool = False
    answered: bool = False


def _forwarder(config: Config, signing_key: str, discloser: Discloser) -> Forwarder | None:
    """Server-side forwarding, when a partner has ``[partners.ID.forward]`` (imported only then)."""
    if not any(p.forward is not None for p in config.partners.values()):
        return None
    from .forward.forwarder import Forwarder

    if discloser.writer is None:
        logger.warning("consent-gate: [partners.*.forward] needs the ledger; forwarding is off")
        return None
    return Forwarder.from_config(config, signing_key, discloser.writer)


def _ledger_target(discloser: Discloser) -> str | None:
    """A PostgreSQL ledger's DSN (the my-data page reads it; review tables are SQLite only)."""
    store = discloser.writer.store if discloser.writer is not None else None
    dsn = getattr(store, "dsn", None)
    return str(dsn) if dsn else None


def _sqlite_path(discloser: Discloser) -> str | None:
    """The ledger's SQLite file, where the review tables live beside it (None otherwise)."""
    store = discloser.writer.store if discloser.writer is not None else None
    path = getattr(store, "path", None)
    return str(path) if path is not None else None


class ConsentState(dict[str, Any]):
    """The request state handed to the site. It notices when the site reads the consent, so
    that any response that may depend on it (JSON, a 404 page) is kept out of shared caches.

    The consent itself is resolved on first use (by the site or by the responder): a view that
    never reads it and returns JSON or a file does not pay for cookie and signal parsing.
    Every way of reading the mapping (``[]``, ``get``, ``in``, ``len``/truthiness, iteration,
    ``copy``, ``dict()``) resolves it first, so no reader sees the state without it.
    """

    __slots__ = ("_gate", "_resolved", "_scope", "consent_read")

    def __init__(self, base: Mapping[str, Any], gate: ConsentMiddleware, scope: Scope) -> None:
        if base:
            dict.update(self, base)
        self._gate = gate
        self._scope = scope
        self._resolved = False
        self.consent_read = False

    @property
    def consent(self) -> Consent:
        """The request's consent, for the middleware (not counted as the site's read)."""
        if not self._resolved:
            self._resolved = True
            super().__setitem__("consent", self._gate.consent_for(self._scope))
        value: Consent = super().__getitem__("consent")
        return value

    def _site_reads(self, key: object) -> None:
        if key == "consent":
            self.consent_read = True
        if not self._resolved:
            self.consent  # noqa: B018 - resolves it

    def __getitem__(self, key: str) -> Any:
        self._site_reads(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._site_reads(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._site_reads(None)
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._site_reads(None)
        return super().__iter__()

    def __len__(self) -> int:  # also truthiness: ``scope.get("state") or {}`` keeps this one
        self._site_reads(None)
        return super().__len__()

    def keys(self) -> Any:
        self._site_reads(None)
        return super().keys()

    def items(self) -> Any:
        self._site_reads(None)
        return super().items()

    def values(self) -> Any:
        self._site_reads(None)
        return super().values()

    def copy(self) -> dict[str, Any]:
        self._site_reads(None)
        return dict(super().items())


class Phase(enum.Enum):
    """The named states of one response (transitions: ``_NEXT``)."""

    HELD = "held"  # the start message is kept until the first body decides what to do
    SNIFFING = "sniffing"  # no usable Content-Type: the first bytes are kept to sniff them
    PASSING = "passing"  # not a document we gate: every message goes out as the app sent it
    REWRITING = "rewriting"  # HTML rewritten as it streams; the start leaves with the first bytes
    UNREWRITTEN = "unrewritten"  # unreadable before the headers left: the rest as sent, behind
    #                              an enforced no-partner CSP
    FAILED_AFTER_HEADERS = "failed-after-headers"  # the response was ended; the rest is dropped
    DONE = "done"  # the last body went out; anything the app sends later is dropped

    # Members are singletons compared by identity: hash them so too (Enum's own __hash__ is
    # Python code, run at every transition).
    __hash__ = object.__hash__


_NEXT: dict[Phase, frozenset[Phase]] = {
    Phase.HELD: frozenset({Phase.SNIFFING, Phase.PASSING, Phase.REWRITING, Phase.UNREWRITTEN}),
    Phase.SNIFFING: frozenset({Phase.PASSING, Phase.REWRITING, Phase.UNREWRITTEN}),
    Phase.REWRITING: frozenset({Phase.UNREWRITTEN, Phase.FAILED_AFTER_HEADERS, Phase.DONE}),
    Phase.UNREWRITTEN: frozenset({Phase.FAILED_AFTER_HEADERS, Phase.DONE}),
    Phase.PASSING: frozenset(),
    Phase.FAILED_AFTER_HEADERS: frozenset(),
    Phase.DONE: frozenset(),
}

_NO_BODY_STATUSES = frozenset({204, 205, 304})
# Enum members read through the Enum metaclass cost ~0.2 µs each; the responder compares
# phases and body kinds a dozen times per response, so it reads these module names instead.
_HELD = Phase.HELD
_SNIFFING = Phase.SNIFFING
_PASSING = Phase.PASSING
_REWRITING = Phase.REWRITING
_UNREWRITTEN = Phase.UNREWRITTEN
_FAILED_AFTER_HEADERS = Phase.FAILED_AFTER_HEADERS
_DONE = Phase.DONE
_HTML = BodyKind.HTML
_OTHER = BodyKind.OTHER
_SNIFF = BodyKind.SNIFF
_DOCUMENT = BodyKind.DOCUMENT
#: What _raw_kind answers for the two common start messages (made once, not per response).
_HTML_NO_COOKIE, _HTML_SETS_COOKIE = (_HTML, False), (_HTML, True)
_OTHER_NO_COOKIE, _OTHER_SETS_COOKIE = (_OTHER, False), (_OTHER, True)


class HtmlResponder:
    """Per-response state: holds the start message until the first body decides what to do."""

    # Defaults for what only a rewritten response sets: the pass path allocates none of it.
    rewriter: HtmlRewriter | None = None
    #: Fills consent macros (${GDPR_CONSENT_<id>} ...) in the rewritten bytes, chunk-safe.
    macros: MacroStream | None = None
    inflater: Inflater | None = None
    request: RequestInfo | None = None
    charset: str | None = None
    allowed: frozenset[str] = frozenset()
    ledger_failed = False
    #: Decoded bytes fed to the rewriter while the start is held (to serve them as sent if the
    #: rewriter fails before anything left), decoded bytes fed, body bytes sent (for logs).
    unsent = b""
    #: Set when the rewriter failed before the headers left: what goes out unrewritten has
    #: every http-equiv respelled (a meta refresh is a navigation no CSP stops).
    respeller: RefreshRespeller | None = None
    fed = 0
    sent = 0
    sniffed = b""
    #: The start message has a Set-Cookie header (the review records undeclared cookies).
    sets_cookie = False
    #: Partners already recorded for this page view: one disclosure per (view, partner).
    disclosed: frozenset[str] = frozenset()

    def __init__(self, gate: ConsentMiddleware, scope: Scope, send: Send,
                 state: ConsentState) -> None:
        self.gate = gate
        self.scope = scope
        self.raw_send = send
        self.state = state
        self.phase = _HELD
        #: The start message while it is held; None once it left.
        self.start: Message | None = None
        self.kind = _OTHER

    @property
    def consent(self) -> Consent:
        return self.state.consent

    def _to(self, phase: Phase) -> None:
        if phase not in _NEXT[self.phase]:
            raise RuntimeError(f"consent-gate responder: {self.phase.value} -> {phase.value}")
        self.phase = phase

    async def send(self, message: Message) -> None:
        phase = self.phase
        if phase is _PASSING:
            await self.raw_send(message)
            return
        kind = message["type"]
        if kind == "http.response.start" and phase is _HELD:
            announced = _raw_kind(message.get("headers", ()))
            if announced is None:
                # Django sends "Content-Type"; names are case-insensitive, our lookups are not.
                message = {**message, "headers": [(k.lower(), v) for k, v in message["headers"]]}
                announced = _raw_kind(message["headers"])
            # (still None: a name with no letter at all; sniffed, as before)
            body_kind, self.sets_cookie = announced if announced is not None else (None, True)
            if body_kind is _OTHER and self.scope["method"] != "HEAD":
                # Decided on the raw start message: JSON and files pass with no more work.
                self.phase = _PASSING
                if self.sets_cookie:
                    self.gate.review.saw_cookies(message.get("headers", ()), self.scope["path"])
                if self.state.consent_read:
                    self._edit_headers(message, private=True)
                await self.raw_send(message)
                return
            self.kind = body_kind or _SNIFF
            self.start = message
            return
        if phase is _HELD:
            if kind == "http.response.body":
                await self._decide(message)
            else:
                await self._other_first(message)
        elif kind != "http.response.body":
            if phase in (_REWRITING, _UNREWRITTEN) and self.start is None:
                await self.raw_send(message)  # trailers and the like, after our headers
        elif phase is _SNIFFING:
            await self._sniff(message)
        elif phase in (_REWRITING, _UNREWRITTEN):
            await self._rewrite_body(message)
        # FAILED_AFTER_HEADERS / DONE: the response is over; late messages are dropped.

    # --- the decision -------------------------------------------------------------------

    async def _other_first(self, message: Message) -> None:
        """A first message that is not a body (pathsend, zerocopy): we cannot read a file
        the server sends itself, so an HTML one goes behind the no-partner CSP."""
        start = self.start
        self._to(_PASSING)
        if start is not None:
            if self.kind is not _OTHER:
                self._no_partner_headers(start, "a file sent by the server")
            else:
                self._untouched_headers(start)
            await self.raw_send(start)
        await self.raw_send(message)

    async def _decide(self, first: Message) -> None:
        start = self.start
        if start is None:  # a broken app; let the server complain about it
            self._to(_PASSING)
            await self.raw_send(first)
            return
        if self.sets_cookie:
            self.gate.review.saw_cookies(start.get("headers", ()), self.scope.get("path", ""))
        kind = self.kind
        if kind is _OTHER or int(start.get("status", 200)) in _NO_BODY_STATUSES:
            await self._pass(start, first)
            return
        if self.scope["method"] == "HEAD":
            await self._head(start, first, kind)
            return
        encoding = (header_value(start["headers"], b"content-encoding") or b"identity")
        encoding_name = encoding.decode("latin-1").strip().lower()
        if encoding_name != "identity" and encoding_name not in DECODABLE:
            await self._unreadable(start, first, f"Content-Encoding {encoding_name!r}")
            return
        if kind is _DOCUMENT:
            await self._document(start, first, "an XML document or multipart body",
                                 encoding_name)
            return
        if kind is _SNIFF and encoding_name != "identity":
            await self._unreadable(start, first, "a compressed body without a Content-Type")
            return
        if encoding_name in DECODABLE:
            self.inflater = Inflater(encoding_name)
            del MutableHeaders(scope=start)["content-encoding"]
        if kind is _SNIFF:
            self._to(_SNIFFING)
            await self._sniff(first)
            return
        await self._rewrite_first(start, first)

    async def _sniff(self, message: Message) -> None:
        """Keep the first bytes (at most SNIFF_BYTES decoded) until they show what a browser
        would make of a body without a usable Content-Type."""
        more = bool(message.get("more_body", False))
        data = message.get("body", b"")
        self.sniffed += data
        verdict = sniff(self.sniffed[:SNIFF_BYTES],
                        complete=not more or len(self.sniffed) >= SNIFF_BYTES)
        if verdict is None:
            return
        start = self.start
        if start is None:  # pragma: no cover - SNIFFING is only entered with a held start
            raise RuntimeError("consent-gate responder: sniffing without a start message")
        body = {"type": "http.response.body", "body": self.sniffed, "more_body": more}
        self.sniffed = b""
        if verdict is _HTML:
            await self._rewrite_first(start, body)
        elif verdict is _DOCUMENT:
            await self._document(start, body, "an XML document without a Content-Type",
                                 "identity")
        else:
            await self._pass(start, body)

    async def _pass(self, start: Message, first: Message) -> None:
        self._to(_PASSING)
        self._untouched_headers(start)
        await self.raw_send(start)
        await self.raw_send(first)

    async def _head(self, start: Message, first: Message, kind: BodyKind) -> None:
        """HEAD gets the headers its GET would get; its (empty) body is not rewritten."""
        self._to(_PASSING)
        headers = MutableHeaders(scope=start)
        charset = charset_of(headers.get("content-type", ""))
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if kind is _HTML and not unreadable_charset(charset) and (
                encoding == "identity" or encoding in DECODABLE):
            self.allowed = self._allowed_partners()
            if encoding != "identity":
                del headers["content-encoding"]
            if "content-length" in headers:  # the GET body's length depends on the rewrite
                del headers["content-length"]
            self._rewritten_headers(start, enforced_no_partner=False)
        elif kind is _SNIFF:
            self._untouched_headers(start)
        else:
            self._no_partner_headers(start, None)
        await self.raw_send(start)
        await self.raw_send(first)

    async def _document(self, start: Message, first: Message, what: str,
                        encoding: str) -> None:
        """XML (or multipart): another parser reads it, so it is not tokenized and the browser
        enforces 'no partner'. An XHTML meta refresh still navigates (measured in Chromium):
        a body in an ASCII-compatible charset has every http-equiv respelled (``encoding``
        identity, gzip or deflate: decoded in bounded steps, as for HTML)."""
        charset = self.gate.charset_of(start.get("headers", ()))
        if unreadable_charset(charset) or (encoding == "identity"
                                           and wide_bom(first.get("body", b""))):
            await self._unreadable(start, first, what)
            return
        if encoding != "identity":
            self.inflater = Inflater(encoding)
            del MutableHeaders(scope=start)["content-encoding"]
        self._to(_UNREWRITTEN)
        self.respeller = RefreshRespeller()
        self._no_partner_headers(start, what, drop_length=True)
        self.start = None
        await self.raw_send(start)
        await self._rewrite_body(first)

    async def _unreadable(self, start: Message, first: Message, what: str) -> None:
        self._to(_PASSING)
        self._no_partner_headers(start, what)
        await self.raw_send(start)
        await self.raw_send(first)

    async def _rewrite_first(self, start: Message, first: Message) -> None:
        self.charset = self.gate.charset_of(start.get("headers", ()))
        body = first.get("body", b"")
        if unreadable_charset(self.charset) or (self.inflater is None and wide_bom(body)):
            await self._unreadable(start, first, f"charset {self.charset!r} or a UTF-16 BOM")
            return
        self._to(_REWRITING)
        self.allowed = self._allowed_partners()
        plan = self.gate.plans.plan(self.consent, self.allowed, self.scope, self.charset)
        if self.gate.page_macros:
            self.macros = self.gate.plans.signals.page_stream(self.consent)
        if not first.get("more_body", False) and self.inflater is None:
            # One-chunk body: rewritten all at once so Content-Length can stay exact; a page
            # rewritten before with this plan is reused, here when no ledger write is needed.
            hit, keep = self.gate.memo.find(plan, body)
            if hit is not None and (not hit.enabled or self.gate.discloser.writer is None):
                self.disclosed = self.disclosed | hit.enabled
                self._report_unknown(hit.unknown_hosts)
                out = hit.output
            else:
                out = await self._rewrite_whole(body, plan, hit, keep)
            if self.macros is not None and self.phase is not _UNREWRITTEN:
                out = self.macros.feed(out) + self.macros.finish()
            self._rewritten_headers(start, enforced_no_partner=self.phase is _UNREWRITTEN,
                                    length=b"%d" % len(out))
            self.start = None
            self._to(_DONE)
            await self.raw_send(start)
            await self.raw_send({"type": "http.response.body", "body": out, "more_body": False})
            return
        self.rewriter = HtmlRewriter(plan)
        start["headers"] = [item for item in start.get("headers", ())
                            if item[0] != b"content-length"]
        # The start message leaves with the first rewritten bytes (see _emit), so that its
        # CSP can still drop every partner if the ledger fails on the first chunk.
        await self._rewrite_body(first)

    def _allowed_partners(self) -> frozenset[str]:
        allowed = self.consent.allowed_partners
        if allowed and not self.gate.discloser.available():
            # Fail closed: without a working ledger no partner is enabled.
            return frozenset()
        return allowed

    # --- headers ------------------------------------------------------------------------

    def _edit_headers(self, start: Message, *, private: bool, drop_validators: bool = False,
                      frame_options: bool = False, csp: tuple[bytes, bytes] | None = None,
                      drop_length: bool = False, length: bytes | None = None) -> None:
        """One pass over the raw start headers (see GatedHeaders.edit), ``csp`` appended;
        then the fetching headers, when there are any; then Content-Length = ``length``."""
        edited, fetching = self.gate.gated_headers.edit(
            start.get("headers", ()), private=private, drop_validators=drop_validators,
            frame_options=frame_options, append=(csp,) if csp is not None else (),
            drop_length=drop_length, length=length)
        start["headers"] = edited
        if fetching:
            self._gate_fetching_headers(start)
            if length is not None:  # after the fetching headers, as MutableHeaders put it
                set_header(start["headers"], b"content-length", length)

    def _untouched_headers(self, start: Message) -> None:
        if self.state.consent_read:
            self._edit_headers(start, private=True)

    def _rewritten_headers(self, start: Message, *, enforced_no_partner: bool,
                           drop_length: bool = False, length: bytes | None = None) -> None:
        """A rewritten page: private, no validators, the CSP of its allowed partners."""
        csp = self.gate.csp
        header: tuple[bytes, bytes] | None = None
        if enforced_no_partner:
            header = (b"content-security-policy", csp.value(frozenset()))
        elif csp.enabled:
            header = (csp.header_name, csp.value(frozenset() if self.ledger_failed else self.allowed))
        self._edit_headers(start, private=True, drop_validators=True, frame_options=True,
                           csp=header, drop_length=drop_length, length=length)

    def _gate_fetching_headers(self, start: Message) -> None:
        """``Link`` (preload, preconnect, prefetch) and ``Refresh`` act before any HTML is read,
        and preconnect is governed by no CSP: entries aimed at any partner are dropped, even a
        consented one (no ledger row would precede that contact; the partner's tags in the
        page still load it, after their record)."""
        if not any(k in (b"link", b"refresh") for k, _ in start.get("headers", ())):
            return
        headers = MutableHeaders(scope=start)

        def blocked(url: str) -> bool:
            host = HostMatcher.host_of_url(url)
            if host is None:
                return "//" in url  # an absolute URL we cannot read: fail closed
            return self.gate.matcher.partner_for_host(host) is not None

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
                           self.scope["method"], self.scope["path"])
            del headers["refresh"]

    def _no_partner_headers(self, start: Message, what: str | None, *,
                            drop_length: bool = False) -> None:
        """A document passed as sent: the browser enforces 'no partner' whatever [csp] mode
        says, because we could not read (or log) what it loads."""
        if what is not None:
            logger.warning(
                "consent-gate: %s %s sent %s, which cannot be rewritten; it goes out as sent with "
                "an enforced CSP that allows no partner. Fix: let the app send identity UTF-8 (or "
                "other ASCII-compatible) HTML and put compression (GZipMiddleware, the reverse "
                "proxy) outside ConsentMiddleware.", self.scope["method"], self.scope["path"], what)
        self._edit_headers(start, private=self.state.consent_read, frame_options=True,
                           csp=(b"content-security-policy", self.gate.csp.value(frozenset())),
                           drop_length=drop_length)

    # --- the body -----------------------------------------------------------------------

    async def _rewrite_body(self, message: Message) -> None:
        more = bool(message.get("more_body", False))
        data = message.get("body", b"")
        if self.inflater is None:
            out = await self._step(data, final=not more)
            if out is not None:
                await self._emit(out, more)
            return
        try:
            # Piece by piece: each decoded step is rewritten and sent before the next is
            # decoded, so a bomb never sits in memory.
            for piece in self.inflater.pieces(data, final=not more):
                out = await self._step(piece, final=False)
                if out is None:
                    return
                if out:
                    await self._emit(out, True)
        except InflateError as exc:
            await self._fail(str(exc))
            return
        if not more:
            out = await self._step(b"", final=True)
            if out is not None:
                await self._emit(out, False)

    async def _emit(self, body: bytes, more: bool) -> None:
        start = self.start
        if start is not None:
            if not body and more:
                return  # nothing yet: keep the start (and its CSP) open
            self.start = None
            self.unsent = b""
            self._rewritten_headers(start, enforced_no_partner=self.phase is _UNREWRITTEN)
            await self.raw_send(start)
        if not more:
            self._to(_DONE)
        elif not body:
            return
        self.sent += len(body)
        await self.raw_send({"type": "http.response.body", "body": body, "more_body": more})

    async def _fail(self, what: str) -> None:
        """Fail closed once bytes cannot be rewritten: end the response, never pass raw."""
        start = self.start
        logger.error("consent-gate: %s %s: %s after %d body bytes were sent; the response was "
                     "ended there (the rest of the body is dropped, never sent raw)",
                     self.scope["method"], self.scope["path"], what, self.sent)
        if start is not None:
            self.start = None
            self._rewritten_headers(start, enforced_no_partner=True)
            await self.raw_send(start)
        self._to(_FAILED_AFTER_HEADERS)
        await self.raw_send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _step(self, data: bytes, *, final: bool) -> bytes | None:
        """Rewritten bytes for ``data`` (None once the response was ended)."""
        if self.phase is _UNREWRITTEN:
            if self.respeller is None:
                return data
            return self.respeller.feed(data) + (self.respeller.finish() if final else b"")
        if self.start is not None:
            if self.fed == 0:
                # The first bytes may split a byte order mark: keep them until it is whole.
                data, self.sniffed = self.sniffed + data, b""
                if not final and bom_prefix(data):
                    self.sniffed = data
                    return b""
            if self.fed == 0 and data and wide_bom(data):
                # The BOM wins over the charset label: the browser reads UTF-16.
                logger.warning("consent-gate: %s %s starts with a UTF-16 byte order mark; it goes "
                               "out as sent with an enforced CSP that allows no partner.",
                               self.scope["method"], self.scope["path"])
                self._to(_UNREWRITTEN)
                return data
            self.unsent += data
        self.fed += len(data)
        try:
            out = await self._rewrite_chunk(data, final=final)
            if self.macros is not None:
                out = self.macros.feed(out) + (self.macros.finish() if final else b"")
            return out
        except Exception:
            if self.start is not None:
                # Nothing left yet: the page goes out as the site sent it, behind a CSP that
                # the browser enforces and that allows no partner.
                logger.exception("consent-gate: the rewriter failed on %s before the headers "
                                 "left; serving the page as sent (every http-equiv respelled) "
                                 "with an enforced CSP that allows no partner", self.scope.get("path", ""))
                self._to(_UNREWRITTEN)
                self.respeller = RefreshRespeller()
                return self.respeller.feed(self.unsent) + (
                    self.respeller.finish() if final else b"")
            logger.exception("consent-gate: the rewriter failed on %s", self.scope.get("path", ""))
            await self._fail("the rewriter failed")
            return None

    async def _rewrite_whole(self, data: bytes, plan: RewritePlan, hit: Rewritten | None,
                             keep: bool) -> bytes:
        """A whole body in one message: ``hit`` is the memo's rewrite of a byte-identical page
        with this plan (the rewriter is made only when the page must be rewritten; ``keep``:
        remember the result)."""
        if hit is None:
            self.rewriter = HtmlRewriter(plan)
            try:
                return await self._rewrite_chunk(data, final=True, remember=keep)
            except Exception:
                logger.exception("consent-gate: the rewriter failed on %s before the headers "
                                 "left; serving the page as sent (every http-equiv respelled) "
                                 "with an enforced CSP that allows no partner", self.scope.get("path", ""))
                self._to(_UNREWRITTEN)
                self.respeller = RefreshRespeller()
                return self.respeller.feed(data) + self.respeller.finish()
        if hit.enabled and not await self._disclose(hit.enabled):
            self.rewriter = HtmlRewriter(self.gate.plans.blocked(self.consent, self.scope, self.charset))
            return await self._rewrite_chunk(data, final=True)
        self._report_unknown(hit.unknown_hosts)
        return hit.output

    async def _disclose(self, partners: frozenset[str]) -> bool:
        """Log before disclose; False when the ledger failed and the partners must stay off."""
        new = partners - self.disclosed
        if not new:
            return True
        if self.gate.discloser.writer is None:  # no ledger configured: nothing to record
            self.disclosed = self.disclosed | new
            return True
        if self.request is None:  # built on the first disclosure only: most views have none
            self.request = RequestInfo.from_scope(self.scope, self.consent,
                                                  trust_proxy=self.gate.config.policy.trust_proxy)
        try:
            await self.gate.discloser.disclose(new, self.request)
        except LedgerUnavailable:
            self.ledger_failed = True
            return False
        self.disclosed = self.disclosed | new
        return True

    async def _rewrite_chunk(self, data: bytes, *, final: bool, remember: bool = False) -> bytes:
        rewriter = self.rewriter
        if rewriter is None:  # pragma: no cover - REWRITING always has a rewriter
            return data
        # Only a ledger write can fail and ask for a redo with every partner blocked.
        before = rewriter.snapshot() if self.gate.discloser.writer is not None else None
        out = _run(rewriter, data, final)
        enabled = rewriter.take_enabled()
        if remember:
            unknown = rewriter.unknown_hosts
            self.gate.memo.put(Rewritten(rewriter.plan, data, out, enabled,
                                         frozenset(unknown) if unknown else _NO_HOSTS))
        if enabled and not await self._disclose(enabled):
            # Log before disclose failed: redo this chunk with every partner blocked.
            if before is None:  # pragma: no cover - without a writer _disclose never fails
                raise RuntimeError("consent-gate responder: a redo without a snapshot")
            rewriter.restore(before, self.gate.plans.blocked(self.consent, self.scope, self.charset))
            out = _run(rewriter, data, final)
            rewriter.take_enabled()
        if final:
            self._report_unknown(rewriter.unknown_hosts)
        return out

    def _report_unknown(self, unknown: set[str] | frozenset[str]) -> None:
        if not unknown:
            return
        own = (header_value(self.scope["headers"], b"host") or b"").decode("latin-1")
        hosts = set(unknown) - {own.rsplit(":", 1)[0].lower()}
        if hosts:
            self.gate.plans.report_unknown(hosts, self.scope.get("path", ""))
            self.gate.review.saw_hosts(hosts, self.scope.get("path", ""))


def _raw_kind(headers: Iterable[tuple[bytes, bytes]]) -> tuple[BodyKind, bool] | None:
    """(the body kind announced by raw start headers, whether a Set-Cookie is among them), in
    one pass that allocates nothing on the common paths; None when a header name is not
    lower-case (normalise, then ask again)."""
    content_type = b""
    count = 0
    nosniff = sets_cookie = False
    for key, value in headers:
        if not key.islower():
            return None
        if key == b"content-type":
            content_type = value
            count += 1
        elif key == b"set-cookie":
            sets_cookie = True
        elif key == b"x-content-type-options":
            nosniff = value.strip().lower() == b"nosniff"
    if count == 1:
        if content_type.startswith(b"text/html"):
            return _HTML_SETS_COOKIE if sets_cookie else _HTML_NO_COOKIE
        if content_type.startswith(b"application/json"):
            return _OTHER_SETS_COOKIE if sets_cookie else _OTHER_NO_COOKIE
        return classify((content_type,), nosniff=nosniff), sets_cookie
    return classify([v for k, v in headers if k == b"content-type"], nosniff=nosniff), sets_cookie


def _run(rewriter: HtmlRewriter, data: bytes, final: bool) -> bytes:
    out = rewriter.feed(data) if data else b""
    return out + rewriter.finish() if final else out
