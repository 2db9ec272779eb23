"""Pages for tests/browser/test_redteam_round4.py (red-team round 4, docs/rewriter.md): fetches
around the gate that no earlier round checked. `site` serves them as written, `create_app()`
through ConsentMiddleware (``FETCH_SITE_CONFIG`` names its partners.toml: one partner on
``*.partner.example``).

Every partner URL's host is ``NAME.WHO.partner.example`` (WHO: raw, off, report-only,
enforce), so a request is put down to its page and server by its host alone.

``/WHO/NAME`` is the page ``NAME``; ``/s/NAME/WHO`` the style sheet a quirks-mode page
``q-…`` links, served with the type its row names.
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
_XHTML = "http://www.w3.org/1999/xhtml"
_SVG = "http://www.w3.org/2000/svg"
_XLINK = "http://www.w3.org/1999/xlink"

#: name -> body markup of a standards-mode HTML page.
MARKUP: dict[str, str] = {
    # 1. srcdoc documents: the rewriter reads the attribute's HTML (decoded) as a document.
    "srcdoc-script-entities": ('<iframe srcdoc="&lt;script src=&quot;http://' + P
                               + '/se.js&quot;&gt;&lt;/script&gt;"></iframe>'),
    "srcdoc-base-entities": ('<iframe srcdoc="&lt;base href=&quot;http&#58;//' + P
                             + '/&quot;&gt;&lt;img src=&quot;be.gif&quot;&gt;"></iframe>'),
    "srcdoc-protocol-relative": '<iframe srcdoc="<img src=//' + P + '/pr.gif>"></iframe>',
    "srcdoc-nested": ("<iframe srcdoc=\"<iframe srcdoc='&lt;img src=http://" + P
                      + "/nn.gif&gt;'></iframe>\"></iframe>"),
    "srcdoc-refresh": ('<iframe srcdoc="<meta http-equiv=refresh content=0;url=http://' + P
                       + '/sr>"></iframe>'),
    "srcdoc-style-import": ('<iframe srcdoc="<style>@import &quot;http://' + P
                            + '/si.css&quot;;</style>"></iframe>'),
    # 4. Other fetch vectors.
    "preload-image": f'<link rel="preload" as="image" href="http://{P}/pl.gif">',
    "prefetch": f'<link rel="prefetch" href="http://{P}/pf.html">',
    "preload-rel-ff": f'<link rel="\x0cPRELOAD\x0c" as="image" href="http://{P}/pff.gif">',
    "srcset-odd-space": f'<img srcset="\x0c\n http://{P}/so.gif\t1x ,/own.gif 2x">',
    "srcset-data-comma": f'<img srcset="data:image/gif;base64,R0lG 1x,http://{P}/sd.gif 2x">',
    "object-data": f'<object data="http://{P}/od.gif" type="image/gif"></object>',
    "embed-src": f'<embed src="http://{P}/es.gif" type="image/gif">',
    "video-poster": f'<video poster="http://{P}/vp.gif"></video>',
    "video-track": (f'<video src="/own.webm"><track default kind="captions" src="http://{P}/t.vtt">'
                    '</video>'),
    "video-source": f'<video autoplay muted><source src="http://{P}/vs.mp4"></video>',
    "svg-feimage": (f'<svg width="10" height="10"><filter id="f"><feImage href="http://{P}/fe.gif"/>'
                    '</filter><rect filter="url(#f)" width="10" height="10"/></svg>'),
    "svg-use-external": f'<svg><use href="http://{P}/sprite.svg#i"/></svg>',
    "svg-set-href": ('<svg width="10" height="10"><image width="10" height="10">'
                     f'<set attributeName="href" to="http://{P}/set.gif"/></image></svg>'),
    "svg-animate-href": ('<svg width="10" height="10"><image width="10" height="10">'
                         f'<animate attributeName="href" values="http://{P}/anim.gif" dur="1s"/>'
                         '</image></svg>'),
    "svg-set-xlink": ('<svg width="10" height="10"><image width="10" height="10">'
                      f'<set attributeName="xlink:href" to="http://{P}/setx.gif"/></image></svg>'),
    "svg-set-feimage": ('<svg width="10" height="10"><filter id="g"><feImage>'
                        f'<set attributeName="href" to="http://{P}/setfe.gif"/></feImage></filter>'
                        '<rect filter="url(#g)" width="10" height="10"/></svg>'),
    "style-image-set": (f'<div style="background-image:image-set(\'http://{P}/is.gif\' 1x);'
                        'width:9px;height:9px"></div>'),
    "style-webkit-image-set": (f'<div style="background-image:-webkit-image-set(url(http://{P}'
                               '/wis.gif) 1x);width:9px;height:9px"></div>'),
    "style-import": f'<style>@import url(http://{P}/ii.css);</style>',
    "a-ping-click": (f'<a id="a" href="#x" ping="http://{P}/ping">x</a>'
                     '<script>document.getElementById("a").click()</script>'),
    "area-ping-click": (f'<map name="m"><area id="a" shape="rect" coords="0,0,9,9" href="#x" '
                        f'ping="http://{P}/ap"></map><img usemap="#m" src="/own.gif">'
                        '<script>document.getElementById("a").click()</script>'),
    "refresh-quoted": f'<meta http-equiv="refresh" content="0;URL=\'http://{P}/rq\'">',
    "refresh-spaces": f'<meta http-equiv="refresh" content="0 ; url = http://{P}/rs">',
    "refresh-comma": f'<meta http-equiv="refresh" content="0,http://{P}/rc">',
    "refresh-bare": f'<meta http-equiv="refresh" content="0 http://{P}/rb">',
    "refresh-fraction": f'<meta http-equiv="refresh" content=".5;url=http://{P}/rf">',
    "refresh-newline": f'<meta http-equiv="refresh" content="0;\nurl=http://{P}/rn">',
    "refresh-svg": f'<svg><meta http-equiv="refresh" content="0;url=http://{P}/rsv"></svg>',
    "refresh-math": f'<math><mi><meta http-equiv="refresh" content="0;url=http://{P}/rm"></mi></math>',
    "importmap": ('<script type="importmap">{"imports":{"lib":"http://' + P + '/im.js"}}</script>'
                  '<script type="module">import "lib";</script>'),
    # An SVG script's text is markup (references decoded), and Chromium 156 registers its map
    # (found by review, tests/test_review_foreign_importmap.py).
    "importmap-svg": ('<svg><script type="importmap">{"imports":{"lib":"http://' + P
                      + '/ims.js"}}</script></svg><script type="module">import "lib";</script>'),
    "importmap-svg-ref": ('<svg><script type="importmap">{"imports":{"lib":"http:&#x2F;&#x2F;' + P
                          + '/imr.js"}}</script></svg><script type="module">import "lib";</script>'),
    "importmap-modulepreload": ('<script type="importmap">{"imports":{"lib":"http://' + P
                                + '/imp.js"}}</script><link rel="modulepreload" href="lib">'),
    "input-image": f'<input type="image" src="http://{P}/ii.gif">',
    "link-icon": f'<link rel="icon" href="http://{P}/fav.ico">',
    "form-autosubmit": (f'<form action="http://{P}/f" method="post"><input name="a" value="1">'
                        '</form><script>document.forms[0].submit()</script>'),
}

#: name -> (Content-Type, body) of XHTML and SVG documents (an XML parser reads them).
XML: dict[str, tuple[str, str]] = {
    "xhtml-script": ("application/xhtml+xml",
                     f'<html xmlns="{_XHTML}"><head><title>x</title>'
                     f'<script src="http://{P}/xs.js"></script></head><body/></html>'),
    "xhtml-base": ("application/xhtml+xml",
                   f'<html xmlns="{_XHTML}"><head><base href="http://{P}/"/></head>'
                   '<body><img src="xb.gif"/></body></html>'),
    "xhtml-cdata": ("application/xhtml+xml",
                    f'<html xmlns="{_XHTML}"><body><script>//<![CDATA[\n'
                    f'new Image().src = "http://{P}/xc.gif";\n//]]></script></body></html>'),
    "xhtml-svg-script": ("application/xhtml+xml",
                         f'<html xmlns="{_XHTML}"><body><svg:svg xmlns:svg="{_SVG}" '
                         f'xmlns:xl="{_XLINK}"><svg:script xl:href="http://{P}/ss.js"/></svg:svg>'
                         '</body></html>'),
    # (review) an import map in a document the gate cannot rewrite: the module fetch is
    # script-src's, and such a body goes out behind the enforced no-partner CSP.
    "xhtml-importmap": ("application/xhtml+xml",
                        f'<html xmlns="{_XHTML}"><head><script type="importmap">'
                        '{"imports":{"lib":"http:&#x2F;&#x2F;' + P + '/xim.js"}}</script>'
                        '<script type="module">import "lib";</script></head><body/></html>'),
    "xhtml-img": ("application/xhtml+xml",
                  f'<html xmlns="{_XHTML}"><body><img src="http://{P}/xi.gif"/></body></html>'),
    # A meta refresh built by an internal entity (the XML parser expands it; the http-equiv
    # name comes from a character reference in the entity's value).
    "xhtml-entity-refresh": ("application/xhtml+xml",
                             '<!DOCTYPE html [<!ENTITY m "&#60;meta &#104;ttp-equiv=\'refresh\' '
                             f'content=\'0;url=http://{P}/er\'/&#62;">]>'
                             f'<html xmlns="{_XHTML}"><head>&m;</head><body/></html>'),
    "xhtml-refresh": ("application/xhtml+xml",
                      f'<html xmlns="{_XHTML}"><head><meta http-equiv="refresh" '
                      f'content="0;url=http://{P}/xr"/></head><body/></html>'),
    "xhtml-prefetch": ("application/xhtml+xml",
                       f'<html xmlns="{_XHTML}"><head><link rel="prefetch" href="http://{P}/xp"/>'
                       '</head><body/></html>'),
    "xhtml-a-ping": ("application/xhtml+xml",
                     f'<html xmlns="{_XHTML}"><body><a id="a" href="#x" ping="http://{P}/xpg">x</a>'
                     '<script>document.getElementById("a").click()</script></body></html>'),
    "svg-doc-image": ("image/svg+xml",
                      f'<svg xmlns="{_SVG}" width="9" height="9"><image href="http://{P}/sdi.gif" '
                      'width="9" height="9"/></svg>'),
}

#: name -> (Content-Type or None) of the sheet a quirks-mode page links (same origin).
QUIRKS: dict[str, str | None] = {
    "q-plain": "text/plain",
    "q-html": "text/html",
    "q-json": "application/json",
    "q-gif": "image/gif",
    "q-xml": "application/xml",
    "q-js": "text/javascript",
}

#: name -> (headers, markup) of an HTML page whose response headers fetch.
HEADERS: dict[str, tuple[list[tuple[str, str]], str]] = {
    "link-header-preload": ([("link", f"<http://{P}/lh.gif>; rel=preload; as=image")], "<p>x</p>"),
}

_SHEET = ("@import url(http://{h}.partner.example/qi.css);\n"
          "body {{ background: url(http://{h}.partner.example/qb.gif) }}\n"
          ".own {{ color: rgb(0, 128, 0) }}\n")


def _rules(name: str, who: str) -> str:
    return ('{"prefetch":[{"source":"list","urls":["' + os.environ.get("SPEC_PARTNER", "")
            + f'/{who}/{name}"],"eagerness":"immediate"}}]}}')


#: name -> (Content-Type, body) of documents the gate cannot rewrite (it sends them behind the
#: enforced no-partner CSP) holding a speculation rule set that lists the TLS partner
#: (``SPEC_PARTNER``): no CSP directive governs a prefetch.
SPECULATION: dict[str, tuple[str, str]] = {
    "xhtml-spec": ("application/xhtml+xml",
                   f'<html xmlns="{_XHTML}"><head><title>x</title><script type="speculationrules">'
                   '{rules}</script></head><body><p>x</p></body></html>'),
    "utf16-spec": ("text/html; charset=utf-16le",
                   '<!DOCTYPE html><html><head><title>x</title><script type="speculationrules">'
                   '{rules}</script></head><body><p>x</p></body></html>'),
    "svg-spec": ("image/svg+xml",
                 f'<svg xmlns="{_SVG}"><foreignObject><html xmlns="{_XHTML}"><script '
                 'type="speculationrules">{rules}</script></html></foreignObject></svg>'),
}


def page(name: str, who: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    h = f"{name}.{who}"
    if name in SPECULATION:
        content_type, body = SPECULATION[name]
        body = body.replace("{rules}", _rules(name, who))
        return 200, [(b"content-type", content_type.encode())], body.encode(
            "utf-16le" if "utf-16" in content_type else "utf-8")
    html = [(b"content-type", b"text/html; charset=utf-8")]
    if name in MARKUP:
        markup = MARKUP[name].replace("{h}", h)
        return 200, html, (f"<!DOCTYPE html><html><head><title>{name}</title></head><body>"
                           f"<h1>{name}</h1>{markup}</body></html>").encode()
    if name in XML:
        content_type, body = XML[name]
        return 200, [(b"content-type", content_type.encode())], body.replace("{h}", h).encode()
    if name in QUIRKS:
        return 200, html, (f'<html><head><title>{name}</title><link rel="stylesheet" '
                           f'href="/s/{name}/{who}"></head><body><h1 class="own">{name}</h1>'
                           '</body></html>').encode()
    if name in HEADERS:
        extra, markup = HEADERS[name]
        return 200, html + [(k.encode(), v.replace("{h}", h).encode()) for k, v in extra], (
            f"<!DOCTYPE html><html><head><title>{name}</title></head><body>{markup}"
            "</body></html>").encode()
    return 404, html, b"<p>not found</p>"


async def site(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    first, _, rest = scope["path"][1:].partition("/")
    if first == "s":
        name, _, who = rest.partition("/")
        content_type = QUIRKS.get(name)
        headers = [] if content_type is None else [(b"content-type", content_type.encode())]
        status, body = 200, _SHEET.format(h=f"{name}.{who}").encode()
    elif scope["path"] == "/own.gif":
        status, headers, body = 200, [(b"content-type", b"image/gif")], _GIF
    else:
        status, headers, body = page(rest, first)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app() -> ConsentMiddleware:
    return ConsentMiddleware(site, config=os.environ["FETCH_SITE_CONFIG"])
