"""A bare ASGI application: no framework, just the ASGI callable.

``/`` is one HTML page sent in a single body message. ``/stream`` sends a page in many small
``http.response.body`` messages with ``more_body=True``, split at awkward places (inside tags,
attribute values and URLs) to exercise consent-gate's streaming rewriter. Anything else is 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HTML_HEADERS = [(b"content-type", b"text/html; charset=utf-8")]

INDEX = b"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Plain ASGI example</title>
</head>
<body>
<h1>Plain ASGI example</h1>
<p>A page served by a bare ASGI callable. See also the <a href="/stream">streamed page</a>.</p>
<p><a href="https://twitter.com/share" class="twitter-share-button">Post on X</a></p>
</body>
</html>
"""


def stream_page() -> bytes:
    items = "".join(
        f"<li>Station {i}: the train stops for {i % 3 + 1} minute(s).</li>\n" for i in range(1, 41)
    )
    return (
        """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Streamed page</title>
</head>
<body>
<h1>Streamed page</h1>
<p>This page arrives in many small chunks.</p>
<ol>
"""
        + items
        + """</ol>
<p><a href="https://twitter.com/share" class="twitter-share-button">Post on X</a></p>
<script async src="https://platform.twitter.com/widgets.js" charset="utf-8"></script>
<p>The end.</p>
</body>
</html>
"""
    ).encode()


STREAM = stream_page()
CHUNK = 37  # small and odd, so chunk boundaries fall inside tags and URLs


async def _read_body(receive: Receive) -> None:
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more = message.get("more_body", False)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return

    await _read_body(receive)
    path = scope["path"]
    head = scope["method"] == "HEAD"

    if path == "/":
        await send({"type": "http.response.start", "status": 200, "headers": HTML_HEADERS})
        await send({"type": "http.response.body", "body": b"" if head else INDEX})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": HTML_HEADERS})
        if not head:
            for i in range(0, len(STREAM), CHUNK):
                await send(
                    {"type": "http.response.body", "body": STREAM[i : i + CHUNK], "more_body": True}
                )
                await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    else:
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": b"" if head else b"Not found\n"})
