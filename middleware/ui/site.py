"""``[site]``: who runs the site, and how the consent pages look like the site's own.

Every consent page (preferences, partners, my-data) shows who runs the site, a way back and
the privacy policy link; the owner may add a stylesheet (same origin, so the pages' strict
CSP stays ``style-src 'self'``) and a header and footer fragment (HTML without scripts or
inline styles, which that CSP would block anyway).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Table

#: Same-origin paths only: an absolute URL would need the page CSP widened.
_PATH = re.compile(r"^/(?!/)[A-Za-z0-9._~!$&'()*+,;=:@/%-]*(\?[A-Za-z0-9._~!$&'()*+,;=:@/%?-]*)?$")
_SCRIPTY = re.compile(r"<\s*script|\bon[a-z]+\s*=|javascript:|<\s*style|\bstyle\s*=", re.I)


@dataclass(frozen=True)
class SiteConfig:
    #: The site's or company's name ("Japan Talk"): shown on every consent page.
    name: str = ""
    #: Where visitors send requests about their data: an e-mail address or an https:// URL.
    contact: str = ""
    privacy_policy_url: str = ""
    #: The link "back to the site" when the page the visitor came from is unknown.
    home: str = "/"
    #: A same-origin stylesheet added after consent-gate's own (``/static/site.css``).
    stylesheet: str = ""
    header_html: str = ""
    footer_html: str = ""
    #: The visitor's own page, /.consent/my-data.
    my_data_page: bool = True


def read_site(t: Table, done: object) -> SiteConfig:
    name = t.get("name", str, "")
    contact = t.get("contact", str, "")
    if contact and not (contact.startswith("https://") or re.fullmatch(r"[^@\s]+@[^@\s]+", contact)):
        t.error("contact", f"expected an e-mail address or an https:// URL, got {contact!r}")
    privacy = t.get("privacy_policy_url", str, "")
    if privacy and not (privacy.startswith("https://") or _PATH.match(privacy)):
        t.error("privacy_policy_url", f"expected an https:// URL or a path on this site, got {privacy!r}")
    home = t.get("home", str, "/")
    if not _PATH.match(home):
        t.error("home", f"expected a path on this site such as '/', got {home!r}")
    stylesheet = t.get("stylesheet", str, "")
    if stylesheet and not _PATH.match(stylesheet):
        t.error("stylesheet", "expected a path on this site such as '/static/site.css' (the consent "
                f"pages allow same-origin styles only), got {stylesheet!r}")
    fragments = {}
    for key in ("header_html", "footer_html"):
        value = t.get(key, str, "")
        if _SCRIPTY.search(value):
            t.error(key, "expected HTML without scripts, event handlers or inline styles (the "
                         "consent pages' CSP blocks them); style it from your stylesheet")
        fragments[key] = value
    return SiteConfig(name=name, contact=contact, privacy_policy_url=privacy, home=home,
                      stylesheet=stylesheet, header_html=fragments["header_html"],
                      footer_html=fragments["footer_html"],
                      my_data_page=t.get("my_data_page", bool, True))
