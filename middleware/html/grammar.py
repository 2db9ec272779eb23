"""The HTML grammar the rewriter scans with: tag names that matter, the tokenizer's attribute
grammar, the skip regex (and the name lists its C version must share), the end of each text
state with its guards, the attribute states past ``max_tag``, and the tree builder's sets for
foreign content.

References: https://html.spec.whatwg.org/multipage/parsing.html
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

_WS = rb"\t\n\f\r "
# Tags whose URL attributes may load something from a partner.
_URL_ATTRS: dict[str, tuple[str, ...]] = {
    "script": ("src",),
    "iframe": ("src",),
    "frame": ("src",),
    "img": ("src", "srcset"),
    "image": ("src", "srcset"),  # the tree builder turns <image> into <img>
    "link": ("href", "imagesrcset"),
    "embed": ("src",),
    "object": ("data", "codebase"),
    "source": ("src", "srcset"),
    "video": ("src", "poster"),
    "audio": ("src",),
    "track": ("src",),
    "input": ("src",),  # type=image (any type: fail closed)
    "base": ("href",),
    "html": ("manifest",),
    "meta": (),  # http-equiv=refresh: see fetch.refresh_url
}
_SRCSET_ATTRS = frozenset({"srcset", "imagesrcset"})
# Tags whose URL attribute may hold a whole document as a data: URL.
_DOC_TAGS = frozenset({"iframe", "frame", "object", "embed"})
# Elements whose content the tokenizer reads as raw text (or RCDATA) up to their end tag.
_RAW_TEXT = frozenset({"style", "xmp", "iframe", "noembed", "noframes", "textarea", "title"})
# Start tags after which the tokenizer leaves the data state (in HTML content).
_SWITCHERS = _RAW_TEXT | {"script", "noscript", "plaintext"}
#: Start tags with an effect on what follows them (a text state, foreign content, a guard,
#: an injection). ``select``: until its end tag, raw-text elements are read both ways (the
#: 2025 select parsing keeps a <style> in it, the earlier tree builder ignores that tag).
_STRUCTURAL = ("noscript", "head", "body", "html", "plaintext", "svg", "math", "select",
               *sorted(_RAW_TEXT - {"iframe"}))


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
_PLAIN_URL_TAGS = ("img", "link", "source", "embed", "object", "video", "audio", "base",
                   "input", "track", "image", "frame", "meta")
# End tags that matter: injections and the end of <noscript>.
_END_NAMES = ("body", "head", "noscript")
# Attributes that can fetch on any element: checked wherever they appear (the skip passes a
# tag only when their values are quiet).
_FETCH_ATTRS = ("attributionsrc", "background", "ping", "style")


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


def _quiet_css(stop: bytes) -> bytes:
    """A style value's bytes where no CSS function (``url(``, ``image-set(``) can hide: no
    ``(``, no CSS escape ``\\``, no character reference ``&``."""
    return rb"[^" + stop + rb"(\\&]*+"


def _quiet_attr(name: bytes, value: Callable[[bytes], bytes]) -> bytes:
    """An attribute named ``name`` (a literal) whose value, if any, is ``value(stop)``."""
    return (
        name + rb"(?>[" + _WS + rb"]*+=[" + _WS + rb"]*+"
        rb"(?:\"" + value(b'"') + rb"\"|'" + value(b"'") + rb"'"
        rb"|(?![\"'])" + value(_WS + b">") + rb"(?=[" + _WS + rb">]))"
        rb"|(?![" + _WS + rb"]*+=))"
    )


_FETCH_NAME = rb"(?:" + b"|".join(n.encode() for n in _FETCH_ATTRS) + rb")[" + _WS + rb"/>=]"
# Any other start tag: the exact grammar, except that the attributes that can fetch on any
# element must have quiet values (else Python looks at the tag).
_GRAM_ATTR_SKIP = (
    rb"(?:(?=(?:attributionsrc|background|ping)[" + _WS + rb"/>=])"
    + _quiet_attr(rb"[a-z]++", _quiet)
    + rb"|(?=style[" + _WS + rb"/>=])" + _quiet_attr(rb"style", _quiet_css)
    + rb"|(?!" + _FETCH_NAME + rb")" + _GRAM_ATTR + rb")"
)
_GRAM_BODY_SKIP = rb"(?:[" + _WS + rb"/]*+" + _GRAM_ATTR_SKIP + rb")*+[" + _WS + rb"/]*+>"

# Run on a lowercased copy of the buffer: skips text and every tag that cannot matter inside
# the C regex engine, and stops at the '<' of anything Python must look at (comments, bogus
# comments, tags of interest, a tag cut off by the end of the buffer, a bare '<' at the end).
_SKIP_RE = re.compile(
    rb"(?:[^<]++"
    rb"|<(?!" + _alternation(_NAME_SET) + rb"[" + _WS + rb"/>])[a-z][^" + _WS + rb"/>]*+"
    + _GRAM_BODY_SKIP +
    rb"|</(?!" + _alternation(_END_NAMES) + rb"[" + _WS + rb"/>])[a-z][^" + _WS + rb"/>]*+"
    + _GRAM_BODY +
    rb"|<" + _alternation(_PLAIN_URL_TAGS) + rb"(?=[" + _WS + rb"/>])" + _QUIET_BODY +
    rb"|<(?=[^!/?a-z]|/>)"  # text: '<' not starting a tag ("</>" is dropped: kept as is)
    rb")*+"
)
# Start tags that leave foreign content for HTML (and <font> with color, face or size).
_BREAKOUT = frozenset({
    "b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em",
    "embed", "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "i", "img", "li", "listing", "menu",
    "meta", "nobr", "ol", "p", "pre", "ruby", "s", "small", "span", "strong", "strike", "sub",
    "sup", "table", "tt", "u", "ul", "var",
})
# A whole inline SVG that cannot fetch and leaves foreign content where it began (icons):
# two levels of elements named neither a breakout tag nor anything with an effect, quoted quiet
# attribute values, text, nothing else. Run on the lowercased copy at a '<svg' the skip
# stopped at; any other spelling fails and the tag-by-tag path takes it.
_SVG_SPECIAL = ("a", "annotation-xml", "desc", "font", "foreignobject", "iframe", "math",
                "noembed", "noframes", "noscript", "plaintext", "script", "style", "svg",
                "textarea", "title", "xmp")
_QUOTED_QUIET = (
    # xmlns="http://www.w3.org/2000/svg" names a namespace: it fetches nothing.
    rb"(?:[" + _WS + rb"]++(?:xmlns(?::[a-z]++)?+[" + _WS + rb"]*+=[" + _WS + rb"]*+"
    rb"(?:\"[^\"]*+\"|'[^']*+')(?=[" + _WS + rb"/>])"
    rb"|(?:[^" + _WS + rb"/>=d]|d(?!ata-consent[" + _WS + rb"/>=]))"
    rb"[^" + _WS + rb"/>=]*+(?:[" + _WS + rb"]*+=[" + _WS + rb"]*+"
    rb"(?:\"" + _quiet(b'"') + rb"\"|'" + _quiet(b"'") + rb"'))?+))*+[" + _WS + rb"]*+"
)
_SVG_NAME = (rb"(?!" + _alternation(sorted({*_SVG_SPECIAL, *_BREAKOUT})) + rb"[" + _WS
             + rb"/>])[a-z][^" + _WS + rb"/>]*+")
_SVG_LEAF = rb"<" + _SVG_NAME + _QUOTED_QUIET + rb"/>"
_SVG_FLAT_RE = re.compile(
    rb"<svg" + _QUOTED_QUIET + rb">(?:[^<]++|" + _SVG_LEAF + rb"|<(?P<n>" + _SVG_NAME + rb")"
    + _QUOTED_QUIET + rb">(?:[^<]++|" + _SVG_LEAF + rb")*+</(?P=n)[" + _WS + rb"]*+>)*+"
    rb"</svg[" + _WS + rb"]*+>"
)
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
# A tag body that may hold an absolute URL, a CSS function or opt-in markup (else nothing to do).
_MAYBE_URL_RE = re.compile(rb"[:\\&(]|/[\t\n\r]*+/|(?i:data-consent)")
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

# The end of each text state, as a regex body; a state also ends at a pending guard (below).
_RAW_END = {n: rb"</(?i:" + n.encode() + rb")[" + _WS + rb"/>]" for n in _RAW_TEXT}
_CDATA_END = rb"\]\]>"  # a guard: the end of a CDATA section
_NEVER = rb"(?!)"
_SCRIPT_END = (
    rb"(?P<esc><!--)|</(?i:script)[" + _WS + rb"/>]",
    rb"(?P<dd>-->)|</(?i:script)[" + _WS + rb"/>]|(?P<dbl><(?i:script)[" + _WS + rb"/>])",
    rb"(?P<dd>-->)|(?P<undbl></(?i:script)[" + _WS + rb"/>])",
)
_DROP_END = rb"</(?i:iframe)[" + _WS + rb"/>]"
_STYLE_END_RE = re.compile(_RAW_END["style"])
_SCRIPT_END_RE = re.compile(rb"</(?i:script)[" + _WS + rb"/>]")
_IMPORT_RE = re.compile(rb"@(?i:import)")
_PATTERNS: dict[tuple[bytes, tuple[str, ...]], re.Pattern[bytes]] = {}


def _state_re(body: bytes, guards: tuple[str, ...]) -> re.Pattern[bytes]:
    """The end of a state, or of any guard: ``</name`` of an element whose content one reading
    of the document takes for raw text (a scripting browser's ``<noscript>``; a raw-text tag
    whose namespace is in doubt), so that no comment or raw text read here can hide what that
    reading sees as live markup after it."""
    key = (body, guards)
    pat = _PATTERNS.get(key)
    if pat is None:
        alts = body
        tags = sorted({g.encode() for g in guards if g != "]]>"})
        ends = [rb"</(?i:" + b"|".join(tags) + rb")[" + _WS + rb"/>]"] if tags else []
        if "]]>" in guards:
            ends.append(_CDATA_END)
        if ends:
            alts += rb"|(?P<nos>" + b"|".join(ends) + rb")"
        pat = re.compile(alts)
        if len(_PATTERNS) < 512:
            _PATTERNS[key] = pat
    return pat


# The tree builder's view of foreign content (namespaces: "h" HTML, "s" SVG, "m" MathML).
_VOID = frozenset({
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "frame", "hr", "image", "img",
    "input", "keygen", "link", "meta", "param", "source", "track", "wbr",
})
# Kinds of stack entries: plain, HTML integration point, MathML text integration point,
# annotation-xml that is not an integration point (an <svg> start tag in it is HTML).
_PLAIN, _HTML_IP, _TEXT_IP, _ANNOTATION = range(4)
_SVG_HTML_IP = frozenset({"foreignobject", "desc", "title"})
_MATHML_TEXT_IP = frozenset({"mi", "mo", "mn", "ms", "mtext"})
_CAREFUL_RE = re.compile(
    rb"<(?:"
    rb"(?P<cmt>!--)"
    rb"|(?P<cdata>!\[CDATA\[)"
    rb"|(?P<short>!(?:-|\[(?:C(?:D(?:A(?:T(?:A)?)?)?)?)?)?\Z|/?\Z)"
    rb"|(?P<bogus>[!?]|/(?=[^A-Za-z>]))"
    rb"|(?P<empty>/>)"
    rb"|(?P<tag>/?[A-Za-z])"
    rb")"
)

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


