"""A suggested ``[partners.ID]`` TOML block for a discovered host or cookie.

The owner still has to decide the purpose and check the privacy link: the block says so in
comments, and it validates as written (``consent-gate check`` accepts it once pasted).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from ..config import Config
from .db import Discovered

#: What any browser request to a third party carries, whatever the tag.
BROWSER_SENDS = ("ip_address", "user_agent", "page_url", "referrer")
#: Second-level labels under which registrations happen (co.uk, com.au, ne.jp ...).
_SECOND_LEVEL = frozenset({"co", "com", "net", "org", "ne", "or", "ac", "gov", "edu", "go"})


def site_of(host: str) -> str:
    """The registrable domain, roughly: ``cdn.tracker.example`` -> ``tracker.example``.

    A heuristic (no public suffix list is shipped): the last two labels, or three when the
    second-to-last is a common second-level label (``ads.example.co.uk`` -> ``example.co.uk``).
    """
    labels = host.strip(".").split(".")
    if len(labels) >= 3 and labels[-2] in _SECOND_LEVEL and len(labels[-1]) == 2:
        return ".".join(labels[-3:])
    return ".".join(labels[-2:])


def partner_id(site: str) -> str:
    ident = re.sub(r"[^a-z0-9_-]+", "-", site.lower()).strip("-")
    return (ident or "unknown")[:63]


def _toml_str(value: str) -> str:
    """A TOML basic string: control characters (invalid there as written) as escapes."""
    out = value.replace("\\", "\\\\").replace('"', '\\"')
    if any(c < " " or c == "\x7f" for c in out):
        out = "".join(f"\\u{ord(c):04X}" if c < " " or c == "\x7f" else c for c in out)
    return '"' + out + '"'


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_toml_str(v) for v in values) + "]"


def suggest_partner(site: str, hosts: Sequence[str], cookies: Sequence[str],
                    purpose: str) -> str:
    """One TOML block for the hosts (and cookies) of one site."""
    lines = [
        f"[partners.{partner_id(site)}]",
        f"name = {_toml_str(site)}  # the company's name",
        f"purposes = [{_toml_str(purpose)}]  # which purpose does it serve? check",
        f"hosts = {_list(hosts)}",
        f"receives = {_list(BROWSER_SENDS)}  # add what its tag collects (cookies, identifiers...)",
    ]
    if cookies:
        lines.append(f"cookies = {_list(cookies)}")
    lines.append(f"privacy_url = {_toml_str('https://' + site + '/privacy')}  # check this link")
    return "\n".join(lines)


def suggestions(found: Sequence[Discovered], config: Config | None) -> list[tuple[str, str]]:
    """``(site, toml block)`` per undeclared site, most seen first; cookies with no host of
    their own get one block listing them under a placeholder id."""
    purpose = "ads"
    if config is not None:
        optional = [p.id for p in config.purposes.values() if not p.necessary]
        purpose = optional[0] if optional else next(iter(config.purposes), "ads")
    by_site: dict[str, list[str]] = {}
    counts: dict[str, int] = {}
    for d in found:
        if d.kind in ("host", "csp"):
            site = site_of(d.name)
            hosts = by_site.setdefault(site, [])
            if d.name not in hosts:
                hosts.append(d.name)
            counts[site] = counts.get(site, 0) + d.count
    out = []
    for site in sorted(by_site, key=lambda s: (-counts[s], s)):
        hosts = sorted(by_site[site])
        if len(hosts) > 1:
            hosts = ["*." + site] if all(h.endswith("." + site) for h in hosts) else hosts
        out.append((site, suggest_partner(site, hosts, (), purpose)))
    cookies = sorted(d.name for d in found if d.kind == "cookie")
    if cookies:
        block = ("# Cookies the site set that no partner declares: add each to the partner that\n"
                 "# sets it (its `cookies` list), or drop them if they are the site's own:\n"
                 f"# cookies = {_list(cookies)}")
        out.append(("cookies", block))
    return out
