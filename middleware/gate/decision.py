"""What the responder does with a response, decided at its first body: one synchronous
function with no side effects, returning a ``Decision``. The responder acts on it
(``HtmlResponder._act``): phase moves, the body decoder, header edits and sends happen there.

The rules, in order (the first that applies decides):

1. ``PASS``: the start announced no page (``OTHER``) or the status has no body (204/205/304).
2. ``HEAD``: a HEAD response gets the headers its GET would get; its empty body is not read.
3. ``NO_DECODER``: Content-Encoding Chromium undoes that cannot be decoded here (its library
   is missing, or too many codings are stacked): the response is ended behind the enforced
   no-partner CSP.
4. ``DOCUMENT``: XML or multipart: another parser reads it (out respelled, no-partner CSP).
5. ``CSS``: a style sheet (``text/css``): read by gate/css.py (its codings undone, its
   charset given), whatever its status.
6. ``UNREADABLE``: a compressed body without a Content-Type (it is never sniffed).
7. ``SNIFF``: no usable Content-Type: the first bytes are kept to sniff them.
8. HTML, by its charset: ``RESPELLED`` (UTF-16/UTF-32 label or identity BOM: ``codec``;
   an ISO-2022-JP label, or a body that declares ISO-2022-JP under a label no browser knows:
   ``codec`` None), ``UNREADABLE`` (another charset the rewriter cannot read), else
   ``WHOLE`` (the whole identity body is in this message: rewritten in one go, exact
   Content-Length) or ``STREAM`` (rewritten chunk by chunk).

The same function decides again once sniffing found a verdict (``sniffed=True``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, Protocol

from starlette.types import Message

from ..accel import speedups
from ..sniff import (
    WIDE_STARTS,
    BodyKind,
    declares_iso2022jp,
    label_known,
    unreadable_charset,
    wide_bom,
    wide_codec,
)
from .encodings import cannot_decode, codings
from .start import COMMA, CSS, DOCUMENT, HTML, NO_BODY_STATUSES, OTHER


class Route(enum.Enum):
    """What the responder does with one response (see the module's rules)."""

    PASS = "pass"
    HEAD = "head"
    NO_DECODER = "no-decoder"
    DOCUMENT = "document"
    UNREADABLE = "unreadable"
    SNIFF = "sniff"
    RESPELLED = "respelled"
    WHOLE = "whole"
    STREAM = "stream"
    CSS = "css"

    __hash__ = object.__hash__  # (as Phase: identity, not Enum's Python-level hash)


class Decision(NamedTuple):
    route: Route
    #: What the log line and the no-partner reason name (NO_DECODER: the coding's name).
    what: str = ""
    #: The codings to undo, in the order they were applied (empty: the body as sent).
    codings: tuple[str, ...] = ()
    #: HTML routes: the charset a browser reads from Content-Type.
    charset: str | None = None
    #: HTML routes: whether a browser knows that label (if not, the markup is watched for an
    #: ISO-2022-JP declaration).
    label_known: bool = True
    #: RESPELLED: the UTF-16/UTF-32 codec to respell in, or None for ISO-2022-JP.
    codec: str | None = None


class Charsets(Protocol):
    """The gate's remembered reading of Content-Type values (``ConsentMiddleware``)."""

    @property
    def content_types(self) -> Mapping[bytes, tuple[str | None, bool, bool]]:
        """``content_type``'s remembered answers, read directly on the common page (a hit
        costs no call)."""

    def content_type(self, value: bytes) -> tuple[str | None, bool, bool]: ...

    def charset_of(self, headers: Iterable[tuple[bytes, bytes]]) -> str | None: ...


# Module names, not Enum attribute reads (see phases.py).
PASS = Route.PASS
HEAD = Route.HEAD
NO_DECODER = Route.NO_DECODER
DOCUMENT_ROUTE = Route.DOCUMENT
UNREADABLE = Route.UNREADABLE
SNIFF_ROUTE = Route.SNIFF
RESPELLED = Route.RESPELLED
WHOLE = Route.WHOLE
STREAM = Route.STREAM
CSS_ROUTE = Route.CSS

_PASS = Decision(PASS)
_HEAD = Decision(HEAD)
_SNIFF = Decision(SNIFF_ROUTE)
_DOCUMENT = Decision(DOCUMENT_ROUTE, "an XML document or multipart body")
_SNIFFED_DOCUMENT = Decision(DOCUMENT_ROUTE, "an XML document without a Content-Type")
_ISO2022JP_NAMES = ("iso-2022-jp", "csiso2022jp")
#: The WHOLE and STREAM decisions of identity bodies, made once per charset (whether a
#: browser knows the label is a function of it): the common page's decision allocates
#: nothing. Bounded.
_WHOLE: dict[str | None, Decision] = {}
_STREAMED: dict[str | None, Decision] = {}
_MAX_READ = 256
#: ``_speedups.page_decision`` (decide's answer for the plain page: the Decision of _WHOLE or
#: _STREAMED, or None), unless pure Python.
_page: Callable[..., Decision | None] | None = (
    speedups.page_decision if speedups is not None else None)


def decide(kind: BodyKind, method: str, start: Message, first: Message, charsets: Charsets,
           *, sniffed: bool = False) -> Decision:
    """``decide_py``'s decision; the plain HTML page's from its C twin (``_page``) when the
    extension is there: the same Decision object, from decide_py's own tables."""
    if kind is HTML and _page is not None:
        known: Decision | None = _page(method, start, first, charsets.content_types, _WHOLE,
                                       _STREAMED, WIDE_STARTS)
        if known is not None:
            return known
    return decide_py(kind, method, start, first, charsets, sniffed=sniffed)


def decide_py(kind: BodyKind, method: str, start: Message, first: Message, charsets: Charsets,
              *, sniffed: bool = False) -> Decision:
    """The decision for a response to ``method`` whose start message announced ``kind``
    (``sniffed``: the verdict of sniffing the bytes of ``first``), from the raw headers of
    ``start`` (lower-case names) and its first body message ``first``. One pass over the
    headers; the charset of a single Content-Type value comes from ``charsets.content_type``
    (remembered per value). Pure: nothing is changed but those memories."""
    if kind is OTHER or int(start.get("status", 200)) in NO_BODY_STATUSES:
        return _PASS
    if method == "HEAD":
        return _HEAD
    headers: Sequence[tuple[bytes, bytes]] = start.get("headers", ())
    content_type: bytes | None = None
    several = encoded = False
    for key, value in headers:  # one pass: the Content-Type value(s), any Content-Encoding
        if key == b"content-type":
            several = several or content_type is not None
            content_type = value
        elif key == b"content-encoding":
            encoded = True
    names = codings(headers) if encoded else ()
    if names:
        why = cannot_decode(names)
        if why is not None:
            return Decision(NO_DECODER, why)
    if kind is CSS:
        if several or (content_type is not None and COMMA in content_type):
            sheet_charset = charsets.charset_of(headers)
        else:
            sheet_charset = charsets.content_type(content_type or b"")[0]
        return Decision(CSS_ROUTE, "a style sheet", names, sheet_charset)
    if kind is not HTML:
        if kind is DOCUMENT:
            if names:
                return Decision(DOCUMENT_ROUTE, _DOCUMENT.what, names)
            return _SNIFFED_DOCUMENT if sniffed else _DOCUMENT
        # SNIFF (BodyKind has no other member)
        if names:
            return Decision(UNREADABLE, "a compressed body without a Content-Type", names)
        return _SNIFF
    body: bytes = first.get("body", b"")
    if several or (content_type is not None and COMMA in content_type):
        charset = charsets.charset_of(headers)
        unreadable, known = unreadable_charset(charset), label_known(charset)
    else:
        value = content_type or b""
        read = charsets.content_types.get(value)
        charset, unreadable, known = charsets.content_type(value) if read is None else read
    # (wide_bom's test written out for bytes: a call fewer on every page)
    if unreadable or (not names and (body.startswith(WIDE_STARTS) if type(body) is bytes
                                     else wide_bom(body))):
        codec = wide_codec(charset, b"" if names else body)
        if codec is not None:
            return Decision(RESPELLED, f"a {codec} page", names, charset, known, codec)
        if (charset or "").strip("\t\n\x0c\r ") in _ISO2022JP_NAMES:
            # Its ASCII mode spells http-equiv as ASCII does (ESC tricks: docs/csp.md).
            return Decision(RESPELLED, "an ISO-2022-JP page", names, charset, known)
        return Decision(UNREADABLE, f"charset {charset!r} or a UTF-16 BOM", names, charset, known)
    if not known and not names and declares_iso2022jp(body):
        return Decision(RESPELLED, "a page that declares ISO-2022-JP", names, charset, False)
    if names:
        return Decision(STREAM, "", names, charset, known)
    made = _STREAMED if first.get("more_body", False) else _WHOLE
    decision = made.get(charset)
    if decision is None:
        decision = Decision(STREAM if made is _STREAMED else WHOLE, "", (), charset, known)
        if len(made) < _MAX_READ:
            made[charset] = decision
    return decision
