"""What a start tag of interest gets, as a value: the byte edits that neutralise a blocked
partner's URLs or activate opt-in markup, or the placeholder that replaces the element, and
the partners it enables or blocks. Pure given the plan (and its host memo)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from .attrs import _C0_SPACE, _TAB_NEWLINE, _Attr, _attr_html, _attr_kind, unescape
from .fetch import UNREADABLE, css_urls, data_document, javascript_document, refresh_url, srcset_urls
from .grammar import _ATTR_RE, _DOC_TAGS, _LINK_NO_FETCH, _URL_ATTRS
from .nested import Rewriter, document_partners
from .partners import PartnerLookup
from .plan import RewritePlan

#: An SMIL values list: URLs apart at ';' (and spaces, over-inclusive).
_SMIL_SPLIT = re.compile(r"[;\s]+")
#: One edit of a tag: replace [start, end) by the bytes (positions relative to the name's end).
Edit = tuple[int, int, bytes]
#: Bounds on the memo of whole tags: entries, and bytes of one tag.
_TAG_MEMO = 512
_TAG_MEMO_LEN = 2048


@dataclass(frozen=True, slots=True)
class TagDecision:
    """What one start tag gets. ``edits`` are relative to the end of the tag's name, so equal
    tag bytes get an equal decision wherever they are."""

    edits: tuple[Edit, ...] = ()
    placeholder: bytes | None = None  # replaces the element (the edits are then empty)
    enabled: frozenset[str] = frozenset()  # partners this tag lets the browser contact
    blocked: frozenset[str] = frozenset()  # partners whose URLs it had (neutralised)
    unknown: frozenset[str] = frozenset()  # third-party hosts it named that match no partner
    #: (partner, attributes) the placeholder was made from, so that a repeat of the same tag
    #: gets a fresh one from them without being judged again.
    placeholder_args: tuple[str, tuple[tuple[str, str], ...]] | None = None


class TagJudge:
    """Decides start tags for one response's plan, remembering whole tags (pages repeat an ad
    slot's script, a pixel, an embed byte for byte)."""

    def __init__(self, plan: RewritePlan, make_nested: Callable[[RewritePlan], Rewriter],
                 lookup: PartnerLookup | None = None) -> None:
        self.plan = plan
        self.lookup = lookup if lookup is not None else PartnerLookup(plan.matcher)
        self._make_nested = make_nested
        # (name, careful, tag bytes after the name) -> its decision; for a placeholder, the
        # decision it was made with (the placeholder is made afresh from its arguments).
        self._tags: dict[tuple[str, bool, bytes], TagDecision] = {}

    def decide(self, buf: bytes, name: str, name_end: int, end: int, careful: bool,
               content: bytes) -> TagDecision:
        """The decision for the start tag buf[..end] whose name ends at ``name_end``.

        ``careful``: the tag may be in foreign content, so SVG/MathML fetching attributes are
        checked too. ``content``: a style element's text (b"" for any other element).
        """
        if content or end - name_end > _TAG_MEMO_LEN:
            return self._judge(buf, name, name_end, end, careful, content)
        key = (name, careful, buf[name_end:end])
        hit = self._tags.get(key)
        if hit is not None:
            if hit.placeholder_args is not None:
                # A placeholder decision has only these fields (dataclasses.replace is ~2 µs).
                pid, attrs = hit.placeholder_args
                return TagDecision(placeholder=self.plan.placeholder(pid, dict(attrs)),
                                   blocked=hit.blocked, unknown=hit.unknown,
                                   placeholder_args=hit.placeholder_args)
            return hit
        decision = self._judge(buf, name, name_end, end, careful, content)
        if len(self._tags) >= _TAG_MEMO:
            self._tags.clear()
        self._tags[key] = decision
        return decision

    def _partners_of(self, tag: str, kind: str, value: str, enabled: set[str],
                     unknown: set[str]) -> list[str | None]:
        """Partner ids (None: no partner) named by an attribute value of the given kind."""
        partner = self.lookup.partner
        if kind == "srcset":
            return [partner(u, unknown) for u in srcset_urls(value)]
        if kind == "list":
            return [partner(u, unknown) for u in value.split()]
        if kind == "css":
            return [partner(u, unknown) for u in css_urls(value)]
        if kind == "values":
            return [partner(u, unknown) for u in (*_SMIL_SPLIT.split(value), *css_urls(value))
                    if u]
        if kind == "refresh":
            found: list[str | None] = [partner(refresh_url(value), unknown)]
            # Sorted: a set's order changes between processes (str hashing), the output must not.
            found.extend(sorted(self.plan.matcher.partners_in_text(value)))
            return found
        if kind == "srcdoc":
            return self._nested(value.encode("utf-8", "surrogateescape"), enabled, unknown)
        if tag in _DOC_TAGS:
            url = _TAB_NEWLINE.sub("", value.lstrip(_C0_SPACE))
            if url[:5].lower() == "data:":
                doc = data_document(url)
                if doc is None:
                    return [UNREADABLE]
                return self._nested(doc, enabled, unknown)
            if url[:11].lower() == "javascript:":
                # The string the script returns is the frame's document: read its text as
                # one (its tags, and any partner host written in it).
                return self._nested(javascript_document(url), enabled, unknown)
        return [partner(value, unknown)]

    def _nested(self, doc: bytes, enabled: set[str], unknown: set[str]) -> list[str | None]:
        inner_enabled, blocked, inner_unknown = document_partners(self._make_nested, self.plan, doc)
        unknown |= inner_unknown
        enabled |= inner_enabled
        # Sorted: a set's order differs per process (str hashing); the output must not.
        found: list[str | None] = [*sorted(blocked)]
        return found

    def _judge(self, buf: bytes, name: str, name_end: int, end: int, careful: bool,
               content: bytes) -> TagDecision:
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
        unknown: set[str] = set()
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
            if judge(self._partners_of(name, kind, at.value(), enabled, unknown)):
                # A refresh renames its http-equiv: once, however many content attributes.
                target = at if kind != "refresh" else first["http-equiv"]
                if not any(m is target for m in moved):
                    moved.append(target)
        if content:
            text = content.decode("utf-8", "surrogateescape")
            judge(self._partners_of(name, "css", text, enabled, unknown))
            if "&" in text:
                judge(self._partners_of(name, "css", unescape(text), enabled, unknown))
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
                                                  at.value(), set(), unknown))
                pids.discard(None)
                granted = bool(purposes) and purposes <= plan.granted_purposes
                if granted and pids <= allowed and not blocked:
                    enabled.update(p for p in pids if p is not None)
                    edits = _activate(attrs, first, optin, inert_script)
        if blocked and name in ("iframe", "embed") and blocked[0] != UNREADABLE:
            attr_map = {k: v.value() for k, v in first.items()}
            return TagDecision(placeholder=plan.placeholder(blocked[0], dict(attr_map)),
                               blocked=frozenset(blocked), unknown=frozenset(unknown),
                               placeholder_args=(blocked[0], tuple(attr_map.items())))
        if blocked:
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
        return TagDecision(tuple((a - name_end, b - name_end, data) for a, b, data in edits),
                           None, frozenset(enabled), frozenset(blocked), frozenset(unknown))


def _activate(attrs: list[_Attr], first: Mapping[str, _Attr], optin: list[_Attr],
              inert_script: bool) -> list[tuple[int, int, bytes]]:
    """Edits that turn opt-in markup live: ``data-consent-src`` -> ``src``, and for an inert
    ``<script type="text/plain">`` its ``data-consent-type`` (or no type)."""
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
