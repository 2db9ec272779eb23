"""The oracle of the html5lib differential tests: what a browser fetches from a partner host,
read from html5lib's trees of a document (tests/test_rewrite_html5lib.py; also asked of the
bodies tests/test_gate_encodings.py rewrites)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import html5lib
from hypothesis import reject

from middleware.hosts import HostMatcher
from middleware.html import fetch

PARTNERS = {
    "ads": ["*.doubleclick.net"],
    "yt": ["www.youtube.com"],
    "fb": ["connect.facebook.net"],
}
MATCHER = HostMatcher(PARTNERS)
HTML_NS = "{http://www.w3.org/1999/xhtml}"
SVG_NS = "{http://www.w3.org/2000/svg}"
MATH_NS = "{http://www.w3.org/1998/Math/MathML}"
XLINK_HREF = "{http://www.w3.org/1999/xlink}href"
PRESENTATION = ("fill", "stroke", "filter", "clip-path", "mask", "marker-start", "marker-mid",
                "marker-end", "cursor")
LINK_NO_FETCH = {"canonical", "alternate", "author", "next", "prev", "nofollow", "noopener"}
URL_ATTRS = {
    "script": ("src",), "img": ("src", "srcset"), "iframe": ("src",), "frame": ("src",),
    "embed": ("src",), "object": ("data", "codebase"), "source": ("src", "srcset"),
    "video": ("src", "poster"), "audio": ("src",), "track": ("src",), "input": ("src",),
    "link": ("href", "imagesrcset"), "base": ("href",), "html": ("manifest",),
}


def _partner(url: str) -> str | None:
    return MATCHER.partner_for_url(url)


def document_fetches(doc: str) -> Iterator[tuple[str, str]]:
    """(element, partner) for every fetch a browser would make from a partner host (of
    ``PARTNERS``) in html5lib's trees of ``doc`` (scripting off and on)."""
    for scripting in (False, True):
        try:
            tree = html5lib.parse(doc, namespaceHTMLElements=True, scripting=scripting)
        except AssertionError:
            # html5lib 1.1's own bug, not ours: its resetInsertionMode asserts it is parsing
            # a fragment when a </table> pops back to a <select> opened inside <svg> (e.g.
            # '<svg><select><title><table><tr><td></table>'); the spec's algorithm has no such
            # assertion. With no tree there is no verdict: such a document is not an example.
            reject()
        yield from _tree_fetches(tree)


_CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s*['"]([^'"]+)""", re.I)


def _css(text: str) -> Iterator[str]:
    # Independent of middleware.html.fetch: the generator spells CSS URLs plainly.
    for m in _CSS_URL.finditer(text):
        yield m.group(1) or m.group(2)


def _child_text(el: Any) -> str:
    """A style element's child text content: its text nodes, not those of comments or elements."""
    return (el.text or "") + "".join(child.tail or "" for child in el)


def _tree_fetches(tree: Any) -> Iterator[tuple[str, str]]:
    """(element, partner) for every fetch a browser would make from a partner host."""
    for el in tree.iter():
        tag = el.tag if isinstance(el.tag, str) else ""
        attrs: dict[str, str] = dict(el.attrib)
        urls: list[str] = []
        if "style" in attrs:
            urls.extend(_css(attrs["style"]))
        if tag.startswith(HTML_NS):
            name = tag[len(HTML_NS):]
            for a in ("background",):
                if a in attrs:
                    urls.append(attrs[a])
            for a in ("ping", "attributionsrc"):
                urls.extend(attrs.get(a, "").split())
            inert = attrs.get("type", "").strip().lower() == "text/plain"
            names = URL_ATTRS.get(name, ())
            if name == "link" and not set(attrs.get("rel", "").lower().split()) - LINK_NO_FETCH:
                names = ()
            if name == "script" and inert:
                names = ()
            for a in names:
                if a not in attrs:
                    continue
                value = attrs[a]
                if a.endswith("srcset"):
                    urls.extend(fetch.srcset_urls(value))
                elif name in ("iframe", "embed", "object") and value.strip().lower().startswith("data:"):
                    doc = fetch.data_document(value.strip())
                    assert doc is not None, value  # the generator writes decodable data: URLs
                    for _, pid in document_fetches(doc.decode("utf-8", "replace")):
                        yield name + "[data:]", pid
                else:
                    urls.append(value)
            if name == "iframe" and "srcdoc" in attrs:
                for _, pid in document_fetches(attrs["srcdoc"]):
                    yield "iframe[srcdoc]", pid
            if name == "meta" and attrs.get("http-equiv", "").strip().lower() == "refresh":
                urls.append(fetch.refresh_url(attrs.get("content", "")))
            if name == "style" and not inert:
                urls.extend(_css(_child_text(el)))
        elif tag.startswith(SVG_NS):
            name = tag[len(SVG_NS):]
            if name != "a":
                urls.extend(attrs[a] for a in ("href", XLINK_HREF) if a in attrs)
            for a in PRESENTATION:
                if a in attrs:
                    urls.extend(_css(attrs[a]))
            if name == "style" and attrs.get("type", "").strip().lower() != "text/plain":
                urls.extend(_css(_child_text(el)))
        elif tag.startswith(MATH_NS) and tag.endswith("mglyph") and "src" in attrs:
            urls.append(attrs["src"])
        for url in urls:
            pid = _partner(url)
            if pid is not None:
                yield tag, pid
