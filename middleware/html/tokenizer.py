"""The tokenizer: one response's scan over bytes, its text states, and where each tag goes.

In HTML content the skip (``native.skip_end`` in C, else ``grammar._SKIP_RE``) consumes text
and every tag that cannot matter; the loop classifies each stop (a comment, a bogus comment,
an end tag, a start tag of interest). Inside foreign content, or with a doubtful raw-text
element pending, every tag is looked at (careful mode). A start tag's edits come from
``decide.TagJudge`` as a value and are applied here; the stack of open elements is
``foreign.OpenElements``; a tag longer than ``max_tag`` is ``oversized.oversized_tag``.

References: https://html.spec.whatwg.org/multipage/parsing.html#tokenization
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal

from . import native
from .attrs import _first_value, _has_attr, _name_end, _self_closing
from .decide import Edit, TagJudge
from .fetch import UNREADABLE, import_map_urls, speculation_rules_local
from .foreign import OpenElements
from .grammar import (
    _BOGUS,
    _BREAKOUT,
    _CAREFUL_RE,
    _COMMENT,
    _COMMENT_END,
    _DATA,
    _DATA_RE,
    _DROP,
    _DROP_END,
    _HOLD,
    _IMPORT_RE,
    _INTAG,
    _MAYBE_URL_RE,
    _NEVER,
    _PLAIN,
    _PLAINTEXT,
    _RAW,
    _RAW_END,
    _RAW_TEXT,
    _SCRIPT,
    _SCRIPT_END,
    _SCRIPT_END_RE,
    _SKIP_RE,
    _STYLE_END_RE,
    _SVG_FLAT_RE,
    _SWITCHERS,
    _TAG_RE,
    _VOID,
    _state_re,
    _tag_tail,
)
from .oversized import oversized_tag
from .plan import RewritePlan

#: Default bound on one tag held back while waiting for its ``>``.
MAX_TAG = 1024 * 1024
_OVERSIZED_STYLE = b' type="text/plain" data-consent-oversized=""'
#: A speculation rule set that may reach another origin: inert (the first type wins).
_SPECULATION_OFF = b' type="text/plain" data-consent-speculation=""'
#: An import map that maps a module to a refused partner (or cannot be read): inert.
_IMPORT_MAP_OFF = b' type="text/plain" data-consent-importmap=""'
#: A <script> attribute that may spell a type read here (speculation rules, an import map).
_SPECULATION_HINT = re.compile(rb"(?i)speculationrules|importmap|&")
#: feed reads a chunk of at least _SPLIT_CHUNK bytes in place behind at most _SPLIT_HELD held
#: bytes (a copy of the chunk costs more than a second scan call below that).
_SPLIT_CHUNK = 8192
_SPLIT_HELD = 4096
#: Index of each injection in Tokenizer._inj.
_INJECTIONS = {"head": 0, "body": 1, "end": 2}


def splice_py(buf: bytes, edits: list[Edit], stop: int) -> bytes:
    """The output of one ``_run``: for each edit (a, b, data), ``buf[cur:a]`` then ``data``,
    ``cur = b``; then ``buf[cur:stop]`` (``cur`` starts at 0). The reference for
    ``native.splice`` (C: one bytes object, sized once)."""
    view = memoryview(buf)
    out: list[bytes | memoryview] = []
    cur = 0
    for a, b, data in edits:
        out.append(view[cur:a])
        out.append(data)
        cur = b
    out.append(view[cur:stop])
    return b"".join(out)


def _imports_in(content: bytes, at: int, upto: int) -> list[Edit]:
    """Each literal ``@import`` of a blocked style's text ``content`` (which starts at ``at``
    in the buffer) before ``upto``, respelled so that no preload scanner reads it."""
    return [(at + m.start(), at + m.end(), b"@-consent-blocked-import")
            for m in _IMPORT_RE.finditer(content, 0, upto)]


def _respelled_imports(content: bytes, at: int) -> tuple[int, list[Edit]]:
    """A blocked style's text read in careful mode: (where its text ends, the respelled
    imports in it). The text is markup from its first '<' on (that part is read tag by tag)."""
    upto = content.find(b"<")
    if upto < 0:
        upto = len(content)
    return at + upto, _imports_in(content, at, upto)


def _drop_to(out: list[Edit], pos: int) -> None:
    """Drop the bytes from the last edit's end (where the output has reached) up to ``pos``:
    a dropped element's content (an iframe's)."""
    cur = out[-1][1] if out else 0
    if pos > cur:
        out.append((cur, pos, b""))


class Tokenizer:
    """One response's scanner: ``feed`` chunks, then ``finish``; see docs/rewriter.md."""

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
        self._stack = OpenElements()
        self._seen_doc = False
        # The injections still due (head_end, body_start, body_end), None once emitted; the
        # native pass emits them too (and sets None).
        self._inj: list[bytes | None] = [plan.head_end, plan.body_start, plan.body_end]
        self._enabled: set[str] = set()
        self._finished = False
        # Made at the first tag the native pass leaves to Python (most pages have none).
        self._judge: TagJudge | None = None
        # The held bytes are one incomplete tag: until a '>' arrives, chunks are only collected
        # in _more (no re-scan of the held tag for every small chunk).
        self._hold_tag = False
        self._more: list[bytes] = []
        self._more_len = 0

    def _nested_maker(self) -> functools.partial[Tokenizer]:
        # Not a bound method: the judge must not keep this rewriter alive (no reference cycle).
        return functools.partial(type(self), max_tag=self.max_tag)

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
        held = self._buf
        if not held:
            return self._run(bytes(chunk), final=False)
        n = len(chunk)
        if n >= _SPLIT_CHUNK and len(held) <= _SPLIT_HELD and type(chunk) is bytes:
            # Bytes held from the last chunk (a tag it cut, a possible end marker): read them
            # with this chunk's bytes up to its first '>' (which ends them, mostly), and the
            # rest of the chunk in place, instead of a copy of the whole chunk behind them.
            # The same as feeding the two parts one after the other (the output does not
            # depend on how a body is cut into chunks).
            cut = chunk.find(b">") + 1
            if 0 < cut < n:
                head = self._run(held + chunk[:cut], final=False)
                if not self._buf:
                    return self._run(chunk, final=False, start=cut, prefix=head)
                return head + self._run(self._buf + chunk[cut:], final=False)
        return self._run(held + chunk, final=False)

    def _join_more(self) -> None:
        if self._more:
            self._buf = b"".join([self._buf, *self._more])
            self._more.clear()
            self._more_len = 0

    def finish(self) -> bytes:
        """The rest: held-back bytes, and injections the document never gave a place for."""
        if self._finished:
            return b""
        if self._more:  # (= _join_more(), a call fewer on a whole body)
            self._join_more()
        if self._buf:
            out = self._run(self._buf, final=True)
        else:  # what _run makes of no bytes, in every state: nothing (a whole body ends here)
            out = b""
            self._hold_tag = False
        self._finished = True
        inj = self._inj
        # Ended inside an oversized tag already sent: injections would be its attributes.
        if self._state != _INTAG and self._seen_doc and (
                inj[0] is not None or inj[1] is not None or inj[2] is not None):
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
                tuple(self._stack), self._seen_doc, tuple(self._inj),
                frozenset(self._enabled), frozenset(self.unknown_hosts), frozenset(self.blocked),
                self._finished, self._hold_tag)

    def restore(self, snapshot: tuple[Any, ...], plan: RewritePlan | None = None) -> None:
        """Go back to a :meth:`snapshot`, optionally switching to another plan."""
        (self._buf, self._state, self._sub, self._raw_end, self._after, self._guards, stack,
         self._seen_doc, inj, enabled, unknown, blocked, self._finished,
         self._hold_tag) = snapshot
        self._stack = OpenElements(stack)
        self._more.clear()
        self._more_len = 0
        if plan is not None:  # the injections still due, from the new plan
            inj = [None if old is None else new for old, new in
                   zip(inj, (plan.head_end, plan.body_start, plan.body_end), strict=True)]
        self._inj = list(inj)
        self._enabled = set(enabled)
        self.unknown_hosts = set(unknown)
        self.blocked = set(blocked)
        # A fresh tag memo: its replays must find their unknown hosts again. The URL memo
        # stays unless the plan changes.
        judge = self._judge
        lookup = None if plan is not None or judge is None else judge.lookup
        if plan is not None:
            self.plan = plan
        self._judge = None if lookup is None else TagJudge(self.plan, self._nested_maker(), lookup)

    # --- the scan -----------------------------------------------------------------------------

    def _inject(self, which: str) -> bytes:
        i = _INJECTIONS[which]
        data = self._inj[i]
        if data is None:
            return b""
        self._inj[i] = None
        if data:
            self._enabled.update(self.plan.injected_partners)
        return data

    def _careful(self) -> bool:
        """Inside foreign content, or with a doubtful raw-text element pending: every tag is
        looked at (the skip knows only HTML content)."""
        return bool(self._stack or self._guards)

    def _run(self, buf: bytes, *, final: bool, start: int = 0, prefix: bytes = b"") -> bytes:
        # The output as edits of buf (splice_py): each (a, b, data) is buf[cur:a], then data,
        # then cur = b, where cur is the last edit's end (0 before the first). The native pass
        # appends its edits here too, and splice writes the result once.
        # ``start``: buf[:start] was read already and gave ``prefix`` (see feed).
        out: list[Edit] = [(0, start, prefix)] if start else []
        pos = start  # next byte to look at
        n = len(buf)
        low = b""  # lowercased copy of buf for _SKIP_RE, made when first needed
        skip = _SKIP_RE.match
        skip_end = native.skip_end
        scan = native.scan_end
        if scan is not None:
            table, allowed, injected, parts, granted, documents = self.plan.native_args
        self._hold_tag = False
        while True:
            state = self._state
            if state == _DATA:
                # Find the next '<' that may matter, and what it starts (kind).
                careful = bool(self._stack or self._guards)  # self._careful()
                if careful:
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
                            # A CDATA section in foreign content, a bogus comment in HTML: read
                            # it as the bogus comment (it ends first) with "]]>" as a guard.
                            self._guards = (*self._guards, "]]>")
                        kind = "bogus"
                else:
                    if scan is not None:
                        # The native pass: also passes the tags Python would leave unchanged,
                        # and neutralises the simple ones of blocked partners (their edits).
                        lt = scan(buf, pos, table, self.unknown_hosts, allowed, self._enabled,
                                  self.blocked, out, self._inj, injected, parts, granted,
                                  documents)
                        if lt < 0:  # an <html>, <head> or <body> start tag was passed
                            lt = ~lt
                            self._seen_doc = True
                    else:
                        if not low:
                            low = buf.lower()
                        # *+ always matches: the regex never returns None.
                        lt = skip_end(low, pos) if skip_end else skip(low, pos).end()  # type: ignore[union-attr]
                    if lt >= n:
                        pos = n
                        break
                    if buf[lt + 1 : lt + 4].lower() == b"svg":
                        # A whole inline SVG that cannot fetch (icons: the most common stop).
                        # Tried first: a match implies the tag reading below would reach this.
                        flat_end = native.flat_svg_end
                        if flat_end is None:
                            if not low:
                                low = buf.lower()
                            flat = _SVG_FLAT_RE.match(low, lt)
                            svg_end = -1 if flat is None else flat.end()
                        else:  # on buf itself: no lowercased copy of the whole buffer
                            svg_end = flat_end(buf, lt)
                        if svg_end >= 0:
                            pos = svg_end
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
                    stop, pos = self._incomplete_tag(buf, lt, final, out)
                    if stop:
                        break
                    continue
                end = t.end()
                if careful:
                    res = self._careful_tag(buf, lt, end, out, final)
                else:
                    assert m is not None
                    if kind == "tricky" or m.group("slash"):
                        if buf[lt + 1] == 0x2F:  # an end tag
                            name = buf[lt + 2 : _name_end(buf, lt + 2)].lower().decode("latin-1")
                            pieces = self._end_tag(name)
                            if pieces:
                                out.append((lt, lt, pieces))
                            pos = end
                            continue
                        name = buf[lt + 1 : _name_end(buf, lt + 1)].lower().decode("latin-1")
                    else:
                        name = m.group("name").lower().decode("ascii")
                    res = self._html_start(buf, name, lt, end, out, final, careful=False)
                if res is None:  # a <style> waiting for its end
                    pos = lt
                    self._hold_tag = True
                    break
                pos = res
            elif state == _PLAINTEXT and not self._guards:
                pos = n
                break
            elif state == _INTAG:
                pos, self._sub, ended = _tag_tail(buf, pos, self._sub)
                if not ended:
                    break
                self._state = _DATA
                if self._after is not None:
                    out.append((pos, pos, self._after_start_tag(self._after, careful=False)))
                    self._after = None
            else:
                # A text state (comment, bogus comment, raw text, script, dropped iframe, a
                # guarded plaintext): find its end, or the next change of script escape level.
                body = _SCRIPT_END[self._sub] if state == _SCRIPT else (
                    _NEVER if state == _PLAINTEXT else self._raw_end)
                m = _state_re(body, self._guards).search(buf, pos)
                if m is None:
                    pos = n if final else max(pos, n - _HOLD)
                    if state == _DROP:
                        _drop_to(out, pos)
                    break
                kind = m.lastgroup
                if kind == "nos":
                    # A reading that took the guarded element for raw text ends it here,
                    # whatever the state inside: the end tag is markup.
                    if state == _DROP:
                        _drop_to(out, m.start())
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
                    pos = m.start() if t is None and not final else n if t is None else t.end()
                    _drop_to(out, pos)
                    if t is None and not final:
                        break
                    self._state = _DATA
                else:  # raw text or script end tag: the end tag itself is parsed as markup
                    self._state, self._sub, pos = _DATA, 0, m.start()
        if self._state == _DROP:
            _drop_to(out, pos)
        self._buf = buf[pos:]
        if not out:
            return buf if pos == n else buf[:pos]
        return (native.splice or splice_py)(buf, out, pos)

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

    def _incomplete_tag(self, buf: bytes, lt: int, final: bool,
                        out: list[Edit]) -> tuple[bool, int]:
        """A tag with no '>' yet: (stop the loop, pos)."""
        n = len(buf)
        if final:
            # EOF inside a tag: the browser drops it, and so does the rewriter. Passed on, the
            # injections finish() appends were read as the rest of the tag: the banner's first
            # quote and '>' completed a cut <img src="https://partner/... (a live fetch).
            out.append((lt, n, b""))
            return True, n
        if n - lt <= self.max_tag:
            self._hold_tag = True  # only a '>' can complete it
            return True, lt
        data, pos = self._oversized(buf, lt)
        out.append((lt, pos, data))
        return False, pos

    def _oversized(self, buf: bytes, lt: int) -> tuple[bytes, int]:
        """A tag longer than max_tag: passed through, made inert (see oversized.py)."""
        tag = oversized_tag(buf, lt)
        self._sub, self._after = tag.sub, None
        self._state = _DATA if tag.ended else _INTAG
        if tag.is_end:
            return self._end_tag(tag.name) + tag.data, tag.pos
        head = self._inject("head") if tag.name == "body" else b""
        if not tag.ended:
            self._after = tag.after
            return head + tag.data, tag.pos
        # Cannot happen when _TAG_RE and _tag_tail agree; stay consistent anyway.
        tail = self._after_start_tag(tag.after, careful=self._careful()) if tag.after else b""
        return head + tag.data + tail, tag.pos

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
                self._stack.open_root(name)
            return b""
        if name == "select" and not self._stack:
            # Until </select>, careful mode: a <style>, <xmp>, <title> ... in it is raw text
            # to the 2025 select parsing (Chromium 135+) and an ignored tag to the earlier
            # tree builder, whose </select> then ends the select with markup after it.
            self._guards = (*self._guards, "select")
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

    # --- tags of interest ---------------------------------------------------------------------

    def _careful_tag(self, buf: bytes, lt: int, end: int, out: list[Edit],
                     final: bool) -> int | None:
        """A tag in careful mode: follow the stack of open elements, check its attributes."""
        extra: list[Edit] = []
        if self._guards:
            # A tag that holds the end of a guarded element: for the raw-text reading that end
            # is markup. Spell its '<' as "&lt;" (the same attribute value for the markup
            # reading; no end tag for the raw-text one), so both agree.
            guard = _state_re(_NEVER, self._guards)
            extra = [(g.start(), g.start() + 1, b"&lt;")
                     for g in guard.finditer(buf, lt + 1, end - 1)]
        is_end = buf[lt + 1] == 0x2F
        start = lt + (2 if is_end else 1)
        name = buf[start : _name_end(buf, start)].lower().decode("latin-1")
        stack = self._stack
        if is_end:
            stack.end_tag(name)
            pieces = self._end_tag(name)
            if pieces:
                out.append((lt, lt, pieces))
            self._apply(lt, end, out, extra, b"")
            return end
        if not stack.html_rules(name):
            breakout = name in _BREAKOUT or (name == "font" and _has_attr(
                buf, start + len(name), end, ("color", "face", "size")))
            if breakout:
                stack.pop_to_html()
            else:
                content = self._style_text(buf, name, lt, end, final)
                if content is False:
                    return None
                edits = self._tag_edits(buf, name, start + len(name), end, careful=True,
                                        content=content)
                if name == "script" and not isinstance(edits, bytes):
                    off = self._foreign_script(buf, start + len(name), end)
                    if off:
                        edits = [*edits, (start + len(name), start + len(name), off)]
                if not isinstance(edits, bytes):
                    if not _self_closing(buf, start + len(name), end):
                        stack.push_foreign(buf, name, start + len(name), end)
                        if name in _SWITCHERS and name != "plaintext":
                            # Markup here; raw text if our namespace were wrong: cover both.
                            self._guards = (*self._guards, name)
                    pos = end
                    if name == "style" and content and edits:
                        # Chromium's preload scanner reads <svg><style> as an HTML style and
                        # fetches a literal @import from it, type="text/plain" or not
                        # (measured: tests/browser/test_redteam_vectors.py): respelled as
                        # in HTML content, up to the text's first '<' (markup from there).
                        pos, more = _respelled_imports(content, end)
                        edits = edits + more
                    self._apply(lt, pos, out, edits + extra, b"")
                    return pos
        return self._html_start(buf, name, lt, end, out, final, careful=True, extra=extra)

    def _html_start(self, buf: bytes, name: str, lt: int, end: int, out: list[Edit],
                    final: bool, *, careful: bool,
                    extra: list[Edit] | None = None) -> int | None:
        """Handle the HTML start tag buf[lt:end]; returns the position after it, or None when
        a ``<style>`` (or a speculation rule set's ``<script>``) must wait for its end tag."""
        name_end = lt + 1 + len(name)
        content = self._style_text(buf, name, lt, end, final)
        if content is False:
            return None
        speculation: bytes | None = b""
        if name == "script":
            speculation = self._speculation(buf, lt, name_end, end, final)
            if speculation is None:
                return None
        edits = self._tag_edits(buf, name, name_end, end, careful=careful, content=content)
        if speculation and not isinstance(edits, bytes):
            edits = [*edits, (name_end, name_end, speculation)]
        pre = self._inject("head") if name == "body" and not self._stack else b""
        if isinstance(edits, bytes):  # the element is replaced by a placeholder
            out.append((lt, end, pre + edits))
            if name == "iframe":
                self._state, self._raw_end = _DROP, _DROP_END
            return end
        if extra:
            edits = edits + extra
        careful = careful or bool(self._stack)
        pos = end
        if name == "style" and content and edits:
            # Blocked: type="text/plain" stops the style sheet, but Chromium's preload scanner
            # still fetches a literal @import in it (measured): spell those so it cannot. In
            # careful mode the text is also read as markup from its first '<' on.
            if careful:
                pos, more = _respelled_imports(content, end)
            else:
                pos, more = end + len(content), _imports_in(content, end, len(content))
            edits = edits + more
        self._apply(lt, pos, out, edits, pre)
        # Only <svg>/<math> care whether the tag closes itself (re-reading its attributes).
        after = self._after_start_tag(name, careful=careful, self_closing=(
            name in ("svg", "math") and _self_closing(buf, name_end, end)))
        if after:
            out.append((pos, pos, after))
        return pos

    def _speculation(self, buf: bytes, lt: int, name_end: int, end: int,
                     final: bool) -> bytes | None:
        """For a ``<script>``: the edit that makes it inert when it is a speculation rule set
        that may reach another origin (``fetch.speculation_rules_local``: Chromium prefetches
        those with the enforced CSP in place, whatever the consent, and no record precedes
        it) or an import map that maps a module to a refused partner (``_import_map``), else
        b""; None while its text must be waited for (at most ``max_tag``)."""
        if _SPECULATION_HINT.search(buf, name_end, end) is None:
            return b""  # (most scripts: no attribute could spell it)
        kind = _first_value(buf, name_end, end, "type")
        if kind is None:
            return b""
        kind = kind.strip("\t\n\x0c\r ").lower()
        if kind == "importmap":
            off = _IMPORT_MAP_OFF
        elif kind == "speculationrules":
            off = _SPECULATION_OFF
        else:
            return b""
        se = _SCRIPT_END_RE.search(buf, end)
        if se is None and not final:
            return None if len(buf) - lt <= self.max_tag else off
        text = buf[end : se.start() if se else len(buf)]
        if off is _IMPORT_MAP_OFF:
            return self._import_map(text)
        # Relative rules resolve against the document's base: under a <base href> on another
        # origin Chromium 156 prefetched them there (test_redteam_speculation.py). The native
        # pass judges <base> in C, so "another host was named before" stands in for it: any
        # unknown host seen so far (over-inclusive: a page loses a prefetch, nothing else).
        if self.unknown_hosts:
            return _SPECULATION_OFF
        return b"" if speculation_rules_local(text) else _SPECULATION_OFF

    def _foreign_script(self, buf: bytes, name_end: int, end: int) -> bytes:
        """For an SVG ``<script>`` (foreign content): the edit that makes it inert when its
        first type is ``importmap`` or ``speculationrules``, else b"". Chromium 156 registers an
        import map from ``<svg><script type=importmap>`` and fetches ``import "lib"`` from the
        partner it maps (tests/test_review_foreign_importmap.py); that text is markup, not raw
        text (references decoded, ``<!--`` a comment), so it is not read here: such a script is
        made inert whatever it maps, the map counted unreadable (fails closed)."""
        if _SPECULATION_HINT.search(buf, name_end, end) is None:
            return b""
        kind = _first_value(buf, name_end, end, "type")
        if kind is None:
            return b""
        kind = kind.strip("\t\n\x0c\r ").lower()
        if kind == "importmap":
            self.blocked.add(UNREADABLE)
            return _IMPORT_MAP_OFF
        return _SPECULATION_OFF if kind == "speculationrules" else b""

    def _import_map(self, text: bytes) -> bytes:
        """An import map's edit: inert (``type="text/plain"`` first: the first type wins) when
        one of its targets names a partner the visitor did not allow, or it cannot be read;
        kept otherwise, the allowed partners it names enabled (recorded before the bytes
        leave). A module mapped to a partner is fetched by the page's own module scripts,
        which the CSP governs only when enforced: with it off or report-only Chromium 156
        fetched ``import "lib"`` from the partner (tests/browser/test_redteam_round4.py)."""
        urls = import_map_urls(text)
        if urls is None:
            self.blocked.add(UNREADABLE)
            return _IMPORT_MAP_OFF
        judge = self._judge
        if judge is None:
            judge = self._judge = TagJudge(self.plan, self._nested_maker())
        allowed = self.plan.allowed_partners
        named: set[str] = set()
        for url in urls:
            pid = judge.lookup.partner(url, self.unknown_hosts)
            if pid is not None:
                named.add(pid)
        refused = {pid for pid in named if pid == UNREADABLE or pid not in allowed}
        if refused:
            self.blocked |= refused
            return _IMPORT_MAP_OFF
        self._enabled |= named
        return b""

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

    def _tag_edits(self, buf: bytes, name: str, name_end: int, end: int, *, careful: bool,
                   content: bytes | None = b"") -> list[Edit] | bytes:
        """Edits for a start tag, or the bytes that replace the element (a placeholder); the
        partners it enables or blocks are recorded.

        ``careful``: the tag may be in foreign content. ``content``: a style element's text
        (None: too long to read).
        """
        if content is None:
            return [(name_end, name_end, _OVERSIZED_STYLE)]
        # Fast path: no absolute URL (not even "/<tab>/host"), no character reference, no CSS
        # function, no opt-in marker.
        if _MAYBE_URL_RE.search(buf, name_end, end - 1) is None and not (
                content and _MAYBE_URL_RE.search(content)):
            return []
        judge = self._judge
        if judge is None:
            judge = self._judge = TagJudge(self.plan, self._nested_maker())
        decision = judge.decide(buf, name, name_end, end, careful, content)
        if decision.unknown:
            self.unknown_hosts |= decision.unknown
        if decision.blocked:
            self.blocked |= decision.blocked
        if decision.placeholder is not None:
            return decision.placeholder
        if decision.enabled:
            self._enabled |= decision.enabled
        return [(a + name_end, b + name_end, data) for a, b, data in decision.edits]

    @staticmethod
    def _apply(lt: int, end: int, out: list[Edit], edits: list[Edit], pre: bytes) -> None:
        """Write the tag buf[lt:end] with its edits (sorted, then an empty edit at ``end``: the
        last edit's end is where the output has reached)."""
        if not edits and not pre:
            return
        out.append((lt, lt, pre))
        out.extend(sorted(edits, key=lambda e: (e[0], e[1])))
        out.append((end, end, b""))
