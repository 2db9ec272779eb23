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
#: What start_kind answers for one raw Content-Type value, (without, with) a Set-Cookie: a
#: pure function of the value, remembered per value, for each X-Content-Type-Options (nosniff
#: off, on). Bounded; the pairs are made once, so an answer allocates nothing.
_ANSWERS: tuple[dict[bytes, tuple[tuple[BodyKind, bool], tuple[BodyKind, bool]]], ...] = ({}, {})
_MAX_ANSWERS = 256


def _one_type(content_type: bytes, nosniff: bool) -> BodyKind:
    # A comma list is several types (Chromium 156 renders 'application/json, text/html' as
    # HTML, and fetched its partner img when the fast answer passed it as JSON): classify.
    if b"," not in content_type:
        if content_type.startswith(b"text/html"):
            return HTML
        if content_type.startswith(b"application/json"):
            return OTHER
    return classify((content_type,), nosniff=nosniff)


def start_kind(headers: Iterable[tuple[bytes, bytes]]) -> tuple[BodyKind, bool] | None:
    """(the body kind announced by raw start headers, whether a Set-Cookie is among them), in
    one pass that allocates nothing on the common paths; None when a header name is not
    lower-case (normalise, then ask again)."""
    content_type: bytes | None = None
    several = nosniff = sets_cookie = False
    for key, value in headers:
        # The three names we read are lower-case when equal; any other name is checked.
        if key == b"content-type":
            several = content_type is not None
            content_type = value
        elif key == b"set-cookie":
            sets_cookie = True
        elif key == b"x-content-type-options":
            nosniff = value.strip().lower() == b"nosniff"
        elif not key.islower():
            return None
    if content_type is None or several:
        return classify([v for k, v in headers if k == b"content-type"], nosniff=nosniff), sets_cookie
    answers = _ANSWERS[nosniff]
    pair = answers.get(content_type)
    if pair is None:
        kind = _one_type(content_type, nosniff)
        pair = ((kind, False), (kind, True))
        if len(answers) < _MAX_ANSWERS:
            answers[content_type] = pair
    return pair[sets_cookie]
