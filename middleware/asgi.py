"""ConsentMiddleware: wraps any ASGI app, enforcing the visitor's consent on every HTML page.

One request: read the consent once, answer our own routes, otherwise call the site with
``scope["state"]["consent"]`` and rewrite its HTML as it streams out. Work that does not
depend on the request (config, keys, host patterns, snippets, CSP values) is done once here.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from .config import Config, load_config
from .consent import Consent, ConsentCodec, ConsentResolver, privacy_signal
from .csp import CspBuilder
from .csp_reports import CspReports
from .disclosure import Discloser, RequestInfo
from .errors import LedgerUnavailable
from .headers import cookie_value, header_value, merge_vary, private_cache_control
from .hosts import HostMatcher
from .memo import RewriteMemo, Rewritten
from .plan import PlanBuilder, charset_of
from .rewrite import HtmlRewriter
from .routes import ConsentUI
from .secrets import dev_mode_requested, signing_keys

if TYPE_CHECKING:
    from .forward.forwarder import Forwarder

logger = logging.getLogger("consent_gate")

#: Any ASGI 3 application; looser than starlette's alias so Litestar/Django apps type-check too.
AnyASGIApp = Callable[[Any, Any, Any], Awaitable[None]]

#: Decoded bytes handed to the rewriter at once when inflating a compressed body.
_INFLATE_STEP = 64 * 1024
_REWRITABLE_CHARSET_BLOCKLIST = ("utf-16", "utf-32", "utf16", "utf32")


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
        self.codec = ConsentCodec(keys, max_age_seconds=policy.cookie.max_age_days * 86400)
        self.resolver = ConsentResolver(self.config, self.codec)
        self.matcher = HostMatcher({pid: p.hosts for pid, p in self.config.partners.items()})
        self.discloser = ledger if ledger is not None else Discloser.from_config(self.config, keys[0])
        self.forwarder = _forwarder(self.config, keys[0], self.discloser)
        self.ui = ConsentUI(self.config, self.resolver, record_event=self.discloser.record_event,
                            collect=self.forwarder.collector if self.forwarder else None)
        self.plans = PlanBuilder(self.config, self.matcher, self.ui)
        self.csp = CspBuilder(self.config)
        self.csp_reports = CspReports(self.matcher, trust_proxy=policy.trust_proxy)
        self.memo = RewriteMemo()
        self.csp_report_path = self.csp.report_uri
        self.cookie_name = policy.cookie.name
        self.honor_gpc = policy.honor_gpc
        self.honor_dnt = policy.honor_dnt
        self.vary = ["Cookie", "Accept-Language"] + (["Sec-GPC"] if policy.honor_gpc else [])

    def consent_for(self, scope: Scope) -> Consent:
        headers = scope.get("headers", ())
        return self.resolver.resolve(
            cookie_value(headers, self.cookie_name),
            privacy_signal(headers, honor_gpc=self.honor_gpc, honor_dnt=self.honor_dnt),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, self._lifespan_receive(receive), send)
            else:
                await self.app(scope, receive, send)
            return
        if scope["path"] == self.csp_report_path:
            await self.csp_reports.handle(scope, receive, send)
            return
        consent = self.consent_for(scope)
        if self.ui.owns(scope["path"]):
            await self.ui.handle(scope, receive, send, consent)
            return
        inner = dict(scope)
        state = ConsentState(scope.get("state") or {})
        state["consent"] = consent
        inner["state"] = state
        if self.forwarder is not None:
            inner[self.forwarder.SCOPE_KEY] = self.forwarder
        # Ask for identity bodies: compressed HTML could not be rewritten (compression goes outside us).
        if any(k == b"accept-encoding" for k, _ in scope["headers"]):
            inner["headers"] = [(k, v) for k, v in scope["headers"] if k != b"accept-encoding"]
        if scope["method"] == "HEAD":
            await self.app(inner, receive, send)
            return
        responder = HtmlResponder(self, inner, send, consent)
        await self.app(inner, receive, responder.send)

    def _lifespan_receive(self, receive: Receive) -> Receive:
        """Open the ledger at start-up (errors surface then, not at the first page) and flush
        it at shutdown, around the app's own lifespan handling."""

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.discloser.startup()
                if self.forwarder is not None:
                    await self.forwarder.startup()
            elif message["type"] == "lifespan.shutdown":
                if self.forwarder is not None:
                    await self.forwarder.aclose()
                await self.discloser.aclose()
            return message

        return wrapped


def _forwarder(config: Config, signing_key: str, discloser: Discloser) -> Forwarder | None:
    """Server-side forwarding, when a partner has ``[partners.ID.forward]`` (imported only then)."""
    if not any(p.forward is not None for p in config.partners.values()):
        return None
    from .forward.forwarder import Forwarder

    if discloser.writer is None:
        logger.warning("consent-gate: [partners.*.forward] needs the ledger; forwarding is off")
        return None
    return Forwarder.from_config(config, signing_key, discloser.writer)


class ConsentState(dict[str, Any]):
    """The request state handed to the site. It notices when the site reads the consent, so
    that any response that may depend on it (JSON, a 404 page) is kept out of shared caches."""

    consent_read = False

    def __getitem__(self, key: str) -> Any:
        if key == "consent":
            self.consent_read = True
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        if key == "consent":
            self.consent_read = True
        return super().get(key, default)


class HtmlResponder:
    """Per-response state: holds the start message until the first body decides what to do."""

    def __init__(self, gate: ConsentMiddleware, scope: Scope, send: Send, consent: Consent) -> None:
        self.gate = gate
        self.scope = scope
        self.raw_send = send
        self.consent = consent
        self.start: Message | None = None
        self.mode = "undecided"  # -> "pass" | "rewrite"
        self.rewriter: HtmlRewriter | None = None
        self.inflater: Any = None
        self.request: RequestInfo | None = None
        self.charset: str | None = None
        #: Partners already recorded for this page view: one disclosure per (view, partner).
        self.disclosed: set[str] = set()
        self.allowed: frozenset[str] = frozenset()
        self.ledger_failed = False
        self.rewriter_failed = False
        self.start_pending = False

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            # Django sends "Content-Type"; header names are case-insensitive, our lookups are not.
            headers = message.get("headers", ())
            if any(k != k.lower() for k, _ in headers):
                message = {**message, "headers": [(k.lower(), v) for k, v in headers]}
            self.start = message
            return
        if self.mode == "undecided":
            if kind != "http.response.body":
                await self._pass_through(message)
                return
            await self._decide(message)
        if self.mode == "pass":
            await self.raw_send(message)
            return
        await self._rewrite_body(message)

    async def _pass_through(self, message: Message) -> None:
        self.mode = "pass"
        if self.start is not None:
            await self._send_untouched_start(self.start)
        await self.raw_send(message)

    async def _send_untouched_start(self, start: Message) -> None:
        state = self.scope.get("state")
        if isinstance(state, ConsentState) and state.consent_read:
            headers = MutableHeaders(scope=start)
            headers["vary"] = merge_vary(headers.get("vary"), self.gate.vary)
            headers["cache-control"] = private_cache_control(headers.get("cache-control"))
        await self.raw_send(start)

    async def _decide(self, first: Message) -> None:
        start = self.start
        if start is None:  # a broken app; let the server complain about it
            self.mode = "pass"
            return
        status = int(start.get("status", 200))
        raw_type = header_value(start.get("headers", ()), b"content-type") or b""
        # Decided on the raw list: JSON and files never pay for more than this.
        if not (200 <= status < 300 and status != 204 and raw_type[:9].lower() == b"text/html"):
            self.mode = "pass"
            await self._send_untouched_start(start)
            return
        headers = MutableHeaders(scope=start)
        content_type = raw_type.decode("latin-1").lower()
        encoding = headers.get("content-encoding", "identity").strip().lower()
        charset_ok = not any(cs in content_type for cs in _REWRITABLE_CHARSET_BLOCKLIST)
        if encoding not in ("identity", "gzip", "x-gzip", "deflate") or not charset_ok:
            # We cannot read these bytes, so we cannot log what they disclose: the CSP of a
            # visitor without consent stops every partner in the browser (fail closed).
            logger.warning(
                "consent-gate: %s %s sent HTML we cannot rewrite (Content-Encoding %r, %s); "
                "its partners are blocked by the CSP. Fix: let the app send identity bodies and "
                "put compression (GZipMiddleware, the reverse proxy) outside ConsentMiddleware.",
                self.scope["method"], self.scope["path"], encoding, content_type)
            self._consent_headers(headers, frozenset())
            self.mode = "pass"
            await self.raw_send(start)
            return
        if encoding != "identity":
            # wbits 47 = auto-detect gzip or zlib header.
            self.inflater = zlib.decompressobj(47 if encoding != "deflate" else 15)
            del headers["content-encoding"]
        self.mode = "rewrite"
        self.allowed = self._allowed_partners()
        self.charset = charset_of(content_type)
        plan = self.gate.plans.plan(self.consent, self.allowed, self.scope, self.charset)
        self.rewriter = HtmlRewriter(plan)
        if not first.get("more_body", False) and self.inflater is None:
            # One-chunk body: rewrite it all now so Content-Length can stay exact.
            body = await self._rewrite_whole(first.get("body", b""))
            self._consent_headers(headers, self.allowed)
            headers["content-length"] = str(len(body))
            await self.raw_send(start)
            await self.raw_send({"type": "http.response.body", "body": body, "more_body": False})
            self.mode = "done"
            return
        if "content-length" in headers:
            del headers["content-length"]
        # The start message leaves with the first rewritten bytes (see _send_body), so that its
        # CSP can still drop every partner if the ledger fails on the first chunk.
        self.start_pending = True

    def _allowed_partners(self) -> frozenset[str]:
        allowed = self.consent.allowed_partners
        if allowed and not self.gate.discloser.available():
            # Fail closed: without a working ledger no partner is enabled.
            return frozenset()
        return allowed

    def _consent_headers(self, headers: MutableHeaders, allowed: frozenset[str]) -> None:
        if self.ledger_failed or self.rewriter_failed:
            allowed = frozenset()
        csp_value = (self.gate.csp.value(allowed)
                     if self.gate.csp.enabled or self.rewriter_failed else None)
        headers["vary"] = merge_vary(headers.get("vary"), self.gate.vary)
        headers["cache-control"] = private_cache_control(headers.get("cache-control"))
        # The body now depends on consent: the app's validators no longer describe it.
        for name in ("etag", "last-modified"):
            if name in headers:
                del headers[name]
        if csp_value is not None:
            # An unrewritten page is enforced whatever the configured mode.
            csp_header = (b"content-security-policy" if self.rewriter_failed
                          else self.gate.csp.header_name)
            headers.append(csp_header.decode("latin-1"), csp_value.decode("latin-1"))

    async def _rewrite_body(self, message: Message) -> None:
        if self.mode == "done":
            return
        if message["type"] != "http.response.body":
            await self.raw_send(message)
            return
        more = bool(message.get("more_body", False))
        data = message.get("body", b"")
        if self.inflater is not None:
            out = bytearray()
            pending = data
            while pending:
                piece = self.inflater.decompress(pending, _INFLATE_STEP)
                pending = self.inflater.unconsumed_tail
                out += await self._rewrite_chunk(piece, final=False)
            if not more:
                out += await self._rewrite_chunk(self.inflater.flush(), final=True)
            body = bytes(out)
        else:
            body = await self._rewrite_chunk(data, final=not more)
        if body or not more:
            await self._send_body(body, more)

    async def _send_body(self, body: bytes, more: bool) -> None:
        if self.start_pending and self.start is not None:
            self.start_pending = False
            self._consent_headers(MutableHeaders(scope=self.start), self.allowed)
            await self.raw_send(self.start)
        await self.raw_send({"type": "http.response.body", "body": body, "more_body": more})

    async def _rewrite_whole(self, data: bytes) -> bytes:
        """A whole body in one message: reuse the result for a byte-identical page and plan."""
        rewriter = self.rewriter
        if rewriter is None:
            return data
        hit = self.gate.memo.get(rewriter.plan, data)
        if hit is None:
            return await self._rewrite_chunk(data, final=True, remember=True)
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
        if self.request is None:  # built on the first disclosure only: most views have none
            self.request = RequestInfo.from_scope(self.scope, self.consent,
                                                  trust_proxy=self.gate.config.policy.trust_proxy)
        try:
            await self.gate.discloser.disclose(new, self.request)
        except LedgerUnavailable:
            self.ledger_failed = True
            return False
        self.disclosed |= new
        return True

    async def _rewrite_chunk(self, data: bytes, *, final: bool, remember: bool = False) -> bytes:
        rewriter = self.rewriter
        if rewriter is None:
            return data
        before = rewriter.snapshot()
        try:
            out = _run(rewriter, data, final)
        except Exception:
            # A bug of ours must not become a 500 or a leak: the rest goes out as the site sent
            # it, behind a CSP that allows no partner (sent with the start message when it has
            # not left yet: always for one-chunk pages, and for the first chunk of streamed ones).
            logger.exception("consent-gate: the rewriter failed on %s; serving the page as sent "
                             "with a CSP that allows no partner", self.scope.get("path", ""))
            self.rewriter = None
            self.rewriter_failed = True
            return data
        enabled = rewriter.take_enabled()
        if remember:
            self.gate.memo.put(Rewritten(rewriter.plan, data, out, enabled,
                                         frozenset(rewriter.unknown_hosts)))
        if enabled and not await self._disclose(enabled):
            # Log before disclose failed: redo this chunk with every partner blocked.
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


def _run(rewriter: HtmlRewriter, data: bytes, final: bool) -> bytes:
    out = rewriter.feed(data) if data else b""
    return out + rewriter.finish() if final else out
