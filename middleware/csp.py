"""Content-Security-Policy built from the consent decision: the browser enforces the gate too.

The rewriter stops the partner tags it can see; CSP stops the ones it cannot (a tag
written by ``document.write`` or appended by another script). Our policy is a *partner
gate*, not an XSS defence: it allows inline code (the site's own inline scripts must keep
running) and restricts only where the page may load from or connect to: ``'self'``, the
consented partners' hosts and the owner's ``[csp.extra]`` sources. If the site sends its
own CSP, ours is added as a second policy; browsers enforce both.

References: https://www.w3.org/TR/CSP3/#multiple-policies
"""

from __future__ import annotations

from collections.abc import Iterable

from .config import CSP_DIRECTIVES, Config

_BASE: dict[str, tuple[str, ...]] = {
    "script-src": ("'self'", "'unsafe-inline'", "'unsafe-eval'"),
    "frame-src": ("'self'",),
    "img-src": ("'self'", "data:", "blob:"),
    "connect-src": ("'self'",),
    "style-src": ("'self'", "'unsafe-inline'"),
    "font-src": ("'self'", "data:"),
    "media-src": ("'self'", "blob:"),
}


class CspBuilder:
    """Pre-builds the header value for each set of allowed partners (few distinct sets)."""

    def __init__(self, config: Config) -> None:
        self.mode = config.csp.mode
        self.report_uri = f"{config.policy.prefix}csp-report"
        self.header_name = (b"content-security-policy-report-only" if self.mode == "report-only"
                            else b"content-security-policy")
        self._partner_hosts = {pid: p.hosts for pid, p in config.partners.items()}
        self._extra = config.csp.extra
        # Who may frame the site's pages (clickjacking of the banner): [csp] frame_ancestors.
        self.frame_ancestors = "frame-ancestors " + " ".join(config.csp.frame_ancestors)
        #: The same rule for browsers without CSP frame-ancestors (None when it has no equivalent).
        options: dict[tuple[str, ...], str] = {("'self'",): "SAMEORIGIN", ("'none'",): "DENY"}
        self.frame_options: str | None = options.get(config.csp.frame_ancestors)
        self._cache: dict[frozenset[str], bytes] = {}

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def value(self, allowed_partners: Iterable[str]) -> bytes:
        key = frozenset(allowed_partners)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._build(key)
            if len(self._cache) < 1024:
                self._cache[key] = cached
        return cached

    def _build(self, allowed: frozenset[str]) -> bytes:
        hosts: list[str] = []
        for pid in sorted(allowed):
            for host in self._partner_hosts.get(pid, ()):
                if host not in hosts:
                    hosts.append(host)
        parts = []
        for directive in CSP_DIRECTIVES:
            sources = [*_BASE[directive], *hosts, *self._extra.get(directive, ())]
            parts.append(f"{directive} {' '.join(sources)}")
        parts.append(self.frame_ancestors)
        parts.append(f"report-uri {self.report_uri}")
        return "; ".join(parts).encode("ascii")
