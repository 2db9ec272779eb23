"""Foreign content as the tree builder reads it: the stack of open elements from the
outermost ``<svg>``/``<math>`` up, and the spec's dispatcher (which rules a tag follows).

Entries are (namespace, name, kind): namespace "h" HTML, "s" SVG, "m" MathML; kind one of
grammar's ``_PLAIN``, ``_HTML_IP`` (HTML integration point), ``_TEXT_IP`` (MathML text
integration point), ``_ANNOTATION`` (an ``annotation-xml`` where ``<svg>`` is HTML).

References: https://html.spec.whatwg.org/multipage/parsing.html#tree-construction-dispatcher
"""

from __future__ import annotations

from .attrs import _attr_value
from .grammar import _ANNOTATION, _ATTR_RE, _HTML_IP, _MATHML_TEXT_IP, _PLAIN, _SVG_HTML_IP, _TEXT_IP


class OpenElements(list[tuple[str, str, int]]):
    """The part of the stack of open elements inside foreign content (empty: HTML content).

    A list, so that "are we in foreign content" stays a plain truth test in the tokenizer loop.
    """

    def open_root(self, name: str) -> None:
        """An HTML ``<svg>`` or ``<math>`` start tag that does not close itself."""
        self.append(("s" if name == "svg" else "m", name, _PLAIN))

    def html_rules(self, name: str | None) -> bool:
        """Whether a start tag (``name``) or an end tag (None) follows the HTML rules."""
        if not self:
            return True
        ns, _, kind = self[-1]
        if ns == "h":
            return True
        if name is None:
            return False
        return (kind == _HTML_IP or (kind == _TEXT_IP and name not in ("mglyph", "malignmark"))
                or (kind == _ANNOTATION and name == "svg"))

    def pop_to_html(self) -> None:
        """Breakout: pop until an HTML element or an integration point is the current node."""
        while self and self[-1][0] != "h" and self[-1][2] not in (_HTML_IP, _TEXT_IP):
            self.pop()

    def end_tag(self, name: str) -> None:
        """An end tag: pop by the foreign rule or by an HTML scope walk."""
        if self and not self.html_rules(None):
            if name in ("br", "p"):
                self.pop_to_html()
                return
            for i in range(len(self) - 1, -1, -1):
                if self[i][1] == name:
                    del self[i:]
                    return
                if self[i][0] == "h":
                    self.html_end(name, i)
                    return
            # Not in our part of the stack: it may close an HTML element around the <svg>;
            # staying in careful mode is the safe reading.
            return
        self.html_end(name, len(self) - 1)

    def html_end(self, name: str, top: int) -> None:
        """An HTML end tag seen with self[top] as the current node: pops an HTML element of
        that name unless an integration point (a scope boundary) comes first."""
        for i in range(top, -1, -1):
            ns, nm, kind = self[i]
            if ns == "h" and nm == name:
                del self[i:]
                return
            if kind != _PLAIN:
                return

    def push_foreign(self, buf: bytes, name: str, name_end: int, end: int) -> None:
        """A foreign element's start tag buf[..end] that does not close itself."""
        ns = self[-1][0] if self else "s"
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
        self.append((ns, name, kind))
