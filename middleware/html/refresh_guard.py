"""The last guard against the one partner contact no CSP stops: ``<meta http-equiv=refresh>``.

When a page goes out without its rewrite (the rewriter failed before the headers left), the
enforced no-partner CSP stops every partner fetch, but a meta refresh is a navigation and
CSP has no directive for it. Renaming every ``http-equiv`` (in any case) to
``data-consent-http-equiv`` leaves no meta able to refresh. It parses nothing, so it cannot
fail where the tokenizer did, and it misses nothing: an attribute name holds no character
references, so in an ASCII-compatible encoding ``http-equiv`` has no other spelling.
"""

from __future__ import annotations

import re

_NAME = b"http-equiv"
_NAME_RE = re.compile(re.escape(_NAME), re.IGNORECASE)
_RESPELLED = b"data-consent-" + _NAME


class RefreshRespeller:
    """Streams bytes with every ``http-equiv`` respelled, across any chunking.

    Up to 9 bytes that could begin the name are held until the next chunk (the name has no
    proper prefix that is also a suffix, so a held tail never overlaps a respelled name)."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk
        keep = _open_prefix(data)
        self._held = data[len(data) - keep:] if keep else b""
        return _NAME_RE.sub(_RESPELLED, data[:len(data) - keep] if keep else data)

    def finish(self) -> bytes:
        held, self._held = self._held, b""
        return held


def _open_prefix(data: bytes) -> int:
    """The length of the longest tail of ``data`` that begins the name (case-insensitively)."""
    tail = data[-(len(_NAME) - 1):].lower()
    for k in range(min(len(tail), len(_NAME) - 1), 0, -1):
        if tail.endswith(_NAME[:k]):
            return k
    return 0
