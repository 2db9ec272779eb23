"""Attributes of a start tag as the rewriter reads them: the ``_Attr`` record, how an
attribute may fetch (``_attr_kind``), and small readers of tag bytes.
"""

from __future__ import annotations

import functools
import html
import re

from .grammar import _ATTR_RE, _SRCSET_ATTRS, _WS


class _Attr:
    __slots__ = ("name", "name_span", "raw", "span", "start")

    def __init__(self, name: str, name_span: tuple[int, int], raw: bytes | None,
                 span: tuple[int, int], start: int) -> None:
        self.name = name
        self.name_span = name_span  # of the name, in the buffer
        self.raw = raw  # value bytes as written (None: no value)
        self.span = span  # name through value end
        self.start = start  # end of the previous attribute: removing [start, end) drops it

    def value(self) -> str:
        if self.raw is None:
            return ""
        text = self.raw.decode("utf-8", "replace")
        return unescape(text) if "&" in text else text


#: A numeric reference's leading zeros, and one whose value is past U+10FFFF whatever its
#: last digits (more than 7 decimal or 6 hex significant digits).
_REF_ZEROS = re.compile(r"(&#[xX]?)0+(?=[0-9a-fA-F])")
_REF_HUGE = re.compile(r"&#(?:0*[1-9][0-9]{7,}|[xX]0*[1-9a-fA-F][0-9a-fA-F]{6,})")


def unescape(text: str) -> str:
    """``html.unescape``, with each numeric reference made short first (leading zeros
    dropped, a value past U+10FFFF spelled &#65533, what it decodes to): html.unescape
    raises ValueError on a reference of more than 4300 digits (int()'s limit), and a tag
    with one went out unrewritten behind the no-partner CSP (red-team round 2)."""
    if "&#" in text:
        text = _REF_HUGE.sub("&#65533", _REF_ZEROS.sub(r"\g<1>0", text))
    return html.unescape(text)


@functools.lru_cache(maxsize=256)  # pure; the same partner lists recur on every page
def _attr_html(name: str, value: str) -> bytes:
    quoted = html.escape(value).encode("ascii", "xmlcharrefreplace")
    return b" " + name.encode() + b'="' + quoted + b'"'



_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_C0_SPACE = "".join(chr(c) for c in range(0x21))
_SMIL_VALUES = ("to", "from", "by", "values")
_NAME_END_RE = re.compile(rb"[^" + _WS + rb"/>]*+")


def _name_end(buf: bytes, start: int) -> int:
    m = _NAME_END_RE.match(buf, start)
    return start if m is None else m.end()


def _attr_value(am: re.Match[bytes]) -> str:
    raw = am.group("dq")
    if raw is None:
        raw = am.group("sq")
    if raw is None:
        raw = am.group("uq") or b""
    text = raw.decode("utf-8", "replace")
    return unescape(text) if "&" in text else text


def _has_attr(buf: bytes, name_end: int, end: int, names: tuple[str, ...]) -> bool:
    return any(am.group("an").lower().decode("latin-1") in names
               for am in _ATTR_RE.finditer(buf, name_end, end - 1))


def _self_closing(buf: bytes, name_end: int, end: int) -> bool:
    """Whether the tag buf[..end] ends with "/>" where the '/' is not part of a value."""
    if end < 2 or buf[end - 2] != 0x2F:
        return False
    last = name_end
    for am in _ATTR_RE.finditer(buf, name_end, end - 1):
        last = am.end()
    return last < end - 1


def _attr_kind(tag: str, attr: str, url_names: tuple[str, ...], careful: bool,
               at: _Attr) -> str | None:
    """How an attribute may fetch: "url", "srcset", "list", "css", "refresh", "srcdoc",
    "values" (an SMIL animation's ';'-separated values) or None."""
    if attr in url_names:
        return "srcset" if attr in _SRCSET_ATTRS else "url"
    if attr == "style":
        return "css"
    if attr == "background":
        return "url"
    if attr in ("ping", "attributionsrc"):
        return "list"
    if tag == "iframe" and attr == "srcdoc":
        return "srcdoc"
    if tag == "meta" and attr == "content":
        return "refresh"
    if careful:
        # SVG and MathML: href and xlink:href load (a link's href is a navigation), and any
        # presentation attribute may hold url(...).
        if attr.endswith("href") and tag != "a":
            return "url"
        if tag == "mglyph" and attr == "src":
            return "url"
        # SMIL: <set>/<animate attributeName="href"> make the element load the value animated
        # to (measured in Chromium for <image> and <feImage>); values is a ';' list.
        if attr in _SMIL_VALUES and tag in ("set", "animate"):
            return "values"
        if at.raw is not None and b"(" in at.raw:
            return "css"
    return None


def _first_value(buf: bytes, name_end: int, end: int, name: str) -> str | None:
    """The decoded value of the tag's first attribute ``name`` (None when absent)."""
    for am in _ATTR_RE.finditer(buf, name_end, end - 1):
        if am.group("an").lower().decode("latin-1") == name:
            return _attr_value(am)
    return None
