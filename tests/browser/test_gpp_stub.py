"""The first-party __gpp stub in real Chromium, under a nonce-only CSP: every command answers at once."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from middleware.signals import gpp, gpp_stub
from tests.support.browser import visit

NONCE = "r4nd0mN0nce"


@pytest.fixture
def stub_site() -> Iterator[str]:
    parsed = gpp.decode(gpp.encode(gpp.UsNat(sale_opt_out=gpp.OPTED_OUT, sharing_opt_out=gpp.OPTED_OUT,
                                             sale_opt_out_notice=gpp.YES, gpc=True)))
    script = gpp_stub.stub_html(gpp_stub.stub_data(parsed, applicable=(7,), banner_visible=False), NONCE)
    # A partner-like script that asks before the page finished parsing, the way ad tags do.
    probe = (f'<script nonce="{NONCE}">window.early = [];'
             '__gpp("ping", function (d, ok) { window.early.push([d.signalStatus, ok]); });</script>')
    body = b"<!doctype html><html><head>" + script + probe.encode() + b"</head><body><p>hi</p></body></html>"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Security-Policy", f"default-src 'none'; script-src 'nonce-{NONCE}'")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # bound here: no race
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()
        server.server_close()


CALLS = """() => {
  const out = {};
  const call = (name, cmd, param) => __gpp(cmd, (data, ok) => { out[name] = {data, ok}; }, param);
  call("ping", "ping");
  const events = [];
  __gpp("addEventListener", (e, ok) => events.push([e.eventName, e.data, e.listenerId, ok]));
  out.events = events.slice();
  call("remove", "removeEventListener", events[0][2]);
  call("removeAgain", "removeEventListener", events[0][2]);
  call("has", "hasSection", "usnat");
  call("hasNot", "hasSection", "tcfeuv2");
  call("section", "getSection", "usnat");
  call("field", "getField", "usnat.SaleOptOut");
  call("gpc", "getField", "usnat.Gpc");
  call("noField", "getField", "usnat.Nope");
  call("bad", "frobnicate");
  out.locator = !!window.frames.__gppLocator;
  out.early = window.early;
  return out;
}"""


def test_gpp_stub_answers_every_command_at_once_under_nonce_csp(page: Any, recording_proxy: Any,
                                                                stub_site: str) -> None:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    requests = visit(page, recording_proxy, stub_site, label="gpp stub")
    out = page.evaluate(CALLS)
    assert out["early"] == [["ready", True]]
    ping = out["ping"]["data"]
    assert ping["signalStatus"] == "ready" and ping["cmpStatus"] == "loaded" and ping["gppVersion"] == "1.1"
    assert ping["applicableSections"] == [7] and ping["sectionList"] == [7]
    assert ping["gppString"].startswith("DBABLA~")
    usnat = gpp.decode(ping["gppString"]).usnat
    assert usnat is not None and usnat.sale_opt_out == gpp.OPTED_OUT and usnat.gpc is True
    assert out["events"] == [["listenerRegistered", True, 1, True], ["signalStatus", "ready", 1, True]]
    assert out["remove"] == {"data": True, "ok": True}
    assert out["removeAgain"] == {"data": False, "ok": True}
    assert out["has"]["data"] is True and out["hasNot"]["data"] is False
    assert out["section"]["data"]["SaleOptOut"] == gpp.OPTED_OUT
    assert out["section"]["data"]["SharingOptOut"] == gpp.OPTED_OUT
    assert out["field"] == {"data": gpp.OPTED_OUT, "ok": True}
    assert out["gpc"] == {"data": True, "ok": True}
    assert out["noField"]["data"] is None
    assert out["bad"] == {"data": None, "ok": False}
    assert out["locator"] is True
    assert not errors, errors  # no CSP violation: the stub ran under the nonce alone
    assert requests == []  # the stub fetched nothing


def test_gpp_stub_answers_iframe_postmessage_calls(page: Any, recording_proxy: Any, stub_site: str) -> None:
    visit(page, recording_proxy, stub_site, label="gpp postMessage")
    reply = page.evaluate("""() => new Promise((resolve) => {
      window.addEventListener("message", (e) => { if (e.data && e.data.__gppReturn) resolve(e.data.__gppReturn); });
      window.postMessage({__gppCall: {command: "getField", parameter: "usnat.SharingOptOut", callId: "c1"}}, "*");
    })""")
    assert reply == {"returnValue": gpp.OPTED_OUT, "success": True, "callId": "c1"}
