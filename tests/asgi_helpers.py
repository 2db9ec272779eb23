"""Small factories for middleware tests: raw ASGI apps, a message recorder, configs, cookies."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from middleware import ConsentMiddleware
from middleware.config import Config, parse_config
from middleware.consent import StoredChoice

SECRET = "test-secret-" + "x" * 40
ADS_SNIPPET = '<script async src="https://pagead2.googlesyndication.com/pagead/js/adsbygoogle.js"></script>'
SOCIAL_SNIPPET = '<script async src="https://platform.twitter.com/widgets.js"></script>'
#: A hard-coded partner tag of the site's (adsense's host), not one of the config's injections.
AD_TAG = b'<script async src="https://pagead2.googlesyndication.com/tag.js"></script>'

CONFIG: dict[str, Any] = {
    "policy": {"version": "v1", "effective": dt.date(2008, 1, 23)},
    "purposes": {
        "necessary": {"title": "Necessary", "description": "Needed.", "necessary": True},
        "ads": {"title": "Ads", "description": "Ads.", "sale_or_sharing": True},
        "social": {"title": "Social", "description": "Buttons."},
    },
    "partners": {
        "adsense": {
            "name": "Google AdSense", "purposes": ["ads"],
            "hosts": ["pagead2.googlesyndication.com", "*.doubleclick.net"],
            "receives": ["ip_address", "cookies", "page_url"], "cookies": ["__gads"],
            "privacy_url": "https://policies.google.com/privacy",
            "inject": [{"at": "head-end", "html": ADS_SNIPPET}],
        },
        "x": {
            "name": "X", "purposes": ["social"], "hosts": ["platform.twitter.com"],
            "receives": ["ip_address", "referrer"], "privacy_url": "https://x.com/privacy",
            "inject": [{"at": "body-end", "html": SOCIAL_SNIPPET}],
        },
    },
    "ledger": {"path": "ledger.sqlite3"},
}

PAGE = (b"<!DOCTYPE html><html><head><title>T</title></head>"
        b"<body><h1>Hello</h1><p>text</p></body></html>")


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    data = copy.deepcopy(CONFIG)
    data["ledger"]["path"] = str(tmp_path / "ledger.sqlite3")
    for section, values in overrides.items():
        data.setdefault(section, {}).update(values)
    return parse_config(data, "test.toml")


def make_gate(app: Any, tmp_path: Path, **overrides: Any) -> ConsentMiddleware:
    return ConsentMiddleware(app, config=make_config(tmp_path, **overrides), secret=SECRET)


def cookie_for(gate: ConsentMiddleware, granted: set[str], version: str | None = None,
               source: str = "banner") -> str:
    choice = StoredChoice("cid-" + "a" * 12, frozenset(granted), version or gate.config.policy.version,
                          source, dt.datetime.now(dt.UTC))
    return f"{gate.config.policy.cookie.name}={gate.codec.dumps(choice)}"


async def answer_lifespan(receive: Any, send: Any) -> None:
    """What an app with no start-up work answers: complete each lifespan step."""
    while True:
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        if message["type"] == "lifespan.shutdown":
            return


def html_app(chunks: Sequence[bytes] = (PAGE,), *, status: int = 200,
             headers: Sequence[tuple[bytes, bytes]] | None = None,
             log: list[str] | None = None) -> Callable[..., Awaitable[None]]:
    """A bare ASGI app streaming ``chunks``; appends to ``log`` as it sends each one."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await answer_lifespan(receive, send)
            return
        hdrs = list(headers) if headers is not None else [(b"content-type", b"text/html; charset=utf-8")]
        await send({"type": "http.response.start", "status": status, "headers": hdrs})
        for i, chunk in enumerate(chunks):
            if log is not None:
                log.append(f"app-sends-{i}")
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": i < len(chunks) - 1})

    return app


class Recorder:
    """Collects what the middleware sends, so tests can assert on chunks (not whole bodies)."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.messages: list[dict[str, Any]] = []
        self.log = log

    async def __call__(self, message: dict[str, Any]) -> None:
        if self.log is not None and message["type"] == "http.response.body":
            self.log.append(f"sent-{len(self.bodies)}")
        self.messages.append(message)

    @property
    def start(self) -> dict[str, Any]:
        return next(m for m in self.messages if m["type"] == "http.response.start")

    @property
    def bodies(self) -> list[bytes]:
        return [m.get("body", b"") for m in self.messages if m["type"] == "http.response.body"]

    @property
    def body(self) -> bytes:
        return b"".join(self.bodies)

    def header(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.start["headers"] if k == name]


def http_scope(path: str = "/", *, method: str = "GET", cookie: str | None = None,
               headers: Sequence[tuple[bytes, bytes]] = ()) -> dict[str, Any]:
    hdrs = [(b"host", b"testserver"), (b"accept-encoding", b"gzip, br"), *headers]
    if cookie:
        hdrs.append((b"cookie", cookie.encode()))
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
            "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
            "root_path": "", "headers": hdrs, "client": ("203.0.113.7", 5000),
            "server": ("testserver", 80)}


async def receive_nothing() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def run(gate: Any, scope: dict[str, Any], log: list[str] | None = None) -> Recorder:
    recorder = Recorder(log)
    await gate(scope, receive_nothing, recorder)
    return recorder


def enforced_no_partner(out: Any) -> bool:
    """Exactly one enforced CSP (a ``Recorder``'s response), and it names no partner host."""
    policies = out.header(b"content-security-policy")
    return (len(policies) == 1 and b"default-src 'self'" in policies[0]
            and b"googlesyndication" not in policies[0] and b"twitter" not in policies[0]
            and b"doubleclick" not in policies[0])


def assert_bomb_stopped(gate: Any, caplog: Any) -> None:
    """Serve a compression bomb through ``gate``: the response is ended in bounded memory
    (peak < 24 MB, < 60 MB out, pieces of at most 256 KB) and the log says why."""
    import asyncio
    import tracemalloc

    sizes: list[int] = []
    last: list[bool] = []

    async def counting_send(message: Any) -> None:
        if message["type"] == "http.response.body":
            sizes.append(len(message.get("body", b"")))
            last.append(bool(message.get("more_body", False)))

    tracemalloc.start()
    try:
        asyncio.run(gate(http_scope(), receive_nothing, counting_send))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 * 1024 * 1024, f"peak {peak / 1e6:.0f} MB"
    assert last[-1] is False, "the response is ended"
    assert sum(sizes) < 60 * 1024 * 1024, "stopped long before 400 MB"
    assert max(sizes) <= 256 * 1024
    assert "expands more than" in caplog.text
