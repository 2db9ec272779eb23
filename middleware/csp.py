"""Content-Security-Policy built from the consent decision: the browser enforces the gate too.

The rewriter stops the partner tags it can see; CSP stops the ones it cannot (a tag
written by ``document.write`` or appended by another script, a ``fetch()``, a prefetch).
Our policy is a *partner gate*, not an XSS defence: it allows inline code (the site's own
inline scripts must keep running) and is an allow-list over every fetch directive:
``default-src`` (which also governs ``<link rel=prefetch>``, whose own directive no browser
ships) holds the site's own sources, each fetch directive adds the consented partners' hosts,
``object-src`` is ``'none'`` unless a consented partner declares it needs it (``[partners.ID]
csp = ["object-src"]``) or the owner adds sources, ``base-uri``
stops a ``<base href>`` from turning the site's relative URLs into a partner's, and
``form-action`` stops a scripted form post to a partner (one that declares ``csp =
["form-action"]`` excepted: a partner's own forms post inside its own frame, under its
policy). ``[csp.extra] default-src`` sources are the site's own and join every fetch
directive; other extras join their own.

A fetch directive whose sources equal ``default-src``'s is not sent: the browser falls back to
``default-src`` for it (CSP3 fallback list), so it allows exactly the same. ``default-src``
therefore also holds the local ``data:`` and ``blob:`` schemes (no network, no partner) and the
script keywords ``'unsafe-inline'``/``'unsafe-eval'`` (meaningless to the other directives),
which lets every fetch directive but ``worker-src`` and ``manifest-src`` fall back to it: each
partner host is listed once (``default-src``), not 10 times, a host a wildcard of the same
list already matches is not listed (``without_covered``), and neither is a wildcard that
would also match a refused partner's host (``without_overlapping``). A wildcard brings its
bare domain (``apex_of``): HostMatcher's ``*.x.com`` matches ``x.com``, CSP's does not.
The header's length is a real cost: uvicorn's h11 checks every header byte with a regex
(docs/performance.md).

``prefetch-src`` and ``navigate-to`` are not sent: both left the CSP draft and Chromium
reports them as unrecognised. Top-level navigations (``location = ...``, ``window.open``,
a meta refresh) are not governed by any CSP a browser ships: the rewriter handles the meta
refresh, the rest is documented in docs/csp.md.

If the site sends its own CSP, ours is added as a second header; browsers enforce both
(every policy must allow a fetch), so the site's policy is never weakened.

References: https://www.w3.org/TR/CSP3/#multiple-policies,
https://www.w3.org/TR/CSP3/#directive-fallback-list
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .config import CSP_DIRECTIVES, PARTNER_CSP_DIRECTIVES, Config, Partner

#: The site's own sources of default-src and of every directive that falls back to it.
#: ``'unsafe-inline'`` and ``'unsafe-eval'`` only mean something to scripts and styles, and
#: ``data:``/``blob:`` fetch nothing from the network, so one list serves all of them: then
#: ``script-src`` and ``style-src`` equal ``default-src`` and are left to the browser's fallback
#: like the others, and each consented partner's hosts are sent 3 times, not 5.
_OWN = ("'self'", "'unsafe-inline'", "'unsafe-eval'", "data:", "blob:")
_BASE: dict[str, tuple[str, ...]] = {
    "default-src": _OWN,
    "script-src": _OWN,
    "frame-src": _OWN,
    "img-src": _OWN,
    "connect-src": _OWN,
    "style-src": _OWN,
    "font-src": _OWN,
    "media-src": _OWN,
    "worker-src": ("'self'", "blob:"),
    "manifest-src": ("'self'",),
    "object-src": (),
    "base-uri": ("'self'",),
    "form-action": ("'self'",),
}
#: Directives that list every consented partner's hosts (a partner's worker or manifest would
#: be cross-origin, which browsers refuse anyway; its base URL is never needed). ``object-src``
#: and ``form-action`` list only the partners that declare them (``[partners.ID] csp``).
_PARTNER_DIRECTIVES = frozenset({"default-src", "script-src", "frame-src", "img-src",
                                 "connect-src", "style-src", "font-src", "media-src"})
#: Directives the site's own ``[csp.extra] default-src`` sources join.
_FETCH_DIRECTIVES = frozenset({"script-src", "frame-src", "img-src", "connect-src", "style-src",
                               "font-src", "media-src", "worker-src", "manifest-src"})
#: Directives whose fallback is ``default-src`` itself (not ``script-src``, as ``worker-src``'s
#: is): left out when their sources are the same set as ``default-src``'s.
_FALLS_BACK_TO_DEFAULT = frozenset({"frame-src", "img-src", "connect-src", "style-src",
                                    "font-src", "media-src", "manifest-src", "script-src",
                                    "object-src"})


class CspBuilder:
    """Pre-builds the header value for each set of allowed partners (few distinct sets)."""

    def __init__(self, config: Config) -> None:
        self.mode = config.csp.mode
        self.report_uri = f"{config.policy.prefix}csp-report"
        self.header_name = (b"content-security-policy-report-only" if self.mode == "report-only"
                            else b"content-security-policy")
        self._partners = config.partners
        #: Exact host -> the partner declaring it (one host, one partner: config.py).
        self._exact_owner = {host: pid for pid, partner in config.partners.items()
                             for host in partner.hosts if not host.startswith("*.")}
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

    @property
    def enforced(self) -> bool:
        """Whether ``header_name`` is the enforced ``Content-Security-Policy`` (mode
        "enforce"); "report-only" sends ``...-Report-Only`` and "off" no policy at all."""
        return self.mode == "enforce"

    def value(self, allowed_partners: Iterable[str]) -> bytes:
        key = frozenset(allowed_partners)
        cached = self._cache.get(key)
        if cached is None:
            cached = self._build(key)
            if len(self._cache) < 1024:
                self._cache[key] = cached
        return cached

    def _build(self, allowed: frozenset[str]) -> bytes:
        hosts = self._hosts(allowed)
        # object-src and form-action list only the partners that declare them (``csp = [...]``).
        declared = {d: self._hosts(allowed, d) for d in PARTNER_CSP_DIRECTIVES}
        own = self._extra.get("default-src", ())
        parts = []
        default: set[str] = set()
        for directive in CSP_DIRECTIVES:
            sources = list(_BASE[directive])
            if directive in _PARTNER_DIRECTIVES:
                sources += hosts
            sources += declared.get(directive, ())
            if directive in _FETCH_DIRECTIVES:
                sources += own
            sources += self._extra.get(directive, ())
            # Deduplicated, in order; a directive with no source at all allows nothing.
            unique = list(dict.fromkeys(sources)) or ["'none'"]
            if directive == "default-src":
                default = set(unique)
            elif directive in _FALLS_BACK_TO_DEFAULT and set(unique) == default:
                continue
            parts.append(f"{directive} {' '.join(unique)}")
        parts.append(self.frame_ancestors)
        parts.append(f"report-uri {self.report_uri}")
        # ";" with no space: CSP3 §2.2.1 splits on ";" and strips each directive's
        # whitespace, so the policy is the same; h11 checks every space of a header value at
        # ~600 instructions each (docs/csp.md, under the example policy).
        return ";".join(parts).encode("ascii")

    def _hosts(self, allowed: frozenset[str], directive: str | None = None) -> list[str]:
        """The allowed partners' hosts (only those declaring ``directive``, if given), in order,
        each wildcard followed by its apex (``apex_of``), without a wildcard that would also
        allow a refused partner's host (``overlapping``)."""
        hosts: list[str] = []
        refused: list[str] = []
        for pid, partner in sorted(self._partners.items()):
            if pid not in allowed:
                refused += partner.hosts
            elif directive is None or directive in partner.csp:
                # One host at a time, so that the membership test sees the ones just added
                # (a partner may list a host twice; the config forbids two partners sharing one).
                for host in partner.hosts:
                    for source in (host, apex_of(host, pid, self._exact_owner)):
                        if source is not None and source not in hosts:
                            hosts.append(source)
        return without_covered(without_overlapping(hosts, refused))


def apex_of(pattern: str, pid: str, exact_owner: Mapping[str, str]) -> str | None:
    """The bare domain of partner ``pid``'s ``*.domain`` pattern, when HostMatcher gives it to
    ``pid``; else None.

    HostMatcher lets ``*.x.com`` match ``x.com`` itself (attribution fails closed: a refused
    partner's tag on its bare domain is neutralised), but a CSP3 host-source ``*.x.com``
    matches only subdomains (§6.7.2.7). Without the apex in the policy, a consented partner's
    tag on ``x.com`` would be kept by the rewriter and then blocked by our own policy (and
    counted as a violation). HostMatcher's most specific pattern for ``x.com`` is an exact
    ``x.com`` if any partner declares it, else ``*.x.com`` (no wildcard is longer), so the apex
    is ``pid``'s unless another partner declares it exactly: then it is that partner's, listed
    (or not) with that partner's hosts. An exact host allows nothing beyond itself, so the
    apex is kept even where ``without_overlapping`` drops its wildcard.
    """
    if not pattern.startswith("*."):
        return None
    apex = pattern[2:]
    return apex if exact_owner.get(apex, pid) == pid else None


def without_covered(hosts: list[str]) -> list[str]:
    """``hosts`` without the names a ``*.suffix`` wildcard of the same list already matches.

    CSP3 host-source matching (§6.7.2.7): ``*.facebook.net`` matches every host that ends in
    ``.facebook.net`` at any depth (not ``facebook.net`` itself), so ``connect.facebook.net`` and
    ``*.a.facebook.net`` beside it allow nothing more. Partner hosts are bare lowercase names
    (config.py), with no scheme, port or path that would make one narrower in another way, so
    the shorter list allows exactly the same fetches; on Japan Talk's page with every partner
    consented it drops 6 of 22 hosts in each of the 3 directives that list them.
    """
    suffixes = tuple(host[1:] for host in hosts if host.startswith("*."))  # ".facebook.net"
    if not suffixes:
        return hosts
    return [host for host in hosts
            if not any(host.endswith(suffix) and host != "*" + suffix for suffix in suffixes)]


def without_overlapping(hosts: list[str], refused: list[str]) -> list[str]:
    """``hosts`` without the wildcards that match a host of ``refused`` (other partners').

    Two partners may share a domain: HostMatcher gives ``ads.google.com`` to the partner that
    declares it even beside another's ``*.google.com`` (the most specific pattern wins), but
    CSP has no exclusions, so ``*.google.com`` in the policy would let a script reach the
    refused partner. The wildcard is left out instead (fail closed: the consented partner keeps
    its exact hosts; its other subdomains are blocked until it declares them). A wildcard is
    never made up from several hosts of one domain either: it would allow hosts nobody
    declared (docs/csp.md).
    """
    if not refused:
        return hosts
    return [host for host in hosts if not any(reaches(host, other) for other in refused)]


def reaches(source: str, pattern: str) -> bool:
    """Does the CSP source ``source`` allow some host of the partner pattern ``pattern``?

    Only a wildcard can reach another partner's host: ``*.google.com`` reaches
    ``ads.google.com`` and ``*.a.google.com`` (CSP3: any depth below), not ``google.com``.
    """
    return source.startswith("*.") and pattern.removeprefix("*.").endswith(source[1:])


@dataclass(frozen=True, slots=True)
class WildcardOverlap:
    """``partner``'s ``pattern`` reaches ``host`` of partner ``other``: whenever ``partner`` is
    consented and ``other`` is not, the CSP leaves ``pattern`` out (``without_overlapping``)
    and only ``partner``'s exact hosts (and the pattern's apex) stay allowed."""

    partner: str
    pattern: str
    other: str
    host: str


def wildcard_overlaps(partners: Mapping[str, Partner]) -> list[WildcardOverlap]:
    """Every (wildcard, other partner's host) pair that ``without_overlapping`` would separate,
    in config order: what ``consent-gate check`` warns about."""
    return [WildcardOverlap(pid, pattern, other_id, host)
            for pid, partner in partners.items() for pattern in partner.hosts
            for other_id, other in partners.items() if other_id != pid
            for host in other.hosts if reaches(pattern, host)]
