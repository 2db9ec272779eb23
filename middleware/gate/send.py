"""The ``send`` the site's app is given: a response whose start message passes untouched (JSON
or a file: ``start_kind`` on its raw headers, no Set-Cookie, the consent unread, not HEAD)
goes straight to the server's send, and no HtmlResponder is made for it; any other first
message makes the response's HtmlResponder, which then gets that message and every later one.

So the pass path builds one small object per request and runs no Python frame per message in
C (``_speedups.pass_send``, unless pure Python); ``PassSend`` is the reference. Either way the
messages the server receives, and the exceptions the app sees, are those of an HtmlResponder
given every message (tests/test_gate_send.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.types import Message, Scope, Send

from ..accel import speedups
from .phases import HELD
from .responder import _HELD, HtmlResponder, SheetResponder, passes_untouched
from .start import HTML, start_kind
from .state import ConsentState

if TYPE_CHECKING:
    from ..asgi import ConsentMiddleware


def responder_for(gate: ConsentMiddleware, scope: Scope, raw_send: Send,
                  state: ConsentState) -> HtmlResponder:
    """The response's HtmlResponder (no Python __init__: see there)."""
    responder = HtmlResponder()
    responder.gate = gate
    responder.scope = scope
    responder.raw_send = raw_send
    responder.state = state
    return responder


class PassSend:
    """The reference of ``_speedups.pass_send``'s object (see the module)."""

    __slots__ = ("gate", "passing", "raw_send", "responder", "scope", "state")
    gate: ConsentMiddleware
    scope: Scope
    raw_send: Send
    state: ConsentState
    responder: HtmlResponder | None
    passing: bool

    def send(self, message: Message) -> Awaitable[None]:
        if self.passing:
            return self.raw_send(message)
        responder = self.responder
        if responder is not None:
            return responder.send(message)
        if message["type"] == "http.response.start":  # (a KeyError as the responder raises it)
            announced = start_kind(message.get("headers", ()))
            if passes_untouched(announced, self.state, self.scope):
                self.passing = True
                return self.raw_send(message)
            responder = self.responder = responder_for(self.gate, self.scope, self.raw_send,
                                                       self.state)
            return responder.start_message(message, announced)
        responder = self.responder = responder_for(self.gate, self.scope, self.raw_send,
                                                   self.state)
        return responder.send(message)


def pass_send_py(gate: ConsentMiddleware, scope: Scope, raw_send: Send,
                 state: ConsentState) -> Send:
    """The send for the app of one response (``scope``: the app's scope)."""
    made = PassSend()
    made.gate = gate
    made.scope = scope
    made.raw_send = raw_send
    made.state = state
    made.responder = None
    made.passing = False
    return made.send


def style_send(gate: ConsentMiddleware, scope: Scope, raw_send: Send,
               state: ConsentState) -> Send:
    """The send for the app when the browser asks for a style sheet (gate/request.py
    ``request_view``): no pass path, the responder reads the answer as a sheet whatever its
    Content-Type. A quirks-mode page applies a same-origin sheet of any type (text/plain,
    text/html, JSON, an image): Chromium 156 fetched the partner such a sheet names through
    the gate with the CSP off or report-only (tests/browser/test_redteam_round4.py)."""
    responder = SheetResponder()
    responder.gate = gate
    responder.scope = scope
    responder.raw_send = raw_send
    responder.state = state
    return responder.send


#: The C twin of pass_send_py (the same moves, its answer is the callable object itself).
pass_send: Callable[[Any, Scope, Send, ConsentState], Send] = pass_send_py
if speedups is not None:
    # What responder_for makes, and how HtmlResponder.start_message and send take an HTML
    # page held until its first body (the C does those two steps itself: no Python frame).
    speedups.pass_send_setup(HtmlResponder, HTML, _HELD, HELD)
    pass_send = speedups.pass_send
