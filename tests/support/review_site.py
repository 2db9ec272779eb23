"""A page with a tracker no partner declares and a cookie nobody declares (discovery tests)."""

from __future__ import annotations

from typing import Any

PAGE = (b"<!doctype html><html><head><title>Travel notes</title></head><body>"
        b"<h1>Travel notes</h1><p>An article.</p>"
        b"<img src='https://pixel.tracker-unknown.example/p.gif?id=1' width=1 height=1>"
        b"</body></html>")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"set-cookie", b"_uw_id=abc123; Path=/; Max-Age=3600"),
        (b"set-cookie", b"__gads=ok; Path=/")]})
    await send({"type": "http.response.body", "body": PAGE})
