"""HtmlResponder: one response's state machine (the ``send`` the site's app is given).

The start message is held until the first body message shows what the response is: JSON
and files pass untouched; HTML is rewritten as it streams (the start leaves with the first
rewritten bytes, so its CSP can still drop every partner if the ledger fails); documents we
cannot read go out as sent behind an enforced no-partner CSP. Each state is a ``Phase``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, cast

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Scope, Send

from ..consent import Consent
from ..errors import LedgerUnavailable
from ..headers import header_value, merge_vary
from ..html.refresh_guard import AnyRespeller, Iso2022Respeller, RefreshRespeller, WideRespeller
from ..ledger.records import PageView
from ..memo import Rewritten
from ..rewrite import HtmlRewriter, RewritePlan
from ..signals.macros import MacroStream
from ..sniff import (
    SNIFF_BYTES,
    BodyKind,
    binary,
    bom_prefix,
    charset_tail,
    declares_iso2022jp,
    sniff,
    unreadable_charset,
    wide_bom,
    wide_codec,
    xml_declaration_open,
)
from .css import CssGate
from .decision import (
    CSS_ROUTE,
    DOCUMENT_ROUTE,
    HEAD,
    NO_DECODER,
    PASS,
    RESPELLED,
    SNIFF_ROUTE,
    UNREADABLE,
    WHOLE,
    Decision,
    decide,
)
from .encodings import BodyDecoder, InflateError, cannot_decode, codings
from .phases import (
    DONE,
    FAILED_AFTER_HEADERS,
    HELD,
    NEXT,
    PASSING,
    REWRITING,
    SNIFFING,
    UNREWRITTEN,
    Phase,
)
from .sheet_memo import SheetRead
from .start import CSS, HTML, HTML_PAGE, OTHER, PASSES, SHEET_PAIRS, SNIFF, start_kind
from .state import ConsentState

if TYPE_CHECKING:
    from ..asgi import ConsentMiddleware

logger = logging.getLogger("consent_gate")

_NO_HOSTS: frozenset[str] = frozenset()
#: Content-Length values by length (a memo hit sends the same length again: ``b"%d" % n`` and
#: the fresh value's hash in the header edit's key cost ~1 k instructions). Bounded.
_LENGTHS: dict[int, bytes] = {}
_MAX_LENGTHS = 4096


def _length(n: int) -> bytes:
    value = _LENGTHS.get(n)
    if value is None:
        value = b"%d" % n
        if len(_LENGTHS) < _MAX_LENGTHS:
            _LENGTHS[n] = value
    return value


class _Done(tuple[()]):
    """An awaitable that is already done (a held start message: nothing is sent yet). Its
    ``__await__`` is the empty tuple's C iterator: awaiting it runs no Python frame."""

    __slots__ = ()
    __await__ = tuple.__iter__


_HELD = cast("Awaitable[None]", _Done())  # (typeshed types tuple.__iter__ as an Iterator)


def passes_untouched(announced: tuple[BodyKind, bool] | None, state: ConsentState,
                     scope: Scope) -> bool:
    """A response whose start goes out as the app sent it, with no responder work after:
    JSON or a file (``start_kind`` PASSES: no Set-Cookie, no fetching header), the consent
    unread by the view, not HEAD. The one Python statement of the rule (gate/send.py's
    PassSend and HtmlResponder.start_message; ``_speedups.pass_send`` is its C twin)."""
    return announced is PASSES and not state.consent_read and scope["method"] != "HEAD"


class HtmlResponder:
    """Per-response state: holds the start message until the first body decides what to do."""

    # Defaults for what only a rewritten response sets: the pass path allocates none of it.
    #: The reader of the body: the HTML rewriter, or a style sheet's (gate/css.py).
    rewriter: HtmlRewriter | CssGate | None = None
    #: Fills consent macros (${GDPR_CONSENT_<id>} ...) in the rewritten bytes, chunk-safe.
    macros: MacroStream | None = None
    inflater: BodyDecoder | None = None
    #: This view's first ledger record (a later one for the same request reuses its id).
    recorded: PageView | None = None
    charset: str | None = None
    allowed: frozenset[str] = frozenset()
    ledger_failed = False
    #: Decoded bytes fed to the rewriter while the start is held (to serve them as sent if the
    #: rewriter fails before anything left), decoded bytes fed, body bytes sent (for logs).
    unsent = b""
    #: Set when the rewriter failed before the headers left: what goes out unrewritten has
    #: every http-equiv respelled (a meta refresh is a navigation no CSP stops).
    respeller: RefreshRespeller | WideRespeller | Iso2022Respeller | AnyRespeller | None = None
    fed = 0
    sent = 0
    sniffed = b""
    #: Without a header charset a browser would use, the decoded body is watched for a
    #: declaration of ISO-2022-JP (the last bytes of the previous piece, for one cut in two).
    watch_charset = False
    charset_tail = b""
    #: The start message has a Set-Cookie header (the review records undeclared cookies).
    sets_cookie = False
    #: A body sniffed as binary, read as a style sheet: only partner names are respelled.
    css_lenient = False
    #: The browser asked for a style sheet (gate/send.py style_send): the answer is read as
    #: one whatever its Content-Type announces (a quirks-mode page applies any type).
    style_request = False
    #: Partners already recorded for this page view: one disclosure per (view, partner).
    disclosed: frozenset[str] = frozenset()

    phase = HELD
    #: The start message while it is held; None once it left.
    start: Message | None = None
    kind = OTHER
    # No Python __init__ (one called through the type costs ~0.8 k instructions per
    # response): gate/send.py's responder_for (or its C twin, _speedups.pass_send) makes it
    # with ``HtmlResponder()`` and sets these.
    gate: ConsentMiddleware
    scope: Scope
    raw_send: Send
    state: ConsentState

    @property
    def consent(self) -> Consent:
        return self.state.consent

    def _to(self, phase: Phase) -> None:
        if phase not in NEXT[self.phase]:
            raise RuntimeError(f"consent-gate responder: {self.phase.value} -> {phase.value}")
        self.phase = phase

    def send(self, message: Message) -> Awaitable[None]:
        """The send the app is given. A message that passes goes straight to the server's
        send, with no coroutine of ours: every message once the start passed, and a start
        that announces JSON or a file (decided on its raw headers, ``_start``)."""
        # (_speedups.pass_send takes a body while HELD to _send itself: keep the two in step)
        phase = self.phase
        if phase is PASSING:
            return self.raw_send(message)
        if phase is HELD and message["type"] == "http.response.start":
            return self.start_message(message, start_kind(message.get("headers", ())))
        return self._send(message)

    def start_message(self, message: Message, announced: tuple[BodyKind, bool] | None,
                      ) -> Awaitable[None]:
        """The first message, a start (``announced``: ``start_kind`` of its headers), while
        HELD: what ``send`` does with it (gate/send.py calls it with the answer it read)."""
        if announced is HTML_PAGE:
            # HTML without Set-Cookie: held until the first body decides (as in _start). (Tested
            # first: it is not PASSES, so passes_untouched would say no, a call later. The C
            # pass_send does these two steps itself: keep them in step.)
            self.kind = HTML
            self.start = message
            return _HELD
        if passes_untouched(announced, self.state, self.scope):
            self.phase = PASSING
            return self.raw_send(message)
        passing = self._start(message, announced)
        return _HELD if passing is None else self.raw_send(passing)

    def _start(self, message: Message, announced: tuple[BodyKind, bool] | None) -> Message | None:
        """The start message (``announced``: what start_kind read on its raw headers): the
        start to send now when it passes (JSON, files), else None with it held until the
        first body decides."""
        if announced is None:
            # Django sends "Content-Type"; names are case-insensitive, our lookups are not.
            message = {**message, "headers": [(k.lower(), v) for k, v in message["headers"]]}
            announced = start_kind(message["headers"])
            if self.style_request and announced is not None:
                announced = SHEET_PAIRS[announced[1]]
        # (still None: a name with no letter at all; sniffed, as before)
        body_kind, self.sets_cookie = announced if announced is not None else (None, True)
        if body_kind is OTHER and self.scope["method"] != "HEAD":
            # Decided on the raw start message: JSON and files pass with no more work.
            self.phase = PASSING
            if self.sets_cookie:
                self.gate.review.saw_cookies(message.get("headers", ()), self.scope["path"])
            self._untouched_headers(message)
            return message
        self.kind = body_kind or SNIFF
        self.start = message
        return None

    async def _send(self, message: Message) -> None:
        """Every message that does not pass straight through (see ``send``)."""
        phase = self.phase
        kind = message["type"]
        if phase is HELD:
            if kind != "http.response.body":
                await self._other_first(message)
                return
            start = self.start
            if start is None:  # a broken app; let the server complain about it
                self._to(PASSING)
                await self.raw_send(message)
                return
            decision = decide(self.kind, self.scope["method"], start, message, self.gate)
            if decision.route is WHOLE:
                body = self._whole_now(start, message, decision)
                if body is not None:
                    # The common page: no coroutine of ours beyond this one.
                    await self.raw_send(start)
                    await self.raw_send(body)
                    return
                # A page whose record may be awaited: what _decide and _act do for WHOLE (an
                # identity body), two coroutines fewer for the wait to suspend and resume.
                if self.sets_cookie:
                    self.gate.review.saw_cookies(start.get("headers", ()), self.scope.get("path", ""))
                await self._rewrite_first(start, message, decision)
                return
            await self._decide(start, message, decision)
        elif kind != "http.response.body":
            if phase in (REWRITING, UNREWRITTEN) and self.start is None:
                await self.raw_send(message)  # trailers and the like, after our headers
        elif phase is SNIFFING:
            await self._sniff(message)
        elif phase in (REWRITING, UNREWRITTEN):
            await self._rewrite_body(message)
        # FAILED_AFTER_HEADERS / DONE: the response is over; late messages are dropped.

    # --- the decision -------------------------------------------------------------------

    async def _other_first(self, message: Message) -> None:
        """A first message that is not a body (pathsend, zerocopy): we cannot read a file
        the server sends itself, so an HTML one goes behind the no-partner CSP."""
        start = self.start
        self._to(PASSING)
        if start is not None:
            if self.kind is not OTHER:
                self._no_partner_headers(start, "a file sent by the server")
            else:
                self._untouched_headers(start)
            await self.raw_send(start)
        await self.raw_send(message)

    async def _decide(self, start: Message, first: Message, decision: Decision) -> None:
        if self.sets_cookie:
            self.gate.review.saw_cookies(start.get("headers", ()), self.scope.get("path", ""))
        await self._act(start, first, decision)

    async def _act(self, start: Message, first: Message, decision: Decision) -> None:
        """What ``decision`` says, with its side effects: phase moves, the body decoder
        (Content-Encoding removed), header edits and sends."""
        route = decision.route
        if route is PASS:
            await self._pass(start, first)
            return
        if route is HEAD:
            await self._head(start, first, self.kind)
            return
        if route is NO_DECODER:
            self._to(UNREWRITTEN)
            await self._fail(f"Content-Encoding {decision.what}: it cannot be read")
            return
        if decision.codings:
            # The body Chromium reads: known codings undone (gate/encodings.py), in bounded steps.
            self.inflater = BodyDecoder(decision.codings)
            del MutableHeaders(scope=start)["content-encoding"]
        if route is DOCUMENT_ROUTE:
            await self._document(start, first, decision.what)
        elif route is SNIFF_ROUTE:
            self._to(SNIFFING)
            await self._sniff(first)
        elif route is UNREADABLE:
            self.charset = decision.charset
            await self._unreadable(start, first, decision.what)
        elif route is CSS_ROUTE:
            await self._css(start, first, decision)
        elif route is RESPELLED:
            self.charset = decision.charset
            codec = decision.codec
            await self._respelled(start, first,
                                  Iso2022Respeller() if codec is None else WideRespeller(codec),
                                  decision.what)
        else:  # WHOLE, STREAM
            await self._rewrite_first(start, first, decision)

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
        sniffed, self.sniffed = self.sniffed, b""
        if verdict is OTHER:
            # No page: Chromium 156 applies a body without a Content-Type as a style sheet
            # (measured: tests/browser/test_redteam_css.py), so it is read as one. A binary
            # one (an untyped image) is respelled only where it names a partner.
            verdict = CSS
            self.css_lenient = binary(sniffed[:SNIFF_BYTES])
        body = {"type": "http.response.body", "body": sniffed, "more_body": more}
        await self._act(start, body, decide(verdict, self.scope["method"], start, body, self.gate,
                                            sniffed=True))

    async def _pass(self, start: Message, first: Message) -> None:
        self._to(PASSING)
        self._untouched_headers(start)
        await self.raw_send(start)
        await self.raw_send(first)

    async def _head(self, start: Message, first: Message, kind: BodyKind) -> None:
        """HEAD gets the headers its GET would get; its (empty) body is not rewritten. An
        untyped identity body has nothing to sniff: it gets the headers of a page sniffed as
        HTML (its GET is rewritten so, and loses the app's length and validators; one sniffed
        as something else keeps them, while this HEAD does not: a cache then asks again)."""
        self._to(PASSING)
        headers = MutableHeaders(scope=start)
        charset = self.gate.charset_of(start.get("headers", ()))
        names = codings(start.get("headers", ()))
        decoded = bool(names) and cannot_decode(names) is None
        if kind is CSS:
            # The GET's sheet is private when it names a partner, which a HEAD cannot tell.
            if decoded:
                del headers["content-encoding"]
            self.gate.response_headers.edit(start, self.scope, private=True, drop_validators=True,
                                            drop_length=True)
        elif ((kind is HTML and not unreadable_charset(charset) and (decoded or not names))
                or (kind is SNIFF and not names)):
            self.allowed = self._allowed_partners()
            if decoded:  # the GET body leaves decoded
                del headers["content-encoding"]
            if "content-length" in headers:  # the GET body's length depends on the rewrite
                del headers["content-length"]
            self._rewritten_headers(start, enforced_no_partner=False)
        else:
            if decoded:  # the GET body leaves decoded, respelled: its length may change
                del headers["content-encoding"]
            self._no_partner_headers(start, None, drop_length=True)
        await self.raw_send(start)
        await self.raw_send(first)

    async def _document(self, start: Message, first: Message, what: str) -> None:
        """XML (or multipart): another parser reads it, so it is not tokenized and the browser
        enforces 'no partner'. An XHTML (or SVG foreignObject) meta refresh still navigates
        (measured in Chromium 156), and the XML parser takes its encoding from the header, a
        byte order mark, the declaration's ``encoding=`` or the first bytes (UTF-16 without a
        BOM): every spelling of http-equiv is respelled (``_unreadable``)."""
        await self._unreadable(start, first, what)

    async def _respelled(self, start: Message, first: Message,
                         respeller: RefreshRespeller | WideRespeller | Iso2022Respeller
                         | AnyRespeller,
                         what: str) -> None:
        """A page in a charset the rewriter cannot read (UTF-16, ISO-2022-JP): not rewritten,
        out behind the enforced no-partner CSP, with every http-equiv respelled (in the
        decoded text for UTF-16): a meta refresh is a navigation no CSP stops (measured in
        Chromium 156: it reached the partner)."""
        self._to(UNREWRITTEN)
        self.respeller = respeller
        self._no_partner_headers(start, what, drop_length=True)
        self.start = None
        await self.raw_send(start)
        await self._rewrite_body(first)

    async def _unreadable(self, start: Message, first: Message, what: str) -> None:
        """A document we cannot read: out behind the enforced no-partner CSP, decoded if it
        was compressed, with ``http-equiv`` respelled in every spelling a browser could read
        (``AnyRespeller``: ASCII charsets, ISO-2022-JP with mode escapes, UTF-16 either byte
        order, whatever the label says). Sent as it came, such bodies followed a meta refresh
        to the partner past the CSP (measured in Chromium 156,
        tests/browser/test_encoding_vectors.py)."""
        await self._respelled(start, first, AnyRespeller(), what)

    def _whole_now(self, start: Message, first: Message, decision: Decision) -> Message | None:
        """The common page, answered without a coroutine of its own: ``decision`` is WHOLE
        (identity HTML whose whole body is in ``first``, in a readable charset) and no ledger
        write can be awaited (no ledger, or no partner allowed). The same steps as _act,
        _rewrite_first and _rewrite_whole take for it; returns the body message to send after
        the (edited) start. None, with nothing done, when a ledger write may be needed:
        ``_decide`` takes it."""
        gate = self.gate
        scope = self.scope
        body = first.get("body", b"")
        state = self.state
        consent = state.resolved_consent()  # (= state.consent, without a property's C call)
        discloser = gate.discloser
        allowed = consent.allowed_partners
        if allowed and discloser.writer is not None:
            return None  # partners may be enabled: their record is awaited (_rewrite_first)
        # From here on this path answers.
        if self.sets_cookie:
            gate.review.saw_cookies(start.get("headers", ()), scope.get("path", ""))
        self.charset = charset = decision.charset
        self.watch_charset = not decision.label_known
        self.phase = REWRITING  # HELD -> REWRITING, as _to(REWRITING) allows
        if allowed and not discloser.available():  # (as _allowed_partners)
            allowed = frozenset()
        self.allowed = allowed
        plans = gate.plans
        plan = plans.plan(consent, allowed, state.raw_language, charset)
        if gate.page_macros:
            self.macros = plans.signals.page_stream(consent)
        hit, keep = gate.memo.find(plan, body)
        if hit is None:
            out = self._rewrite_now(body, plan, keep)
            if self.phase is UNREWRITTEN:
                return self._whole_sent(start, out)
        elif hit.unknown_hosts:
            out = self._from_memo(hit)
        else:  # (the common hits: _from_memo's steps written out, a call fewer)
            if hit.enabled:
                self.disclosed = self.disclosed | hit.enabled
            out = hit.output
        # _whole_sent's steps for a rewritten page (REWRITING), written out: a call fewer.
        macros = self.macros
        if macros is not None:
            out = macros.feed(out) + macros.finish()
        n = len(out)
        length = _LENGTHS.get(n)  # (= _length(n), inline)
        gate.response_headers.rewritten(start, scope, allowed, enforced_no_partner=False,
                                        length=_length(n) if length is None else length)
        self.start = None
        self.phase = DONE  # from REWRITING, as _to(DONE) allows
        return {"type": "http.response.body", "body": out, "more_body": False}

    def _from_memo(self, hit: Rewritten) -> bytes:
        """A remembered rewrite of this very page with this plan, when no ledger write has to
        precede it (no partner enabled, or no ledger): only the bytes are reused."""
        self.disclosed = self.disclosed | hit.enabled
        if hit.unknown_hosts:
            self._report_unknown(hit.unknown_hosts)
        return hit.output

    def _rewrite_now(self, data: bytes, plan: RewritePlan, keep: bool) -> bytes:
        """A whole body rewritten when no ledger write can be awaited (see _whole_now): what
        _rewrite_whole and _rewrite_chunk do for it, without a coroutine."""
        self.rewriter = rewriter = HtmlRewriter(plan)
        try:
            # (= _run(rewriter, data, True) and take_enabled(), inline: two calls fewer on
            # the unique page; a page that enables nothing takes no frozenset)
            out = rewriter.feed(data) if data else b""
            tail = rewriter.finish()
            if tail:
                out += tail
            enabled = rewriter.take_enabled() if rewriter._enabled else _NO_HOSTS
            if keep:
                unknown = rewriter.unknown_hosts
                self.gate.memo.put(Rewritten(plan, data, out, enabled,
                                             frozenset(unknown) if unknown else _NO_HOSTS))
            if enabled:
                if self.gate.discloser.writer is not None:  # pragma: no cover - _whole_now
                    raise RuntimeError("consent-gate responder: partners enabled with no "
                                       "partner allowed")
                self.disclosed = self.disclosed | enabled
            if rewriter.unknown_hosts:
                self._report_unknown(rewriter.unknown_hosts)
            return out
        except Exception:
            return self._unrewritten_whole(data)

    def _unrewritten_whole(self, data: bytes) -> bytes:
        """The rewriter failed on a whole body before the headers left: the page goes out as
        sent, every http-equiv respelled, behind the enforced no-partner CSP."""
        logger.exception("consent-gate: the rewriter failed on %s before the headers "
                         "left; serving the page as sent (every http-equiv respelled) "
                         "with an enforced CSP that allows no partner", self.scope.get("path", ""))
        self._to(UNREWRITTEN)
        self.respeller = RefreshRespeller()
        return self.respeller.feed(data) + self.respeller.finish()

    def _whole_sent(self, start: Message, out: bytes) -> Message:
        """The last steps of a one-message page: macros filled, headers edited with the exact
        length, DONE; the body message to send after ``start``."""
        unrewritten = self.phase is UNREWRITTEN
        if self.macros is not None and not unrewritten:
            out = self.macros.feed(out) + self.macros.finish()
        self.gate.response_headers.rewritten(
            start, self.scope, frozenset() if self.ledger_failed else self.allowed,
            enforced_no_partner=unrewritten, length=_length(len(out)))
        self.start = None
        self.phase = DONE  # from REWRITING or UNREWRITTEN, as _to(DONE) allows
        return {"type": "http.response.body", "body": out, "more_body": False}

    async def _rewrite_first(self, start: Message, first: Message, decision: Decision) -> None:
        """HTML the rewriter reads (``decision`` WHOLE or STREAM)."""
        self.charset = decision.charset
        self.watch_charset = not decision.label_known
        body = first.get("body", b"")
        self._to(REWRITING)
        self.allowed = self._allowed_partners()
        plan = self.gate.plans.plan(self.consent, self.allowed, self.state.raw_language,
                                     self.charset)
        if self.gate.page_macros:
            self.macros = self.gate.plans.signals.page_stream(self.consent)
        if decision.route is WHOLE:
            # One-chunk body: rewritten all at once so Content-Length can stay exact; a page
            # rewritten before with this plan is reused, here when no ledger write is needed.
            hit, keep = self.gate.memo.find(plan, body)
            if hit is not None and (not hit.enabled or self.gate.discloser.writer is None):
                out = self._from_memo(hit)
            else:
                out = await self._rewrite_whole(body, plan, hit, keep)
            message = self._whole_sent(start, out)  # (edits the start's headers)
            await self.raw_send(start)
            await self.raw_send(message)
            return
        self.rewriter = HtmlRewriter(plan)
        start["headers"] = [item for item in start.get("headers", ())
                            if item[0] != b"content-length"]
        # The start message leaves with the first rewritten bytes (see _emit), so that its
        # CSP can still drop every partner if the ledger fails on the first chunk.
        await self._rewrite_body(first)

    async def _css(self, start: Message, first: Message, decision: Decision) -> None:
        """A style sheet (``decision`` CSS): its fetches that name a refused partner made inert,
        those of allowed partners recorded before they leave (gate/css.py). A sheet in one
        message that names no partner leaves as the app sent it (its bytes are the same for
        every visitor: cacheable as before); one that names a partner, or that streams,
        leaves private without validators, so that no cache hands one visitor's sheet to
        another, or to the same visitor after a withdrawal."""
        self.kind = CSS
        self.charset = decision.charset
        self._to(REWRITING)
        self.allowed = self._allowed_partners()
        plan = self.gate.plans.plan(self.consent, self.allowed, self.state.raw_language,
                                     self.charset)
        if self.inflater is None and not first.get("more_body", False):
            body = first.get("body", b"")
            read = await self._css_whole(plan, body)
            if read is None:
                return
            out, named = read
            self.start = None
            self._to(DONE)
            if named:
                self._rewritten_headers(start, enforced_no_partner=False, length=b"%d" % len(out))
                first = {"type": "http.response.body", "body": out, "more_body": False}
            else:
                self._untouched_headers(start)
            await self.raw_send(start)
            await self.raw_send(first)
            return
        self.rewriter = CssGate(plan, self.charset, lenient=self.css_lenient)
        start["headers"] = [item for item in start.get("headers", ())
                            if item[0] != b"content-length"]
        await self._rewrite_body(first)

    async def _css_whole(self, plan: RewritePlan, body: bytes) -> tuple[bytes, bool] | None:
        """A one-message sheet's (bytes, named), remembered per plan (gate/sheet_memo.py): a
        hit still discloses its allowed partners first, and on a ledger failure the sheet is
        read afresh with every partner refused. None once the response was ended."""
        memo = self.gate.sheets
        charset = self.charset
        lenient = self.css_lenient
        read = memo.get(plan, charset, lenient, body)
        if read is not None:
            if not read.enabled or await self._disclose(read.enabled):
                self._report_unknown(read.unknown_hosts)
                return read.output, read.named
            plan = self.gate.plans.blocked(self.consent, self.state.raw_language, self.charset)
        sheet = self.rewriter = CssGate(plan, charset, lenient=lenient)
        out = await self._css_step(body, final=True)
        if out is None:
            return None
        if not self.ledger_failed and sheet.dropped is None:
            unknown = sheet.unknown_hosts
            memo.put(charset, lenient, body, SheetRead(
                plan, out, self.disclosed, sheet.named,
                frozenset(unknown) if unknown else _NO_HOSTS))
        return out, sheet.named

    def _css_dropped(self, sheet: CssGate) -> None:
        if sheet.dropped is not None:
            logger.warning("consent-gate: %s %s is %s, which cannot be read byte by byte; it "
                           "was sent empty. Fix: serve style sheets in UTF-8.",
                           self.scope["method"], self.scope["path"], sheet.dropped)

    async def _css_step(self, data: bytes, *, final: bool) -> bytes | None:
        """A style sheet's read bytes for ``data`` (None once the response was ended: a
        reader failure fails closed, before or after the headers)."""
        try:
            out = await self._rewrite_chunk(data, final=final)
        except Exception:
            logger.exception("consent-gate: the style sheet reader failed on %s",
                             self.scope.get("path", ""))
            await self._fail("the style sheet reader failed")
            return None
        if final and isinstance(self.rewriter, CssGate):
            self._css_dropped(self.rewriter)
        return out

    def _allowed_partners(self) -> frozenset[str]:
        allowed = self.consent.allowed_partners
        if allowed and not self.gate.discloser.available():
            # Fail closed: without a working ledger no partner is enabled.
            return frozenset()
        return allowed

    # --- headers (the edits themselves: ResponseHeaders) --------------------------------

    def _untouched_headers(self, start: Message) -> None:
        """A body that passes: private when the view read the consent; either way its
        fetching headers (Link, Refresh, ...) lose what names a partner, because a browser
        that opens it as a page acts on them whatever the body is."""
        if self.state.consent_read:
            self.gate.response_headers.edit(start, self.scope, private=True)
        else:
            self.gate.response_headers.gate_fetching(start, self.scope)

    def _rewritten_headers(self, start: Message, *, enforced_no_partner: bool,
                           drop_length: bool = False, length: bytes | None = None) -> None:
        """A rewritten page: private, no validators, the CSP of its allowed partners (a style
        sheet: private, no validators; a CSP on a sheet governs nothing)."""
        if self.kind is CSS:
            self.gate.response_headers.edit(start, self.scope, private=True, drop_validators=True,
                                            drop_length=drop_length, length=length)
            return
        self.gate.response_headers.rewritten(
            start, self.scope, frozenset() if self.ledger_failed else self.allowed,
            enforced_no_partner=enforced_no_partner, drop_length=drop_length, length=length)

    def _no_partner_headers(self, start: Message, what: str | None, *,
                            drop_length: bool = False) -> None:
        self.gate.response_headers.no_partner(start, self.scope, what, private=self.state.consent_read,
                                     drop_length=drop_length)

    # --- the body -----------------------------------------------------------------------

    async def _rewrite_body(self, message: Message) -> None:
        more = bool(message.get("more_body", False))
        data = message.get("body", b"")
        step = self._css_step if self.kind is CSS else self._step
        if self.inflater is None:
            out = await step(data, final=not more)
            if out is not None:
                await self._emit(out, more)
            return
        try:
            # Piece by piece: each decoded step is rewritten and sent before the next is
            # decoded, so a bomb never sits in memory.
            for piece in self.inflater.pieces(data, final=not more):
                out = await step(piece, final=False)
                if out is None:
                    return
                if out:
                    await self._emit(out, True)
        except InflateError as exc:
            await self._fail(str(exc))
            return
        if not more:
            cut = self.inflater.truncated()
            if cut:
                # Chromium renders a truncated stream's bytes: so does the gate, rewritten (a
                # tag the cut left open is dropped, as the browser drops it).
                logger.warning("consent-gate: %s %s: the %s stream ended before its end "
                               "(truncated); the %d decoded bytes were rewritten and sent",
                               self.scope["method"], self.scope["path"], ", ".join(cut),
                               self.inflater.decoded)
            out = await step(b"", final=True)
            if out is not None:
                await self._emit(out, False)

    async def _emit(self, body: bytes, more: bool) -> None:
        start = self.start
        if start is not None:
            if not body and more:
                return  # nothing yet: keep the start (and its CSP) open
            self.start = None
            self.unsent = b""
            self._rewritten_headers(start, enforced_no_partner=self.phase is UNREWRITTEN)
            await self.raw_send(start)
        if not more:
            self._to(DONE)
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
            # The app's Content-Length is not the (empty) body's: h11 raised on it.
            self._rewritten_headers(start, enforced_no_partner=True, drop_length=True)
            await self.raw_send(start)
        self._to(FAILED_AFTER_HEADERS)
        await self.raw_send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _iso2022jp(self, data: bytes, final: bool) -> bytes | None:
        """The page declares ISO-2022-JP, which the byte-level rewriter cannot read: before
        the headers left it goes out as sent (http-equiv respelled) behind the enforced
        no-partner CSP; after, the response ends."""
        self.watch_charset = False
        if self.start is None:
            await self._fail("a charset declaration of ISO-2022-JP (unreadable to the rewriter)")
            return None
        logger.warning("consent-gate: %s %s declares ISO-2022-JP in its markup, which cannot be "
                       "rewritten; it goes out as sent with an enforced CSP that allows no "
                       "partner. Fix: send UTF-8 (or name the charset in Content-Type).",
                       self.scope["method"], self.scope["path"])
        self._to(UNREWRITTEN)
        respeller = self.respeller = Iso2022Respeller()
        out = respeller.feed(self.unsent + data) + (respeller.finish() if final else b"")
        self.unsent = b""
        return out

    async def _step(self, data: bytes, *, final: bool) -> bytes | None:
        """Rewritten bytes for ``data`` (None once the response was ended)."""
        if self.phase is UNREWRITTEN:
            if self.respeller is None:
                return data
            return self.respeller.feed(data) + (self.respeller.finish() if final else b"")
        if self.start is not None:
            if self.fed == 0:
                # The first bytes may split a byte order mark or an XML declaration (its
                # encoding= may name ISO-2022-JP): keep them until it is whole.
                data, self.sniffed = self.sniffed + data, b""
                if not final and (bom_prefix(data) or xml_declaration_open(data)):
                    self.sniffed = data
                    return b""
            if self.fed == 0 and data and wide_bom(data):
                # The BOM wins over the charset label: the browser reads UTF-16.
                logger.warning("consent-gate: %s %s starts with a UTF-16 byte order mark; it goes "
                               "out as sent with an enforced CSP that allows no partner.",
                               self.scope["method"], self.scope["path"])
                self._to(UNREWRITTEN)
                codec = wide_codec(None, data)
                # No BOM's codec (a UTF-32 BOM, a UTF-16 XML declaration): every spelling.
                wide = self.respeller = AnyRespeller() if codec is None else WideRespeller(codec)
                return wide.feed(data) + (wide.finish() if final else b"")
        if self.watch_charset and data:
            window = self.charset_tail + data
            if declares_iso2022jp(window):
                return await self._iso2022jp(data, final)
            self.charset_tail = charset_tail(window)
        if self.start is not None:
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
                self._to(UNREWRITTEN)
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
                return self._unrewritten_whole(data)
        if hit.enabled and not await self._disclose(hit.enabled):
            self.rewriter = HtmlRewriter(self.gate.plans.blocked(
                self.consent, self.state.raw_language, self.charset))
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
        try:
            # The first record of this view reads the request (most views have none); a later
            # one, for partners a later chunk enables, is the same request's.
            self.recorded = await self.gate.discloser.disclose(new, self.scope, self.consent,
                                                                self.recorded)
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
            rewriter.restore(before, self.gate.plans.blocked(
                self.consent, self.state.raw_language, self.charset))
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

def _run(rewriter: HtmlRewriter | CssGate, data: bytes, final: bool) -> bytes:
    out = rewriter.feed(data) if data else b""
    return out + rewriter.finish() if final else out


class SheetResponder(HtmlResponder):
    """The responder of a request that asks for a style sheet (gate/send.py style_send): its
    start is a sheet's whatever its Content-Type announces (a quirks-mode page applies any
    type), so gate/css.py reads the body. A subclass, so the common responder pays nothing."""

    style_request = True

    def start_message(self, message: Message, announced: tuple[BodyKind, bool] | None,
                      ) -> Awaitable[None]:
        """The start read as a sheet's. Names lower-cased first (Django's ``Content-Type``),
        and a start whose kind cannot be read even then (a header name with no letter) is a
        sheet's too: sniffed, an HTML body was rewritten as HTML and its CSS left as text.
        A start that announces anything but CSS is read as a sheet only because the request
        asked for one, so it leaves ``no-store`` (``_stored_by_no_cache``)."""
        headers = [(k.lower(), v) for k, v in message.get("headers", ())]
        read = start_kind(headers)
        if read is None or read[0] is not CSS:
            headers = self._stored_by_no_cache(headers)
        message = {**message, "headers": headers}
        return super().start_message(message, SHEET_PAIRS[read[1] if read is not None else True])

    def _stored_by_no_cache(self, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        """The headers of a body read as CSS though its type says otherwise (an HTML page, a
        text, JSON ...): gate/css.py gates its CSS fetches only, so an HTML page's ``<img>``
        or ``<script src>`` of a refused partner leaves as written, and with the app's own
        ``Cache-Control: public`` one request with ``Sec-Fetch-Dest: style`` stored that
        ungated page in a shared cache under its URL for every later document request
        (tests/test_review_style_cache.py). So: ``private, no-store`` in place of the app's caching,
        no validators, ``Vary`` on the headers that chose the reading, and the enforced
        no-partner CSP, should anything show it as a document all the same."""
        kept = [(k, v) for k, v in headers if k not in _SHEET_DROPPED]
        vary = merge_vary(b",".join(v for k, v in headers if k == b"vary").decode("latin-1"),
                          ("Sec-Fetch-Dest", "Accept"))
        csp = self.gate.response_headers.csp.value(frozenset())
        kept += [(b"cache-control", b"private, no-store"), (b"vary", vary.encode("latin-1")),
                 (b"content-security-policy", csp)]
        return kept


#: What ``SheetResponder._stored_by_no_cache`` replaces or drops of the app's headers.
_SHEET_DROPPED = frozenset({b"cache-control", b"expires", b"pragma", b"etag", b"last-modified",
                            b"vary", b"age"})
