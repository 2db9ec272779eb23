"""``consent-gate scan``: which third-party hosts does a page load, and which partner owns each?

How site owners find tags missing from their TOML: every host that no partner declares
is listed as unknown (it would not be gated).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from . import scan_token
from .config import Config
from .errors import ConsentGateError, SecretError
from .hosts import HostMatcher
from .rewrite import HtmlRewriter, RewritePlan
from .secrets import dev_mode_requested, signing_keys

_MAX_FETCH_BYTES = 20 * 1024 * 1024
_MAX_REDIRECTS = 5
#: What consent-gate puts in the pages it rewrites.
_MARKERS = (b'id="consent-gate-banner"', b"{prefix}banner.js", b'class="consent-gate-footer"',
            b"data-consent-partner=")


@dataclass(frozen=True)
class ScanReport:
    source: str
    partners: Mapping[str, str]  # partner id -> display name, for partners whose tags the page has
    unknown_hosts: tuple[str, ...]


def scan_html(html: bytes, config: Config, source: str = "<html>") -> ScanReport:
    matcher = HostMatcher({pid: p.hosts for pid, p in config.partners.items()})
    everyone = frozenset(config.partners)
    # Allow every partner and inject nothing: what the rewriter reports enabled is what the page holds.
    plan = RewritePlan(head_end=b"", body_start=b"", body_end=b"", injected_partners=frozenset(),
                       allowed_partners=everyone, granted_purposes=frozenset(config.purposes),
                       matcher=matcher, placeholder=lambda _pid, _attrs: b"")
    rewriter = HtmlRewriter(plan)
    rewriter.feed(html)
    rewriter.finish()
    found = rewriter.take_enabled()
    return ScanReport(source=source,
                      partners={pid: config.partners[pid].name for pid in sorted(found)},
                      unknown_hosts=tuple(sorted(rewriter.unknown_hosts)))


def scan_source(source: str, config: Config, *, keys: Sequence[str] | None = None) -> ScanReport:
    """Scan a URL or an HTML file. For a URL, ``keys`` (default: the site's secret from the
    environment, if set) sign a scan token so that a wrapped site answers with its original
    page; a rewritten page is refused rather than reported as having no partners."""
    if source.startswith(("http://", "https://")):
        if keys is None:
            keys = _keys_from_environment(config)
        body, original, wrapped = _fetch(source, keys, config.policy.prefix)
        if wrapped and not original:
            raise ConsentGateError(_wrapped_message(source, config, keys))
        return scan_html(body, config, source)
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise ConsentGateError(f"cannot read {source}: {exc.strerror or exc}") from None
    return scan_html(data, config, source)


def _keys_from_environment(config: Config) -> tuple[str, ...]:
    try:
        return signing_keys(config.policy.secret_env, dev=dev_mode_requested(), warn=False)
    except SecretError:
        return ()


def _fetch(url: str, keys: Sequence[str], prefix: str) -> tuple[bytes, bool, bool]:
    """(body, the site's original page?, rewritten by consent-gate?), following redirects
    on the same origin with a fresh token for each path (never sent to another origin)."""
    import httpx2

    origin = httpx2.URL(url)
    try:
        with httpx2.Client(follow_redirects=False, timeout=15.0) as client:
            for _ in range(_MAX_REDIRECTS + 1):
                target = httpx2.URL(url)
                headers = {}
                same_origin = (target.scheme, target.host, target.port) == (
                    origin.scheme, origin.host, origin.port)
                if keys and same_origin:
                    headers[scan_token.HEADER] = scan_token.make_token(keys[0], "GET", target.path)
                with client.stream("GET", target, headers=headers) as response:
                    if response.is_redirect and "location" in response.headers:
                        url = str(target.join(response.headers["location"]))
                        continue
                    body = bytearray()
                    for chunk in response.iter_bytes():
                        body += chunk
                        if len(body) > _MAX_FETCH_BYTES:
                            break
                    original = response.headers.get(scan_token.ORIGINAL_HEADER) == \
                        scan_token.ORIGINAL_VALUE
                    csp = " ".join(response.headers.get_list("content-security-policy")
                                   + response.headers.get_list("content-security-policy-report-only"))
                    wrapped = f"{prefix}csp-report" in csp or any(
                        marker.replace(b"{prefix}", prefix.encode()) in body for marker in _MARKERS)
                    return bytes(body), original, wrapped
    except httpx2.HTTPError as exc:
        raise ConsentGateError(f"cannot fetch {url}: {exc}") from None
    raise ConsentGateError(f"cannot fetch {url}: more than {_MAX_REDIRECTS} redirects")


def _wrapped_message(source: str, config: Config, keys: Sequence[str]) -> str:
    head = (f"{source} was rewritten by consent-gate (its partner tags are already neutralised), "
            "so a scan of it would miss them. ")
    if not keys:
        return head + (f"Set {config.policy.secret_env} to the site's secret (the server's), "
                       "so that scan can ask for the page as the site sends it (CONSENT_GATE_DEV=1 "
                       "for a server on the development key, like scripts/serve-example.sh); or "
                       "scan the HTML file, or the site without the middleware.")
    return head + (f"The server refused the scan token: is {config.policy.secret_env} here the "
                   "same as the server's, and the two clocks within a minute of each other?")


def format_scan(report: ScanReport) -> str:
    lines = [f"Third-party hosts in {report.source}", "", "Known partners (gated):"]
    lines += [f"  {pid:<24} {name}" for pid, name in report.partners.items()] or ["  (none)"]
    lines += ["", "Unknown third parties (NOT gated - add them to a partner's hosts or [csp.extra]):"]
    lines += [f"  {host}" for host in report.unknown_hosts] or ["  (none)"]
    return "\n".join(lines)
