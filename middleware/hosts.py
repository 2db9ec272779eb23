"""HostMatcher: URL or host name -> partner id, with ``*.`` wildcard patterns, compiled once.

URLs are read the way a browser's URL parser reads them, so that a spelling a browser
would fetch from a partner host cannot slip past: leading/trailing C0 controls and spaces
are stripped, tabs and newlines anywhere are removed, ``\\`` counts as ``/``, any number of
slashes may follow the scheme, userinfo and port are dropped, the host is percent-decoded,
case-folded (IDNA mapping) and its trailing dots removed. HTML character references must
already be decoded by the caller.

References: https://url.spec.whatwg.org/#concept-basic-url-parser
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar
from urllib.parse import unquote

__all__ = ["HostMatcher"]

_T = TypeVar("_T")

# Schemes whose URLs a browser fetches from a network host ("special" schemes minus file:).
_NETWORK_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_TAB_NEWLINE = re.compile(r"[\t\n\r]")
# C0 controls and space, stripped from both ends by the URL parser.
_C0_SPACE = "".join(chr(c) for c in range(0x21))
_AUTHORITY_END = re.compile(r"[/\\?#]")
_PORT = re.compile(r":[0-9]*\Z")


def _normalise_host(host: str) -> str | None:
    if "%" in host:
        host = unquote(host, errors="replace")
    host = host.strip(_C0_SPACE)
    if host.startswith("["):  # IPv6 literal
        return host.lower() if host.endswith("]") else None
    if not host.isascii():
        try:
            # IDNA mapping folds full-width letters and ideographic dots like a browser does.
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            host = host.lower()
    host = host.lower().rstrip(".")
    return host or None


class HostMatcher:
    """Maps hosts to partner ids. Patterns are exact hosts or ``*.suffix``.

    ``*.example.com`` matches ``example.com`` itself and every host below it. The most
    specific pattern wins: an exact host beats any wildcard, a longer wildcard beats a
    shorter one; between two partners declaring the same pattern, the first declared wins.
    """

    __slots__ = ("_exact", "_hosts", "_native", "_wild")

    def __init__(self, partners: Mapping[str, Iterable[str]]) -> None:
        self._exact: dict[str, str] = {}
        self._wild: dict[str, str] = {}
        for pid, patterns in partners.items():
            for raw in patterns:
                pattern = raw.strip().lower().rstrip(".")
                if pattern.startswith("*."):
                    self._wild.setdefault(pattern[2:], pid)
                elif pattern:
                    self._exact.setdefault(pattern, pid)
        #: Every declared host suffix, for substring checks on text we cannot parse.
        self._hosts: tuple[str, ...] = tuple(sorted({*self._exact, *self._wild}, key=len))
        self._native: object = None

    def table(self) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
        """The compiled patterns: ((exact host, partner id), ...) and ((suffix, partner id),
        ...) for the ``*.`` patterns (without the ``*.``)."""
        return tuple(self._exact.items()), tuple(self._wild.items())

    def native_table(self, build: Callable[[tuple[tuple[str, str], ...],
                                            tuple[tuple[str, str], ...]], _T]) -> _T:
        """``build(*self.table())``, made once per matcher: the frozen copy of the table the
        native tokenizer matches hosts against (its patterns never change after ``__init__``)."""
        if self._native is None:
            self._native = build(*self.table())
        return self._native  # type: ignore[return-value]

    @property
    def hosts(self) -> tuple[str, ...]:
        """All declared host names and wildcard suffixes (without ``*.``), shortest first."""
        return self._hosts

    def partner_for_host(self, host: str) -> str | None:
        """The partner id owning ``host`` (already a bare host name), or None."""
        host = host.strip().lower().rstrip(".")
        if not host:
            return None
        pid = self._exact.get(host)
        if pid is not None:
            return pid
        if not self._wild:
            return None
        suffix = host
        while True:
            pid = self._wild.get(suffix)
            if pid is not None:
                return pid
            dot = suffix.find(".")
            if dot < 0:
                return None
            suffix = suffix[dot + 1 :]

    @staticmethod
    def host_of_url(url: str) -> str | None:
        """The network host a browser would contact for ``url``, or None.

        None for relative URLs, ``data:``, ``javascript:``, ``blob:`` and other schemes a
        browser does not fetch from a network host.
        """
        url = _TAB_NEWLINE.sub("", url.strip(_C0_SPACE))
        m = _SCHEME.match(url)
        if m is not None:
            if m.group(1).lower() not in _NETWORK_SCHEMES:
                return None
            # "https:host/x" is relative only against a same-scheme base; read it as a host
            # (fail closed: at worst a first-party URL is treated as third-party).
            rest = url[m.end() :].lstrip("/\\")
        elif url[:2] in ("//", "\\\\", "/\\", "\\/"):
            rest = url.lstrip("/\\")
        else:
            return None
        end = _AUTHORITY_END.search(rest)
        authority = rest if end is None else rest[: end.start()]
        authority = authority.rpartition("@")[2]
        if not authority.startswith("["):
            authority = _PORT.sub("", authority)
        elif "]" in authority:
            authority = authority[: authority.index("]") + 1]
        return _normalise_host(authority)

    def partner_for_url(self, url: str) -> str | None:
        """The partner id owning the host of ``url``, or None (relative or unknown host)."""
        host = self.host_of_url(url)
        return None if host is None else self.partner_for_host(host)

    def partners_in_text(self, text: str) -> set[str]:
        """Partners whose declared host appears anywhere in ``text`` (case-insensitive).

        A coarse, fail-closed check for markup that cannot be parsed as URLs (an oversized
        tag, an ``srcdoc`` document).
        """
        low = text.lower()
        found: set[str] = set()
        for host in self._hosts:
            if host in low:
                pid = self._exact.get(host) or self._wild.get(host)
                if pid is not None:
                    found.add(pid)
        return found
