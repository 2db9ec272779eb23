"""Pages whose response headers (not their markup) make Chromium contact the partner:
`site` serves them as written, `create_app()` through ConsentMiddleware; and pages in
charsets the byte-level rewriter cannot read.

``FETCH_SITE_CONFIG`` names the partners.toml (the partner's host is ``tracker.partner.example``).
"""

from __future__ import annotations

import os
from typing import Any

from middleware import ConsentMiddleware
from tests.asgi_helpers import answer_lifespan

H = b"tracker.partner.example"

#: name -> headers ({w}: who served which page). Each makes Chromium contact the partner.
VECTORS: dict[str, list[tuple[bytes, bytes]]] = {
    # The site's own policy: the violation report (page URL, referrer) is POSTed there.
    "csp-report-uri": [(b"content-security-policy", b"img-src 'none'; report-uri http://" + H
                        + b"/{w}/report")],
    # The rule set itself is fetched from the partner (whatever it then prefetches).
    "speculation-rules": [(b"speculation-rules", b'"http://' + H + b'/{w}/rules.json"')],
    # Chromium preloads a Link header's imagesrcset.
    "link-imagesrcset": [(b"link", b'</a.gif>; rel=preload; as=image; imagesrcset="http://' + H
                          + b'/{w}/lis.gif 1x"')],
}
PAGE = (b"<!DOCTYPE html><html><head><title>headers</title></head><body><h1>headers</h1>"
        b"<img src='/pixel.gif' alt=''></body></html>")

_REFRESH = ('<!DOCTYPE html><html><head><meta http-equiv="refresh" content="0;url=http://'
            + H.decode() + '/{w}/r"><title>charset</title></head><body>x</body></html>')
#: In ISO-2022-JP, ESC $ B makes "<!--" two kanji: a comment to a byte reader, not to Chromium.
_ESC_COMMENT = (b'<!DOCTYPE html><html><head>{meta}<title>charset</title></head><body><p>x</p>'
                b'\x1b$B<!--\x1b(B<img src="http://' + H + b'/{w}/j.gif">\x1b$B-->\x1b(B'
                b"</body></html>")

#: Pages whose charset the byte-level rewriter cannot read: name -> (headers, body).
CHARSETS: dict[str, tuple[list[tuple[bytes, bytes]], bytes]] = {
    "utf16-refresh": ([(b"content-type", b"text/html; charset=utf-16le")],
                      _REFRESH.encode("utf-16-le")),
    "utf16-bom-refresh": ([(b"content-type", b"text/html; charset=utf-8")],
                          b"\xfe\xff" + _REFRESH.encode("utf-16-be")),
    "iso2022-refresh-escaped": ([(b"content-type", b"text/html; charset=iso-2022-jp")],
                                _REFRESH.replace("http-equiv", "http-\x1b(Bequiv").encode()),
    "iso2022-meta-comment": ([(b"content-type", b"text/html")],
                             _ESC_COMMENT.replace(b"{meta}", b'<meta charset="iso-2022-jp">')),
    # The content attribute's value is read with its character references decoded.
    "iso2022-meta-charref": ([(b"content-type", b"text/html")], _ESC_COMMENT.replace(
        b"{meta}", b'<meta http-equiv="Content-Type" content="text/html; &#99;harset=iso-2022-jp">')),
    "last-content-type": ([(b"content-type", b"text/html; charset=utf-8"),
                           (b"content-type", b"text/html; charset=iso-2022-jp")],
                          _ESC_COMMENT.replace(b"{meta}", b"")),
}


async def site(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    who, _, name = scope["path"][1:].partition("/")
    w = f"{who}/{name}"
    if name in CHARSETS:
        headers, body = CHARSETS[name]
        marked = body.replace(b"{w}", w.encode()).replace("{w}".encode("utf-16-le"),
                                                           w.encode("utf-16-le"))
        marked = marked.replace("{w}".encode("utf-16-be"), w.encode("utf-16-be"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": marked})
        return
    extra = [(k, v.replace(b"{w}", w.encode())) for k, v in VECTORS.get(name, [])]
    await send({"type": "http.response.start", "status": 200 if name in VECTORS else 404,
                "headers": [(b"content-type", b"text/html; charset=utf-8"), *extra]})
    await send({"type": "http.response.body", "body": PAGE})


def create_app() -> ConsentMiddleware:
    """uvicorn --factory: the config path comes from the environment of the server process."""
    return ConsentMiddleware(site, config=os.environ["FETCH_SITE_CONFIG"])
