"""A tag longer than ``max_tag``: passed through while its attribute states are followed,
and made inert first, because it cannot be checked (fail closed).

A script or style gets ``type="text/plain"`` first (the first duplicate attribute wins); any
other start tag except the structural ones is renamed to an unknown element
``<consent-blocked-NAME`` (any element may carry ``style`` or ``background``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .attrs import _name_end
from .grammar import _STRUCTURAL, _SWITCHERS, _T_BEFORE, _T_NAME, _URL_ATTRS, _tag_tail


@dataclass(frozen=True, slots=True)
class OversizedTag:
    name: str  # lowercased
    is_end: bool
    data: bytes  # the tag's bytes from its '<' up to ``pos``, made inert
    pos: int  # where the bytes of this buffer end (the tag's end when ``ended``)
    sub: int  # the tag-tail state at ``pos``
    ended: bool
    after: str | None  # a start tag whose effects follow the tag (text state, foreign content)


def oversized_tag(buf: bytes, lt: int) -> OversizedTag:
    """The tag that starts at buf[lt] (a '<' and a letter, or '</' and a letter)."""
    if buf.startswith(b"</", lt):
        name_end = _name_end(buf, lt + 2)
        name = buf[lt + 2 : name_end].lower().decode("latin-1")
        pos, sub, ended = _tag_tail(buf, lt + 2, _T_NAME)
        return OversizedTag(name, True, buf[lt:pos], pos, sub, ended, None)
    name_end = _name_end(buf, lt + 1)
    name = buf[lt + 1 : name_end].lower().decode("latin-1")
    if name in ("script", "style"):
        after: str | None = name
        head = buf[lt:name_end] + b' type="text/plain" data-consent-oversized=""'
    elif name in _URL_ATTRS or name not in _STRUCTURAL:
        after = name if name in _SWITCHERS or name in ("svg", "math") else None
        head = b"<consent-blocked-" + buf[lt + 1 : name_end]
    else:
        after = name
        head = buf[lt:name_end]
    pos, sub, ended = _tag_tail(buf, name_end, _T_BEFORE)
    if ended:
        return OversizedTag(name, False, head + buf[name_end:pos], pos, sub, True, after)
    return OversizedTag(name, False, head + buf[name_end:], len(buf), sub, False, after)
