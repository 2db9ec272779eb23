"""Pages whose response headers (not their markup) make Chromium contact the partner:
`site` serves them as written, `create_app()` through ConsentMiddleware (enforced CSP).

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


async def site(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    who, _, name = scope["path"][1:].partition("/")
    extra = [(k, v.replace(b"{w}", f"{who}/{name}".encode())) for k, v in VECTORS.get(name, [])]
    await send({"type": "http.response.start", "status": 200 if name in VECTORS else 404,
                "headers": [(b"content-type", b"text/html; charset=utf-8"), *extra]})
    await send({"type": "http.response.body", "body": PAGE})


def create_app() -> ConsentMiddleware:
    """uvicorn --factory: the config path comes from the environment of the server process."""
    return ConsentMiddleware(site, config=os.environ["FETCH_SITE_CONFIG"])
