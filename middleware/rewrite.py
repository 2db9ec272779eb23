"""Streaming HTML rewriter: inject snippets, neutralise blocked partners' tags, activate opt-in.

A hand-written scanner over bytes. One compiled regex skips, inside the C regex engine, text
and every tag that cannot matter (including their quoted attribute values); Python code runs
only at the tags of interest, at comments and at the raw-text elements whose end it must find.
It follows the tokenizer states of the HTML standard that decide what is a tag: comments,
bogus comments (``<!DOCTYPE``, ``<![CDATA[``, ``<?pi``), raw text (``script`` with its escaped
states, ``style``, ``iframe``, ``xmp``, ``noembed``, ``noframes``), RCDATA (``title``,
``textarea``), ``plaintext`` and attribute values in any quoting; and the part of the tree
builder that changes them: inside ``<svg>``/``<math>`` (foreign content) those elements are
markup, breakout tags and integration points return to HTML, ``<![CDATA[`` is a section.
Bytes are only changed inside the tags it rewrites; everything else is copied as it came.

Memory is bounded: between calls it keeps at most one incomplete tag (up to ``max_tag``
bytes) or a few bytes of a possible end marker. See docs/rewriter.md for the design and the
fail-closed choices.

References: https://html.spec.whatwg.org/multipage/parsing.html#tokenization
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from .hosts import HostMatcher
from .html import fetch
from .html.attrs import (
    _C0_SPACE,
    _TAB_NEWLINE,
    _Attr,
    _attr_html,
    _attr_kind,
    _attr_value,
    _has_attr,
    _name_end,
    _self_closing,
)
from .html.grammar import (
    _ANNOTATION,
    _ATTR_RE,
    _BOGUS,
    _BREAKOUT,
    _CAREFUL_RE,
    _COMMENT,
    _COMMENT_END,
    _DATA,
    _DATA_RE,
    _DOC_TAGS,
    _DROP,
    _DROP_END,
    _END_NAMES,
    _HOLD,
    _HTML_IP,
    _IMPORT_RE,
    _INTAG,
    _LINK_NO_FETCH,
    _MATHML_TEXT_IP,
    _MAYBE_URL_RE,
    _NAME_SET,
    _NEVER,
    _PLAIN,
    _PLAIN_URL_TAGS,
    _PLAINTEXT,
    _RAW,
    _RAW_END,
    _RAW_TEXT,
    _SCRIPT,
    _SCRIPT_END,
    _SKIP_RE,
    _STRUCTURAL,
    _STYLE_END_RE,
    _SVG_FLAT_RE,
    _SVG_HTML_IP,
    _SWITCHERS,
    _T_BEFORE,
    _T_NAME,
    _TAG_RE,
    _TEXT_IP,
    _URL_ATTRS,
    _VOID,
    _state_re,
    _tag_tail,
)

__all__ = ["UNREADABLE", "HtmlRewriter", "RewritePlan"]

#: Default bound on one tag held back while waiting for its ``>``.
MAX_TAG = 1024 * 1024
#: Bound on the per-response URL -> (host, partner) memo.
_URL_MEMO = 4096
#: The partner id given to a URL that cannot be read (fail closed: it is blocked like a partner's).
UNREADABLE = fetch.UNREADABLE
#: Bounds on the per-response memo of whole tags: entries, and bytes of one tag.
_TAG_MEMO = 512
_TAG_MEMO_LEN = 2048
#: URL -> HostMatcher.host_of_url(URL), shared by all responses (bounded by _URL_MEMO).
_HOST_OF_URL: dict[str, str | None] = {}


@dataclass(frozen=True)
class RewritePlan:
    head_end: bytes
    body_start: bytes
    body_end: bytes
    injected_partners: frozenset[str]
    allowed_partners: frozenset[str]
    granted_purposes: frozenset[str]
    matcher: HostMatcher
    placeholder: Callable[[str, Mapping[str, str]], bytes]


# The same scan in C (middleware/_speedups.c): skip_end(low, pos) == _SKIP_RE.match(low, pos).end().
# Used when it was built and agrees on the tag names; CONSENT_GATE_PURE_PYTHON=1 (read at import)
# or setting this to None selects the regex.
_skip_end: Callable[[bytes, int], int] | None = None
if not os.environ.get("CONSENT_GATE_PURE_PYTHON"):
    try:
        from . import _speedups
    except ImportError:
        pass
    else:
        _names = (tuple(_NAME_SET), _END_NAMES, _PLAIN_URL_TAGS)
        if _names == (_speedups.NAMES, _speedups.END_NAMES, _speedups.PLAIN_URL_TAGS):
            _skip_end = _speedups.skip_end


class HtmlRewriter:
    """One response's rewriter: ``feed`` chunks, then ``finish``; see docs/rewriter.md."""

    def __init__(self, plan: RewritePlan, *, max_tag: int = MAX_TAG) -> None:
        self.plan = plan
        self.max_tag = max_tag
        self.unknown_hosts: set[str] = set()
        #: Partners whose tags this rewriter neutralised (nested documents are judged by it).
        self.blocked: set[str] = set()
        self._buf = b""
        self._state = _DATA
        self._sub = 0  # script escape level; tag-tail state in _INTAG
        self._raw_end = _COMMENT_END  # regex body of the current text state's end
        self._after: str | None = None  # start tag whose effect follows an oversized tag
        # Elements whose raw-text reading is pending (see _state_re); "noscript" for a scripting
        # browser's <noscript>.
        self._guards: tuple[str, ...] = ()
        # The open elements from the outermost <svg>/<math> up: (namespace, name, kind).
        self._stack: list[tuple[str, str, int]] = []
        self._seen_doc = False
        self._done: set[str] = set()  # injections emitted: "head", "body", "end"
        self._enabled: set[str] = set()
        self._finished = False
        # URL -> (host, partner) for this response's plan (pages repeat their URLs).
        self._hosts: dict[str, tuple[str | None, str | None]] = {}
        # (name, careful, tag bytes after the name) -> (edits relative to the name end, enabled,
        # blocked), for this response's plan; see _tag_edits.
        self._tags: dict[tuple[str, bool, bytes],
                         tuple[list[tuple[int, int, bytes]], frozenset[str], frozenset[str]]] = {}
        # The held bytes are one incomplete tag: until a '>' arrives, chunks are only collected
        # in _more (no re-scan of the held tag for every small chunk).
        self._hold_tag = False
        self._more: list[bytes] = []
        self._more_len = 0

    # --- public API ---------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        """Rewrite ``chunk``; returns the bytes that are final and may be sent now."""
        if self._finished:
            raise RuntimeError("HtmlRewriter.feed() after finish()")
        if self._hold_tag:
            size = len(self._buf) + self._more_len + len(chunk)
            if b">" not in chunk and size <= self.max_tag:
                self._more.append(bytes(chunk))
                self._more_len += len(chunk)
                return b""
            self._join_more()
        buf = self._buf + chunk if self._buf else bytes(chunk)
        return self._run(buf, final=False)

    def _join_more(self) -> None:
        if self._more:
            self._buf = b"".join([self._buf, *self._more])
            self._more.clear()
            self._more_len = 0

    def finish(self) -> bytes:
        """The rest: held-back bytes, and injections the document never gave a place for."""
        if self._finished:
            return b""
        self._join_more()
        out = self._run(self._buf, final=True)
        self._finished = True
        if self._seen_doc:
            tail = [self._inject(k) for k in ("head", "body", "end")]
            out += b"".join(tail)
        return out

    def take_enabled(self) -> frozenset[str]:
        """Partners enabled by the bytes returned since the last call."""
        enabled = frozenset(self._enabled)
        self._enabled.clear()
        return enabled

    def snapshot(self) -> tuple[Any, ...]:
        """The rewriter's state, for :meth:`restore` (to redo a chunk with another plan)."""
        self._join_more()
        return (self._buf, self._state, self._sub, self._raw_end, self._after, self._guards,
                tuple(self._stack), self._seen_doc, frozenset(self._done),
                frozenset(self._enabled), frozenset(self.unknown_hosts), frozenset(self.blocked),
                self._finished, self._hold_tag)

    def restore(self, snapshot: tuple[Any, ...], plan: RewritePlan | None = None) -> None:
        """Go back to a :meth:`snapshot`, optionally switching to another plan."""
        (self._buf, self._state, self._sub, self._raw_end, self._after, self._guards, stack,
         self._seen_doc, done, enabled, unknown, blocked, self._finished,
         self._hold_tag) = snapshot
        self._stack = list(stack)
        self._more.clear()
        self._more_len = 0
        self._done = set(done)
        self._enabled = set(enabled)
        self.unknown_hosts = set(unknown)
        self.blocked = set(blocked)
        self._tags = {}  # its replays add no unknown hosts: they must be found again
        if plan is not None:
            self.plan = plan
            self._hosts = {}

    # --- the scanner --------------------------------------------------------------------------

    def _inject(self, which: str) -> bytes:
        if which in self._done:
            return b""
        self._done.add(which)
        plan = self.plan
        data = {"head": plan.head_end, "body": plan.body_start}.get(which, plan.body_end)
        if data:
            self._enabled.update(plan.injected_partners)
        return data

    def _careful(self) -> bool:
        """Inside foreign content, or with a doubtful raw-text element pending: every tag is
        looked at (the skip knows only HTML content)."""
        return bool(self._stack or self._guards)

    def _run(self, buf: bytes, *, final: bool) -> bytes:
        out: list[bytes] = []
        pos = 0  # next byte to look at
        flushed = 0  # bytes before this are in `out` (or dropped)
        n = len(buf)
        low = b""  # lowercased copy of buf for _SKIP_RE, made when first needed
        skip = _SKIP_RE.match
        skip_end = _skip_end
        self._hold_tag = False
        while True:
            state = self._state
            if state == _DATA and (self._stack or self._guards):  # self._careful()
                lt = buf.find(b"<", pos)
                if "]]>" in self._guards and buf.find(b"]]>", pos, n if lt < 0 else lt) >= 0:
                    self._end_tag("]]>")
                if lt < 0:
                    pos = n
                    break
                m = _CAREFUL_RE.match(buf, lt)
                kind = m.lastgroup if m is not None else None
                if kind is None or kind == "empty":  # "</>" is dropped; "<" + other is text
                    pos = lt + (3 if kind else 1)
                    continue
                if kind == "cdata":
                    top = self._stack[-1] if self._stack else None
                    if top is not None and top[0] != "h":
                        # A CDATA section in foreign content, a bogus comment in HTML: read it
                        # as the bogus comment (it ends first) with "]]>" as a guard.
                        self._guards = (*self._guards, "]]>")
                    kind = "bogus"
                if kind != "tag":
                    pos, stop = self._markup_decl(buf, lt, kind, final)
                    if stop:
                        break
                    continue
                t = _TAG_RE.match(buf, lt)
                if t is None:
                    stop, pos, flushed = self._incomplete_tag(buf, lt, final, flushed, out)
                    if stop:
                        break
                    continue
                extra: list[tuple[int, int, bytes]] = []
                if self._guards:
                    # A tag that holds the end of a guarded element: for the raw-text reading
                    # that end is markup. Spell its '<' as "&lt;" (the same attribute value for
                    # the markup reading; no end tag for the raw-text one), so both agree.
                    guard = _state_re(_NEVER, self._guards)
                    extra = [(g.start(), g.start() + 1, b"&lt;")
                             for g in guard.finditer(buf, lt + 1, t.end() - 1)]
                res = self._careful_tag(buf, lt, t.end(), flushed, out, final, extra)
                if res is None:  # a <style> waiting for its end
                    pos = lt
                    self._hold_tag = True
                    break
                flushed, pos = res
            elif state == _DATA:
                if not low:
                    low = buf.lower()
                # *+ always matches: the regex never returns None.
                lt = skip_end(low, pos) if skip_end else skip(low, pos).end()  # type: ignore[union-attr]
                if lt >= n:
                    pos = n
                    break
                if low.startswith(b"<svg", lt):
                    # A whole inline SVG that cannot fetch (icons: the most common stop). Tried
                    # first: a match implies the tag reading below would have reached this too.
                    flat = _SVG_FLAT_RE.match(low, lt)
                    if flat is not None:
                        pos = flat.end()
                        continue
                m = _DATA_RE.match(buf, lt)
                if m is None:  # cannot happen: the skip stops only where _DATA_RE matches
                    pos = lt + 1
                    continue
                kind = m.lastgroup
                if kind in ("cmt", "short", "bogus"):
                    pos, stop = self._markup_decl(buf, lt, kind, final)
                    if stop:
                        break
                    continue
                t = _TAG_RE.match(buf, lt)
                if t is None:
                    stop, pos, flushed = self._incomplete_tag(buf, lt, final, flushed, out)
                    if stop:
                        break
                    continue
                end = t.end()
                if kind == "tricky" or m.group("slash"):
                    if buf[lt + 1] == 0x2F:  # an end tag
                        name = buf[lt + 2 : _name_end(buf, lt + 2)].lower().decode("latin-1")
                        pieces = self._end_tag(name)
                        if pieces:
                            out.append(buf[flushed:lt])
                            out.append(pieces)
                            flushed = lt
                        pos = end
                        continue
                    name = buf[lt + 1 : _name_end(buf, lt + 1)].lower().decode("latin-1")
                else:
                    name = m.group("name").lower().decode("ascii")
                res = self._html_start(buf, name, lt, end, flushed, out, final, careful=False)
                if res is None:
                    pos = lt
                    self._hold_tag = True
                    break
                flushed, pos = res
            elif state == _PLAINTEXT and not self._guards:
                pos = n
                break
            elif state == _INTAG:
                pos, self._sub, ended = _tag_tail(buf, pos, self._sub)
                if not ended:
                    break
                self._state = _DATA
                if self._after is not None:
                    out.append(buf[flushed:pos])
                    flushed = pos
                    out.append(self._after_start_tag(self._after, careful=False))
                    self._after = None
            else:
                body = _SCRIPT_END[self._sub] if state == _SCRIPT else (
                    _NEVER if state == _PLAINTEXT else self._raw_end)
                m = _state_re(body, self._guards).search(buf, pos)
                if m is None:
                    pos = n if final else max(pos, n - _HOLD)
                    if state == _DROP:
                        flushed = pos
                    break
                kind = m.lastgroup
                if kind == "nos":
                    # A reading that took the guarded element for raw text ends it here, whatever
                    # the state inside: the end tag is markup.
                    if state == _DROP:
                        flushed = m.start()
                    self._state, self._sub, pos = _DATA, 0, m.start()
                elif state == _SCRIPT and kind is not None:
                    if kind == "esc":
                        self._sub, pos = 1, m.start() + 2  # "<!-->" ends at once
                    elif kind == "dd":
                        self._sub, pos = 0, m.end()
                    elif kind == "dbl":
                        self._sub, pos = 2, m.end() - 1
                    else:  # "undbl"
                        self._sub, pos = 1, m.end() - 1
                elif state in (_COMMENT, _BOGUS):
                    self._state, pos = _DATA, m.end()
                elif state == _DROP:
                    t = _TAG_RE.match(buf, m.start())
                    if t is None and not final:
                        pos = flushed = m.start()
                        break
                    pos = flushed = n if t is None else t.end()
                    self._state = _DATA
                else:  # raw text or script end tag: the end tag itself is parsed as markup
                    self._state, self._sub, pos = _DATA, 0, m.start()
        if self._state == _DROP:
            flushed = max(flushed, pos)
        out.append(buf[flushed:pos])
        self._buf = buf[pos:]
        return b"".join(out)

    def _markup_decl(self, buf: bytes, lt: int, kind: str, final: bool) -> tuple[int, bool]:
        """A comment, a bogus comment or a '<' cut off at the end: (new pos, stop the loop)."""
        n = len(buf)
        if kind == "cmt":
            if n - lt < 6 and not final:
                return lt, True
            # "<!-->" and "<!--->" are complete (empty) comments.
            if buf.startswith(b">", lt + 4):
                return lt + 5, False
            if buf.startswith(b"->", lt + 4):
                return lt + 6, False
            self._state, self._raw_end = _COMMENT, _COMMENT_END
            return lt + 4, False
        if kind == "short":
            return (n, True) if final else (lt, True)
        self._state, self._raw_end = _BOGUS, rb">"
        return lt + 1, False

    def _incomplete_tag(self, buf: bytes, lt: int, final: bool, flushed: int,
                        out: list[bytes]) -> tuple[bool, int, int]:
        """A tag with no '>' yet: (stop the loop, pos, flushed)."""
        n = len(buf)
        if final:
            return True, n, flushed  # EOF inside a tag: the browser drops it
        if n - lt <= self.max_tag:
            self._hold_tag = True  # only a '>' can complete it
            return True, lt, flushed
        m = _DATA_RE.match(buf, lt)
        assert m is not None  # a '<' followed by a letter always matches
        out.append(buf[flushed:lt])
        data, pos = self._oversized(buf, m)
        out.append(data)
        return False, pos, pos

    def _end_tag(self, name: str) -> bytes:
        if name in self._guards:
            guards = list(self._guards)
            del guards[len(guards) - 1 - guards[::-1].index(name)]
            self._guards = tuple(guards)
        if self._stack:
            return b""
        if name == "head":
            return self._inject("head")
        if name == "body":
            return self._inject("head") + self._inject("body") + self._inject("end")
        return b""

    def _after_start_tag(self, name: str, *, careful: bool, self_closing: bool = False) -> bytes:
        """Effects of an HTML start tag that follow it: the body_start injection, text states,
        foreign content."""
        if name in ("svg", "math"):
            if not self_closing:
                self._stack.append(("s" if name == "svg" else "m", name, _PLAIN))
            return b""
        if careful:
            # The namespace of this tag may be misread: read its content as markup, but let every
            # state inside end where its raw text would (both readings are covered).
            if name in _SWITCHERS and name != "plaintext":
                self._guards = (*self._guards, name)
            if self._stack and name not in _VOID:
                self._stack.append(("h", name, _PLAIN))
            if name in ("html", "head", "body"):
                self._seen_doc = True
            return b""
        if name in ("html", "head"):
            self._seen_doc = True
        elif name == "body":
            self._seen_doc = True
            return self._inject("body")
        elif name == "noscript":
            self._guards = (*self._guards, "noscript")
        elif name == "script":
            self._state, self._sub = _SCRIPT, 0
        elif name in _RAW_TEXT:
            self._state, self._raw_end = _RAW, _RAW_END[name]
        elif name == "plaintext":
            self._state = _PLAINTEXT
        return b""

    # --- foreign content (the tree builder's dispatcher) ---------------------------------------

    def _html_rules(self, name: str | None) -> bool:
        """Whether a start tag (``name``) or an end tag (None) follows the HTML rules."""
        if not self._stack:
            return True
        ns, _, kind = self._stack[-1]
        if ns == "h":
            return True
        if name is None:
            return False
        return (kind == _HTML_IP or (kind == _TEXT_IP and name not in ("mglyph", "malignmark"))
                or (kind == _ANNOTATION and name == "svg"))

    def _pop_to_html(self) -> None:
        """Breakout: pop until an HTML element or an integration point is the current node."""
        stack = self._stack
        while stack and stack[-1][0] != "h" and stack[-1][2] not in (_HTML_IP, _TEXT_IP):
            stack.pop()

    def _careful_tag(self, buf: bytes, lt: int, end: int, flushed: int, out: list[bytes],
                     final: bool, extra: list[tuple[int, int, bytes]]) -> tuple[int, int] | None:
        """A tag in careful mode: follow the stack of open elements, check its attributes."""
        is_end = buf[lt + 1] == 0x2F
        start = lt + (2 if is_end else 1)
        name = buf[start : _name_end(buf, start)].lower().decode("latin-1")
        stack = self._stack
        if is_end:
            if stack and not self._html_rules(None):
                if name in ("br", "p"):
                    self._pop_to_html()
                else:
                    for i in range(len(stack) - 1, -1, -1):
                        if stack[i][1] == name:
                            del stack[i:]
                            break
                        if stack[i][0] == "h":
                            self._html_end(name, i)
                            break
                    # Not in our part of the stack: it may close an HTML element around the
                    # <svg>; staying in careful mode is the safe reading.
            else:
                self._html_end(name, len(stack) - 1)
            pieces = self._end_tag(name)
            if pieces:
                out.append(buf[flushed:lt])
                out.append(pieces)
                flushed = lt
            return self._apply(buf, lt, end, flushed, out, extra, b""), end
        if not self._html_rules(name):
            breakout = name in _BREAKOUT or (name == "font" and _has_attr(
                buf, start + len(name), end, ("color", "face", "size")))
            if breakout:
                self._pop_to_html()
            else:
                content = self._style_text(buf, name, lt, end, final)
                if content is False:
                    return None
                edits = self._tag_edits(buf, name, start + len(name), end, careful=True,
                                        content=content)
                if not isinstance(edits, bytes):
                    if not _self_closing(buf, start + len(name), end):
                        stack.append(self._foreign_entry(buf, name, start + len(name), end))
                        if name in _SWITCHERS and name != "plaintext":
                            # Markup here; raw text if our namespace were wrong: cover both.
                            self._guards = (*self._guards, name)
                    return self._apply(buf, lt, end, flushed, out, edits + extra, b""), end
        return self._html_start(buf, name, lt, end, flushed, out, final, careful=True,
                                extra=extra)

    def _foreign_entry(self, buf: bytes, name: str, name_end: int, end: int) -> tuple[str, str, int]:
        ns = self._stack[-1][0] if self._stack else "s"
        kind = _PLAIN
        if ns == "s" and name in _SVG_HTML_IP:
            kind = _HTML_IP
        elif ns == "m" and name in _MATHML_TEXT_IP:
            kind = _TEXT_IP
        elif ns == "m" and name == "annotation-xml":
            kind = _ANNOTATION
            for am in _ATTR_RE.finditer(buf, name_end, end - 1):
                if am.group("an").lower() == b"encoding":
                    value = _attr_value(am).strip().lower()
                    if value in ("text/html", "application/xhtml+xml"):
                        kind = _HTML_IP
                    break
        return ns, name, kind

    def _html_end(self, name: str, top: int) -> None:
        """An HTML end tag seen with stack[top] as the current node: pops an HTML element of that
        name unless an integration point (a scope boundary) comes first."""
        stack = self._stack
        for i in range(top, -1, -1):
            ns, nm, kind = stack[i]
            if ns == "h" and nm == name:
                del stack[i:]
                return
            if kind != _PLAIN:
                return

    # --- tags of interest ---------------------------------------------------------------------

    def _html_start(self, buf: bytes, name: str, lt: int, end: int, flushed: int,
                    out: list[bytes], final: bool, *, careful: bool,
                    extra: list[tuple[int, int, bytes]] | None = None) -> tuple[int, int] | None:
        """Handle the HTML start tag buf[lt:end]; returns (flushed, pos), or None when a
        ``<style>`` must wait for its end tag to be judged."""
        name_end = lt + 1 + len(name)
        content = self._style_text(buf, name, lt, end, final)
        if content is False:
            return None
        edits = self._tag_edits(buf, name, name_end, end, careful=careful, content=content)
        pre = self._inject("head") if name == "body" and not self._stack else b""
        if isinstance(edits, bytes):  # the element is replaced by a placeholder
            out.append(buf[flushed:lt])
            out.append(pre + edits)
            if name == "iframe":
                self._state, self._raw_end = _DROP, _DROP_END
            return end, end
        if extra:
            edits = edits + extra
        careful = careful or bool(self._stack)
        pos = end
        if name == "style" and content and edits:
            # Blocked: type="text/plain" stops the style sheet, but Chromium's preload scanner
            # still fetches a literal @import in it (measured): spell those so it cannot. In
            # careful mode the text is also read as markup from its first '<' on.
            upto = len(content)
            if careful and b"<" in content:
                upto = content.index(b"<")
            pos = end + upto
            edits = edits + [(end + m.start(), end + m.end(), b"@-consent-blocked-import")
                             for m in _IMPORT_RE.finditer(content, 0, upto)]
        flushed = self._apply(buf, lt, pos, flushed, out, edits, pre)
        # Only <svg>/<math> care whether the tag closes itself (re-reading its attributes).
        after = self._after_start_tag(name, careful=careful, self_closing=(
            name in ("svg", "math") and _self_closing(buf, name_end, end)))
        if after:
            out.append(buf[flushed:pos])
            out.append(after)
            flushed = pos
        return flushed, pos

    def _style_text(self, buf: bytes, name: str, lt: int, end: int,
                    final: bool) -> bytes | Literal[False] | None:
        """A ``<style>``'s text up to ``</style`` (a superset of what the browser reads as CSS),
        None when it is too long to wait for (fail closed), False when it must be waited for;
        b"" for any other element."""
        if name != "style":
            return b""
        se = _STYLE_END_RE.search(buf, end)
        if se is None and not final:
            return False if len(buf) - lt <= self.max_tag else None
        return buf[end : se.start() if se else len(buf)]

    @staticmethod
    def _apply(buf: bytes, lt: int, end: int, flushed: int, out: list[bytes],
               edits: list[tuple[int, int, bytes]], pre: bytes) -> int:
        """Write the tag buf[lt:end] with its edits; returns the new ``flushed``."""
        if not edits and not pre:
            return flushed
        out.append(buf[flushed:lt])
        out.append(pre)
        cur = lt
        for a, b, data in sorted(edits, key=lambda e: (e[0], e[1])):
            out.append(buf[cur:a])
            out.append(data)
            cur = b
        out.append(buf[cur:end])
        return end

    def _oversized(self, buf: bytes, m: re.Match[bytes]) -> tuple[bytes, int]:
        """A tag longer than max_tag: pass it through, following its attribute states.

        A tag that might load a partner cannot be checked, so it is made inert (fail closed):
        a script or style gets ``type="text/plain"`` first (the first duplicate attribute wins),
        any other start tag is renamed to an unknown element ``<consent-blocked-NAME`` (any
        element may carry ``style`` or ``background``).
        """
        lt = m.start()
        self._state, self._after = _INTAG, None
        is_end = buf.startswith(b"</", lt)
        if not is_end:
            name_end = _name_end(buf, lt + 1)
            name = buf[lt + 1 : name_end].lower().decode("latin-1")
            self._sub = _T_BEFORE
            head = b""
            if name == "body":
                head = self._inject("head")
            if name in ("script", "style"):
                self._after = name
                head += buf[lt:name_end] + b' type="text/plain" data-consent-oversized=""'
            elif name in _URL_ATTRS or name not in _STRUCTURAL:
                self._after = name if name in _SWITCHERS or name in ("svg", "math") else None
                head += b"<consent-blocked-" + buf[lt + 1 : name_end]
            else:
                self._after = name
                head += buf[lt:name_end]
            pos, self._sub, ended = _tag_tail(buf, name_end, self._sub)
            if ended:  # cannot happen when _TAG_RE and _tag_tail agree; stay consistent anyway
                self._state, after, self._after = _DATA, self._after, None
                tail = self._after_start_tag(after, careful=self._careful()) if after else b""
                return head + buf[name_end:pos] + tail, pos
            return head + buf[name_end:], len(buf)
        head = self._end_tag(buf[lt + 2 : _name_end(buf, lt + 2)].lower().decode("latin-1"))
        pos, self._sub, ended = _tag_tail(buf, lt + 2, _T_NAME)
        if ended:
            self._state = _DATA
        return head + buf[lt:pos], pos

    def _partner(self, url: str) -> str | None:
        """The partner id of ``url`` (UNREADABLE when its host cannot be read), or None."""
        hosts = self._hosts
        try:
            host, pid = hosts[url]
        except KeyError:
            matcher = self.plan.matcher
            if type(matcher) is HostMatcher:
                # host_of_url is a pure function of the URL: its result is shared by every
                # response (unique pages still repeat their partners' script and ad URLs).
                try:
                    host = _HOST_OF_URL[url]
                except KeyError:
                    host = HostMatcher.host_of_url(url)
                    if len(_HOST_OF_URL) >= _URL_MEMO:
                        _HOST_OF_URL.clear()
                    _HOST_OF_URL[url] = host
            else:
                host = matcher.host_of_url(url)
            if host is None:
                pid = None
            elif not host.isascii():  # undecodable bytes or an invalid IDN: fail closed
                pid = UNREADABLE
            else:
                pid = matcher.partner_for_host(host)
            if len(hosts) >= _URL_MEMO:
                hosts.clear()
            hosts[url] = host, pid
        if host is not None and pid is None:
            self.unknown_hosts.add(host)
        return pid

    def _nested(self, doc: bytes) -> tuple[set[str], set[str]]:
        """(enabled, blocked) partners of a document inside an attribute (srcdoc, data:)."""
        plan = replace(self.plan, head_end=b"", body_start=b"", body_end=b"",
                       injected_partners=frozenset())
        inner = HtmlRewriter(plan, max_tag=self.max_tag)
        inner.feed(doc)
        inner.finish()
        self.unknown_hosts |= inner.unknown_hosts
        blocked = set(inner.blocked)
        enabled = set(inner.take_enabled())
        # Scripts and styles of the inner document may name partners in ways no tag shows.
        for pid in self.plan.matcher.partners_in_text(doc.decode("latin-1")):
            (enabled if pid in self.plan.allowed_partners else blocked).add(pid)
        return enabled, blocked

    def _partners_of(self, tag: str, kind: str, value: str,
                     enabled: set[str]) -> list[str | None]:
        """Partner ids (None: no partner) named by an attribute value of the given kind."""
        if kind == "srcset":
            return [self._partner(u) for u in fetch.srcset_urls(value)]
        if kind == "list":
            return [self._partner(u) for u in value.split()]
        if kind == "css":
            return [self._partner(u) for u in fetch.css_urls(value)]
        if kind == "refresh":
            found: list[str | None] = [self._partner(fetch.refresh_url(value))]
            found.extend(self.plan.matcher.partners_in_text(value))
            return found
        if kind == "srcdoc":
            inner_enabled, blocked = self._nested(value.encode("utf-8", "surrogateescape"))
            enabled |= inner_enabled
            return list(blocked)
        if tag in _DOC_TAGS:
            url = _TAB_NEWLINE.sub("", value.lstrip(_C0_SPACE))
            if url[:5].lower() == "data:":
                doc = fetch.data_document(url)
                if doc is None:
                    return [UNREADABLE]
                inner_enabled, blocked = self._nested(doc)
                enabled |= inner_enabled
                return list(blocked)
        return [self._partner(value)]

    def _tag_edits(self, buf: bytes, name: str, name_end: int, end: int, *, careful: bool,
                   content: bytes | None = b"") -> list[tuple[int, int, bytes]] | bytes:
        """Edits for a start tag, or the bytes that replace the element (a placeholder).

        ``careful``: the tag may be in foreign content, so SVG/MathML fetching attributes are
        checked too. ``content``: a style element's text (None: too long to read).
        """
        if content is None:
            return [(name_end, name_end, b' type="text/plain" data-consent-oversized=""')]
        # Fast path: no absolute URL (not even "/<tab>/host"), no character reference, no CSS
        # function, no opt-in marker.
        if _MAYBE_URL_RE.search(buf, name_end, end - 1) is None and not (
                content and _MAYBE_URL_RE.search(content)):
            return []
        if content or end - name_end > _TAG_MEMO_LEN:
            return self._judge_tag(buf, name, name_end, end, careful=careful, content=content)
        # Pages repeat whole tags (an ad slot's script, a pixel, an embed): the same bytes give
        # the same edits (relative to the name) and the same partners, for this response's plan.
        key = (name, careful, buf[name_end:end])
        hit = self._tags.get(key)
        if hit is not None:
            rel, enabled, blocked = hit
            self.blocked.update(blocked)
            self._enabled.update(enabled)
            return [(a + name_end, b + name_end, data) for a, b, data in rel]
        outer_blocked, outer_enabled = self.blocked, self._enabled
        self.blocked, self._enabled = set(), set()
        try:
            edits = self._judge_tag(buf, name, name_end, end, careful=careful, content=content)
        finally:
            now_blocked, now_enabled = self.blocked, self._enabled
            self.blocked, self._enabled = outer_blocked, outer_enabled
            outer_blocked.update(now_blocked)
            outer_enabled.update(now_enabled)
        if isinstance(edits, bytes):  # a placeholder: made afresh each time
            return edits
        if len(self._tags) >= _TAG_MEMO:
            self._tags.clear()
        self._tags[key] = ([(a - name_end, b - name_end, data) for a, b, data in edits],
                           frozenset(now_enabled), frozenset(now_blocked))
        return edits

    def _judge_tag(self, buf: bytes, name: str, name_end: int, end: int, *, careful: bool,
                   content: bytes) -> list[tuple[int, int, bytes]] | bytes:
        """``_tag_edits`` past its fast path and memo."""
        url_names = _URL_ATTRS.get(name, ())
        attrs: list[_Attr] = []
        first: dict[str, _Attr] = {}
        prev = name_end
        for am in _ATTR_RE.finditer(buf, name_end, end - 1):
            an, dq, sq, uq = am.groups()
            a_end = am.end()
            at = _Attr(an.decode("latin-1").lower(), am.span(1),
                       dq if dq is not None else sq if sq is not None else uq,
                       (am.start(), a_end), prev)
            attrs.append(at)
            if at.name not in first:
                first[at.name] = at
            prev = a_end

        plan = self.plan
        allowed = plan.allowed_partners
        link_quiet = False
        if name == "link":
            rel = first.get("rel")
            tokens = set(rel.value().lower().split()) if rel is not None else set()
            link_quiet = not tokens - _LINK_NO_FETCH
        refresh = name == "meta" and "http-equiv" in first and (
            first["http-equiv"].value().strip().lower() == "refresh")

        # Hard-coded URLs of partners the visitor did not allow.
        enabled: set[str] = set()
        blocked: list[str] = []
        moved: list[_Attr] = []

        def judge(pids: Iterable[str | None]) -> bool:
            hit = False
            for pid in pids:
                if pid is None:
                    continue
                if pid in allowed:
                    enabled.add(pid)
                else:
                    hit = True
                    if pid not in blocked:
                        blocked.append(pid)
            return hit

        for at in attrs:
            kind = _attr_kind(name, at.name, url_names, careful, at)
            if kind is None or (link_quiet and at.name in url_names):
                continue
            if kind == "refresh" and not refresh:
                continue
            if judge(self._partners_of(name, kind, at.value(), enabled)):
                moved.append(at if kind != "refresh" else first["http-equiv"])
        if content:
            text = content.decode("utf-8", "surrogateescape")
            judge(self._partners_of(name, "css", text, enabled))
            if "&" in text:
                judge(self._partners_of(name, "css", html.unescape(text), enabled))
        # Opt-in markup written by the site: activate it when its purposes are granted.
        edits: list[tuple[int, int, bytes]] = []
        marker = first.get("data-consent")
        if marker is not None:
            purposes = set(marker.value().replace(",", " ").split())
            optin = [at for at in attrs if at.name.startswith("data-consent-")
                     and at.name[13:] in url_names]
            inert_script = name == "script" and (
                "type" in first and first["type"].value().strip().lower() == "text/plain")
            if optin or inert_script:
                declared = first.get("data-consent-partner")
                pids: set[str | None] = set(declared.value().split()) if declared else set()
                for at in optin:
                    pids.update(self._partners_of(name, _attr_kind(name, at.name[13:], url_names,
                                                                   False, at) or "url",
                                                  at.value(), set()))
                pids.discard(None)
                granted = bool(purposes) and purposes <= plan.granted_purposes
                if granted and pids <= allowed and not blocked:
                    enabled.update(p for p in pids if p is not None)
                    edits = self._activate(attrs, first, optin, inert_script)
        self.blocked.update(blocked)
        if blocked and name in ("iframe", "embed") and blocked[0] != UNREADABLE:
            attr_map = {k: v.value() for k, v in first.items()}
            return plan.placeholder(blocked[0], attr_map)
        self._enabled.update(enabled)
        if not blocked:
            return edits
        # Neutralise: move the fetching attributes aside, say whose they are.
        who = _attr_html("data-consent-partner", " ".join(blocked))
        if name in ("script", "style"):
            moved = [*moved, *(at for at in attrs if at.name == "type" and at not in moved)]
            insert = b' type="text/plain"' + who
        else:
            insert = who
        edits = [(name_end, name_end, insert)]
        for at in moved:
            a, b = at.name_span
            edits.append((a, b, b"data-consent-" + buf[a:b]))
        return edits

    @staticmethod
    def _activate(attrs: list[_Attr], first: Mapping[str, _Attr], optin: list[_Attr],
                  inert_script: bool) -> list[tuple[int, int, bytes]]:
        edits: list[tuple[int, int, bytes]] = []
        targets = {at.name[13:] for at in optin}
        if inert_script:
            targets.add("type")
            if "data-consent-type" in first:
                optin = [*optin, first["data-consent-type"]]
        # The first duplicate attribute wins in a browser: drop the inert ones being replaced.
        for at in attrs:
            if at.name in targets:
                edits.append((at.start, at.span[1], b""))
        for at in optin:
            a, b = at.name_span
            edits.append((a, b, at.name[13:].encode()))
        return edits
