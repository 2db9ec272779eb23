"""How the URLs a document fetches are spelled outside a plain ``src``: CSS, meta refresh,
``srcset``, ``data:`` documents. Each reader is over-inclusive: it returns every string a
browser might fetch, so that a partner's URL cannot hide from the host table (fail closed).

References: https://drafts.csswg.org/css-syntax-3/#consume-escaped-code-point,
https://html.spec.whatwg.org/multipage/semantics.html#shared-declarative-refresh-steps,
https://fetch.spec.whatwg.org/#data-urls,
https://html.spec.whatwg.org/multipage/browsing-the-web.html#evaluate-a-javascript:-url,
https://wicg.github.io/nav-speculation/speculation-rules.html
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from urllib.parse import unquote_to_bytes

__all__ = [
    "UNREADABLE",
    "css_urls",
    "data_document",
    "import_map_urls",
    "javascript_document",
    "refresh_url",
    "speculation_rules_local",
    "srcset_urls",
]

#: Partner id for a URL (or document) that cannot be read: it is blocked like a partner's.
UNREADABLE = "unreadable"

_CSS_ESCAPE = re.compile(r"\\(?:([0-9A-Fa-f]{1,6})[ \t\n\r\f]?|(\r\n|[\n\r\f])|(.))", re.S)
_CSS_COMMENT = re.compile(r"/\*.*?(?:\*/|\Z)", re.S)
_CSS_URL = re.compile(r"url\(\s*(?:\"([^\"]*)|'([^']*)|([^)\s]*))", re.I)
# Strings that are URLs without url(): "@import '…'" and the candidates of image-set().
_CSS_IMPORT = re.compile(r"@import\s*(?:\"([^\"]*)|'([^']*))", re.I)
_CSS_IMAGE_SET = re.compile(r"image-set\(([^)]*)", re.I)
# A string and its closing quote (else the closing quote would open the next "string" and hide
# a second URL in the other quote: image-set("a.png" 1x, '//partner/b.png' 2x)).
_CSS_STRING = re.compile(r"\"([^\"]*)\"?|'([^']*)'?")


def _css_char(m: re.Match[str]) -> str:
    hexa, newline, other = m.groups()
    if newline is not None:
        return ""  # an escaped newline continues the line
    if other is not None:
        return other
    code = int(hexa, 16)
    return "\ufffd" if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF else chr(code)


def css_decode(text: str) -> str:
    """CSS text with its escapes decoded (``u\\72l(`` is ``url(``)."""
    return _CSS_ESCAPE.sub(_css_char, text) if "\\" in text else text


def css_urls(text: str) -> list[str]:
    """Every string of a style sheet or ``style`` attribute that may be fetched: the argument
    of each ``url(``, of ``@import "…"`` and the strings of ``image-set(…)``, read with and
    without escapes and comments."""
    decoded = css_decode(text)
    found: list[str] = []
    for variant in {text, decoded, _CSS_COMMENT.sub("", decoded)}:
        for m in _CSS_URL.finditer(variant):
            found.append(next(g for g in m.groups() if g is not None))
        for m in _CSS_IMPORT.finditer(variant):
            found.append(next(g for g in m.groups() if g is not None))
        for m in _CSS_IMAGE_SET.finditer(variant):
            for q in _CSS_STRING.finditer(m.group(1)):
                found.append(next(g for g in q.groups() if g is not None))
    return found


def refresh_url(content: str) -> str:
    """The URL of a ``<meta http-equiv=refresh content=…>`` value ("" when it has none)."""
    s = content.lstrip(" \t\n\f\r")
    s = s.lstrip("0123456789.").lstrip(" \t\n\f\r")
    if s[:1] in (";", ","):
        s = s[1:].lstrip(" \t\n\f\r")
    if s[:3].lower() == "url":
        rest = s[3:].lstrip(" \t\n\f\r")
        if rest.startswith("="):
            s = rest[1:].lstrip(" \t\n\f\r")
    if s[:1] in ("'", '"'):
        s = s[1:].split(s[0], 1)[0]
    return s.strip()


def srcset_urls(value: str) -> list[str]:
    """Every candidate URL of a srcset, over-inclusive: each whitespace token, and each
    comma-separated piece of it."""
    urls: list[str] = []
    for token in value.split():
        urls.append(token.strip(","))
        if "," in token:
            urls.extend(p for p in token.split(",") if p)
    return urls


def data_document(url: str) -> bytes | None:
    """The bytes of a ``data:`` URL; None when it cannot be decoded (treated as a partner's).

    The caller has removed leading spaces, tabs and newlines; ``url`` starts with ``data:``.
    """
    body = url[5:]
    comma = body.find(",")
    if comma < 0:
        return None
    meta, payload = body[:comma], body[comma + 1 :]
    raw = unquote_to_bytes(payload)
    if meta.replace(" ", "").lower().endswith(";base64"):
        try:
            return base64.b64decode(b"".join(raw.split()), validate=True)
        except (binascii.Error, ValueError):
            # A browser's forgiving-base64 also accepts missing padding.
            try:
                squeezed = b"".join(raw.split()).rstrip(b"=")
                return base64.b64decode(squeezed + b"=" * (-len(squeezed) % 4), validate=True)
            except (binascii.Error, ValueError):
                return None
    return raw


def javascript_document(url: str) -> bytes:
    """The script of a ``javascript:`` URL, percent-decoded as the browser runs it. In a frame
    the string it returns becomes the frame's document (``javascript:'<img src=…>'``), so the
    caller reads this text as a nested document: its tags, and every partner host written in
    it (a host the script builds is for the CSP, as in any inline script).

    The caller has removed leading spaces, tabs and newlines; ``url`` starts with
    ``javascript:`` in any case."""
    return unquote_to_bytes(url[11:])


#: Keys a speculation rule set may hold that cannot widen what it reaches.
_RULE_KEYS = frozenset({"source", "urls", "where", "eagerness", "referrer_policy", "relative_to",
                        "requires", "expects_no_vary_search", "tag", "target_hint"})
_RULE_ACTIONS = frozenset({"prefetch", "prerender", "prefetch_with_subresources"})


def _local_url(value: object) -> bool:
    """A list URL or ``href_matches`` pattern that resolves on the page's own origin: a path
    (no scheme, host, backslash or reference to another base)."""
    if not isinstance(value, str):
        return False
    url = re.sub(r"[\t\n\r]", "", value).strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c"
                                                "\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18"
                                                "\x19\x1a\x1b\x1c\x1d\x1e\x1f ")
    return ":" not in url and "\\" not in url and not url.startswith("//")


def _local_predicate(pred: object) -> bool:
    """A document rule's ``where`` that only matches links on the page's own origin."""
    if not isinstance(pred, dict):
        return False
    if "href_matches" in pred:
        patterns = pred["href_matches"]
        patterns = patterns if isinstance(patterns, list) else [patterns]
        return bool(patterns) and all(_local_url(p) for p in patterns) and set(pred) <= {
            "href_matches", "relative_to"}
    if set(pred) == {"and"} and isinstance(pred["and"], list):
        return any(_local_predicate(p) for p in pred["and"])
    if set(pred) == {"or"} and isinstance(pred["or"], list):
        return bool(pred["or"]) and all(_local_predicate(p) for p in pred["or"])
    return False  # selector_matches, not, anything else: links anywhere


def speculation_rules_local(text: bytes) -> bool:
    """A ``<script type=speculationrules>`` rule set whose prefetches and prerenders can only
    reach the page's own origin: list rules of relative URLs, document rules whose ``where``
    is bounded by relative ``href_matches`` patterns. Anything else (absolute or ``//`` URLs,
    ``selector_matches`` or ``not`` alone, no ``where``, keys we do not know, text that is not
    JSON or may not be the whole script) is not: Chromium 156 prefetched a listed partner URL
    and a partner link matched by ``selector_matches`` with the enforced CSP in place (no CSP
    directive governs a prefetch), with the visitor's IP and the page as Referer."""
    if b"<!--" in text or not text.isascii():
        # script data escapes: the script may not end at the first </script; not ASCII: the
        # browser's encoding may read it otherwise (import_map_urls)
        return False
    try:
        data = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # (deep nesting: not ours to read)
        return False
    if not isinstance(data, dict) or not set(data) <= _RULE_ACTIONS | {"tag"}:
        return False
    for action, rules in data.items():
        if action == "tag":
            continue
        if not isinstance(rules, list):
            return False
        for rule in rules:
            if not isinstance(rule, dict) or not set(rule) <= _RULE_KEYS:
                return False
            if "urls" in rule:
                if "where" in rule or not isinstance(rule["urls"], list) or not all(
                        _local_url(u) for u in rule["urls"]):
                    return False
            elif not _local_predicate(rule.get("where")):
                return False
    return True


def import_map_urls(text: bytes) -> list[str] | None:
    """Every string value of a ``<script type=importmap>``'s JSON (its ``imports`` and
    ``scopes`` targets, over-inclusively any value at any depth): each may be a module URL the
    page's ``import`` statements fetch. Chromium 156 fetched a partner URL mapped this way
    through the gate with the CSP off or report-only (tests/browser/test_redteam_round4.py):
    the map is markup, but the fetch comes from a module script, which the rewriter never
    reads. [] when the text is not JSON (Chromium registers no map then: nothing to fetch);
    None when it cannot be read (not UTF-8, nested past Python's reach, or script data escapes
    that may end the script elsewhere): the caller fails closed."""
    if b"<!--" in text or not text.isascii():
        # (not ASCII: read as UTF-8 here, but the browser decodes it in the page's encoding,
        # and in Shift_JIS, Big5 or GBK a byte >= 0x80 takes the next '\\' as its trail byte:
        # "\xc3\x83\\" ends a JSON string there that UTF-8 reads as escaping its quote)
        return None
    try:
        data = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError:
        return None
    except RecursionError:
        return None
    except ValueError:
        return []
    urls: list[str] = []
    todo = [data]
    while todo:
        item = todo.pop()
        if isinstance(item, str):
            urls.append(item)
        elif isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return urls
