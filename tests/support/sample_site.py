"""A tiny plain-ASGI site for infrastructure tests (no dependencies).

Run it with ``start_uvicorn("tests.support.sample_site:app")``.

* ``/``           page referencing three partner hosts (https script, http image,
                  protocol-relative script) and one same-origin image
* ``/local.gif``  same-origin 1x1 GIF
* ``/blank``      empty page
* ``/_hits``      JSON list of the paths this process served (to prove a request
                  came directly, not through the proxy)
* ``/_env``       JSON of the ``SAMPLE_SITE_*`` environment variables
* ``/_gc``        JSON ``{"pid": ..., "threshold": [...]}``: the serving process and its
                  ``gc.get_threshold()``
* ``/_heap``      JSON ``{"pid": ..., "faults": N, "applied": B}``: the page faults
                  (``ru_minflt``) of 10 cycles of allocating and freeing 1 MB as 32 KB
                  blocks, after one cycle to grow the heap, and the trim threshold this
                  process set (glibc's heap trim: ``middleware.malloc``)
"""

from __future__ import annotations

import gc
import json
import os
import resource
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PARTNER_PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sample site</title>
<script src="https://partner.example/x.js"></script>
<style>body{font-family:sans-serif;margin:2rem}</style>
</head>
<body>
<h1 id="title">Sample site</h1>
<p>One https script, one http pixel, one protocol-relative script, one local image.</p>
<img id="pixel" src="http://pixel.example/p.gif" width="1" height="1" alt="">
<img id="local" src="/local.gif" width="1" height="1" alt="">
<script src="//cdn.example/y.js"></script>
<noscript><p id="noscript">JavaScript is off.</p></noscript>
<script>document.getElementById("title").textContent = "Sample site (JS on)";</script>
</body>
</html>
"""

BLANK_PAGE = b"<!doctype html><html><head><title>blank</title></head><body></body></html>"

GIF_1X1 = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00"
    b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)

HITS: list[str] = []


async def _respond(send: Send, status: int, body: bytes, content_type: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


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
    path = scope["path"]
    if path == "/_hits":
        await _respond(send, 200, json.dumps(HITS).encode(), "application/json")
        return
    HITS.append(path)
    if path == "/":
        await _respond(send, 200, PARTNER_PAGE, "text/html; charset=utf-8")
    elif path == "/blank":
        await _respond(send, 200, BLANK_PAGE, "text/html; charset=utf-8")
    elif path == "/local.gif":
        await _respond(send, 200, GIF_1X1, "image/gif")
    elif path == "/_env":
        env = {k: v for k, v in os.environ.items() if k.startswith("SAMPLE_SITE_")}
        await _respond(send, 200, json.dumps(env).encode(), "application/json")
    elif path == "/_gc":
        info = {"pid": os.getpid(), "threshold": list(gc.get_threshold())}
        await _respond(send, 200, json.dumps(info).encode(), "application/json")
    elif path == "/_heap":
        from middleware.malloc import applied_malloc_trim

        info = {"pid": os.getpid(), "faults": heap_cycle_faults(), "applied": applied_malloc_trim()}
        await _respond(send, 200, json.dumps(info).encode(), "application/json")
    else:
        await _respond(send, 404, b"not found", "text/plain")


def heap_cycle_faults(cycles: int = 10) -> int:
    """Page faults of ``cycles`` rounds of 32 blocks of 32 KB written and freed: each block is
    under glibc's mmap threshold, so they come from the heap's top; freed together they leave
    1 MB free there, which glibc gives back to the kernel (and faults in again) unless its trim
    threshold keeps it."""
    def cycle() -> None:
        blocks = [b"x" * 32768 for _ in range(32)]  # written: bytes(n) might be calloc's fresh pages
        del blocks

    cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(cycles):
        cycle()
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
