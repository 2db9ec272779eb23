"""A site whose pages reach a partner only at run time (URLs built by script, which the
rewriter never reads), wrapped by ConsentMiddleware: what the CSP alone must stop.

``CSP_SITE_CONFIG`` names the partners.toml (the partner's host is ``tracker.partner.example``).
"""

from __future__ import annotations

import os
from typing import Any

from middleware import ConsentMiddleware
from tests.asgi_helpers import answer_lifespan

#: Built at run time in the page, so no partner URL is in the markup.
_HOST_JS = 'const H = "tracker.partner" + ".example";'

#: name -> script body. Each page tries one way of reaching the partner.
VECTORS: dict[str, str] = {
    "fetch": 'fetch("http://" + H + "/fetch").catch(() => {});',
    "xhr": 'const x = new XMLHttpRequest(); x.open("GET", "http://" + H + "/xhr"); x.send();',
    "beacon": 'navigator.sendBeacon("http://" + H + "/beacon", "data");',
    "img": 'new Image().src = "http://" + H + "/pixel.gif";',
    "script": 'const s = document.createElement("script"); s.src = "http://" + H + "/s.js";'
              " document.head.append(s);",
    "iframe": 'const f = document.createElement("iframe"); f.src = "http://" + H + "/frame";'
              " document.body.append(f);",
    "iframe-https": 'const f = document.createElement("iframe"); f.src = "https://" + H + "/f";'
                    " document.body.append(f);",
    "embed": 'const e = document.createElement("embed"); e.src = "http://" + H + "/embed";'
             " document.body.append(e);",
    "object": 'const o = document.createElement("object"); o.data = "http://" + H + "/obj";'
              " document.body.append(o);",
    "link-prefetch": 'const l = document.createElement("link"); l.rel = "prefetch";'
                     ' l.href = "http://" + H + "/prefetch"; document.head.append(l);',
    "link-preload": 'const l = document.createElement("link"); l.rel = "preload"; l.as = "script";'
                    ' l.href = "http://" + H + "/preload.js"; document.head.append(l);',
    "link-preconnect": 'const l = document.createElement("link"); l.rel = "preconnect";'
                       ' l.href = "https://" + H; document.head.append(l);',
    "link-dns-prefetch": 'const l = document.createElement("link"); l.rel = "dns-prefetch";'
                         ' l.href = "https://" + H; document.head.append(l);',
    "stylesheet": 'const l = document.createElement("link"); l.rel = "stylesheet";'
                  ' l.href = "http://" + H + "/s.css"; document.head.append(l);',
    "css-import": 'const st = document.createElement("style");'
                  ' st.textContent = "@import url(http://" + H + "/i.css);"; document.head.append(st);',
    "css-background": 'document.body.style.backgroundImage = "url(http://" + H + "/bg.png)";',
    "font": 'new FontFace("x", "url(http://" + H + "/f.woff2)").load().catch(() => {});',
    "video-poster": 'const v = document.createElement("video"); v.poster = "http://" + H + "/p.png";'
                    " document.body.append(v);",
    "audio": 'const a = document.createElement("audio"); a.src = "http://" + H + "/a.mp3";'
             " a.preload = 'auto'; document.body.append(a);",
    "worker": 'try { new Worker("http://" + H + "/w.js"); } catch (e) {}',
    "websocket": 'try { new WebSocket("ws://" + H + "/ws"); } catch (e) {}',
    "eventsource": 'try { new EventSource("http://" + H + "/es"); } catch (e) {}',
    "base-href": 'const b = document.createElement("base"); b.href = "http://" + H + "/";'
                 ' document.head.prepend(b); new Image().src = "relative.gif";',
    "form-post": 'const fm = document.createElement("form"); fm.method = "post";'
                 ' fm.action = "http://" + H + "/collect"; document.body.append(fm); fm.submit();',
    "meta-refresh": 'const m = document.createElement("meta"); m.httpEquiv = "refresh";'
                    ' m.content = "0;url=http://" + H + "/refresh"; document.head.append(m);',
    "location": 'location.href = "http://" + H + "/navigate";',
    "anchor-click": 'const an = document.createElement("a"); an.href = "http://" + H + "/click";'
                    " document.body.append(an); an.click();",
    "window-open": 'window.open("http://" + H + "/popup");',
    "anchor-ping": 'const ap = document.createElement("a"); ap.href = "/"; ap.ping = "http://" + H'
                   ' + "/ping"; document.body.append(ap); ap.click();',
}


#: name -> script body for a page with consent (``H`` is the partner host under test): what
#: a consented partner may still do under our policy. ``window.outcome`` says whether the
#: script or image loaded; the proxy says whether the request left.
CONSENTED_VECTORS: dict[str, str] = {
    "script": 'const s = document.createElement("script"); s.src = "http://" + H + "/s.js";'
              ' s.onload = () => { window.outcome = "loaded"; };'
              ' s.onerror = () => { window.outcome = "blocked"; }; document.head.append(s);',
    "img": 'const i = new Image(); i.onload = () => { window.outcome = "loaded"; };'
           ' i.onerror = () => { window.outcome = "blocked"; }; i.src = "http://" + H + "/p.gif";',
    "object": 'const o = document.createElement("object"); o.data = "http://" + H + "/obj";'
              " document.body.append(o);",
    "form-post": 'const fm = document.createElement("form"); fm.method = "post";'
                 ' fm.action = "http://" + H + "/collect"; document.body.append(fm); fm.submit();',
}


#: name -> markup (``{host}`` filled in) for a page with consent whose partner tag is in the
#: markup, so the rewriter judges it before the CSP does; ``window.outcome`` as above (not
#: set when the rewriter took the tag out).
HARD_VECTORS: dict[str, str] = {
    "script": "<script src='http://{host}/s.js' onload=\"window.outcome='loaded'\""
              " onerror=\"window.outcome='blocked'\"></script>",
    "img": "<img src='http://{host}/p.gif' onload=\"window.outcome='loaded'\""
           " onerror=\"window.outcome='blocked'\">",
}


def _split_host(host: str) -> str:
    """``host`` as a JavaScript expression that spells it in two pieces (out of the rewriter's sight)."""
    cut = len(host) // 2
    return f'const H = "{host[:cut]}" + "{host[cut:]}";'


def consented_page(name: str, host: str) -> bytes:
    return (f"<!DOCTYPE html><html><head><title>{name}</title></head><body><h1>{name}</h1>"
            f"<script>{_split_host(host)} {CONSENTED_VECTORS[name]}</script></body></html>").encode()


def hard_page(name: str, host: str) -> bytes:
    return (f"<!DOCTYPE html><html><head><title>{name}</title></head><body><h1>{name}</h1>"
            f"{HARD_VECTORS[name].format(host=host)}</body></html>").encode()


def page(name: str) -> bytes:
    script = VECTORS[name]
    return (f"<!DOCTYPE html><html><head><title>{name}</title></head><body><h1>{name}</h1>"
            f"<script>{_HOST_JS} {script}</script></body></html>").encode()


async def site(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    path = scope["path"]
    headers = [(b"content-type", b"text/html; charset=utf-8")]
    status = 200
    if path.startswith("/v/") and path[3:] in VECTORS:
        body = page(path[3:])
    elif path.startswith("/c/") and path.count("/") == 3 and path.split("/")[2] in CONSENTED_VECTORS:
        body = consented_page(path.split("/")[2], path.split("/")[3])  # /c/<vector>/<host>
    elif path.startswith("/h/") and path.count("/") == 3 and path.split("/")[2] in HARD_VECTORS:
        body = hard_page(path.split("/")[2], path.split("/")[3])  # /h/<vector>/<host>
    elif path == "/untyped":  # no Content-Type: the browser sniffs it
        body = (b"<!DOCTYPE html><html><body><img src='http://tracker.partner.example/untyped.gif'>"
                b"</body></html>")
        headers = []
    elif path == "/untyped-nosniff":  # no Content-Type, nosniff: rendered as text
        body = (b"<!DOCTYPE html><html><body><img src='http://tracker.partner.example/nosniff.gif'>"
                b"</body></html>")
        headers = [(b"x-content-type-options", b"nosniff")]
    elif path == "/own-code":  # the site's own inline code, through our policy's fallbacks
        body = (b"<!DOCTYPE html><html><head><style>h1 { color: rgb(1, 2, 3); }</style></head>"
                b"<body><h1 style='margin-left: 7px'>own</h1><script>window.ran = ['inline'];"
                b" window.ran.push(eval('\"eval\"')); window.ran.push(new Function("
                b"'return \"function\"')());</script>"
                b"<script src='data:text/javascript,window.ran.push(%22data%22)'></script>"
                b"<script src='/own.js'></script></body></html>")
    elif path == "/own.js":
        body = b"window.ran.push('self');"
        headers = [(b"content-type", b"text/javascript")]
    elif path == "/csp-probe":  # the site's own CSP with the directives no browser ships
        body = b"<!DOCTYPE html><html><body><p>probe</p></body></html>"
        headers.append((b"content-security-policy", b"prefetch-src 'self'; navigate-to 'self'"))
    elif path == "/xhtml":
        body = (b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body><textarea>'
                b'<img src="http://tracker.partner.example/xhtml.gif"/></textarea></body></html>')
        headers = [(b"content-type", b"application/xhtml+xml")]
    else:
        status = 404
        body = (b"<!DOCTYPE html><html><head><title>Not found</title><script async "
                b"src='http://tracker.partner.example/ads.js'></script></head><body>"
                b"<h1>Not found</h1><img src='http://tracker.partner.example/404.gif'></body></html>")
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def create_app() -> ConsentMiddleware:
    """uvicorn --factory: the config path comes from the environment of the server process."""
    return ConsentMiddleware(site, config=os.environ["CSP_SITE_CONFIG"])
