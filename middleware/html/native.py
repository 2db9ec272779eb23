"""Which parts of the tokenizer run in C (``middleware/_speedups.c``).

``skip_end(low, pos) == _SKIP_RE.match(low, pos).end()``: the same scan, used when the
extension was built and exports the same name lists as ``grammar``.

``scan_end(buf, pos, hosts, unknown, allowed, enabled, blocked, edits, inject, injected)``:
the native pass, used
instead in HTML content when the extension also agrees with ``grammar`` on the tables it judges
tags with (URL attributes, document tags, raw-text elements, fetch-free ``link`` rels, what
keeps an ``<svg>`` from being flat). It reads the buffer itself (no lowercased copy) and
consumes every token whose Python handling would change nothing but ``unknown_hosts``, the
enabled and the blocked partners (added to those sets), or only rename attributes and insert
``data-consent-partner`` (those edits, as ``(start, end, bytes)``, appended to ``edits``),
and makes the injections still due in ``inject`` (the tokenizer's list; each emitted one
becomes None, ``injected`` partners are then enabled); it stops wherever Python must decide.
A negative result ``~end`` means an ``<html>``, ``<head>`` or ``<body>`` start tag was passed
(the document began).
See docs/rewriter.md, "Native pass".

``splice(buf, edits, stop)``: the output of one ``Tokenizer._run`` written into one bytes
object sized once (unchanged spans copied, each edit's bytes inserted), instead of joining a
view per span; ``tokenizer.splice_py`` is the reference. A large output (256 KB or more) is
written into the previous one's bytes object when nothing holds that any more: a fresh 1 MB
block costs its page faults on every page (see docs/performance.md).

``CONSENT_GATE_PURE_PYTHON=1`` (read at import) selects the regexes and ``splice_py``; so does
setting ``skip_end``, ``scan_end`` and ``splice`` to None. The output is the same either way
(tests/test_rewrite_native.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from typing import Any

from ..accel import speedups as _speedups
from ..hosts import HostMatcher
from .grammar import (
    _BREAKOUT,
    _DOC_TAGS,
    _END_NAMES,
    _FETCH_ATTRS,
    _LINK_NO_FETCH,
    _NAME_SET,
    _PLAIN_URL_TAGS,
    _RAW_TEXT,
    _SVG_HTML_IP,
    _SVG_SPECIAL,
    _SWITCHERS,
    _URL_ATTRS,
    _VOID,
)

Table = tuple[tuple[str, str], ...]

skip_end: Callable[[bytes, int], int] | None = None
scan_end: Callable[[bytes, int, Any, set[str], Set[str] | None, set[str], set[str],
                    list[tuple[int, int, bytes]], list[bytes | None], Set[str],
                    Mapping[str, tuple[bytes, bytes]] | None, Set[str] | None, bool],
                   int] | None = None
_make_hosts: Callable[[Table, Table], Any] | None = None
#: ``flat_svg_end(buf, pos) == _SVG_FLAT_RE.match(buf.lower(), pos).end()`` (or -1), on buf
#: itself: a ``<svg>`` the tokenizer looks at costs no lowercased copy of the whole buffer.
flat_svg_end: Callable[[bytes, int], int] | None = None
#: ``splice(buf, edits, stop)``: the tokenizer's output as one bytes object, sized once (see
#: ``tokenizer.splice_py``, the same in Python); None: that one.
splice: Callable[[bytes, list[tuple[int, int, bytes]], int], bytes] | None = None


def _agrees(mod: Any) -> bool:
    """Whether the C judges tags with the grammar's tables (else only the skip is used)."""
    kinds = {"raw": _RAW_TEXT - {"style"}, "style": {"style"}, "script": {"script"},
             "doc": {"html", "head"}, "body": {"body"}}
    return (all(_URL_ATTRS.get(tag, ()) == urls and (tag in _DOC_TAGS) == doc
                and all((tag in names) == (kind == k) for k, names in kinds.items())
                for tag, urls, doc, kind in mod.RULES)
            and set(mod.LINK_NO_FETCH) == _LINK_NO_FETCH
            and (*mod.FETCH_URL_ATTRS, "style") == _FETCH_ATTRS
            and set(mod.SVG_NOT_FLAT) == {*_SVG_SPECIAL, *_BREAKOUT}
            # what svg_run reads an inline <svg> with (foreign.OpenElements, careful mode)
            and set(mod.SWITCHERS) == _SWITCHERS and set(mod.VOID) == _VOID
            and set(mod.BREAKOUT) == _BREAKOUT and set(mod.SVG_HTML_IP) == _SVG_HTML_IP)


if _speedups is not None:
    splice = _speedups.splice
    _names = (tuple(_NAME_SET), _END_NAMES, _PLAIN_URL_TAGS)
    if _names == (_speedups.NAMES, _speedups.END_NAMES, _speedups.PLAIN_URL_TAGS):
        skip_end = _speedups.skip_end
        if _agrees(_speedups):
            scan_end = _speedups.scan_end
            flat_svg_end = _speedups.flat_svg_end
            _make_hosts = _speedups.make_hosts


def host_table(matcher: object) -> Any:
    """The matcher's host table for ``scan_end`` (made once per HostMatcher), or None: another
    kind of matcher may read URLs its own way, so then the native pass judges no host."""
    if _make_hosts is None or type(matcher) is not HostMatcher:
        return None
    return matcher.native_table(_make_hosts)
