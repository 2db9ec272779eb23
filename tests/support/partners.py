"""Loopback HTTP servers standing in for forwarding partners, checking each payload.

    with PartnerServer("meta") as meta:
        meta.script(("status", 500), ("ok",))       # the next answers, then "ok" forever
        ... forward ...
        meta.wait_for(1)
        assert meta.requests[-1].schema_errors == []

Each request is checked against the partner's published schema (``check_meta``,
``check_ga4``, ``check_tiktok``, ``check_webhook``: required fields, types, hashing rules);
problems are recorded on the request, never answered, so a test sees them all.
Behaviours: ``ok``, ``status`` (code, optional Retry-After), ``slow`` (seconds, then ok),
``reset`` (close the socket without an answer), ``redirect`` (302 to a URL), ``tiktok-error``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class PartnerRequest:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    raw: bytes
    schema_errors: list[str] = field(default_factory=list)
    at: float = 0.0


def _ip(value: Any) -> bool:
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def check_meta(req: PartnerRequest) -> list[str]:
    """Meta Conversions API: /{pixel}/events, access_token, data[] of server events."""
    e: list[str] = []
    if not re.match(r"^/v\d+\.\d+/\d+/events$", req.path):
        e.append(f"path {req.path}")
    if not req.query.get("access_token"):
        e.append("no access_token")
    data = req.body.get("data") if isinstance(req.body, dict) else None
    if not isinstance(data, list) or not 1 <= len(data) <= 1000:
        return [*e, "data must be a list of 1..1000 events"]
    now = time.time()
    for i, ev in enumerate(data):
        for key, kind in (("event_name", str), ("event_time", int), ("action_source", str),
                          ("user_data", dict)):
            if not isinstance(ev.get(key), kind) or isinstance(ev.get(key), bool):
                e.append(f"data[{i}].{key} missing or not {kind.__name__}")
        t = ev.get("event_time")
        if isinstance(t, int) and not (now - 7 * 86400 <= t <= now + 60):
            e.append(f"data[{i}].event_time outside the last 7 days")
        if ev.get("action_source") not in ("website", "app", "email", "phone_call", "chat",
                                           "physical_store", "system_generated", "other"):
            e.append(f"data[{i}].action_source {ev.get('action_source')!r}")
        if ev.get("action_source") == "website":
            for key in ("event_source_url",):
                if not isinstance(ev.get(key), str):
                    e.append(f"data[{i}].{key} required for website events")
        ud = ev.get("user_data") or {}
        if ev.get("action_source") == "website" and not isinstance(ud.get("client_user_agent"), str):
            e.append(f"data[{i}].user_data.client_user_agent required for website events")
        for key in ("em", "ph"):
            if key in ud and not (isinstance(ud[key], list) and all(
                    isinstance(h, str) and _HEX64.match(h) for h in ud[key])):
                e.append(f"data[{i}].user_data.{key} must be lowercase SHA-256 hex")
        if "client_ip_address" in ud and not _ip(ud["client_ip_address"]):
            e.append("client_ip_address must be an unhashed IP")
        for key in ("fbp", "fbc", "client_user_agent"):
            if key in ud and (not isinstance(ud[key], str) or _HEX64.match(ud[key])):
                e.append(f"user_data.{key} must be a plain (unhashed) string")
        if "event_id" in ev and not isinstance(ev["event_id"], str):
            e.append("event_id must be a string")
        cd = ev.get("custom_data") or {}
        if "value" in cd and not isinstance(cd["value"], int | float):
            e.append("custom_data.value must be a number")
        if "currency" in cd and not re.match(r"^[A-Z]{3}$", str(cd["currency"])):
            e.append("custom_data.currency must be ISO 4217")
        dpo = ev.get("data_processing_options")
        if dpo is not None and (not isinstance(dpo, list) or any(x != "LDU" for x in dpo)):
            e.append("data_processing_options must be [] or ['LDU']")
        if dpo == ["LDU"] and not all(isinstance(ev.get(k), int) for k in (
                "data_processing_options_country", "data_processing_options_state")):
            e.append("LDU needs data_processing_options_country and _state")
    return e


_GA4_RESERVED = ("ad_activeview", "ad_click", "ad_exposure", "ad_query", "adunit_exposure",
                 "app_clear_data", "app_install", "app_update", "app_remove", "error",
                 "first_open", "first_visit", "in_app_purchase", "notification_dismiss",
                 "notification_foreground", "notification_open", "notification_receive",
                 "os_update", "session_start", "user_engagement")


def check_ga4(req: PartnerRequest) -> list[str]:
    """GA4 Measurement Protocol: measurement_id + api_secret, client_id, events[<=25]."""
    e: list[str] = []
    if req.path != "/mp/collect":
        e.append(f"path {req.path}")
    if not req.query.get("measurement_id") or not req.query.get("api_secret"):
        e.append("measurement_id and api_secret are required query parameters")
    b = req.body if isinstance(req.body, dict) else {}
    if not isinstance(b.get("client_id"), str) or not b.get("client_id"):
        e.append("client_id required")
    if "timestamp_micros" in b and not isinstance(b["timestamp_micros"], int):
        e.append("timestamp_micros must be an integer")
    events = b.get("events")
    if not isinstance(events, list) or not 1 <= len(events) <= 25:
        return [*e, "events must be a list of 1..25"]
    for i, ev in enumerate(events):
        name = ev.get("name")
        if not isinstance(name, str) or not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,39}$", name) or \
                name in _GA4_RESERVED or name.startswith(("google_", "ga_", "firebase_")):
            e.append(f"events[{i}].name {name!r} invalid or reserved")
        params = ev.get("params", {})
        if not isinstance(params, dict) or len(params) > 25:
            e.append(f"events[{i}].params must be an object of at most 25")
        for k, v in params.items():
            if not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,39}$", k):
                e.append(f"param name {k!r}")
            if isinstance(v, str) and len(v) > 100 and k != "page_location":
                e.append(f"param {k} longer than 100")
    ud = b.get("user_data", {})
    for key in ("sha256_email_address", "sha256_phone_number"):
        if key in ud and not all(isinstance(h, str) and _HEX64.match(h) for h in ud[key]):
            e.append(f"user_data.{key} must be SHA-256 hex")
    return e


def check_tiktok(req: PartnerRequest) -> list[str]:
    """TikTok Events API 2.0: Access-Token header, event_source web, data[]."""
    e: list[str] = []
    if not req.headers.get("access-token"):
        e.append("Access-Token header required")
    b = req.body if isinstance(req.body, dict) else {}
    if b.get("event_source") != "web" or not isinstance(b.get("event_source_id"), str):
        e.append("event_source 'web' and event_source_id (pixel code) required")
    data = b.get("data")
    if not isinstance(data, list) or not data:
        return [*e, "data must be a non-empty list"]
    for i, ev in enumerate(data):
        if not isinstance(ev.get("event"), str) or not isinstance(ev.get("event_time"), int):
            e.append(f"data[{i}]: event (string) and event_time (integer seconds) required")
        user = ev.get("user", {})
        for key in ("email", "phone"):
            if key in user and not (isinstance(user[key], str) and _HEX64.match(user[key])):
                e.append(f"data[{i}].user.{key} must be SHA-256 hex")
        if "ip" in user and not _ip(user["ip"]):
            e.append("user.ip must be an IP")
        if "limited_data_use" in ev and not isinstance(ev["limited_data_use"], bool):
            e.append("limited_data_use must be a boolean")
    return e


def check_webhook(req: PartnerRequest) -> list[str]:
    b = req.body if isinstance(req.body, dict) else {}
    e = [f"{k} required" for k in ("event", "event_id", "event_time", "fields") if k not in b]
    return e


CHECKS: dict[str, Callable[[PartnerRequest], list[str]]] = {
    "meta": check_meta, "ga4": check_ga4, "tiktok": check_tiktok, "webhook": check_webhook}


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away mid-answer (a killed worker, a timeout) is expected


class PartnerServer:
    def __init__(self, kind: str, on_request: Callable[[PartnerRequest], None] | None = None) -> None:
        self.kind = kind
        self.requests: list[PartnerRequest] = []
        self.on_request = on_request
        self._script: deque[tuple[Any, ...]] = deque()
        self._cond = threading.Condition()
        partner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # headers and body are two writes: without this each answer waits out the
                # client's delayed ACK (40 ms)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                parts = urlsplit(self.path)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                req = PartnerRequest(parts.path, parse_qs(parts.query),
                                     {k.lower(): v for k, v in self.headers.items()}, body, raw,
                                     at=time.time())
                req.schema_errors = CHECKS[partner.kind](req)
                if partner.on_request is not None:
                    partner.on_request(req)
                with partner._cond:
                    step = partner._script.popleft() if partner._script else ("ok",)
                    partner.requests.append(req)
                    partner._cond.notify_all()
                partner._answer(self, step)

        self.server = _QuietServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # a "slow" answer must not hold up the test's end
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, *steps: tuple[Any, ...]) -> None:
        with self._cond:
            self._script.extend(steps)

    def clear_script(self) -> None:
        with self._cond:
            self._script.clear()

    def _answer(self, h: BaseHTTPRequestHandler, step: tuple[Any, ...]) -> None:
        what = step[0]
        if what == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.connection.close()
            h.close_connection = True
            return
        if what == "slow":
            time.sleep(step[1])
        status, headers, body = 200, {}, b""
        if what == "status":
            status = step[1]
            if len(step) > 2:
                headers["Retry-After"] = str(step[2])
            body = b'{"error": {"message": "try later"}}'
        elif what == "redirect":
            status, headers = 302, {"Location": step[1]}
        elif self.kind == "meta":
            body = b'{"events_received": 1, "fbtrace_id": "x"}'
        elif self.kind == "tiktok":
            body = b'{"code": 40001, "message": "bad token"}' if what == "tiktok-error" else \
                b'{"code": 0, "message": "OK"}'
        elif self.kind == "ga4":
            status = 204
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if body:
            h.wfile.write(body)

    def wait_for(self, n: int, timeout: float = 10.0) -> list[PartnerRequest]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self.kind}: {len(self.requests)} of {n} requests")
                self._cond.wait(left)
            return list(self.requests)

    def start(self) -> PartnerServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> PartnerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":  # a partner in its own process (the benchmark): prints its URL
    import sys

    srv = PartnerServer(sys.argv[1] if len(sys.argv) > 1 else "meta")
    print(srv.url, flush=True)
    srv.server.serve_forever()
