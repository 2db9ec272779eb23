"""The last guard against the one partner contact no CSP stops: ``<meta http-equiv=refresh>``.

When a page goes out without its rewrite (the rewriter failed before the headers left), the
enforced no-partner CSP stops every partner fetch, but a meta refresh is a navigation and
CSP has no directive for it. Renaming every ``http-equiv`` (in any case) to
``data-consent-http-equiv`` leaves no meta able to refresh. It parses nothing, so it cannot
fail where the tokenizer did, and it misses nothing: an attribute name holds no character
references, so in an ASCII-compatible encoding ``http-equiv`` has no other spelling.

The other contact no CSP stops is a speculation rule set's prefetch: an inline ``<script
type=speculationrules>`` runs under the policy's ``'unsafe-inline'`` (the site's inline scripts
must), and a prefetch is a navigation to the browser. In an XHTML, SVG or UTF-16 document
the gate cannot rewrite, Chromium 156 prefetched a listed partner URL with the enforced
no-partner CSP in place (tests/browser/test_redteam_round4.py). So every respeller here also
respells the word ``speculationrules`` (any case) to ``data-consent-speculationrules``: the
type is then unknown, the script a data block. Over-inclusive (the word in text or a
script's string is respelled too). A type spelled with character references is read by
``AnyRespeller`` (letter references decoded first), not by the HTML respellers
(docs/csp.md, "What remains").
"""

from __future__ import annotations

import codecs
import functools
import re

_NAME = b"http-equiv"
_RESPELLED = b"data-consent-" + _NAME
_SPECULATION = b"speculationrules"
#: The names every respeller respells (lower case) -> their respelling.
_HTML_NAMES = {_NAME: _RESPELLED, _SPECULATION: b"data-consent-" + _SPECULATION}
_NAMES_RE = re.compile(b"|".join(re.escape(n) for n in _HTML_NAMES), re.IGNORECASE)
_LONGEST = max(len(n) for n in _HTML_NAMES)


def _respell_names(m: re.Match[bytes]) -> bytes:
    return _HTML_NAMES[m.group(0).lower()]


class RefreshRespeller:
    """Streams bytes with every ``http-equiv`` and ``speculationrules`` respelled, across any
    chunking.

    The names have fixed lengths, so a match that starts more than 15 bytes before the end of
    what is held is whole: those bytes go out, the last 15 (or from the end of the last match)
    wait for the next chunk. (``speculationrules`` begins and ends with ``s``: holding "the
    tail that begins a name" lost a whole name that ended the data.)"""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk
        cut = max(0, len(data) - (_LONGEST - 1))
        out: list[bytes] = []
        pos = 0
        for m in _NAMES_RE.finditer(data):
            if m.start() >= cut:
                break
            out.append(data[pos:m.start()])
            out.append(_respell_names(m))
            pos = m.end()
        cut = max(cut, pos)
        out.append(data[pos:cut])
        self._held = data[cut:]
        return b"".join(out)

    def finish(self) -> bytes:
        held, self._held = self._held, b""
        return _NAMES_RE.sub(_respell_names, held)


_TEXT_NAMES = {k.decode(): v.decode() for k, v in _HTML_NAMES.items()}
_TEXT_RE = re.compile("|".join(_TEXT_NAMES), re.IGNORECASE | re.ASCII)


def _respell_text(m: re.Match[str]) -> str:
    return _TEXT_NAMES[m.group(0).lower()]


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
        # As RefreshRespeller: a match that starts before the last 15 characters is whole.
        cut = max(0, len(text) - (_LONGEST - 1))
        out: list[str] = []
        pos = 0
        for m in _TEXT_RE.finditer(text):
            if m.start() >= cut:
                break
            out.append(text[pos:m.start()])
            out.append(_respell_text(m))
            pos = m.end()
        cut = max(cut, pos)
        out.append(text[pos:cut])
        self._held = text[cut:]
        return "".join(out).encode(self._codec, "surrogatepass")

    def finish(self) -> bytes:
        if self._decoder is None:
            start, self._start = self._start, b""
            return start
        pending = self._decoder.getstate()[0]
        held, self._held = self._held, ""
        return _TEXT_RE.sub(_respell_text, held).encode(self._codec, "surrogatepass") + pending


# ISO-2022-JP: ESC ( B (ASCII) and ESC ( J (JIS-Roman) switch to a mode where the letters are
# the letters, so a browser reads "http-ESC(Bequiv" as http-equiv (measured in Chromium 156).
_ESC = rb"(?:\x1b\([BJ])"


def _tail_pattern(name: bytes) -> bytes:
    """A proper prefix of the (escaped) name, ending the data: what must wait for more."""
    out = re.escape(name[-2:-1]) + _ESC + b"*"
    for c in reversed(name[:-2]):
        out = re.escape(bytes([c])) + _ESC + b"*(?:" + out + b")?"
    return out


_ESC_ONLY_RE = re.compile(_ESC)


class _EscapedRespeller:
    """Each of ``names`` (name -> its respelling) respelled in any case, also when spelled
    with ISO-2022-JP mode escapes inside it (dropped, the last one kept after the respelled
    name so the decoder's mode is unchanged), across any chunking."""

    def __init__(self, names: dict[bytes, bytes]) -> None:
        self._names = {k.lower(): v for k, v in names.items()}
        self._re, self._tail_re = _escaped_res(tuple(names))
        self._held = b""

    def _respell(self, m: re.Match[bytes]) -> bytes:
        escapes = _ESC_ONLY_RE.findall(m.group(0))
        plain = _ESC_ONLY_RE.sub(b"", m.group(0)).lower()
        return self._names[plain] + (escapes[-1] if escapes else b"")

    def feed(self, chunk: bytes) -> bytes:
        data = self._held + chunk
        # The open tail is looked for after the last whole name (``speculationrules`` ends
        # with the ``s`` it begins with: that ``s`` alone is no tail to hold).
        last = 0
        for whole in self._re.finditer(data):
            last = whole.end()
        m = self._tail_re.search(data, last)
        keep = len(data) - m.start() if m is not None else 0
        self._held = data[len(data) - keep:] if keep else b""
        return self._re.sub(self._respell, data[:len(data) - keep] if keep else data)

    def finish(self) -> bytes:
        held, self._held = self._held, b""
        return self._re.sub(self._respell, held)


@functools.cache
def _escaped_res(names: tuple[bytes, ...]) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    spelled = (b"(?:" + (_ESC + b"*").join(re.escape(bytes([c])) for c in n) + b")" for n in names)
    tails = (b"(?:" + _tail_pattern(n) + b")" for n in names)
    return (re.compile(rb"(?i)" + b"|".join(spelled)),
            re.compile(rb"(?i)(?:" + b"|".join(tails) + rb")(?:\x1b\(?)?\Z"))


class Iso2022Respeller(_EscapedRespeller):
    """RefreshRespeller for ISO-2022-JP: also the names spelled with mode escapes inside
    them (dropped, the last one kept after the respelled name), across any chunking."""

    def __init__(self) -> None:
        super().__init__(_HTML_NAMES)


# UTF-16 at byte level: each letter is one code unit, its ASCII byte beside a zero byte (no
# other code unit decodes to an ASCII letter), so the name has these two spellings only.
def _wide_name(name: bytes, order: str) -> bytes:
    units = (b"\x00" + re.escape(bytes([c])) if order == "be" else re.escape(bytes([c])) + b"\x00"
             for c in name)
    return b"".join(units)


#: XSLT (Chromium 156 applies a same-origin ``<?xml-stylesheet?>``, measured: a transform that
#: builds the name with concat('http-','equiv') followed its refresh to the partner): the
#: processing instruction is renamed, so the XML document shows untransformed.
_PI = b"<?xml-stylesheet"
_DOCUMENT_NAMES = {**_HTML_NAMES, _PI: b"<?consent-blocked-xml-stylesheet"}
_WIDE_RE = re.compile(rb"(?i)" + b"|".join(
    _wide_name(n, order) for n in _DOCUMENT_NAMES for order in ("le", "be")))
_WIDE_LEN = 2 * max(len(n) for n in _DOCUMENT_NAMES)


def _wide_out(m: re.Match[bytes]) -> bytes:
    raw = m.group(0)
    codec = "utf-16-le" if raw[1] == 0 else "utf-16-be"
    name = raw.decode(codec).lower().encode()
    return _DOCUMENT_NAMES[name].decode().encode(codec)


class _WideBytesRespeller:
    """``http-equiv`` (and ``<?xml-stylesheet`` in any case but the exact one, which
    ``_WideStylesheetJudge`` before it kept) in UTF-16LE or UTF-16BE respelled at byte
    level, at any alignment (an odd one is over-inclusive: the bytes of rare CJK characters),
    across any chunking. A respelled name is an even number of bytes longer, so what follows
    keeps its alignment."""

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
            out.append(m.group(0) if m.group(0) in _WIDE_PI else _wide_out(m))
            pos = m.end()
        cut = max(cut, pos)
        out.append(data[pos:cut])
        self._held = data[cut:]
        return b"".join(out)

    def finish(self) -> bytes:
        return self.feed(b"", final=True)


_E = rb"(?:\x1b\([BJ])*"  # ISO-2022-JP's ASCII-mode escapes, invisible to the decoded text
_CHAR_REF_RE = re.compile(
    rb"&" + _E + rb"#" + _E + rb"(?:([xX])" + _E + rb")?((?:[0-9a-fA-F]" + _E + rb")+);"
    rb"|&\x00#\x00(?:([xX])\x00)?((?:[0-9a-fA-F]\x00)+);\x00"
    rb"|\x00&\x00#(?:\x00([xX]))?((?:\x00[0-9a-fA-F])+)\x00;")
_ESC_BYTES_RE = re.compile(rb"\x1b\([BJ]|\x00")
#: A character reference cut by the chunk end is held at most this long (leading zeros).
_REF_HOLD = 4096
_NAME_CHARS = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-")


def _letter_ref(m: re.Match[bytes]) -> bytes:
    """A character reference to an ASCII letter or '-' as that character (what the XML
    parser makes of it, in text, attribute values and entity values alike); others as sent."""
    wide = m.group(2) is None
    hexa = m.group(1) or (m.group(3) if m.group(4) is not None else m.group(5))
    digits = _ESC_BYTES_RE.sub(b"", next(g for g in (m.group(2), m.group(4), m.group(6))
                                          if g is not None)).lstrip(b"0") or b"0"
    if len(digits) > 6:
        return m.group(0)
    try:
        value = int(digits, 16 if hexa else 10)
    except ValueError:
        return m.group(0)  # a decimal reference with hex digits: no reference at all
    if value not in _NAME_CHARS:
        return m.group(0)
    if not wide:
        escapes = _ESC_ONLY_RE.findall(m.group(0))
        return bytes([value]) + (escapes[-1] if escapes else b"")
    return bytes([value, 0]) if m.group(4) is not None else bytes([0, value])


class _LetterRefDecoder:
    """Character references to letters decoded in place (ASCII, ISO-2022-JP with escapes
    inside, UTF-16LE/BE), so that a name an XML entity builds from them
    (``<!ENTITY r "<meta &#104;ttp-equiv='refresh' ...>">``: Chromium expands it and follows
    the refresh, measured) is spelled out for the respellers after it."""

    def __init__(self) -> None:
        self._held = b""

    def feed(self, chunk: bytes, final: bool = False) -> bytes:
        data = _CHAR_REF_RE.sub(_letter_ref, self._held + chunk)
        self._held = b""
        if not final:
            amp = data.rfind(b"&", max(0, len(data) - _REF_HOLD))
            # (in UTF-16LE the reference ends one byte after its ';')
            if amp >= 0 and data.find(b";", amp, len(data) - 1) < 0:
                if amp > 0 and data[amp - 1] == 0:
                    amp -= 1  # UTF-16BE: the zero byte belongs to the '&'
                data, self._held = data[:amp], data[amp:]
            elif data.endswith(b"\x00"):  # may begin a UTF-16BE '&'
                data, self._held = data[:-1], data[-1:]
        return data


#: A CSS ``<?xml-stylesheet?>`` (type text/css) to a relative URL is kept: the document's own
#: stylesheet, which its enforced no-partner CSP lets load (and whose fetches it governs). Its
#: pseudo-attributes must read plainly: ASCII, no character or entity reference (the XML
#: parser expands them: ``https&#58;//partner``), no duplicate, type exactly ``text/css`` (as
#: Chromium compares it), an href with no scheme, no ``//`` or backslash start, no backslash,
#: whitespace or control (the URL parser drops tab and newline: ``/<TAB>/partner`` is
#: ``//partner``), and in the prolog: after an element a relative href may resolve against an
#: XHTML ``<base href>`` (any ``<`` and a name start counts, in a comment too). Any other is
#: renamed.
_PI_MAX = 4096
_ELEMENT_START_RE = re.compile(rb"<[A-Za-z_:\x80-\xff]")
_PI_END = b"?>"
_PSEUDO_ATTR_RE = re.compile(rb"""[ \t\r\n]+([A-Za-z_:][-A-Za-z0-9._:]*)[ \t\r\n]*=[ \t\r\n]*"""
                             rb"""(?:"([^"<&]*)"|'([^'<&]*)')""")
_RELATIVE_HREF_RE = re.compile(rb"(?![A-Za-z][A-Za-z0-9+.-]*:)(?![/\\][/\\])"
                               rb"[A-Za-z0-9._~!$'()*+,;=@%/?#-]+\Z")


def own_css_stylesheet(pi: bytes) -> bool:
    """Whether the whole processing instruction ``pi`` (``<?xml-stylesheet ...?>``) loads a
    CSS stylesheet from the document's own origin, read as plainly as a browser would."""
    body = pi[len(_PI):-len(_PI_END)]
    if not body.isascii():
        return False
    attrs: dict[bytes, bytes] = {}
    pos = 0
    while pos < len(body):
        m = _PSEUDO_ATTR_RE.match(body, pos)
        if m is None:
            if body[pos:].strip(b" \t\r\n"):
                return False
            break
        if m.group(1) in attrs:
            return False
        attrs[m.group(1)] = m.group(2) if m.group(2) is not None else m.group(3)
        pos = m.end()
    href = attrs.get(b"href")
    return (attrs.get(b"type") == b"text/css" and href is not None
            and _RELATIVE_HREF_RE.match(href) is not None)


class _HeldJudge:
    """The part the 8-bit and UTF-16 stylesheet judges share: the bytes of an instruction not
    yet ended (or of a name cut by the chunk boundary) held back by one ``feed`` and put in
    front of the next chunk, and whether the prolog is still open. ``_judge`` reads the joined
    bytes and sets ``_held`` to what it holds back."""

    def __init__(self) -> None:
        self._held = b""
        self._in_prolog = True

    def feed(self, chunk: bytes, final: bool = False) -> bytes:
        data = self._held + chunk
        self._held = b""
        return self._judge(data, final)

    def _judge(self, data: bytes, final: bool) -> bytes:
        raise NotImplementedError


class _StylesheetJudge(_HeldJudge):
    """Each ``<?xml-stylesheet`` spelled exactly (the PI target is case-sensitive; other
    spellings and encodings are left to the respellers after it, which rename them) held
    until its ``?>`` (at most ``_PI_MAX`` bytes), then kept if ``own_css_stylesheet``, else
    renamed and its data read on; across any chunking. Unended at the end or past the
    bound: renamed."""

    _RENAMED = b"<?consent-blocked-xml-stylesheet"

    def _judge(self, data: bytes, final: bool) -> bytes:
        out: list[bytes] = []
        pos = 0
        while True:
            start = data.find(_PI, pos)
            # (a '<' that ends the data is held: it begins the PI's name)
            if self._in_prolog and _ELEMENT_START_RE.search(data, pos, len(data) if start < 0
                                                            else start):
                self._in_prolog = False
            if start < 0:
                keep = 0 if final else _open_bytes_prefix(data, _PI, pos)
                out.append(data[pos:len(data) - keep])
                self._held = data[len(data) - keep:]
                break
            out.append(data[pos:start])
            end = data.find(_PI_END, start + len(_PI))
            if end < 0 and not final and len(data) - start < _PI_MAX:
                self._held = data[start:]
                break
            if (end >= 0 and end + 2 - start <= _PI_MAX and self._in_prolog
                    and own_css_stylesheet(data[start:end + 2])):
                out.append(data[start:end + 2])
                pos = end + 2
                continue
            # Fail closed: what follows the name is read on (a name inside is renamed too).
            out.append(self._RENAMED)
            pos = start + len(_PI)
        return b"".join(out)


def _open_bytes_prefix(data: bytes, name: bytes, pos: int) -> int:
    """The length of the longest tail of ``data[pos:]`` that is a proper prefix of ``name``."""
    for k in range(min(len(name) - 1, len(data) - pos), 0, -1):
        if data.endswith(name[:k]):
            return k
    return 0


#: ``<?xml-stylesheet`` (exactly: the PI target is case-sensitive) and ``?>`` in UTF-16LE/BE.
_WIDE_PI = {_PI.decode().encode(codec): codec for codec in ("utf-16-le", "utf-16-be")}
_WIDE_PI_END = {"utf-16-le": b"?\x00>\x00", "utf-16-be": b"\x00?\x00>"}
_WIDE_RENAMED = {codec: b"<?consent-blocked-xml-stylesheet".decode().encode(codec)
                 for codec in ("utf-16-le", "utf-16-be")}
_WIDE_PI_MAX = 2 * _PI_MAX
#: ``<`` and a name start (a letter, ``_``, ``:`` or any non-ASCII code unit), in UTF-16LE
#: or UTF-16BE at any alignment; over-inclusive.
_WIDE_ELEMENT_START_RE = re.compile(rb"<\x00(?:[A-Za-z_:\x80-\xff]|.[\x01-\xff])"
                                    rb"|\x00<(?:\x00[A-Za-z_:\x80-\xff]|[\x01-\xff])", re.DOTALL)


def _find_wide_pi(data: bytes, pos: int) -> tuple[int, bytes]:
    """The first wide ``<?xml-stylesheet`` at or after ``pos`` (-1: none), and its bytes."""
    found = (-1, b"")
    for name in _WIDE_PI:
        at = data.find(name, pos, found[0] + len(name) - 1 if found[0] >= 0 else len(data))
        if at >= 0:
            found = (at, name)
    return found


def _wide_end(data: bytes, start: int, codec: str) -> int:
    """The index after the first ``?>`` in ``codec`` aligned with ``start``, at most
    ``_WIDE_PI_MAX`` bytes after it (-1: none)."""
    end = _WIDE_PI_END[codec]
    stop = start + _WIDE_PI_MAX
    at = data.find(end, start + 2 * len(_PI), stop)
    while at >= 0 and (at - start) % 2:
        at = data.find(end, at + 1, stop)
    return -1 if at < 0 else at + len(end)


class _WideStylesheetJudge(_HeldJudge):
    """``_StylesheetJudge`` for UTF-16LE/BE at any alignment: each exactly spelled wide
    ``<?xml-stylesheet`` held until its aligned wide ``?>`` (at most ``_WIDE_PI_MAX`` bytes),
    decoded and kept if ASCII, ``own_css_stylesheet`` and in the prolog (no wide element
    start before it, in any reading), else renamed; unended at the end or past the bound:
    renamed. Across any chunking.

    ASCII in UTF-16LE read one byte earlier as UTF-16BE is the same text, so a kept
    instruction reads the same in both (the BE one is kept only when the byte after its
    ``>`` is zero or the body's end: else the LE reading one byte on does not end there),
    and a renamed one is renamed in both."""

    def __init__(self) -> None:
        super().__init__()
        self._seen = b""  # the last bytes passed, for an element start across the cut

    def _pass(self, out: list[bytes], data: bytes) -> None:
        if data and self._in_prolog:
            seen = self._seen + data
            if _WIDE_ELEMENT_START_RE.search(seen):
                self._in_prolog = False
            self._seen = seen[-3:]
        out.append(data)

    def _judge(self, data: bytes, final: bool) -> bytes:
        out: list[bytes] = []
        pos = 0
        while True:
            start, name = _find_wide_pi(data, pos)
            if start < 0:
                keep = 0 if final else max(_open_bytes_prefix(data, n, pos) for n in _WIDE_PI)
                self._pass(out, data[pos:len(data) - keep])
                self._held = data[len(data) - keep:]
                break
            self._pass(out, data[pos:start])
            codec = _WIDE_PI[name]
            end = _wide_end(data, start, codec)
            # A BE instruction's verdict waits for the byte after it (see the class).
            known = end >= 0 and (codec == "utf-16-le" or end < len(data) or final)
            if not known and not final and len(data) - start <= _WIDE_PI_MAX:
                self._held = data[start:]
                break
            if known and self._kept(data, start, end, codec):
                self._pass(out, data[start:end])
                pos = end
            else:
                self._pass(out, _WIDE_RENAMED[codec])  # fail closed: what follows is passed on
                pos = start + len(name)
        return b"".join(out)

    def _kept(self, data: bytes, start: int, end: int, codec: str) -> bool:
        if not self._in_prolog or (codec == "utf-16-be" and data[end:end + 1] not in (b"", b"\x00")):
            return False
        text = data[start:end].decode(codec, "replace")
        return text.isascii() and own_css_stylesheet(text.encode("ascii"))


class _DocumentRespeller(_EscapedRespeller):
    """The names of ``_DOCUMENT_NAMES`` respelled, but an exactly spelled ``<?xml-stylesheet``:
    ``_StylesheetJudge`` before it kept that one (it renamed every other)."""

    def _respell(self, m: re.Match[bytes]) -> bytes:
        if m.group(0) == _PI:
            return _PI
        return super()._respell(m)


class AnyRespeller:
    """For a body whose encoding we do not know the browser's reading of (an XML document's
    declaration, a UTF-16 one without a byte order mark, a label it ignores): ``http-equiv``
    respelled in every spelling a browser can decode as that name, ASCII-compatible charsets
    and ISO-2022-JP with mode escapes inside the name (``Iso2022Respeller``), and UTF-16LE/BE
    (byte level), after character references to letters are decoded (an XML entity value
    can build the name from them); and ``<?xml-stylesheet`` likewise (an XSLT transform can
    build it), but a plain one that loads the document's own CSS (``_StylesheetJudge``).
    Over-inclusive only; any chunking."""

    def __init__(self) -> None:
        self._refs = _LetterRefDecoder()
        self._sheets = _StylesheetJudge()
        self._narrow = _DocumentRespeller(_DOCUMENT_NAMES)
        self._wide_sheets = _WideStylesheetJudge()
        self._wide = _WideBytesRespeller()

    def feed(self, chunk: bytes) -> bytes:
        narrow = self._narrow.feed(self._sheets.feed(self._refs.feed(chunk)))
        return self._wide.feed(self._wide_sheets.feed(narrow))

    def finish(self) -> bytes:
        sheets = self._sheets.feed(self._refs.feed(b"", final=True), final=True)
        narrow = self._narrow.feed(sheets) + self._narrow.finish()
        return self._wide.feed(self._wide_sheets.feed(narrow, final=True), final=True)
