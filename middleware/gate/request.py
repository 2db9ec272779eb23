"""The request headers the site's app is given: the request's own without Accept-Encoding (an
HTML answer must come uncompressed to be rewritten; compression goes outside us), and whether
a scan-token header is among them (``scan_token``: the owner asks for the page as the site
sends it). ``app_headers`` is the entry's one call for them: in C (``_speedups.app_headers``,
a list copy for the usual request) unless pure Python; ``request_view`` is the reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .. import scan_token
from ..accel import speedups

Headers = Sequence[tuple[bytes, bytes]]

ACCEPT_ENCODING = b"accept-encoding"
#: The request headers the entry reads (one set lookup for the headers that are neither).
_NAMES = frozenset({ACCEPT_ENCODING, scan_token.HEADER_BYTES})


def request_view(headers: Headers) -> tuple[Headers, bool]:
    """(the headers for the app: ``headers`` itself when it has no Accept-Encoding, else a new
    list without any; whether a scan-token header is among them), in one pass."""
    encoding: tuple[bytes, bytes] | None = None
    several = scan = False
    for item in headers:
        key = item[0]
        if key in _NAMES:
            if key == ACCEPT_ENCODING:
                several = encoding is not None
                encoding = item
            else:
                scan = True
    if encoding is None:
        return headers, scan
    if several:
        return [(k, v) for k, v in headers if k != ACCEPT_ENCODING], scan
    kept = list(headers)  # the usual one header: a copy without it, in C
    kept.remove(encoding)
    return kept, scan


def app_headers_py(headers: Headers) -> Headers | None:
    """``request_view``'s headers, or None when a scan-token header is among them (the caller
    then asks ``request_view`` and checks the token)."""
    kept, scan = request_view(headers)
    return None if scan else kept


#: The C twin of app_headers_py (an exact list or tuple of (bytes, bytes) pairs read with
#: length + memcmp name tests; anything else handed to app_headers_py), unless pure Python.
app_headers: Callable[[Headers], Headers | None] = app_headers_py
if speedups is not None:
    speedups.app_headers_setup(ACCEPT_ENCODING, scan_token.HEADER_BYTES, app_headers_py)
    app_headers = speedups.app_headers
