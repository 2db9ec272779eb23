"""Pages and style sheets for tests/browser/test_redteam_css.py: the site's own style sheets
whose fetches name the partner. `site` serves them as written, `create_app()` through
ConsentMiddleware (``CSS_SITE_CONFIG`` names its partners.toml: one partner on
``*.partner.example``).

Every partner URL's host is ``NAME-MODE.WHO.partner.example`` (the page's name, ``p`` or
``q`` for its mode, and which server served it), so a request is put down to its page by its
host alone.

``/p/NAME/WHO`` is a standards-mode page with ``<link rel=stylesheet href=/s/NAME/p/WHO.css>``;
``/q/NAME/WHO`` the same page in quirks mode (no doctype). ``/s/...`` serves the sheet with
the headers of ``TYPES[NAME]``, cacheable for an hour (``Cache-Control: max-age=3600``,
an ETag): a cache that hands one visitor's sheet to another would show.
"""

from __future__ import annotations

import gzip
import os
from typing import Any

from middleware import ConsentMiddleware
from tests.asgi_helpers import answer_lifespan

#: A sheet that fetches the partner three ways: @import, url() and image-set().
_SHEET = ('@import url(http://{h}.partner.example/i.css);\n'
          'body {{ background: url("http://{h}.partner.example/b.gif") }}\n'
          '.x {{ background-image: image-set("http://{h}.partner.example/s.gif" 1x); '
          'width: 10px; height: 10px }}\n'
          '.own {{ color: rgb(0, 128, 0) }}\n')

#: name -> (Content-Type or None, Content-Encoding or None, chunks: the sheet cut into
#: messages by these sizes, () for one message)
TYPES: dict[str, tuple[str | None, str | None, tuple[int, ...]]] = {
    "css": ("text/css", None, ()),
    "css-chunked": ("text/css; charset=utf-8", None, (7, 40, 3)),
    "css-gzip": ("text/css", "gzip", ()),
    "css-cache": ("text/css", None, ()),
    # Measured: Chromium 156 applies none of these in a standards-mode page (the MIME type
    # check), so the gate passes them untouched; a quirks-mode page is another matter.
    "untyped": (None, None, ()),
    "plain": ("text/plain", None, ()),
    "untyped-nosniff": (None, None, ()),
    "x-unknown": ("application/x-unknown-content-type", None, ()),
}


def sheet(h: str) -> bytes:
    return _SHEET.format(h=h).encode()


def page(name: str, who: str, *, quirks: bool) -> bytes:
    doctype = "" if quirks else "<!DOCTYPE html>"
    return (f'{doctype}<html><head><title>{name}</title>'
            f'<link rel="stylesheet" href="/s/{name}/{"q" if quirks else "p"}/{who}.css"></head>'
            f'<body><h1 class="own">{name}</h1><div class="x"></div></body></html>').encode()


async def site(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    kind, _, rest = scope["path"][1:].partition("/")
    name, _, who = rest.partition("/")
    status: int = 404
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"text/html")]
    chunks: list[bytes] = [b"<p>not found</p>"]
    if kind in ("p", "q") and name in TYPES:
        status, chunks = 200, [page(name, who, quirks=kind == "q")]
    elif kind == "s" and name in TYPES and who.endswith(".css") and who[:2] in ("p/", "q/"):
        content_type, coding, sizes = TYPES[name]
        body = sheet(f"{name}-{who[0]}.{who[2:].removesuffix('.css')}")
        headers = [(b"cache-control", b"max-age=3600"), (b"etag", b'"v1"')]
        if content_type is not None:
            headers.append((b"content-type", content_type.encode()))
        if name.endswith("-nosniff"):
            headers.append((b"x-content-type-options", b"nosniff"))
        if coding == "gzip":
            body = gzip.compress(body)
            headers.append((b"content-encoding", b"gzip"))
        status, chunks = 200, []
        for size in sizes:
            chunks.append(body[:size])
            body = body[size:]
        chunks.append(body)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    for i, chunk in enumerate(chunks):
        await send({"type": "http.response.body", "body": chunk, "more_body": i < len(chunks) - 1})


def create_app() -> ConsentMiddleware:
    return ConsentMiddleware(site, config=os.environ["CSS_SITE_CONFIG"])
