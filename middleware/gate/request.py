"""The request headers the site's app is given: the request's own without Accept-Encoding (an
HTML answer must come uncompressed to be rewritten; compression goes outside us), whether a
scan-token header is among them (``scan_token``: the owner asks for the page as the site
sends it), and whether the browser asks for a style sheet (``request_view``: its answer is
read as CSS whatever its type). ``app_headers`` is the entry's one call for them: in C
(``_speedups.app_headers``, a list copy for the usual request) unless pure Python;
``request_view`` is the reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .. import scan_token
from ..accel import speedups

Headers = Sequence[tuple[bytes, bytes]]

ACCEPT_ENCODING = b"accept-encoding"
SEC_FETCH_DEST = b"sec-fetch-dest"
ACCEPT = b"accept"
#: The request headers the entry reads (one set lookup for the headers that are none of them).
_NAMES = frozenset({ACCEPT_ENCODING, scan_token.HEADER_BYTES, SEC_FETCH_DEST, ACCEPT})
_OWS = b" \t"


def _asks_for_a_sheet(dest: object, accept: object) -> bool:
    """The first Sec-Fetch-Dest says ``style``; without one (plain http, where Chromium sends
    no Sec-Fetch-* headers, or an older browser) the first Accept begins with ``text/css``
    (Chromium and Firefox ask for a sheet with ``text/css,*/*;q=0.1``). A value that is not
    bytes counts as none."""
    if isinstance(dest, bytes):
        return dest.strip(_OWS).lower() == b"style"
    return isinstance(accept, bytes) and accept.lstrip(_OWS)[:8].lower() == b"text/css"


def request_view(headers: Headers) -> tuple[Headers, bool, bool]:
    """(the headers for the app: ``headers`` itself when it has no Accept-Encoding, else a new
    list without any; whether a scan-token header is among them; whether the browser asks
    for a style sheet, ``_asks_for_a_sheet``), in one pass.

    Why the last: a quirks-mode page applies a same-origin sheet of any Content-Type
    (text/plain, text/html, JSON, an image ...), and Chromium 156 fetched the partner its
    ``@import`` and ``url()`` name through the gate with the CSP off or report-only
    (tests/browser/test_redteam_round4.py): such an answer is read by gate/css.py."""
    encoding: tuple[bytes, bytes] | None = None
    dest: object = None
    accept: object = None
    several = scan = False
    for item in headers:
        key = item[0]
        if key in _NAMES:
            if key == ACCEPT_ENCODING:
                several = encoding is not None
                encoding = item
            elif key == SEC_FETCH_DEST:
                if dest is None:
                    dest = item[1] if len(item) > 1 else b""
            elif key == ACCEPT:
                if accept is None:
                    accept = item[1] if len(item) > 1 else b""
            else:
                scan = True
    style = _asks_for_a_sheet(dest, accept)
    if encoding is None:
        return headers, scan, style
    if several:
        return [(k, v) for k, v in headers if k != ACCEPT_ENCODING], scan, style
    kept = list(headers)  # the usual one header: a copy without it, in C
    kept.remove(encoding)
    return kept, scan, style


def app_headers_py(headers: Headers) -> Headers | None:
    """``request_view``'s headers, or None when a scan-token header is among them or the
    browser asks for a style sheet (the caller then asks ``request_view``)."""
    kept, scan, style = request_view(headers)
    return None if scan or style else kept


#: The C twin of app_headers_py (an exact list or tuple of (bytes, bytes) pairs read with
#: length + memcmp name tests; anything else handed to app_headers_py), unless pure Python.
app_headers: Callable[[Headers], Headers | None] = app_headers_py
if speedups is not None:
    speedups.app_headers_setup(ACCEPT_ENCODING, scan_token.HEADER_BYTES, SEC_FETCH_DEST, ACCEPT,
                               app_headers_py)
    app_headers = speedups.app_headers
