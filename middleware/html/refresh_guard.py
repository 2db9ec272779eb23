"""The last guard against the one partner contact no CSP stops: ``<meta http-equiv=refresh>``.

When a page goes out without its rewrite (the rewriter failed before the headers left), the
enforced no-partner CSP stops every partner fetch, but a meta refresh is a navigation and
CSP has no directive for it. Renaming every ``http-equiv`` (in any case) to
``data-consent-http-equiv`` leaves no meta able to refresh. It parses nothing, so it cannot
fail where the tokenizer did, and it misses nothing: an attribute name holds no character
references, so in an ASCII-compatible encoding ``http-equiv`` has no other spelling.
"""

from __future__ import annotations

import codecs
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


_TEXT_RE = re.compile("http-equiv", re.IGNORECASE | re.ASCII)
_TEXT_NAME = "http-equiv"


class WideRespeller:
    """RefreshRespeller for a UTF-16 body (``codec``: "utf-16-le" or "utf-16-be"), which a
    byte-level reading cannot see: decoded (lone surrogates kept), every ``http-equiv``
    respelled as text, encoded back, so every other byte goes out as sent. A trailing odd
    byte (never a character) is passed as it came."""

    def __init__(self, codec: str) -> None:
        self._codec = codec
        self._decoder: codecs.IncrementalDecoder | None = None
        self._start = b""  # the first bytes, until they show a byte order mark or not
        self._held = ""

    def feed(self, chunk: bytes) -> bytes:
        if self._decoder is None:
            head = self._start + chunk
            if len(head) < 2:
                self._start = head
                return b""
            # The byte order mark wins over the label (HTML §13.2.3.1).
            if head[:2] == b"\xff\xfe":
                self._codec = "utf-16-le"
            elif head[:2] == b"\xfe\xff":
                self._codec = "utf-16-be"
            self._decoder = codecs.getincrementaldecoder(self._codec)("surrogatepass")
            chunk, self._start = head, b""
        text = self._held + self._decoder.decode(chunk)
        keep = _open_text_prefix(text)
        self._held = text[len(text) - keep:] if keep else ""
        done = text[:len(text) - keep] if keep else text
        return _TEXT_RE.sub("data-consent-" + _TEXT_NAME, done).encode(self._codec, "surrogatepass")

    def finish(self) -> bytes:
        if self._decoder is None:
            start, self._start = self._start, b""
            return start
        pending = self._decoder.getstate()[0]
        held, self._held = self._held, ""
        return held.encode(self._codec, "surrogatepass") + pending


def _open_text_prefix(text: str) -> int:
    tail = text[-(len(_TEXT_NAME) - 1):].lower()
    for k in range(min(len(tail), len(_TEXT_NAME) - 1), 0, -1):
        if tail.endswith(_TEXT_NAME[:k]):
            return k
    return 0


# ISO-2022-JP: ESC ( B (ASCII) and ESC ( J (JIS-Roman) switch to a mode where the letters are
# the letters, so a browser reads "http-ESC(Bequiv" as http-equiv (measured in Chromium 156).
_ESC = rb"(?:\x1b\([BJ])"
_ESC_NAME_RE = re.compile(rb"(?i)" + (_ESC + rb"*").join(re.escape(bytes([c])) for c in _NAME))

def _tail_pattern(name: bytes) -> bytes:
    """A proper prefix of the (escaped) name, ending the data: what must wait for more."""
    out = re.escape(name[-2:-1]) + _ESC + b"*"
    for c in reversed(name[:-2]):
        out = re.escape(bytes([c])) + _ESC + b"*(?:" + out + b")?"
    return out


_ESC_TAIL_RE = re.compile(rb"(?i)" + _tail_pattern(_NAME) + rb"(?:\x1b\(?)?\Z")
_ESC_ONLY_RE = re.compile(_ESC)


def _respell_escaped(m: re.Match[bytes]) -> bytes:
    # Keep the mode the name's last escape left the decoder in.
    escapes = _ESC_ONLY_RE.findall(m.group(0))
    return _RESPELLED + (escapes[-1] if escapes else b"")


class Iso2022Respeller:
    """RefreshRespeller for ISO-2022-JP: also the names spelled with mode escapes inside
    them (dropped, the last one kept after the respelled name), across any chunking."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk
        m = _ESC_TAIL_RE.search(data)
        keep = len(data) - m.start() if m is not None else 0
        self._held = data[len(data) - keep:] if keep else b""
        return _ESC_NAME_RE.sub(_respell_escaped, data[:len(data) - keep] if keep else data)

    def finish(self) -> bytes:
        held, self._held = self._held, b""
        return _ESC_NAME_RE.sub(_respell_escaped, held)


# UTF-16 at byte level: each letter is one code unit, its ASCII byte beside a zero byte (no
# other code unit decodes to an ASCII letter), so the name has these two spellings only.
def _wide_name(order: str) -> bytes:
    units = (b"\x00" + re.escape(bytes([c])) if order == "be" else re.escape(bytes([c])) + b"\x00"
             for c in _NAME)
    return b"".join(units)


_WIDE_RE = re.compile(rb"(?i)(" + _wide_name("le") + rb")|" + _wide_name("be"))
_WIDE_LEN = 2 * len(_NAME)
_WIDE_OUT = {True: _RESPELLED.decode().encode("utf-16-le"),
             False: _RESPELLED.decode().encode("utf-16-be")}


class _WideBytesRespeller:
    """``http-equiv`` in UTF-16LE or UTF-16BE respelled at byte level, at any alignment (an
    odd one is over-inclusive: the bytes of two rare CJK characters), across any chunking.
    The respelled name is 26 bytes longer: an even number, so what follows keeps its
    alignment."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, chunk: bytes, final: bool = False) -> bytes:
        data = self._held + chunk
        # A match that starts before the cut is whole in data (the name has a fixed length).
        cut = len(data) if final else max(0, len(data) - (_WIDE_LEN - 1))
        out: list[bytes] = []
        pos = 0
        for m in _WIDE_RE.finditer(data):
            if m.start() >= cut:
                break
            out.append(data[pos:m.start()])
            out.append(_WIDE_OUT[m.group(1) is not None])
            pos = m.end()
        cut = max(cut, pos)
        out.append(data[pos:cut])
        self._held = data[cut:]
        return b"".join(out)

    def finish(self) -> bytes:
        return self.feed(b"", final=True)


class AnyRespeller:
    """For a body whose encoding we do not know the browser's reading of (an XML document's
    declaration, a UTF-16 one without a byte order mark, a label it ignores): ``http-equiv``
    respelled in every spelling a browser can decode as that name, ASCII-compatible charsets
    and ISO-2022-JP with mode escapes inside the name (``Iso2022Respeller``), and UTF-16LE/BE
    (byte level). Over-inclusive only; any chunking."""

    def __init__(self) -> None:
        self._narrow = Iso2022Respeller()
        self._wide = _WideBytesRespeller()

    def feed(self, chunk: bytes) -> bytes:
        return self._wide.feed(self._narrow.feed(chunk))

    def finish(self) -> bytes:
        return self._wide.feed(self._narrow.finish(), final=True)
