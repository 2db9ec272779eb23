"""A site whose pages load one image and one script from a host given in the path, both
hard-coded in the markup (``/hard/<host>``, the rewriter judges them) and built by script
(``/run/<host>``, only the CSP does), wrapped by ConsentMiddleware (``APEX_SITE_CONFIG``).

Each element reports ``loaded`` or ``blocked`` in ``window.outcome[kind]``.
"""

from __future__ import annotations

import os
from typing import Any

from middleware import ConsentMiddleware
from tests.asgi_helpers import answer_lifespan

_REPORT = "window.outcome = window.outcome || {};"


def hard_page(host: str) -> bytes:
    return (f"<!DOCTYPE html><html><head><title>{host}</title><script>{_REPORT}</script>"
            f"<script src='http://{host}/s.js' onload=\"outcome.script='loaded'\""
            f" onerror=\"outcome.script='blocked'\"></script></head><body>"
            f"<img src='http://{host}/p.gif' onload=\"outcome.img='loaded'\""
            f" onerror=\"outcome.img='blocked'\"></body></html>").encode()


def runtime_page(host: str) -> bytes:
    cut = len(host) // 2  # spelled in two pieces: out of the rewriter's sight
    return (f"<!DOCTYPE html><html><head><title>{host}</title></head><body><script>{_REPORT}"
            f'const H = "{host[:cut]}" + "{host[cut:]}";'
            'const s = document.createElement("script"); s.src = "http://" + H + "/s.js";'
            ' s.onload = () => { outcome.script = "loaded"; };'
            ' s.onerror = () => { outcome.script = "blocked"; }; document.head.append(s);'
            'const i = new Image(); i.onload = () => { outcome.img = "loaded"; };'
            ' i.onerror = () => { outcome.img = "blocked"; }; i.src = "http://" + H + "/p.gif";'
            "</script></body></html>").encode()


async def site(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await answer_lifespan(receive, send)
        return
    kind, _, host = scope["path"].strip("/").partition("/")
    status, body = 200, (hard_page(host) if kind == "hard" else runtime_page(host))
    if kind not in ("hard", "run") or not host:
        status, body = 404, b"<!DOCTYPE html><p>not found</p>"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/html; charset=utf-8")]})
    await send({"type": "http.response.body", "body": body})


def create_app() -> ConsentMiddleware:
    """uvicorn --factory: the config path comes from the environment of the server process."""
    return ConsentMiddleware(site, config=os.environ["APEX_SITE_CONFIG"])
