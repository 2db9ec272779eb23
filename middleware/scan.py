"""``consent-gate scan``: which third-party hosts does a page load, and which partner owns each?

How site owners find tags missing from their TOML: every host that no partner declares
is listed as unknown (it would not be gated).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import Config
from .errors import ConsentGateError
from .hosts import HostMatcher
from .rewrite import HtmlRewriter, RewritePlan

_MAX_FETCH_BYTES = 20 * 1024 * 1024


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


def scan_source(source: str, config: Config) -> ScanReport:
    if source.startswith(("http://", "https://")):
        import httpx2

        try:
            with httpx2.stream("GET", source, follow_redirects=True, timeout=15.0) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > _MAX_FETCH_BYTES:
                        break
        except httpx2.HTTPError as exc:
            raise ConsentGateError(f"cannot fetch {source}: {exc}") from None
        return scan_html(bytes(body), config, source)
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise ConsentGateError(f"cannot read {source}: {exc.strerror or exc}") from None
    return scan_html(data, config, source)


def format_scan(report: ScanReport) -> str:
    lines = [f"Third-party hosts in {report.source}", "", "Known partners (gated):"]
    lines += [f"  {pid:<24} {name}" for pid, name in report.partners.items()] or ["  (none)"]
    lines += ["", "Unknown third parties (NOT gated - add them to a partner's hosts or [csp.extra]):"]
    lines += [f"  {host}" for host in report.unknown_hosts] or ["  (none)"]
    return "\n".join(lines)
