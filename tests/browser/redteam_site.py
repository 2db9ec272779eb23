"""Pages for tests/browser/test_redteam_vectors.py: one fetch vector each, found by the red-team
pass (docs/rewriter.md, "Red-team pass"). `site` serves them as written, `create_app()` through
ConsentMiddleware (``FETCH_SITE_CONFIG`` names its partners.toml: one partner on
``*.partner.example``).

Every partner URL's host is ``NAME.WHO.partner.example`` (WHO: raw, off, enforce): a request
is put down to its page and server by its host alone, even an https ``CONNECT`` (no path).
"""

from __future__ import annotations

import base64
import os
from typing import Any

from middleware import ConsentMiddleware
from tests.asgi_helpers import answer_lifespan

#: The partner host of a page ({h} is "NAME.WHO").
P = "{h}.partner.example"
_GIF = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")

#: name -> body markup. Each makes Chromium contact the partner when served as written.
MARKUP: dict[str, str] = {
    # Chromium's preload scanner reads <svg><style> as an HTML style: a literal @import is
    # fetched even from a type="text/plain" one (was respelled in HTML content only).
    "svg-style-import": f'<svg><style>@import "http://{P}/ssi.css";</style></svg>',
    "svg-style-after-tag": f'<svg><style><g/>@import "http://{P}/ssa.css";</style></svg>',
    "svg-style-after-comment": f'<svg><style><!-- -->@import "http://{P}/ssm.css";</style></svg>',
    "dsd": f'<div><template shadowrootmode="open"><img src="http://{P}/dsd.gif"></template></div>',
    "data-iso2022": ('<iframe src="data:text/html;charset=iso-2022-jp,%1B$B%3C!--%1B(B%3Cimg%20src='
                     f'http://{P}/dj.gif%3E%1B$B--%3E%1B(B"></iframe>'),
    "modulepreload": f'<link rel="modulepreload" href="http://{P}/m.js">',
    "preload-imagesrcset": f'<link rel="preload" as="image" imagesrcset="http://{P}/pi.gif 1x">',
    "srcset-comma": f'<img srcset="http://{P}/sc.gif,/own.gif 2x">',
    "srcset-nospace": f'<img srcset="/own.gif 2x,http://{P}/sn.gif 1x">',
    "picture": f'<picture><source srcset="http://{P}/pic.gif"><img src="/own.gif"></picture>',
    "raw-tab-host": '<img src="http://{h}.part\tner.example/rt.gif">',
    "raw-backslash": '<img src="http:\\\\{h}.partner.example\\rb.gif">',
    "upper": '<img src="HTTP://{H}.PARTNER.EXAMPLE/UP.GIF">',
    "port": f'<img src="http://{P}:80/port.gif">',
    "trailing-dot": f'<img src="http://{P}./td.gif">',
    "pct-host": '<img src="http://{h}.partner%2Eexample/pct.gif">',
    "img-slash": f'<img/src="http://{P}/is.gif">',
    "img-formfeed": f'<img\x0csrc\x0c=\x0c"http://{P}/iff.gif">',
    "srcdoc-base": f'<iframe srcdoc="<base href=http://{P}/><img src=sb.gif>"></iframe>',
    # Read by a browser without scripts (the tests' JS-off context).
    "noscript-img": f'<noscript><img src="http://{P}/ns.gif"></noscript>',
    "noscript-link": f'<noscript><link rel="stylesheet" href="http://{P}/nsl.css"></noscript>',
    "noscript-style-import": f'<noscript><style>@import "http://{P}/nsi.css";</style></noscript>',
    "noscript-svg-style": f'<noscript><svg><style>@import "http://{P}/nss.css";</style></svg></noscript>',
    # A javascript: frame's document is the string its script returns.
    "js-iframe": f'<iframe src="javascript:\'<img src=http://{P}/js.gif>\'"></iframe>',
    "js-iframe-refresh": ('<iframe src="javascript:\'<meta http-equiv=refresh '
                          f'content=0;url=http://{P}/jr>\'"></iframe>'),
    # An OpenSearch description (rel=search is read as a link that does not fetch) and a
    # compression dictionary (any rel not known to be quiet is gated as fetching).
    "link-search": ('<link rel="search" type="application/opensearchdescription+xml" title="s" '
                    f'href="http://{P}/os.xml">'),
    "link-dictionary": f'<link rel="compression-dictionary" href="http://{P}/d.dict">',
    # A style sheet the site serves itself: read by the gate (gate/css.py) since this round.
    "own-css": '<link rel="stylesheet" href="/own.css?h={h}">',
}

def _iso2022_page(declaration: bytes, name: bytes) -> bytes:
    return (b'<!DOCTYPE html><html><head><meta http-equiv="Content-Type" content="text/html; '
            + declaration + b'"><title>x</title></head><body>\x1b$B<!--\x1b(B<img src="http://{h}'
            b'.partner.example/' + name + b'.gif">\x1b$B-->\x1b(B</body></html>')


#: name -> (status, headers, body) of responses that are not HTML pages but that Chromium,
#: opening them as a page, still acts on: their headers fetch (a passing body's headers used
#: to go out untouched, so these reached the partner through the gate, enforced CSP or not).
OTHER: dict[str, tuple[int, list[tuple[str, str]], bytes]] = {
    "text-link": (200, [("content-type", "text/plain"),
                        ("link", f"<http://{P}/tl.gif>; rel=preload; as=image")], b"hello"),
    "text-refresh": (200, [("content-type", "text/plain"), ("refresh", f"0;url=http://{P}/tr")],
                     b"hello"),
    "json-link": (200, [("content-type", "application/json"),
                        ("link", f"<https://{P}/jl.woff2>; rel=preload; as=font; crossorigin")], b"{}"),
    "text-spec": (200, [("content-type", "text/plain"),
                        ("speculation-rules", f'"http://{P}/rules.json"')], b"x"),
    "gif-link": (200, [("content-type", "image/gif"),
                       ("link", f"<http://{P}/gl.gif>; rel=preload; as=image")], _GIF),
    # A page without a charset label whose <meta> names ISO-2022-JP with padding past the 512
    # bytes sniff.py read after each <meta> (a reference's leading zeros; spaces before a
    # referenced "charset"), then the ESC $ B comment trick: the browser reads the page as
    # ISO-2022-JP, so the "<!--" around the img is kanji. -split: cut inside the padding.
    "meta-zeros": (200, [("content-type", "text/html")], _iso2022_page(
        b'&#' + b"0" * 600 + b'99;harset=iso-2022-jp', b"mz")),
    "meta-zeros-split": (200, [("content-type", "text/html")], _iso2022_page(
        b'&#' + b"0" * 600 + b'99;harset=iso-2022-jp', b"mzs")),
    "meta-spaces": (200, [("content-type", "text/html")], _iso2022_page(
        b" " * 600 + b'&#99;harset=iso-2022-jp', b"ms")),
    # A character reference of more than 4300 digits: html.unescape raised on it, and the
    # page went out unrewritten behind the no-partner CSP (fail closed); now read.
    "long-charref": (200, [("content-type", "text/html")],
                     b'<!DOCTYPE html><title>x</title><img src="&#' + b"9" * 5000 + b';">'
                     b'<img src="http://{h}.partner.example/lc.gif">'),
    "text-dictionary": (200, [("content-type", "text/plain"),
                              ("link", f"<http://{P}/hd.dict>; rel=compression-dictionary")], b"x"),
    # Every HTML body is gated, a partial one too.
    "html-206": (206, [("content-type", "text/html"), ("content-range", "bytes 0-79/80")],
                 f'<!DOCTYPE html><title>x</title><img src="http://{P}/p206.gif">'.encode()),
}


#: Speculation rules, against the TLS partner at $SPEC_PARTNER (an https origin no proxy
#: stands in front of: tests/support/tls_partner.py). {o}: that origin, {w}: who served it.
SPECULATION: dict[str, str] = {
    # A listed partner URL, and every link (a partner's too) matched by selector_matches.
    "spec-rules": ('<a href="{o}/{w}/doclink">x</a><script type="speculationrules">{{"prefetch":['
                   '{{"source":"list","urls":["{o}/{w}/listed"]}},'
                   '{{"where":{{"selector_matches":"a"}},"eagerness":"immediate"}}]}}</script>'),
    # Same-origin rules only: kept (prefetching the site's own pages discloses nothing).
    # Relative rules under a <base href> on another origin, one no partner declares ({u}: a
    # TLS server for it): the list URL and the matched link resolve there.
    "spec-base": ('<base href="{u}/{w}/"><a href="doclink">x</a><script type="speculationrules">'
                  '{{"prefetch":[{{"source":"list","urls":["listed"]}},'
                  '{{"where":{{"href_matches":"/*"}},"eagerness":"immediate"}}]}}</script>'),
    # The same rules before the <base>: the document's base changes after they were read.
    "spec-base-after": ('<a href="doclink">x</a><script type="speculationrules">'
                        '{{"prefetch":[{{"source":"list","urls":["listed"]}},'
                        '{{"where":{{"href_matches":"/*"}},"eagerness":"immediate"}}]}}</script>'
                        '<base href="{u}/{w}a/">'),
    # Bases on other origins before the banner (head) and after it (body): the gate's own
    # banner.css/banner.js and its form must still come from and post to the site.
    "banner-base-inhead": ('<base href="{u}/{w}b/"><base href="https://second.unknown.example/">'),
    "spec-local": ('<a href="{o}/{w}/notmatched">x</a><script type="speculationrules">{{"prefetch":['
                   '{{"source":"list","urls":["/next"]}},{{"where":{{"href_matches":"/*"}},'
                   '"eagerness":"immediate"}}]}}</script>'),
}


def page(name: str, who: str) -> bytes:
    h = f"{name}.{who}"
    if name in SPECULATION:
        markup = SPECULATION[name].format(o=os.environ.get("SPEC_PARTNER", ""),
                                          u=os.environ.get("SPEC_UNKNOWN", ""), w=who)
    else:
        markup = MARKUP[name].replace("{h}", h).replace("{H}", h.upper())
    if name.endswith("-inhead"):
        return (f"<!DOCTYPE html><html><head><title>{name}</title>{markup}</head><body>"
                f"<h1>{name}</h1><base href=\"https://third.unknown.example/\"></body>"
                f"</html>").encode()
    return (f"<!DOCTYPE html><html><head><title>{name}</title></head><body>"
            f"<h1>{name}</h1>{markup}</body></html>").encode()


async def site(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    who, _, name = scope["path"][1:].partition("/")
    status, headers, body = 404, [(b"content-type", b"text/html")], b"<p>not found</p>"
    if scope["path"] == "/own.css":
        h = scope["query_string"].decode().partition("=")[2]
        status, headers = 200, [(b"content-type", b"text/css")]
        body = (f"@import url(http://{h}.partner.example/oc.css); "
                f"body{{background:url(http://{h}.partner.example/ocb.gif)}}").encode()
    elif name in MARKUP or name in SPECULATION:
        status, body = 200, page(name, who)
    elif name in OTHER:
        h = f"{name}.{who}"
        st, hs, raw = OTHER[name]
        status = st
        headers = [(k.encode(), v.replace("{h}", h).encode()) for k, v in hs]
        body = raw.replace(b"{h}", h.encode())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    if name.endswith("-split"):  # (cut inside the padding)
        await send({"type": "http.response.body", "body": body[:400], "more_body": True})
        body = body[400:]
    await send({"type": "http.response.body", "body": body})


def create_app() -> ConsentMiddleware:
    return ConsentMiddleware(site, config=os.environ["FETCH_SITE_CONFIG"])
