"""ConsentMiddleware: wraps any ASGI app, enforcing the visitor's consent on every HTML page.

One request: read the consent once, answer our own routes, otherwise call the site with
``scope["state"]["consent"]`` and rewrite its HTML as it streams out (``gate.responder``).
Work that does not depend on the request (config, keys, host patterns, snippets, CSP
values) is done once here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from . import scan_token
from .config import Config, load_config
from .consent import Consent, ConsentCodec, ConsentResolver
from .csp import CspBuilder
from .csp_reports import CspReports
from .disclosure import Discloser
from .gate.lifespan import run_lifespan
from .gate.request import app_headers, request_view
from .gate.response_headers import ResponseHeaders
from .gate.send import pass_send, style_send
from .gate.sheet_memo import SheetMemo
from .gate.state import ConsentState
from .headers import GatedHeaders, consent_inputs, cookie_value
from .hosts import HostMatcher
from .memo import RewriteMemo
from .plan import PlanBuilder, charset_of, document_charset
from .review.mydata import MyDataPage
from .review.proof import BannerVersions
from .review.recorder import ReviewRecorder
from .routes import WELL_KNOWN_GPC, ConsentUI
from .secrets import dev_mode_requested, signing_keys
from .signals.jurisdiction import client_ip
from .signals.reader import signal_reader
from .sniff import label_known, unreadable_charset

if TYPE_CHECKING:
    from .forward.forwarder import Forwarder

logger = logging.getLogger("consent_gate")

#: Any ASGI 3 application; looser than starlette's alias so Litestar/Django apps type-check too.
AnyASGIApp = Callable[[Any, Any, Any], Awaitable[None]]
#: Distinct raw Cookie headers whose consent cookie value is remembered.
_MAX_COOKIE_HEADERS = 4096
#: "Not remembered" (a remembered cookie value may be None: no cookie of ours in the header).
_UNSEEN = object()

#: ASGI extensions with which the server sends a file itself, past the rewriter: hidden from
#: the app, which then sends a body we can read (a file sent this way anyway goes out behind
#: the no-partner CSP, responder.py).
_SERVER_SENDS = frozenset({"http.response.pathsend", "http.response.zerocopysend"})


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
        self.sheets = SheetMemo()
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
        self.response_headers = ResponseHeaders(GatedHeaders(self.vary, self.csp.frame_options),
                                                self.csp, self.matcher)
        #: ``content_type``'s answers per raw value (decide reads it first: no call on a hit).
        self.content_types: dict[bytes, tuple[str | None, bool, bool]] = {}
        self._cookie_values: OrderedDict[bytes, str | None] = OrderedDict()

    def charset_of(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The charset a browser reads from the Content-Type header(s) (remembered per value,
        bounded). With several values (headers or a comma list) Chromium takes the last
        type's charset (measured): ``document_charset``."""
        values = [v for k, v in headers if k == b"content-type"]
        if len(values) > 1 or (values and b"," in values[0]):
            return document_charset((v.decode("latin-1") for v in values), unreadable_charset)
        return self.content_type(values[0] if values else b"")[0]

    def content_type(self, value: bytes) -> tuple[str | None, bool, bool]:
        """(the charset of one raw Content-Type value with no comma, whether the rewriter
        cannot read it, whether a browser knows the label): a pure function of the value,
        remembered per value (bounded)."""
        known = self.content_types.get(value)
        if known is None:
            charset = charset_of(value.decode("latin-1"))
            known = (charset, unreadable_charset(charset), label_known(charset))
            if len(self.content_types) < 256:
                self.content_types[value] = known
        return known

    def _request_inputs(self, headers: Sequence[tuple[bytes, bytes]],
                        ) -> tuple[str | None, bool, bytes | None]:
        """(our cookie's value, the browser's privacy signal, the first raw Accept-Language)
        in one pass over the request headers (``consent_inputs``, in C unless pure Python).
        The cookie value of the usual single Cookie header is remembered per raw header value
        (a pure function of it; bounded, least recently used out first)."""
        raw, several, gpc, dnt, language = consent_inputs(headers)
        # The same as privacy_signal(): only the exact value "1" counts (first header wins).
        signal = bool((self.honor_gpc and gpc is not None and gpc.strip() == b"1")
                      or (self.honor_dnt and dnt is not None and dnt.strip() == b"1"))
        if raw is None:
            return None, signal, language
        if several:  # several Cookie headers (HTTP/2 may split them)
            return cookie_value(headers, self.cookie_name), signal, language
        remembered = self._cookie_values
        known = remembered.get(raw, _UNSEEN)
        if known is not _UNSEEN:
            remembered.move_to_end(raw)
            # (a str or None here; no typing.cast: a Python call, ~0.5 k instructions)
            return known, signal, language  # type: ignore[return-value]
        value_of = cookie_value(((b"cookie", raw),), self.cookie_name)
        remembered[raw] = value_of
        if len(remembered) > _MAX_COOKIE_HEADERS:
            remembered.popitem(last=False)
        return value_of, signal, language

    def consent_for(self, scope: Scope, state: ConsentState | None = None) -> Consent:
        """The request's consent; with ``state`` (the request's ConsentState), its
        ``raw_language`` is set too: the plan reads the same Accept-Language without a second
        pass over the headers."""
        headers = scope.get("headers", ())
        cookie, signal, language = self._request_inputs(headers)
        if state is not None:
            state.raw_language = language
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
        path = scope["path"]
        if path == self.csp_report_path:
            await self.csp_reports.handle(scope, receive, send)
            return
        if path.startswith(self.own_prefix) or path in self.own_paths:  # = self.ui.owns(path)
            await self.ui.handle(scope, receive, send, self.consent_for(scope))
            return
        inner = dict(scope)
        base = scope.get("state")
        # (ConsentState has no Python __init__: see there)
        state = inner["state"] = ConsentState(base) if base else ConsentState()
        state._gate = self
        state._scope = scope
        state._resolved = state.consent_read = False
        state.raw_language = None  # (set with the consent; a safe default before)
        if self.forwarder is not None:
            inner[self.forwarder.SCOPE_KEY] = self.forwarder
        # Ask for identity bodies: compressed HTML could not be rewritten (compression goes
        # outside us). The same pass notices a scan token (None: one is among the headers).
        headers = scope["headers"]
        kept = app_headers(headers)
        scan = style = False
        if kept is None:  # a scan token, or the browser asks for a style sheet
            kept, scan, style = request_view(headers)
        if kept is not headers:
            inner["headers"] = kept
        extensions = scope.get("extensions")
        if extensions and not _SERVER_SENDS.isdisjoint(extensions):
            # A file the server sends itself never passes through us: ask for a body instead.
            inner["extensions"] = {k: v for k, v in extensions.items() if k not in _SERVER_SENDS}
        if scan and scan_token.owner_scan(scope, self.keys):  # the page as the site sends it
            await self.app(inner, receive, scan_token.mark_original(send))
            return
        if style:
            # Its answer is read as a style sheet whatever its type (gate/send.py style_send).
            await self.app(inner, receive, style_send(self, inner, send, state))
            return
        # JSON and files go straight to the server's send; the responder is made for the rest.
        await self.app(inner, receive, pass_send(self, inner, send, state))

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        await run_lifespan(self.app, scope, receive, send, open_=self._open, close=self._close)

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
