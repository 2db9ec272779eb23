"""CssGate: a style sheet the site serves itself (``text/css``), read by the visitor's consent.

A page's ``<link rel=stylesheet href=/own.css>`` loads the site's own sheet, and its
``@import``, ``url()`` and ``image-set()`` fetch what they name. Only an *enforced* CSP stops a
partner named there; with ``[csp] mode = "report-only"`` or ``"off"`` Chromium fetched it
(tests/browser/test_redteam_css.py). The gate reads the sheet as it streams and makes each
fetch that names a refused partner inert, as the rewriter does for a ``<style>``'s text.

How, without a CSS parser's state across chunks: every fetch in CSS sits inside a function or
url token (a literal ``(`` after its name: ``url(``, ``image-set(``, ``src(``) or an at-rule
prelude (a literal ``@``: ``@import "…"``). So every ``(`` and every ``@`` is a candidate, and
its *window* (the text to the ``)`` that closes it, or to the ``;``/``{`` that ends the
prelude, read with CSS strings, comments, escapes and nested blocks) is judged by the
over-inclusive readers of html/fetch.py plus a search for every declared host. A window that
names a refused partner (or cannot be read) is respelled where no escape can reach:
``-consent-blocked`` before the ``(`` (``url-consent-blocked(…)``: an unknown function, so its
declaration is dropped and nothing is fetched) or ``-consent-blocked-`` after the ``@``
(``@-consent-blocked-import``: an unknown at-rule, ignored). A window that names only allowed
partners is kept and reported (``take_enabled``: the responder records it before the bytes
leave). Candidates inside comments or strings are judged too: over-inclusive, never a miss.

Chunks: the bytes from the first candidate whose window has not ended are held (at most
``window`` bytes: a window longer than that is judged unreadable, in one body as in chunks,
so the output does not depend on the chunking). A sheet whose encoding is not
ASCII-compatible (a UTF-16 BOM, a UTF-16/UTF-32/ISO-2022-JP label or ``@charset
"ISO-2022-JP"``) cannot be read byte by byte: it is dropped (an empty body). Without a UTF-8
label or BOM the sheet may be read in its page's encoding, which may be double-byte
(Shift_JIS, Big5, GBK: a second byte may be ``\\``, ``[``, ``{`` ...): such a byte after a
non-ASCII byte inside a window makes the window unreadable.

References: https://drafts.csswg.org/css-syntax-3/#tokenization,
https://drafts.csswg.org/css-syntax-3/#input-byte-stream
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from ..hosts import HostMatcher
from ..html.fetch import UNREADABLE, css_decode
from ..html.partners import PartnerLookup
from ..rewrite import RewritePlan

__all__ = ["BLOCKED_AT", "BLOCKED_FUNCTION", "WINDOW", "CssGate"]

#: Inserted before a refused function's ``(`` and after a refused at-rule's ``@``.
BLOCKED_FUNCTION = b"-consent-blocked"
BLOCKED_AT = b"-consent-blocked-"
#: The longest window read (bytes after its candidate); a longer one is unreadable.
WINDOW = 65536

_CANDIDATE = re.compile(rb"[(@]")
#: Bytes that change the scan of a window (outside strings and comments).
_SPECIAL = re.compile(rb"[\\\"'/()\[\]{};]")
#: A window with no byte that changes the scan before its end: read in one match.
_SIMPLE_FUNCTION = re.compile(rb"(?:[^\\\"'/()\[\]{}]|/(?!\*))*+\)")
_SIMPLE_AT = re.compile(rb"(?:[^\\\"'/()\[\]{};]|/(?!\*))*+[;{}]")
_IN_STRING = {0x22: re.compile(rb"[\\\"\n\r\x0c]"), 0x27: re.compile(rb"[\\'\n\r\x0c]")}
#: A double-byte encoding's second byte may be one of these (0x40-0x7E): read after a
#: non-ASCII byte they may not be what they look like.
_AMBIGUOUS = frozenset(b"\\[]{}")
_OPEN = {0x28: 0x29, 0x5B: 0x5D, 0x7B: 0x7D}
_CLOSE = frozenset(b")]}")
_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_STRING = re.compile(r"\"([^\"]*)\"?|'([^']*)'?")
_TOKENS = re.compile(r"[\s,()\"']+")
#: The first bytes of a sheet that are, or may become, a byte order mark.
_BOMS = (b"\xef\xbb\xbf", b"\xfe\xff", b"\xff\xfe")
_CHARSET_RULE = re.compile(rb'@charset "([^"]{0,1014})";')
#: Encodings a byte-level reading cannot follow (their ASCII bytes are not ASCII).
_WIDE = ("utf-16", "utf-32", "ucs-2", "iso-2022-jp", "csiso2022jp", "unicode")
_UTF8 = ("utf-8", "utf8", "unicode-1-1-utf-8", "unicode11utf8", "unicode20utf8", "x-unicode20utf8")

#: What _window_end answers when the window does not end within what it may read.
_PENDING = -1  # the bytes end first (more may come)
_TOO_LONG = -2  # it runs past the bound: unreadable
_AMBIGUOUS_BYTE = -3  # a byte a double-byte encoding may read otherwise: unreadable


def _window_end(buf: bytes, i: int, at_rule: bool, careful: bool, bound: int) -> int:
    """Where the window that starts at ``buf[i]`` (just after its ``(`` or ``@``) ends: the
    index after its closing ``)`` (``at_rule``: its ``;``, ``{`` or ``}``), or one of the
    negative answers. Strings, comments and escapes are read as css-syntax-3 reads them;
    ``(`` ``[`` ``{`` open blocks whose own closer ends them (any other closer in them is
    text, as the spec's component values are)."""
    simple = (_SIMPLE_AT if at_rule else _SIMPLE_FUNCTION).match(buf, i, i + bound)
    if simple is not None:  # (most windows: no string, comment, escape or block in them)
        return simple.end()
    n = len(buf)
    stop = min(n, i + bound)
    # Not ended within what was read: the bytes ended first (more may come) or the bound did.
    short = _PENDING if n < i + bound else _TOO_LONG
    stack: list[int] = []
    j = i
    while True:
        m = _SPECIAL.search(buf, j, stop)
        if m is None:
            return short
        k = m.start()
        b = buf[k]
        if careful and b in _AMBIGUOUS and k > 0 and buf[k - 1] >= 0x80:
            return _AMBIGUOUS_BYTE
        if b == 0x5C:  # an escape: the next byte is text
            j = k + 2
            if j > stop:
                return short
            continue
        if b == 0x22 or b == 0x27:
            end = _string_end(buf, k + 1, b, careful, stop)
            if end < 0:
                return short if end == _PENDING else end
            j = end
            continue
        if b == 0x2F:
            if k + 1 >= stop:
                return short
            if buf[k + 1] == 0x2A:
                close = buf.find(b"*/", k + 2, stop)
                if close < 0:
                    return short
                j = close + 2
            else:
                j = k + 1
            continue
        if stack:
            if b in _OPEN:
                stack.append(_OPEN[b])
            elif b == stack[-1]:
                stack.pop()
            j = k + 1
            continue
        if at_rule:
            if b == 0x3B or b == 0x7B or b == 0x7D:
                return k + 1
        elif b == 0x29:
            return k + 1
        if b in _OPEN:
            stack.append(_OPEN[b])
        j = k + 1


def _string_end(buf: bytes, i: int, quote: int, careful: bool, stop: int) -> int:
    """The index after the string that starts at ``buf[i]`` (its quote just before): its
    closing quote, or the newline that ends it; negative as _window_end answers."""
    find = _IN_STRING[quote].search
    j = i
    while True:
        m = find(buf, j, stop)
        if m is None:
            return _PENDING
        k = m.start()
        b = buf[k]
        if b == 0x5C:
            if careful and k > 0 and buf[k - 1] >= 0x80:
                return _AMBIGUOUS_BYTE
            j = k + 2
            if j > stop:
                return _PENDING
            continue
        return k + 1  # the quote, or a newline (a bad string ends there)


def _label(charset: str | None) -> str:
    return (charset or "").strip("\t\n\x0c\r ").lower()


class CssGate:
    """One style sheet's reader for one plan: ``feed`` chunks, then ``finish`` (the
    HtmlRewriter interface the responder drives: ``take_enabled``, ``snapshot``/``restore``
    for the redo with every partner refused when the ledger fails, ``unknown_hosts``)."""

    def __init__(self, plan: RewritePlan, charset: str | None = None, *,
                 window: int = WINDOW, lenient: bool = False) -> None:
        self.plan = plan
        self.window = window
        #: A binary body (no Content-Type, sniffed as binary): only a window that names a
        #: partner is respelled, not one that is merely unreadable (an image is not broken).
        self.lenient = lenient
        self.unknown_hosts: set[str] = set()
        #: Partners (and UNREADABLE) whose fetches were made inert.
        self.blocked: set[str] = set()
        #: Whether any window named a partner (allowed or refused) or could not be read: the
        #: bytes then depend on the consent (the responder makes the response private).
        self.named = False
        #: Why the whole sheet was dropped (an encoding the reader cannot follow), or None.
        self.dropped: str | None = None
        label = _label(charset)
        self._label = label
        self._careful = label not in _UTF8 and not lenient
        self._lookup = PartnerLookup(plan.matcher)
        self._memo: dict[bytes, frozenset[str]] = {}
        self._buf = b""
        self._offset = 0  # the sheet's position of _buf[0]
        self._enabled: set[str] = set()
        self._finished = False
        self._hosts_need = _hosts_need(plan.matcher)
        if label.startswith(_WIDE):
            self._drop(f"a style sheet in {label}")

    # --- the responder's interface --------------------------------------------------------

    def feed(self, chunk: bytes) -> bytes:
        """The bytes of ``chunk`` (and any held before) that are final and may be sent now."""
        if self.dropped is not None:
            return b""
        self._buf += chunk
        return self._run(final=False)

    def finish(self) -> bytes:
        """The rest."""
        self._finished = True
        if self.dropped is not None:
            return b""
        return self._run(final=True)

    def take_enabled(self) -> frozenset[str]:
        """Allowed partners named by the bytes returned since the last call."""
        enabled = frozenset(self._enabled)
        self._enabled.clear()
        return enabled

    def snapshot(self) -> tuple[Any, ...]:
        return (self._buf, self._offset, self._careful, set(self.blocked), self.named,
                self.dropped, set(self._enabled), set(self.unknown_hosts), self._finished)

    def restore(self, snapshot: tuple[Any, ...], plan: RewritePlan | None = None) -> None:
        (self._buf, self._offset, self._careful, blocked, self.named, self.dropped, enabled,
         unknown, self._finished) = snapshot
        self.blocked, self._enabled, self.unknown_hosts = set(blocked), set(enabled), set(unknown)
        if plan is not None:
            self.plan = plan
            self._lookup = PartnerLookup(plan.matcher)
            self._memo = {}
            self._hosts_need = _hosts_need(plan.matcher)

    # --- the reading -----------------------------------------------------------------------

    def _drop(self, why: str) -> None:
        self.dropped = why
        self.named = True
        self.blocked.add(UNREADABLE)
        self._buf = b""

    def _run(self, *, final: bool) -> bytes:
        buf = self._buf
        if self._offset == 0 and not self.lenient:  # (a binary body has no BOM or @charset)
            if not final and any(b.startswith(buf) for b in _BOMS) and len(buf) < 3:
                return b""  # (a BOM cut by the chunk: wait for its bytes)
            if buf[:2] in (b"\xfe\xff", b"\xff\xfe"):
                self._drop("a style sheet with a UTF-16 byte order mark")
                return b""
            if buf[:3] == _BOMS[0]:
                self._careful = False  # the BOM wins: UTF-8
        out: list[bytes] = []
        cur = 0  # buf[:cur] is in out
        pos = 0
        window = self.window
        while True:
            m = _CANDIDATE.search(buf, pos)
            if m is None:
                break
            c = m.start()
            at_rule = buf[c] == 0x40
            end = _window_end(buf, c + 1, at_rule, self._careful, window)
            if end == _PENDING:
                if not final:
                    break  # held from c
                end = len(buf)
            if at_rule and c == 0 and self._offset == 0 and not self._label and not self.lenient:
                rule = _CHARSET_RULE.match(buf, 0, 1024)
                if rule is not None:
                    name = _label(rule.group(1).decode("latin-1"))
                    if name.startswith(("iso-2022-jp", "csiso2022jp")):
                        self._drop(f"a style sheet with @charset {name!r}")
                        return b""
                    if name in _UTF8:
                        self._careful = False
            if end < 0 and not self.lenient:
                named: frozenset[str] = frozenset({UNREADABLE})
            else:
                named = self._named(buf[c + 1:end if end >= 0 else c + 1 + window])
                if self.lenient:
                    named = named - {UNREADABLE}
            if named:
                self.named = True
                refused = named - self.plan.allowed_partners
                if refused or UNREADABLE in named:
                    self.blocked |= refused
                    if at_rule:
                        out.append(buf[cur:c + 1])
                        out.append(BLOCKED_AT)
                        cur = c + 1
                    else:
                        out.append(buf[cur:c])
                        out.append(BLOCKED_FUNCTION)
                        cur = c
                else:
                    self._enabled |= named
            pos = c + 1
        keep = len(buf) if m is None or final else m.start()  # (held from m's candidate)
        out.append(buf[cur:keep])
        self._buf = buf[keep:]
        self._offset += keep
        return b"".join(out)

    def _named(self, text: bytes) -> frozenset[str]:
        """Partners (UNREADABLE for an unreadable host) that a window's text may fetch."""
        need = self._hosts_need
        if need is not None and need.search(text) is None:
            return frozenset()  # no byte a host could be spelled with: nothing to look up
        hit = self._memo.get(text)
        if hit is not None:
            return hit
        raw = text.decode("latin-1")
        decoded = css_decode(raw)
        found: set[str] = set()
        unknown = self.unknown_hosts
        partner = self._lookup.partner
        matcher = self.plan.matcher
        for variant in {raw, decoded, _COMMENT.sub("", decoded)}:
            for s in _STRING.finditer(variant):
                pid = partner(next(g for g in s.groups() if g is not None), unknown)
                if pid is not None:
                    found.add(pid)
            for token in _TOKENS.split(variant):
                if token:
                    pid = partner(token, unknown)
                    if pid is not None:
                        found.add(pid)
            found |= matcher.partners_in_text(variant)
        result = frozenset(found)
        if len(text) <= 512:  # (windows repeat: var(--x), rgba(...); long ones are not kept)
            if len(self._memo) >= 4096:
                self._memo.clear()
            self._memo[text] = result
        return result


@lru_cache(maxsize=64)  # (a pure function of the matcher, which a config keeps for its life)
def _hosts_need(matcher: HostMatcher) -> re.Pattern[bytes] | None:
    """A search that finds what a URL naming a host needs: ``//``, a backslash (a CSS escape,
    or the slash a browser reads in one), a scheme's ``:`` (``https:host`` on an http page
    names that host) or a non-ASCII byte. A window with none of them names no host: a
    relative URL stays on the site (most windows: ``rgba(0,0,0,.5)``, ``url(/i.png)``). None
    (every window read) when some declared host has no dot, for a host read bare."""
    exact, suffixes = matcher.table()
    hosts = [h for h, _ in exact] + [s for s, _ in suffixes]
    if all("." in h for h in hosts):
        return re.compile(rb"//|[:\\\x80-\xff]")
    return None
