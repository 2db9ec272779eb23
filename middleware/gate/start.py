"""What a response's start message announces, read on its raw headers: the body kind (HTML,
document, sniff, other) and whether it sets a cookie. JSON and files are decided here with
no allocation, so the pass path costs one loop over the headers."""

from __future__ import annotations

from collections.abc import Iterable

from ..sniff import BodyKind, classify

# Module names, not Enum attribute reads (~0.2 µs each through the metaclass).
HTML = BodyKind.HTML
OTHER = BodyKind.OTHER
SNIFF = BodyKind.SNIFF
DOCUMENT = BodyKind.DOCUMENT
#: Statuses whose response has no body to rewrite.
NO_BODY_STATUSES = frozenset({204, 205, 304})
#: What start_kind answers for the two common start messages (made once, not per response).
_HTML_NO_COOKIE, _HTML_SETS_COOKIE = (HTML, False), (HTML, True)
_OTHER_NO_COOKIE, _OTHER_SETS_COOKIE = (OTHER, False), (OTHER, True)


def start_kind(headers: Iterable[tuple[bytes, bytes]]) -> tuple[BodyKind, bool] | None:
    """(the body kind announced by raw start headers, whether a Set-Cookie is among them), in
    one pass that allocates nothing on the common paths; None when a header name is not
    lower-case (normalise, then ask again)."""
    content_type = b""
    count = 0
    nosniff = sets_cookie = False
    for key, value in headers:
        if not key.islower():
            return None
        if key == b"content-type":
            content_type = value
            count += 1
        elif key == b"set-cookie":
            sets_cookie = True
        elif key == b"x-content-type-options":
            nosniff = value.strip().lower() == b"nosniff"
    if count == 1:
        if content_type.startswith(b"text/html"):
            return _HTML_SETS_COOKIE if sets_cookie else _HTML_NO_COOKIE
        if content_type.startswith(b"application/json"):
            return _OTHER_SETS_COOKIE if sets_cookie else _OTHER_NO_COOKIE
        return classify((content_type,), nosniff=nosniff), sets_cookie
    return classify([v for k, v in headers if k == b"content-type"], nosniff=nosniff), sets_cookie

