"""The owner's pass for ``consent-gate scan``: see a page as the site sends it.

Scanning the wrapped site would read the already-rewritten page (partner tags neutralised)
and report "no partners". ``scan`` therefore sends a short-lived token, an HMAC of the
time, method and path under the site's own signing key; the middleware answers a request
carrying a valid one with the site's response untouched and marked ``X-Consent-Gate:
original``. Without the secret nobody can make one, and browsers never send it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterable

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Scope, Send

HEADER = "x-consent-gate-scan"
HEADER_BYTES = HEADER.encode()
#: Response header on the untouched page (and its value).
ORIGINAL_HEADER = "x-consent-gate"
ORIGINAL_VALUE = "original"
#: Seconds a token stays valid, either way (clocks of two machines differ a little).
MAX_AGE = 60


def _mac(key: str, stamp: int, method: str, path: str) -> str:
    message = f"consent-gate-scan\n{stamp}\n{method.upper()}\n{path}".encode()
    return hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def make_token(key: str, method: str, path: str, now: float | None = None) -> str:
    stamp = int(time.time() if now is None else now)
    return f"{stamp}.{_mac(key, stamp, method, path)}"


def check_token(keys: Iterable[str], token: str, method: str, path: str,
                now: float | None = None) -> bool:
    """True for a fresh token made with one of ``keys`` for this method and path."""
    stamp_text, _, mac = token.strip().partition(".")
    # ASCII digits only: str.isdigit() also takes "²", which int() refuses.
    if not (stamp_text.isascii() and stamp_text.isdigit()) or len(stamp_text) > 12 \
            or len(mac) != 64:
        return False
    stamp = int(stamp_text)
    if abs((time.time() if now is None else now) - stamp) > MAX_AGE:
        return False
    return any(hmac.compare_digest(_mac(k, stamp, method, path), mac) for k in keys)


def owner_scan(scope: Scope, keys: Iterable[str]) -> bool:
    """Does this request carry a valid scan token?"""
    for name, value in scope.get("headers", ()):
        if name == HEADER_BYTES:
            return check_token(keys, value.decode("latin-1"), scope["method"], scope["path"])
    return False


def mark_original(send: Send) -> Send:
    """``send`` that marks the response as the site's own and keeps it out of every cache."""

    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            headers[ORIGINAL_HEADER] = ORIGINAL_VALUE
            headers["cache-control"] = "no-store"
        await send(message)

    return marked
