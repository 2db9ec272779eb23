"""Streaming HTML rewriter: inject snippets, neutralise blocked partners' tags, activate opt-in.

A hand-written scanner over bytes. One compiled regex skips, inside the C regex engine, text
and every tag that cannot matter (including their quoted attribute values); Python code runs
only at the tags of interest, at comments and at the raw-text elements whose end it must find.
It follows the tokenizer states of the HTML standard that decide what is a tag: comments,
bogus comments (``<!DOCTYPE``, ``<![CDATA[``, ``<?pi``), raw text (``script`` with its escaped
states, ``style``, ``iframe``, ``xmp``, ``noembed``, ``noframes``), RCDATA (``title``,
``textarea``), ``plaintext`` and attribute values in any quoting. Bytes are only changed
inside the tags it rewrites; everything else is copied as it came.

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
from dataclasses import dataclass
from typing import Any

from .hosts import HostMatcher

__all__ = ["HtmlRewriter", "RewritePlan"]

#: Default bound on one tag held back while waiting for its ``>``.
MAX_TAG = 1024 * 1024
#: Bound on the per-response URL -> (host, partner) memo.
_URL_MEMO = 4096


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


# --- the grammar -----------------------------------------------------------------------------

_WS = rb"\t\n\f\r "
# Tags whose URL attributes may load something from a partner.
_URL_ATTRS: dict[str, tuple[str, ...]] = {
    "script": ("src",),
    "iframe": ("src",),
    "img": ("src", "srcset"),
    "link": ("href", "imagesrcset"),
    "embed": ("src",),
    "object": ("data",),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "base": ("href",),
}
_SRCSET_ATTRS = frozenset({"srcset", "imagesrcset"})
# Elements whose content the tokenizer reads as raw text (or RCDATA) up to their end tag.
_RAW_TEXT = frozenset({"style", "xmp", "iframe", "noembed", "noframes", "textarea", "title"})
_STRUCTURAL = ("noscript", "head", "body", "html", "plaintext", *sorted(_RAW_TEXT - {"iframe"}))


def _trie(words: Iterable[str]) -> str:
    """A case-insensitive regex alternation grouped by first letter (fewer branches tried)."""
    groups: dict[str, list[str]] = {}
    for w in words:
        groups.setdefault(w[0], []).append(w[1:])
    alts = []
    for first, rests in sorted(groups.items()):
        cls = f"[{first}{first.upper()}]"
        tails = sorted(rests, key=lambda r: (-len(r), r))
        alts.append(cls + "(?i:" + "|".join(tails) + ")")
    return "(?:" + "|".join(alts) + ")"


_NAME_SET = sorted({*_URL_ATTRS, *_STRUCTURAL})
_NAMES = _trie(_NAME_SET).encode()
_FIRST = "".join(sorted({c for n in _NAME_SET for c in (n[0], n[0].upper())})).encode()
# link rel values that never make the browser fetch the href; any other token may.
_LINK_NO_FETCH = frozenset({
    "alternate", "author", "bookmark", "canonical", "external", "help", "license", "me",
    "next", "nofollow", "noopener", "noreferrer", "opener", "prev", "search", "tag",
    "shortlink", "amphtml", "pingback", "edit", "archives", "first", "last", "up",
})

# Tags whose start tag can be skipped when no URL attribute value could name another host
# (nothing after them depends on them: no text state, no injection).
_PLAIN_URL_TAGS = ("img", "link", "source", "embed", "object", "video", "audio", "base")
# End tags that matter: injections and the end of <noscript>.
_END_NAMES = ("body", "head", "noscript")


def _alternation(words: Iterable[str]) -> bytes:
    """Lowercase literal trie (the skip pattern runs on a lowercased copy of the buffer)."""
    groups: dict[str, list[str]] = {}
    for w in words:
        groups.setdefault(w[0], []).append(w[1:])
    alts = []
    for first, rests in sorted(groups.items()):
        tails = sorted((r for r in rests if r), key=lambda r: (-len(r), r))
        if not tails:
            alts.append(first)
        else:
            alts.append(first + "(?:" + "|".join(tails) + ("|" if "" in rests else "") + ")")
    return ("(?:" + "|".join(alts) + ")").encode()


# The exact attribute grammar of the tokenizer (names may hold quotes, '<' and '=' after the
# first byte; values double/single quoted or unquoted), as used by _TAG_RE below.
_GRAM_ATTR = (
    rb"[^" + _WS + rb"/>][^" + _WS + rb"/>=]*+"
    rb"(?>[" + _WS + rb"]*+=[" + _WS + rb"]*+"
    rb"(?:\"[^\"]*+\"|'[^']*+'|(?![\"'])[^" + _WS + rb">]*+)"
    rb"|(?![" + _WS + rb"]*+=))"
)
_GRAM_BODY = rb"(?:[" + _WS + rb"/]*+" + _GRAM_ATTR + rb")*+[" + _WS + rb"/]*+>"


def _quiet(stop: bytes) -> bytes:
    """A value's bytes where no absolute URL can hide: no ':' (scheme), '\\', '&' (character
    reference) nor '/' followed by '/' (tabs and newlines in between are removed by the URL
    parser). ``stop`` ends the value."""
    cls = rb"[^" + stop + rb":\\&/]*+"
    return cls + rb"(?:/(?![/\t\n\r])" + cls + rb")*+"


# The same grammar for a URL tag that cannot load from another host: no attribute named
# data-consent (opt-in markup), no value that could hold an absolute URL. Any other spelling
# makes this fail, and Python looks at the tag.
_QUIET_ATTR = (
    rb"(?:[^" + _WS + rb"/>=d]|d(?!ata-consent[" + _WS + rb"/>=]))[^" + _WS + rb"/>=]*+"
    rb"(?>[" + _WS + rb"]*+=[" + _WS + rb"]*+"
    rb"(?:\"" + _quiet(b'"') + rb"\"|'" + _quiet(b"'") + rb"'"
    rb"|(?![\"'])" + _quiet(_WS + b">") + rb"(?=[" + _WS + rb">]))"
    rb"|(?![" + _WS + rb"]*+=))"
)
_QUIET_BODY = rb"(?:[" + _WS + rb"/]*+" + _QUIET_ATTR + rb")*+[" + _WS + rb"/]*+>"

# Run on a lowercased copy of the buffer: skips text and every tag that cannot matter inside
# the C regex engine, and stops at the '<' of anything Python must look at (comments, bogus
# comments, tags of interest, a tag cut off by the end of the buffer, a bare '<' at the end).
_SKIP_RE = re.compile(
    rb"(?:[^<]++"
    rb"|<(?!" + _alternation(_NAME_SET) + rb"[" + _WS + rb"/>])[a-z][^" + _WS + rb"/>]*+"
    + _GRAM_BODY +
    rb"|</(?!" + _alternation(_END_NAMES) + rb"[" + _WS + rb"/>])[a-z][^" + _WS + rb"/>]*+"
    + _GRAM_BODY +
    rb"|<" + _alternation(_PLAIN_URL_TAGS) + rb"(?=[" + _WS + rb"/>])" + _QUIET_BODY +
    rb"|<(?=[^!/?a-z]|/>)"  # text: '<' not starting a tag ("</>" is dropped: kept as is)
    rb")*+"
)
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
# What the skip stopped at (matched on the buffer itself).
_DATA_RE = re.compile(
    rb"<(?:"
    rb"(?P<cmt>!--)"
    rb"|(?P<short>!-?\Z|/?\Z)"
    rb"|(?P<bogus>[!?]|/(?=[^A-Za-z>]))"
    rb"|(?P<slash>/?)(?P<name>(?=[" + _FIRST + rb"])" + _NAMES + rb")(?=[" + _WS + rb"/>])"
    rb"|(?P<tricky>/?[A-Za-z])"  # any other tag: cut off, or not in the skip's grammar
    rb")"
)
# A URL tag body that may hold an absolute URL or opt-in markup (else nothing to do).
_MAYBE_URL_RE = re.compile(rb"[:\\&]|/[\t\n\r]*+/|(?i:data-consent)")
_ATTR = (
    rb"(?P<an>[^" + _WS + rb"/>][^" + _WS + rb"/>=]*+)"
    rb"(?>[" + _WS + rb"]*+=[" + _WS + rb"]*+"
    rb"(?:\"(?P<dq>[^\"]*+)\"|'(?P<sq>[^']*+)'|(?![\"'])(?P<uq>[^" + _WS + rb">]*+))"
    rb"|(?![" + _WS + rb"]*+=))"
)
_ATTR_RE = re.compile(_ATTR)
_TAG_RE = re.compile(
    rb"</?[A-Za-z][^" + _WS + rb"/>]*+(?:[" + _WS + rb"/]*+" + _ATTR + rb")*+[" + _WS + rb"/]*+>"
)
_COMMENT_END = rb"--!?>"
_HOLD = 11  # longest end marker we search for, minus one: "</noscript" + 1


def _end_re(body: bytes) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    """(outside noscript, inside noscript): inside, ``</noscript`` also ends the state."""
    return (
        re.compile(body),
        re.compile(body + rb"|(?P<nos></(?i:noscript)[" + _WS + rb"/>])"),
    )


_RAW_END = {n: _end_re(rb"</(?i:" + n.encode() + rb")[" + _WS + rb"/>]") for n in _RAW_TEXT}
_COMMENT_RE = _end_re(_COMMENT_END)
_BOGUS_RE = _end_re(rb">")
_SCRIPT_RE = (
    _end_re(rb"(?P<esc><!--)|</(?i:script)[" + _WS + rb"/>]"),
    _end_re(rb"(?P<dd>-->)|</(?i:script)[" + _WS + rb"/>]|(?P<dbl><(?i:script)[" + _WS + rb"/>])"),
    _end_re(rb"(?P<dd>-->)|(?P<undbl></(?i:script)[" + _WS + rb"/>])"),
)
_DROP_RE = _end_re(rb"</(?i:iframe)[" + _WS + rb"/>]")

# States.
_DATA, _COMMENT, _BOGUS, _RAW, _SCRIPT, _PLAINTEXT, _DROP, _INTAG = range(8)
# Tag-tail states (the attribute states of the tokenizer), used past ``max_tag``.
_T_NAME, _T_BEFORE, _T_ANAME, _T_AFTER, _T_BVAL, _T_DQ, _T_SQ, _T_UQ = range(8)
_T_SKIP = {
    _T_NAME: re.compile(rb"[^" + _WS + rb"/>]*+"),
    _T_BEFORE: re.compile(rb"[" + _WS + rb"/]*+"),
    _T_ANAME: re.compile(rb"[^" + _WS + rb"/>=]*+"),
    _T_AFTER: re.compile(rb"[" + _WS + rb"]*+"),
    _T_BVAL: re.compile(rb"[" + _WS + rb"]*+"),
    _T_UQ: re.compile(rb"[^" + _WS + rb">]*+"),
}


def _tag_tail(buf: bytes, pos: int, st: int) -> tuple[int, int, bool]:
    """Run the tokenizer's tag states from ``pos``: (new pos, state, tag ended)."""
    n = len(buf)
    while pos < n:
        if st in (_T_DQ, _T_SQ):
            q = buf.find(b'"' if st == _T_DQ else b"'", pos)
            if q < 0:
                return n, st, False
            pos, st = q + 1, _T_BEFORE
            continue
        m = _T_SKIP[st].match(buf, pos)
        pos = m.end() if m else pos
        if pos >= n:
            break
        c = buf[pos]
        if c == 0x3E:  # '>'
            return pos + 1, st, True
        if st in (_T_NAME, _T_UQ):
            st = _T_BEFORE
        elif st == _T_BEFORE:
            pos, st = pos + 1, _T_ANAME
        elif st == _T_ANAME:
            st = _T_AFTER
            if c == 0x3D:
                pos, st = pos + 1, _T_BVAL
        elif st == _T_AFTER:
            if c == 0x2F:
                st = _T_BEFORE
            elif c == 0x3D:
                pos, st = pos + 1, _T_BVAL
            else:
                pos, st = pos + 1, _T_ANAME
        else:  # _T_BVAL
            if c == 0x22:
                pos, st = pos + 1, _T_DQ
            elif c == 0x27:
                pos, st = pos + 1, _T_SQ
            else:
                st = _T_UQ
    return n, st, False


class _Attr:
    __slots__ = ("name", "name_span", "raw", "span", "start")

    def __init__(self, name: str, name_span: tuple[int, int], raw: bytes | None,
                 span: tuple[int, int], start: int) -> None:
        self.name = name
        self.name_span = name_span  # of the name, in the buffer
        self.raw = raw  # value bytes as written (None: no value)
        self.span = span  # name through value end
        self.start = start  # end of the previous attribute: removing [start, end) drops it

    def value(self) -> str:
        if self.raw is None:
            return ""
        text = self.raw.decode("utf-8", "replace")
        return html.unescape(text) if "&" in text else text


def _srcset_urls(value: str) -> list[str]:
    """Every candidate URL of a srcset, over-inclusive (fail closed): each whitespace token,
    and each comma-separated piece of it."""
    urls: list[str] = []
    for token in value.split():
        urls.append(token.strip(","))
        if "," in token:
            urls.extend(p for p in token.split(",") if p)
    return urls


def _attr_html(name: str, value: str) -> bytes:
    quoted = html.escape(value).encode("ascii", "xmlcharrefreplace")
    return b" " + name.encode() + b'="' + quoted + b'"'


class HtmlRewriter:
    """One response's rewriter: ``feed`` chunks, then ``finish``; see docs/internals.md."""

    def __init__(self, plan: RewritePlan, *, max_tag: int = MAX_TAG) -> None:
        self.plan = plan
        self.max_tag = max_tag
        self.unknown_hosts: set[str] = set()
        self._buf = b""
        self._state = _DATA
        self._sub = 0  # script escape level; tag-tail state in _INTAG
        self._raw_end: tuple[re.Pattern[bytes], re.Pattern[bytes]] = _COMMENT_RE
        self._after: str | None = None  # start tag whose effect follows an oversized tag
        self._noscript = False
        self._seen_doc = False
        self._done: set[str] = set()  # injections emitted: "head", "body", "end"
        self._enabled: set[str] = set()
        self._finished = False
        # URL -> (host, partner) for this response's plan (pages repeat their URLs).
        self._hosts: dict[str, tuple[str | None, str | None]] = {}
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
        return (self._buf, self._state, self._sub, self._raw_end, self._after, self._noscript,
                self._seen_doc, frozenset(self._done), frozenset(self._enabled),
                frozenset(self.unknown_hosts), self._finished, self._hold_tag)

    def restore(self, snapshot: tuple[Any, ...], plan: RewritePlan | None = None) -> None:
        """Go back to a :meth:`snapshot`, optionally switching to another plan."""
        (self._buf, self._state, self._sub, self._raw_end, self._after, self._noscript,
         self._seen_doc, done, enabled, unknown, self._finished, self._hold_tag) = snapshot
        self._more.clear()
        self._more_len = 0
        self._done = set(done)
        self._enabled = set(enabled)
        self.unknown_hosts = set(unknown)
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
            if state == _DATA:
                if not low:
                    low = buf.lower()
                # *+ always matches: the regex never returns None.
                lt = skip_end(low, pos) if skip_end else skip(low, pos).end()  # type: ignore[union-attr]
                if lt >= n:
                    pos = n
                    break
                m = _DATA_RE.match(buf, lt)
                if m is None:  # cannot happen: the skip stops only where _DATA_RE matches
                    pos = lt + 1
                    continue
                kind = m.lastgroup
                if kind == "cmt":
                    if n - lt < 6 and not final:
                        pos = lt
                        break
                    # "<!-->" and "<!--->" are complete (empty) comments.
                    if buf.startswith(b">", lt + 4):
                        pos = lt + 5
                    elif buf.startswith(b"->", lt + 4):
                        pos = lt + 6
                    else:
                        self._state, self._raw_end, pos = _COMMENT, _COMMENT_RE, lt + 4
                elif kind == "short":
                    pos = n if final else lt
                    if not final:
                        break
                elif kind == "bogus":
                    self._state, self._raw_end, pos = _BOGUS, _BOGUS_RE, lt + 1
                else:
                    t = _TAG_RE.match(buf, lt)
                    if t is None:
                        if final:
                            pos = n  # EOF inside a tag: the browser drops it
                            break
                        if n - lt <= self.max_tag:
                            pos = lt
                            self._hold_tag = True  # only a '>' can complete it
                            break
                        out.append(buf[flushed:lt])
                        data, pos = self._oversized(buf, m)
                        out.append(data)
                        flushed = pos
                        continue
                    if kind == "tricky":
                        pos = t.end()
                        continue
                    name = m.group("name").lower().decode("ascii")
                    if m.group("slash"):
                        pieces = self._end_tag(name)
                        if pieces:
                            out.append(buf[flushed:lt])
                            out.append(pieces)
                            flushed = lt
                        pos = t.end()
                    else:
                        flushed, pos = self._start_tag(buf, name, m.end("name"), t.end(), lt,
                                                       flushed, out)
            elif state == _PLAINTEXT:
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
                    out.append(self._after_start_tag(self._after))
                    self._after = None
            else:
                pat = self._raw_end[1 if self._noscript else 0]
                if state == _SCRIPT:
                    pat = _SCRIPT_RE[self._sub][1 if self._noscript else 0]
                m = pat.search(buf, pos)
                if m is None:
                    pos = n if final else max(pos, n - _HOLD)
                    if state == _DROP:
                        flushed = pos
                    break
                kind = m.lastgroup
                if kind == "nos":
                    # A scripting browser ends <noscript> here, whatever the state inside.
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

    def _end_tag(self, name: str) -> bytes:
        if name == "head":
            return self._inject("head")
        if name == "body":
            return self._inject("head") + self._inject("body") + self._inject("end")
        if name == "noscript":
            self._noscript = False
        return b""

    def _after_start_tag(self, name: str) -> bytes:
        """Effects of a start tag that follow it: the body_start injection, text states."""
        if name in ("html", "head"):
            self._seen_doc = True
        elif name == "body":
            self._seen_doc = True
            return self._inject("body")
        elif name == "noscript":
            self._noscript = True
        elif name == "script":
            self._state, self._sub = _SCRIPT, 0
        elif name in _RAW_TEXT:
            self._state, self._raw_end = _RAW, _RAW_END[name]
        elif name == "plaintext":
            self._state = _PLAINTEXT
        return b""

    def _oversized(self, buf: bytes, m: re.Match[bytes]) -> tuple[bytes, int]:
        """A tag longer than max_tag: pass it through, following its attribute states.

        A tag that might load a partner cannot be checked, so it is made inert (fail closed):
        a script gets ``type="text/plain"`` first (the first duplicate attribute wins), any other
        URL tag is renamed to an unknown element ``<consent-blocked-NAME``.
        """
        lt = m.start()
        self._state, self._after = _INTAG, None
        kind = m.lastgroup
        if kind == "name" and not m.group("slash"):
            name = m.group("name").lower().decode("ascii")
            name_end = m.end("name")
            self._sub = _T_BEFORE
            head = b""
            if name == "body":
                head = self._inject("head")
            if name == "script":
                self._after = "script"
                head += buf[lt:name_end] + b' type="text/plain" data-consent-oversized=""'
            elif name in _URL_ATTRS:
                head += b"<consent-blocked-" + buf[lt + 1 : name_end]
            else:
                self._after = name
                head += buf[lt:name_end]
            pos, self._sub, ended = _tag_tail(buf, name_end, self._sub)
            if ended:  # cannot happen when _TAG_RE and _tag_tail agree; stay consistent anyway
                self._state, after, self._after = _DATA, self._after, None
                tail = self._after_start_tag(after) if after else b""
                return head + buf[name_end:pos] + tail, pos
            return head + buf[name_end:], len(buf)
        head = b""
        if kind == "name":
            head = self._end_tag(m.group("name").lower().decode("ascii"))
        start = lt + (2 if buf.startswith(b"</", lt) else 1)
        pos, self._sub, ended = _tag_tail(buf, start, _T_NAME)
        if ended:
            self._state = _DATA
        return head + buf[lt:pos], pos

    # --- tags of interest ---------------------------------------------------------------------

    def _start_tag(self, buf: bytes, name: str, name_end: int, end: int, lt: int,
                   flushed: int, out: list[bytes]) -> tuple[int, int]:
        """Handle the start tag buf[lt:end]; returns (flushed, pos)."""
        urls = _URL_ATTRS.get(name)
        if urls is None:
            if name == "body":
                head = self._inject("head")
                if head:
                    out.append(buf[flushed:lt])
                    out.append(head)
                    flushed = lt
            after = self._after_start_tag(name)
            if after:
                out.append(buf[flushed:end])
                out.append(after)
                flushed = end
            return flushed, end
        edits = self._url_tag(buf, name, urls, name_end, end)
        if edits is None:  # the element is replaced by a placeholder
            out.append(buf[flushed:lt])
            out.append(self._replacement)
            if name == "iframe":
                self._state, self._raw_end = _DROP, _DROP_RE
            return end, end
        if edits:
            out.append(buf[flushed:lt])
            cur = lt
            for a, b, data in sorted(edits, key=lambda e: (e[0], e[1])):
                out.append(buf[cur:a])
                out.append(data)
                cur = b
            out.append(buf[cur:end])
            flushed = end
        self._after_start_tag(name)
        return flushed, end

    _replacement = b""

    def _url_tag(self, buf: bytes, name: str, url_names: tuple[str, ...], name_end: int,
                 end: int) -> list[tuple[int, int, bytes]] | None:
        """Edits for a URL-carrying start tag, or None when it is replaced (self._replacement)."""
        # Fast path: no absolute URL (not even "/<tab>/host"), no character reference, no
        # opt-in marker.
        if _MAYBE_URL_RE.search(buf, name_end, end - 1) is None:
            return []
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
        matcher = plan.matcher
        allowed = plan.allowed_partners
        hosts = self._hosts

        def partners_of(attr_name: str, value: str) -> list[str | None]:
            found: list[str | None] = []
            for url in _srcset_urls(value) if attr_name in _SRCSET_ATTRS else (value,):
                try:
                    host, pid = hosts[url]
                except KeyError:
                    host = matcher.host_of_url(url)
                    pid = None if host is None else matcher.partner_for_host(host)
                    if len(hosts) >= _URL_MEMO:
                        hosts.clear()
                    hosts[url] = host, pid
                if host is None:
                    continue
                if pid is None:
                    self.unknown_hosts.add(host)
                found.append(pid)
            return found

        if name == "link":
            rel = first.get("rel")
            tokens = set(rel.value().lower().split()) if rel is not None else set()
            if not tokens - _LINK_NO_FETCH:
                return []

        # Hard-coded URLs of partners the visitor did not allow.
        enabled: set[str] = set()
        blocked: list[str] = []
        moved: list[_Attr] = []
        for at in attrs:
            if at.name not in url_names:
                continue
            hit = False
            for pid in partners_of(at.name, at.value()):
                if pid is None:
                    continue
                if pid in allowed:
                    enabled.add(pid)
                else:
                    hit = True
                    if pid not in blocked:
                        blocked.append(pid)
            if hit:
                moved.append(at)
        if name == "iframe" and "srcdoc" in first:
            for pid in sorted(matcher.partners_in_text(first["srcdoc"].value())):
                if pid in allowed:
                    enabled.add(pid)
                elif pid not in blocked:
                    blocked.append(pid)
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
                    pids.update(partners_of(at.name[13:], at.value()))
                pids.discard(None)
                granted = bool(purposes) and purposes <= plan.granted_purposes
                if granted and pids <= allowed and not blocked:
                    enabled.update(p for p in pids if p is not None)
                    edits = self._activate(attrs, first, optin, inert_script)
        if blocked and name in ("iframe", "embed"):
            attr_map = {k: v.value() for k, v in first.items()}
            self._replacement = plan.placeholder(blocked[0], attr_map)
            return None
        self._enabled.update(enabled)
        if not blocked:
            return edits
        # Neutralise: move the URL attributes aside, say whose they are.
        if name == "script":
            moved = [at for at in attrs if at.name in ("src", "type")]
            insert = b' type="text/plain"' + _attr_html("data-consent-partner", " ".join(blocked))
        else:
            insert = _attr_html("data-consent-partner", " ".join(blocked))
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

