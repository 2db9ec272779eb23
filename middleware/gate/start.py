"""What a response's start message announces, read on its raw headers: the body kind (HTML,
document, sniff, other) and whether it sets a cookie. JSON and files are decided here with
no allocation, so the pass path costs one loop over the headers."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..accel import speedups
from ..headers import FETCHING_HEADERS
from ..sniff import BodyKind, classify

# Module names, not Enum attribute reads (~0.2 µs each through the metaclass).
HTML = BodyKind.HTML
OTHER = BodyKind.OTHER
SNIFF = BodyKind.SNIFF
DOCUMENT = BodyKind.DOCUMENT
CSS = BodyKind.CSS
#: ``b","`` as the byte's value: ``COMMA in value`` is a memchr, while ``b"," in value`` first
#: tries the needle as an int, raising and clearing a TypeError (~2.2 k instructions, 10x).
COMMA = ord(",")
#: Statuses whose response has no body to rewrite.
NO_BODY_STATUSES = frozenset({204, 205, 304})
#: The (kind, sets a cookie) answers, made once: start_kind allocates none. ``PASSES`` is the
#: answer of JSON or a file without a Set-Cookie (the responder tests answers by identity).
_PAIRS = {kind: ((kind, False), (kind, True)) for kind in BodyKind}
PASSES = _PAIRS[OTHER][0]
#: The answer of an HTML page without a Set-Cookie (held until its first body).
HTML_PAGE = _PAIRS[HTML][0]
#: A style sheet's answers (without, with a Set-Cookie): what any start becomes when the
#: browser asked for a sheet (HtmlResponder.style_request).
SHEET_PAIRS = _PAIRS[CSS]
#: JSON or a file without a Set-Cookie whose headers make a browser fetch (``Link`` preload,
#: ``Refresh``, ``Speculation-Rules``, reporting): equal to ``PASSES`` but not it, so the
#: responder gates those headers. Chromium acts on them for any document it shows: a
#: text/plain, JSON or image response opened as a page followed its Link preload and Refresh
#: to the partner, enforced CSP or not (measured: tests/browser/test_redteam_vectors.py).
FETCHING_PASS = (OTHER, False)

#: What start_kind answers for one raw Content-Type value, (without, with) a Set-Cookie: a
#: pure function of the value, remembered per value, for each X-Content-Type-Options (nosniff
#: off, on). Bounded.
_ANSWERS: tuple[dict[bytes, tuple[tuple[BodyKind, bool], tuple[BodyKind, bool]]], ...] = ({}, {})
_MAX_ANSWERS = 256
#: What start_kind does with a header name, in one lookup: 1 Content-Type, 2 Set-Cookie,
#: 3 X-Content-Type-Options, 5 a header that fetches, 0 a common lower-case name it skips;
#: any other name (4) is checked for upper case.
_NAMES = {b"content-type": 1, b"set-cookie": 2, b"x-content-type-options": 3,
          **dict.fromkeys((b"content-length", b"date", b"server", b"cache-control", b"etag",
                           b"last-modified", b"vary", b"content-encoding", b"location",
                           b"expires", b"accept-ranges", b"transfer-encoding", b"connection",
                           b"content-language", b"content-disposition", b"x-frame-options",
                           b"strict-transport-security", b"access-control-allow-origin",
                           b"age", b"pragma"), 0),
          **dict.fromkeys(FETCHING_HEADERS, 5)}
_code_of = _NAMES.get


def _one_type(content_type: bytes, nosniff: bool) -> BodyKind:
    # A comma list is several types (Chromium 156 renders 'application/json, text/html' as
    # HTML, and fetched its partner img when the fast answer passed it as JSON): classify.
    if COMMA not in content_type:
        if content_type.startswith(b"text/html"):
            return HTML
        if content_type.startswith(b"application/json"):
            return OTHER
    return classify((content_type,), nosniff=nosniff)


def start_kind_py(headers: Iterable[tuple[bytes, bytes]]) -> tuple[BodyKind, bool] | None:
    """(the body kind announced by raw start headers, whether a Set-Cookie is among them), in
    one pass that allocates nothing on the common paths; None when a header name is not
    lower-case (normalise, then ask again)."""
    content_type: bytes | None = None
    several = nosniff = sets_cookie = fetching = False
    code_of = _code_of
    for key, value in headers:
        # The names we know are lower-case when equal; any other name is checked.
        code = code_of(key, 4)
        if code:
            if code == 1:
                several = content_type is not None
                content_type = value
            elif code == 2:
                sets_cookie = True
            elif code == 3:
                nosniff = value.strip().lower() == b"nosniff"
            elif code == 5:
                fetching = True
            elif not key.islower():
                return None
    if content_type is None or several:
        kind = classify([v for k, v in headers if k == b"content-type"], nosniff=nosniff)
        answer = _PAIRS[kind][sets_cookie]
    else:
        answers = _ANSWERS[nosniff]
        pair = answers.get(content_type)
        if pair is None:
            pair = _PAIRS[_one_type(content_type, nosniff)]
            if len(answers) < _MAX_ANSWERS:
                answers[content_type] = pair
        answer = pair[sets_cookie]
    return FETCHING_PASS if fetching and answer is PASSES else answer


#: The decision the responder uses: the C twin of start_kind_py (``_speedups.start_kind``: the
#: JSON and HTML starts in C, everything else handed to start_kind_py), unless
#: ``CONSENT_GATE_PURE_PYTHON`` is set or the extension is missing.
start_kind: Callable[[Iterable[tuple[bytes, bytes]]], tuple[BodyKind, bool] | None] = start_kind_py
if speedups is not None:
    speedups.start_setup(_PAIRS[HTML], _PAIRS[OTHER], start_kind_py)
    start_kind = speedups.start_kind
