"""What a browser will do with a response body: render it as HTML, as an XML document, or not.

The gate rewrites what a browser parses as HTML and must never skip it: a missing or
unknown ``Content-Type`` is sniffed from the first bytes as the MIME Sniffing standard does,
a UTF-16/UTF-32 charset label or byte order mark (the BOM wins over the label) makes the
bytes unreadable to our byte-level rewriter, and XML documents (XHTML, SVG) are parsed by a
different grammar than the rewriter models. ``pass`` is only for what is provably not a
document that can fetch.

References: https://mimesniff.spec.whatwg.org/#rules-for-identifying-an-unknown-mime-type,
https://encoding.spec.whatwg.org/#names-and-labels, https://html.spec.whatwg.org/#determining-the-character-encoding
"""

from __future__ import annotations

import codecs
import enum
import html
import re
from collections.abc import Iterable, Iterator

__all__ = [
    "SNIFF_BYTES",
    "BodyKind",
    "binary",
    "bom_prefix",
    "charset_tail",
    "classify",
    "declares_iso2022jp",
    "label_known",
    "sniff",
    "unreadable_charset",
    "wide_bom",
    "wide_codec",
    "xml_declaration_open",
]


class BodyKind(enum.Enum):
    HTML = "html"  # rewrite it
    DOCUMENT = "document"  # a document we cannot rewrite (XML, multipart): no-partner CSP
    SNIFF = "sniff"  # no usable type: decide from the first bytes
    CSS = "css"  # a style sheet: its fetches are gated by the consent (gate/css.py)
    OTHER = "other"  # provably not a document that fetches: pass untouched


#: The resource header a browser sniffs (MIME Sniffing §5.1: at most 1445 bytes).
SNIFF_BYTES = 1445

_UNKNOWN = frozenset({"", "unknown/unknown", "application/unknown", "*/*"})
#: Types Chromium 156 applies as a style sheet in a standards-mode page (measured:
#: tests/browser/test_redteam_css.py; text/plain is not, nor an untyped body with nosniff).
_SHEETS = frozenset({"text/css", "application/x-unknown-content-type"})
_DOCUMENTS = frozenset({"application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml",
                        "multipart/x-mixed-replace", "text/xsl", "application/xslt+xml"})
#: A document outranks HTML: its path (not tokenized, every http-equiv respelled, enforced
#: no-partner CSP) is safe whichever parser the browser picks, while the HTML rewrite is not
#: what an XML parser reads (Chromium 156 takes the last of 'text/html, application/xhtml+xml'
#: and expanded an entity-built meta refresh to the partner past the rewritten page).
#: A style sheet outranks sniffing and other types (Chromium applies a sheet whose list names
#: text/css last, '*/*, text/css'), and is outranked by HTML (a page's reading).
_RANK = {BodyKind.OTHER: 0, BodyKind.SNIFF: 1, BodyKind.CSS: 2, BodyKind.HTML: 3,
         BodyKind.DOCUMENT: 4}


def _essence(value: bytes) -> str:
    return value.split(b";", 1)[0].strip().decode("latin-1").lower()


def _kind(value: bytes) -> BodyKind:
    essence = _essence(value)
    if essence == "text/html":
        return BodyKind.HTML
    if essence in _SHEETS:
        return BodyKind.CSS
    if essence in _UNKNOWN or "/" not in essence:
        # An unparsable type counts as none at all (Fetch: "extract a MIME type" fails).
        return BodyKind.SNIFF
    if essence in _DOCUMENTS or essence.endswith("+xml"):
        return BodyKind.DOCUMENT
    return BodyKind.OTHER


def classify(content_types: Iterable[bytes], *, nosniff: bool) -> BodyKind:
    """The kind of body announced by the response's Content-Type value(s).

    Several values (or a comma list) are each judged and the most dangerous wins (a document
    over HTML over sniffing over other): browsers pick one of them (Chromium: the last) by
    rules we need not follow when we fail closed. With
    ``X-Content-Type-Options: nosniff`` a missing type is not sniffed for HTML (MIME Sniffing
    §7: the sniff-scriptable flag is off), so it cannot become a page.
    """
    best: BodyKind | None = None
    for value in content_types:
        for part in value.split(b",") if _COMMA in value else (value,):
            kind = _kind(part)
            if best is None or _RANK[kind] > _RANK[best]:
                best = kind
    if best is None:
        best = BodyKind.SNIFF
    if best is BodyKind.SNIFF and nosniff:
        return BodyKind.OTHER
    return best


_WHITESPACE = b"\t\n\x0c\r "
_HTML_PATTERNS = tuple(p.lower() for p in (
    b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV", b"<FONT",
    b"<TABLE", b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P", b"<!--"))
_LONGEST = max(len(p) for p in _HTML_PATTERNS) + 1


#: MIME Sniffing's binary data bytes: a body that has one is no text.
_BINARY = re.compile(rb"[\x00-\x08\x0b\x0e-\x1a\x1c-\x1f]")


def binary(head: bytes) -> bool:
    """Whether ``head`` has a binary data byte (MIME Sniffing §3: not text)."""
    return _BINARY.search(head) is not None


def sniff(head: bytes, *, complete: bool) -> BodyKind | None:
    """What a browser sniffing ``head`` (the first bytes of a body without a usable type)
    makes of it: HTML, an XML document (``<?xml``), or OTHER (text or binary: not a page).

    None while ``head`` is too short to tell and more bytes may come (``complete`` False).
    """
    start = len(head) - len(head.lstrip(_WHITESPACE))
    rest = head[start:start + _LONGEST].lower()
    undecided = False
    for pattern in _HTML_PATTERNS:
        if rest[:len(pattern)] == pattern:
            if len(rest) == len(pattern):
                undecided = True  # the tag-terminating byte has not arrived yet
            elif rest[len(pattern)] in b" >":
                return BodyKind.HTML
        elif len(rest) < len(pattern) and pattern.startswith(rest):
            undecided = True
    if rest[:5] == b"<?xml":
        return BodyKind.DOCUMENT
    if len(rest) < 5 and b"<?xml".startswith(rest):
        undecided = True
    if undecided and not complete:
        return None
    return BodyKind.OTHER


#: (``_COMMA in value``, not ``b"," in value``: see gate/start.py COMMA)
_COMMA = ord(",")
_WIDE_BOMS = (b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
#: '<?x' in UTF-16LE and UTF-16BE: an XML declaration with no BOM. Chromium's decoder reads
#: a page whose header names no usable charset as UTF-16 when it opens so, HTML included
#: (TextResourceDecoder::CheckForXMLCharset; measured in Chromium 156: a text/html page
#: '<?xml version="1.0"?>...' in UTF-16LE or BE fetched its partner img and followed its meta
#: refresh through the gate, which read the bytes as ASCII).
_WIDE_XML_DECLS = (b"<\x00?\x00x\x00", b"\x00<\x00?\x00x")
_WIDE_STARTS = (*_WIDE_BOMS, *_WIDE_XML_DECLS)
#: What ``wide_bom`` tests a bytes body for (gate/decision.py writes that test out inline).
WIDE_STARTS = _WIDE_STARTS


def bom_prefix(head: bytes) -> bool:
    """``head`` is too short to tell and could still become a UTF-16/UTF-32 BOM (or a UTF-16
    XML declaration's first three characters)."""
    return any(b.startswith(head) and b != head for b in _WIDE_STARTS)


def wide_bom(head: bytes) -> bool:
    """A UTF-16 (or UTF-32) byte order mark: the browser decodes UTF-16, whatever the label.
    Also a UTF-16 XML declaration without a BOM (read so when the label is not usable): the
    page is not read as bytes either way; ``wide_codec`` answers None for it unless the label
    names UTF-16, and it goes out respelled in every spelling (``AnyRespeller``)."""
    try:
        # One prefix test (three slices and tuple tests cost ~2.9 k instructions per page).
        return head.startswith(_WIDE_STARTS)
    except AttributeError:  # a memoryview (ASGI bodies are bytes)
        return bytes(head[:6]).startswith(_WIDE_STARTS)


# Every label of UTF-16LE and UTF-16BE in the Encoding standard, plus UTF-32 (unknown to
# browsers, but no byte-level reading of it is safe) and ISO-2022-JP, whose two-byte mode
# uses the bytes of '<', '=' and '"' for kanji.
_UNREADABLE = frozenset({
    "csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff", "utf-16", "utf-16le",
    "unicodefffe", "utf-16be", "utf-32", "utf-32le", "utf-32be", "utf16", "utf32",
    "csiso2022jp", "iso-2022-jp",
})


def unreadable_charset(charset: str | None) -> bool:
    """A charset label whose bytes the byte-level rewriter cannot read as ASCII-compatible."""
    if charset is None:
        return False
    # Labels are matched after trimming ASCII whitespace, case-insensitively (Encoding §4.2).
    return charset.strip("\t\n\x0c\r ").lower() in _UNREADABLE


def label_known(charset: str | None) -> bool:
    """A header charset label a browser would use. An unknown one is ignored (HTML
    §13.2.3.1), and then a ``<meta charset>`` in the body decides the encoding."""
    if charset is None:
        return False
    try:
        codecs.lookup(charset.strip("\t\n\x0c\r "))
    except LookupError:
        return False
    return True


# "charset", "=", an optional quote: the value as a <meta charset> or a Content-Type in a
# <meta content> writes it (HTML §13.2.3.2 prescan, §2.5.1 extracting a character encoding).
_META_CHARSET = re.compile(rb"charset[\t\n\x0c\r ]*+=[\t\n\x0c\r ]*+[\"']?+"
                           rb"[\t\n\x0c\r ]*+([^\"'>\t\n\x0c\r ]{1,64})")
# An XML declaration's encoding, which Chromium honours in a text/html page too when it opens
# the body and no header label is usable (measured, Chromium 156: `<?xml version="1.0"
# encoding="ISO-2022-JP"?>` decoded the page as ISO-2022-JP, and its ESC $ B comment trick and
# http-ESC(Bequiv refresh reached the partner through the gate). Matched anywhere: over-inclusive.
_XML_ENCODING = re.compile(rb"<\?xml[^<>]*?encoding[\t\n\x0c\r ]*+=[\t\n\x0c\r ]*+[\"']?+"
                           rb"[\t\n\x0c\r ]*+([^\"'>?\t\n\x0c\r ]{1,64})")
_ISO2022JP = frozenset({"iso-2022-jp", "csiso2022jp"})
_XML_OPEN = b"<?xml"
#: An XML declaration longer than this is not waited for (its encoding is then not seen whole).
XML_DECL_MAX = 256


def xml_declaration_open(head: bytes) -> bool:
    """``head`` (a body's first bytes) is, or begins, an XML declaration that has not ended yet:
    its ``encoding=`` may still come (wait for more bytes, at most ``XML_DECL_MAX``)."""
    if len(head) < len(_XML_OPEN):
        return bool(head) and _XML_OPEN.startswith(head.lower())
    return (head[:len(_XML_OPEN)].lower() == _XML_OPEN and b">" not in head
            and len(head) < XML_DECL_MAX)
#: Bytes of one chunk kept to find a declaration cut by the next chunk (``charset_tail``): a
#: declaration spelled with character references, its padding squeezed, fits.
CHARSET_TAIL = 512


def declares_iso2022jp(data: bytes) -> bool:
    """``data`` has a charset declaration naming ISO-2022-JP (character references decoded,
    as the tree builder reads a <meta>): with no usable header label, the browser decodes
    the page as ISO-2022-JP, where ``ESC $ B`` turns the ASCII bytes of markup into kanji
    (a ``<!--`` the rewriter reads is no comment to the browser). Over-inclusive: any such
    text counts, in a tag or not; so does an XML declaration's ``encoding=``, and a body that
    opens with an XML declaration not ended within ``XML_DECL_MAX`` bytes.

    Every body of a page without a header label passes here, so the scan finds its
    candidates with ``bytes.find`` in one lowercased copy (memchr speed) and runs the
    patterns only where a ``charset``, ``<?xml`` or ``<meta`` starts: a case-blind regex
    searched over the whole body cost ~86 instructions per byte. Same verdicts as
    ``finditer`` of the case-blind patterns (tests/test_sniff_scan.py)."""
    if data[:len(_XML_OPEN)].lower() == _XML_OPEN and b">" not in data[:XML_DECL_MAX] \
            and len(data) >= XML_DECL_MAX:
        return True  # an XML declaration too long to wait for: it may name it (fail closed)
    low = data.lower()  # bytes.lower() folds ASCII only, as (?i) does for bytes patterns
    for word, pattern in ((b"charset", _META_CHARSET), (_XML_OPEN, _XML_ENCODING)):
        for start, end in _matches(low, word, pattern):
            if _names_iso2022jp(data[start:end]):
                return True
    if b"&" in data:
        # A <meta content> is read with its character references decoded, "charset" too:
        # Chromium 156 decodes a page whose <meta http-equiv=Content-Type> content says
        # "text/html; &#99;harset=iso-2022-jp" as ISO-2022-JP (measured). The whole text is
        # read decoded (over-inclusive, as the plain reading above): a span after each
        # <meta> missed a reference padded past it with leading zeros (&#000…099;) or a
        # declaration after 600 spaces (measured: Chromium honoured both, tests/browser/
        # test_redteam_vectors.py meta-zeros, meta-spaces).
        text = html.unescape(_bounded_refs(data).decode("latin-1")).encode("latin-1", "replace")
        if any(_names_iso2022jp(text[s:e])
               for s, e in _matches(text.lower(), b"charset", _META_CHARSET)):
            return True
    return False


def _bounded_refs(data: bytes) -> bytes:
    """``data`` with each numeric reference short: its leading zeros dropped, and a value
    past U+10FFFF (more than 7 decimal or 6 hex digits) spelled &#65533 (what it decodes to).
    html.unescape raises ValueError on a reference of more than 4300 digits."""
    return _HUGE.sub(rb"&#65533", _ZEROS.sub(rb"\g<1>0", data))


#: A numeric reference whose value is past U+10FFFF whatever its last digits.
_HUGE = re.compile(rb"&#(?:0*[1-9][0-9]{7,}|[xX]0*[1-9a-fA-F][0-9a-fA-F]{6,})")
#: The leading zeros of a numeric character reference (they change nothing it decodes to).
_ZEROS = re.compile(rb"(&#[xX]?)0+(?=[0-9a-fA-F]|\Z)")
#: A run of what a declaration may have between its words: whitespace, or a reference to it
#: (ended: a ';' or a byte that cannot continue it, never the end of the piece).
_SPACES = re.compile(rb"(?i)(?:[\t\n\x0c\r ]|&(?:tab|newline);"
                     rb"|&#0*(?:9|10|12|13|32)(?:;|(?=[^0-9]))"
                     rb"|&#x0*(?:9|a|c|d|20)(?:;|(?=[^0-9a-f]))){2,}")


def charset_tail(window: bytes) -> bytes:
    """What of ``window`` (the bytes read so far, the last tail first) the next piece must be
    read with so that ``declares_iso2022jp`` finds a declaration cut anywhere: its last
    ``CHARSET_TAIL`` bytes once the padding a declaration may hold is squeezed (leading zeros
    of references, runs of whitespace or references to it: a declaration spelled with them
    spans any number of bytes, while squeezed it fits in the tail). Squeezing changes no
    verdict."""
    return _SPACES.sub(b" ", _ZEROS.sub(rb"\g<1>0", window))[-CHARSET_TAIL:]


def _matches(low: bytes, word: bytes, pattern: re.Pattern[bytes]) -> Iterator[tuple[int, int]]:
    """The spans of group 1 of ``pattern``'s non-overlapping matches in ``low`` (lowercased
    text), as ``finditer`` would find them: each match starts at ``word``, so only the
    places ``bytes.find`` gives are tried."""
    pos = low.find(word)
    while pos >= 0:
        m = pattern.match(low, pos)
        if m is None:
            pos = low.find(word, pos + 1)
        else:
            yield m.span(1)
            pos = low.find(word, m.end())


def _names_iso2022jp(value: bytes) -> bool:
    label = value.decode("latin-1")
    if "&" in label:
        label = html.unescape(label)
    return label.split(";")[0].strip("\t\n\x0c\r ").lower() in _ISO2022JP


_UTF16LE = frozenset({"csunicode", "iso-10646-ucs-2", "ucs-2", "unicode", "unicodefeff",
                      "utf-16", "utf-16le"})
_UTF16BE = frozenset({"unicodefffe", "utf-16be"})


def wide_codec(charset: str | None, head: bytes) -> str | None:
    """The UTF-16 codec a browser decodes the body with ("utf-16-le"/"utf-16-be"), from its
    byte order mark first, else the label; None when it is not UTF-16 (or is UTF-32)."""
    if head[:4] == b"\x00\x00\xfe\xff":
        return None
    if head[:2] == b"\xff\xfe":
        return "utf-16-le"
    if head[:2] == b"\xfe\xff":
        return "utf-16-be"
    label = charset.strip("\t\n\x0c\r ").lower() if charset else None
    if label in _UTF16LE:
        return "utf-16-le"
    if label in _UTF16BE:
        return "utf-16-be"
    return None
