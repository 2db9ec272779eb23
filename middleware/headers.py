"""Small header helpers shared by the middleware and its routes (raw ASGI header lists)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any

from .accel import speedups

RawHeaders = Iterable[tuple[bytes, bytes]]


def header_value(headers: RawHeaders, name: bytes) -> bytes | None:
    """The first value of ``name`` (lowercase) or None."""
    for key, value in headers:
        if key == name:
            return value
    return None


def client_key(scope: Mapping[str, object], trust_proxy: bool) -> str:
    """Whom a rate limit charges: the client's IPv4 address or IPv6 /64 (the first
    ``X-Forwarded-For`` address with ``trust_proxy``; what an attacker rotates cheaply
    within a /64 counts once)."""
    client = scope.get("client")
    ip = str(client[0]) if isinstance(client, tuple | list) and client else ""
    if trust_proxy:
        headers = scope.get("headers", ())
        forwarded = header_value(headers, b"x-forwarded-for") if isinstance(headers, Iterable) else None
        if forwarded:
            ip = forwarded.decode("latin-1").split(",")[0].strip() or ip
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def cookie_value(headers: RawHeaders, name: str) -> str | None:
    """The value of cookie ``name`` from the Cookie header(s); None when absent or unparsable."""
    prefix = name.encode("latin-1") + b"="
    for key, value in headers:
        if key != b"cookie" or prefix not in value:
            continue
        # Fast path without SimpleCookie: split on ';' like browsers send it.
        for part in value.split(b";"):
            part = part.strip()
            if part.startswith(prefix):
                raw = part[len(prefix):]
                try:
                    text = raw.decode("ascii")
                except UnicodeDecodeError:
                    return None
                if len(text) >= 2 and text[0] == text[-1] == '"':
                    try:
                        parsed: SimpleCookie = SimpleCookie()
                        parsed.load(f"{name}={text}")
                        return parsed[name].value
                    except (CookieError, KeyError):
                        return None
                return text
    return None


def merge_vary(existing: str | None, names: Iterable[str]) -> str:
    """``existing`` plus ``names``, case-insensitively deduplicated; ``*`` absorbs everything."""
    items = [v.strip() for v in (existing or "").split(",") if v.strip()]
    if "*" in items:
        return "*"
    seen = {v.lower() for v in items}
    for name in names:
        if name.lower() not in seen:
            items.append(name)
            seen.add(name.lower())
    # "," with no space: the same list (RFC 9110 §5.6.1: optional whitespace around each
    # comma), a cheaper value for h11 to check (~600 instructions per space).
    return ",".join(items)


def private_cache_control(existing: str | None) -> str:
    """Make a consent-dependent response unfit for shared caches, keeping stricter app choices."""
    directives = [d.strip() for d in (existing or "").split(",") if d.strip()]
    lowered = [d.lower() for d in directives]
    if "no-store" in lowered or "private" in lowered:
        return ", ".join(directives)
    kept = [d for d in directives
            if d.lower() != "public" and not d.lower().startswith("s-maxage")]
    return ", ".join(["private", *kept])


#: An entry's target, and (in its parameters) every piece that could be a URL.
_LINK_TARGET = re.compile(r"\s*<([^>]*)>")
_LINK_PIECES = re.compile(r"[\s,;=\"']+")


def _link_entries(value: str) -> list[str]:
    """The comma-separated entries of a ``Link`` value: commas inside ``<...>`` or a quoted
    string do not separate (an unclosed quote runs to the end)."""
    entries: list[str] = []
    start = i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if c == "<":
            close = value.find(">", i)
            i = n if close < 0 else close + 1
            continue
        if c == '"':
            i += 1
            while i < n and value[i] != '"':
                i += 2 if value[i] == "\\" else 1
        elif c == ",":
            entries.append(value[start:i])
            start = i + 1
        i += 1
    entries.append(value[start:])
    return entries


def gated_link(value: str, blocked: Callable[[str], bool]) -> str | None:
    """A ``Link`` header value without the entries that name a partner the visitor has not
    consented to, in the target or in a parameter (preload, preconnect and prefetch act
    before any HTML is parsed, preconnect is governed by no CSP directive, and Chromium
    preloads an ``imagesrcset`` parameter). None when nothing is left. An entry we cannot
    parse is dropped (fail closed)."""
    kept: list[str] = []
    for entry in _link_entries(value):
        m = _LINK_TARGET.match(entry)
        if m is None or blocked(m.group(1)):
            continue
        if any(blocked(piece) for piece in _LINK_PIECES.split(entry[m.end():]) if piece):
            continue
        kept.append(entry.strip())
    return ", ".join(kept) if kept else None


def _names_blocked(text: str, blocked: Callable[[str], bool]) -> bool:
    return any(blocked(piece) for piece in _URL_PIECES.split(text) if piece)


#: Pieces of a header value that could be a URL (JSON and structured fields included).
_URL_PIECES = re.compile(r"[\s,;=\"'{}\[\]<>]+")


def gated_members(value: str, blocked: Callable[[str], bool]) -> str | None:
    """A comma-separated header value (``Speculation-Rules`` URLs, ``Reporting-Endpoints``
    members) without the members that name a partner; None when nothing is left."""
    kept = [m.strip() for m in _link_entries(value) if m.strip() and not _names_blocked(m, blocked)]
    return ", ".join(kept) if kept else None


def gated_report_to(value: str, blocked: Callable[[str], bool]) -> str | None:
    """A ``Report-To`` value (JSON groups) unless any URL in it names a partner."""
    return None if _names_blocked(value, blocked) else value


def gated_csp(value: str, blocked: Callable[[str], bool]) -> str:
    """A site's CSP without the ``report-uri`` targets that name a partner: the browser sends
    the page's violation reports there, whatever our own policy allows. Nothing else of the
    site's policy changes (enforcement never loosens)."""
    if "report-uri" not in value.lower():
        return value
    policies = []
    removed = False
    for policy in value.split(","):
        directives = []
        for directive in policy.split(";"):
            tokens = directive.split()
            if tokens and tokens[0].lower() == "report-uri":
                kept = [t for t in tokens[1:] if not blocked(t)]
                if len(kept) < len(tokens) - 1:
                    removed = True
                    if not kept:
                        continue
                    directive = " ".join(["report-uri", *kept])
            directives.append(directive.strip())
        policies.append("; ".join(d for d in directives if d))
    return ", ".join(policies) if removed else value


#: Response headers that make a browser contact a URL before (or besides) the HTML: the
#: gate drops the parts of them that name a partner.
FETCHING_HEADERS = frozenset({b"link", b"refresh", b"speculation-rules", b"reporting-endpoints",
                              b"report-to", b"content-security-policy",
                              b"content-security-policy-report-only"})


#: The names GatedHeaders.edit acts on, each with what it does (one dict lookup per header).
_VARY, _CACHE_CONTROL, _VALIDATOR, _LENGTH, _FRAME_OPTIONS, _FETCHING = range(6)
_EDITED = {b"vary": _VARY, b"cache-control": _CACHE_CONTROL, b"etag": _VALIDATOR,
           b"last-modified": _VALIDATOR, b"content-length": _LENGTH,
           b"x-frame-options": _FRAME_OPTIONS, **dict.fromkeys(FETCHING_HEADERS, _FETCHING)}

#: Distinct header values remembered per cache below (apps send few distinct ones).
_MAX_REMEMBERED_VALUES = 256


class GatedHeaders:
    """The header edits of a gated response, done on the raw list in one pass.

    Same result, byte for byte and in the same order, as editing the list with starlette's
    ``MutableHeaders``: the first ``vary`` / ``cache-control`` is replaced in place (later
    ones dropped) or the value appended; validators are dropped; ``x-frame-options`` is
    appended when the site sent none; the given headers are appended last. The merged Vary
    and private Cache-Control values are pure functions of the app's value: remembered per
    value (bounded).
    """

    def __init__(self, vary_names: Iterable[str], frame_options: str | None) -> None:
        self.vary_names = tuple(vary_names)
        self.frame_options = frame_options.encode("latin-1") if frame_options else None
        self._vary: dict[bytes | None, bytes] = {
            None: merge_vary(None, self.vary_names).encode("latin-1")}
        self._cache_control: dict[bytes | None, bytes] = {
            None: private_cache_control(None).encode("latin-1")}

    def _merged_vary(self, value: bytes | None) -> bytes:
        out = self._vary.get(value)
        if out is None:
            out = merge_vary(value.decode("latin-1") if value is not None else None,
                             self.vary_names).encode("latin-1")
            if len(self._vary) < _MAX_REMEMBERED_VALUES:
                self._vary[value] = out
        return out

    def _private(self, value: bytes | None) -> bytes:
        out = self._cache_control.get(value)
        if out is None:
            out = private_cache_control(
                value.decode("latin-1") if value is not None else None).encode("latin-1")
            if len(self._cache_control) < _MAX_REMEMBERED_VALUES:
                self._cache_control[value] = out
        return out

    def edit(self, raw: Iterable[tuple[bytes, bytes]], *, private: bool, drop_validators: bool,
             frame_options: bool, append: Iterable[tuple[bytes, bytes]] = (),
             drop_length: bool = False, length: bytes | None = None,
             ) -> tuple[list[tuple[bytes, bytes]], bool]:
        """(the edited list, whether a ``link`` or ``refresh`` header is in it). ``raw``
        must have lower-case names (the responder normalises them first). ``length``: set
        Content-Length last, as ``set_header`` does — unless a fetching header is there (the
        caller edits those first, then sets the length)."""
        out: list[tuple[bytes, bytes]] = []
        vary_at = cc_at = length_at = -1
        has_xfo = fetching = False
        code_of = _EDITED.get
        for item in raw:
            code = code_of(item[0])
            if code is None:  # (most headers: one lookup)
                out.append(item)
                continue
            if code == _VARY:
                if private:
                    if vary_at < 0:
                        vary_at = len(out)
                        out.append((b"vary", self._merged_vary(item[1])))
                    continue
            elif code == _CACHE_CONTROL:
                if private:
                    if cc_at < 0:
                        cc_at = len(out)
                        out.append((b"cache-control", self._private(item[1])))
                    continue
            elif code == _VALIDATOR:
                if drop_validators:
                    continue
            elif code == _LENGTH:
                if drop_length or length is not None:
                    if drop_length or length_at >= 0:
                        continue
                    length_at = len(out)
            elif code == _FRAME_OPTIONS:
                has_xfo = True
            else:  # FETCHING_HEADERS
                fetching = True
            out.append(item)
        if private:
            if vary_at < 0:
                out.append((b"vary", self._vary[None]))
            if cc_at < 0:
                out.append((b"cache-control", self._cache_control[None]))
        if frame_options and self.frame_options is not None and not has_xfo:
            out.append((b"x-frame-options", self.frame_options))
        out.extend(append)
        if length is not None and not fetching:
            if length_at < 0:
                out.append((b"content-length", length))
            else:
                out[length_at] = (b"content-length", length)
        return out, fetching


def set_header(raw: list[tuple[bytes, bytes]], name: bytes, value: bytes) -> None:
    """``raw[name] = value`` as ``MutableHeaders`` does it: the first entry replaced in place,
    later ones removed, appended when absent (``name`` lower-case)."""
    first = -1
    i = 0
    while i < len(raw):
        if raw[i][0] == name:
            if first < 0:
                first = i
            else:
                del raw[i]
                continue
        i += 1
    if first < 0:
        raw.append((name, value))
    else:
        raw[first] = (name, value)


#: The request headers the consent and the plan read (``consent_inputs``), in its order.
CONSENT_INPUT_NAMES = (b"cookie", b"sec-gpc", b"dnt", b"accept-language")
#: (first Cookie value, several Cookie headers, first Sec-GPC, DNT, Accept-Language value).
ConsentInputs = tuple[Any, bool, Any, Any, Any]
#: No such header yet (a header's value may itself be None: see consent_inputs_py).
_ABSENT: Any = object()


def consent_inputs_py(headers: Iterable[tuple[bytes, bytes]]) -> ConsentInputs:
    """What the consent and the plan read of the request headers, in one pass: the first
    value of each of Cookie, Sec-GPC, DNT and Accept-Language (None when absent), and whether
    there are several Cookie headers (HTTP/2 may split them: the caller reads them all).
    The first header's value is the answer whatever it is, as in the C twin: a server that
    hands over ``(b"cookie", None)`` first gets None for the cookie, not the next header's
    value (the hypothesis search of tests/support/sanitized_child.py found the two apart)."""
    cookie = gpc = dnt = language = _ABSENT
    several = False
    for key, value in headers:
        if key == b"cookie":
            if cookie is _ABSENT:
                cookie = value
            else:
                several = True
        elif key == b"sec-gpc":
            if gpc is _ABSENT:
                gpc = value
        elif key == b"dnt":
            if dnt is _ABSENT:
                dnt = value
        elif key == b"accept-language" and language is _ABSENT:
            language = value
    return (None if cookie is _ABSENT else cookie, several, None if gpc is _ABSENT else gpc,
            None if dnt is _ABSENT else dnt, None if language is _ABSENT else language)


#: The C twin of consent_inputs_py (an exact list or tuple of (bytes, value) pairs read with
#: length + memcmp name tests; anything else handed to consent_inputs_py), unless pure Python.
consent_inputs: Callable[[Iterable[tuple[bytes, bytes]]], ConsentInputs] = consent_inputs_py
if speedups is not None:
    speedups.consent_inputs_setup(CONSENT_INPUT_NAMES, consent_inputs_py)
    consent_inputs = speedups.consent_inputs
