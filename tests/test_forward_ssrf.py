"""SSRF: partner requests reach public unicast addresses only, checked on the connected
address; no redirects; bounded answers. Real loopback servers stand in for the targets."""

from __future__ import annotations

import asyncio
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpcore2
import pytest

from middleware.forward.addresses import parse_ip, refusal
from middleware.forward.transport import AddressRefused, GuardedBackend, make_client, read_bounded
from tests.forward_helpers import consent, ledger_rows, make_config, make_forwarder, outbox_rows, scope
from tests.support.partners import PartnerServer


@pytest.mark.parametrize(("address", "refused"), [
    ("8.8.8.8", None),
    ("2606:4700:4700::1111", None),
    ("::ffff:8.8.8.8", None),
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.9", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),       # AWS/GCP/Azure metadata
    ("fd00:ec2::254", "metadata"),           # AWS metadata over IPv6
    ("100.100.100.200", "metadata"),         # Alibaba metadata
    ("fe80::1", "link-local"),
    ("100.64.0.1", "not a public"),          # carrier-grade NAT
    ("0.0.0.0", "private"),
    ("224.0.0.1", "unicast"),
    ("::ffff:127.0.0.1", "embeds 127.0.0.1"),   # IPv6-mapped loopback
    ("::ffff:169.254.169.254", "embeds 169.254.169.254"),
    ("::ffff:10.0.0.1", "embeds 10.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "embeds 169.254.169.254"),  # NAT64 of the metadata address
    ("2002:7f00:1::", "embeds 127.0.0.1"),   # 6to4
    ("fc00::1", "private"),
])
def test_ssrf_address_table(address: str, refused: str | None) -> None:
    addr = parse_ip(address)
    assert addr is not None
    why = refusal(addr)
    if refused is None:
        assert why is None
    else:
        assert why is not None and refused in why, why


def test_ssrf_test_mode_allows_loopback_only() -> None:
    assert refusal(parse_ip("127.0.0.1"), allow_loopback=True) is None  # type: ignore[arg-type]
    assert refusal(parse_ip("10.0.0.1"), allow_loopback=True) is not None  # type: ignore[arg-type]
    assert refusal(parse_ip("::ffff:127.0.0.1"), allow_loopback=True) is None  # type: ignore[arg-type]


class Counting:
    """A loopback HTTP server counting connections and requests."""

    def __init__(self, answer: tuple[int, dict[str, str], bytes] = (200, {}, b"ok")) -> None:
        self.requests = 0
        self.connections = 0
        outer = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                outer.connections += 1
                super().setup()

            def log_message(self, *a: Any) -> None:
                pass

            def do_POST(self) -> None:
                outer.requests += 1
                self.rfile.read(int(self.headers.get("content-length", "0")))
                status, headers, body = answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Any:
    srv = Counting()
    yield srv
    srv.close()


def resolver_to(*addresses: str) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)
    return resolve


@pytest.mark.parametrize("resolved", [["127.0.0.1"], ["10.0.0.7"], ["::ffff:127.0.0.1"],
                                      ["169.254.169.254"], ["10.0.0.7", "127.0.0.1"]])
def test_ssrf_name_resolving_to_internal_address_is_refused(target: Counting, resolved: list[str]) -> None:
    async def go() -> None:
        async with make_client(timeout_s=2, resolver=resolver_to(*resolved)) as client:
            with pytest.raises(Exception) as info:
                await client.post(f"http://partner.example:{target.port}/x", content=b"{}")
            assert "refused to connect to partner.example" in str(info.value)
    asyncio.run(go())
    assert target.connections == 0 and target.requests == 0


def test_ssrf_checked_on_the_connected_address(target: Counting, monkeypatch: pytest.MonkeyPatch) -> None:
    """The name resolves to a public address, but the socket ends up on loopback (DNS
    rebinding between check and connect, a NAT, a hostile resolver): nothing is written."""
    real_connect = httpcore2.AnyIOBackend.connect_tcp

    async def rebound(self: Any, host: str, port: int, **kw: Any) -> Any:
        return await real_connect(self, "127.0.0.1", port, **kw)

    monkeypatch.setattr(httpcore2.AnyIOBackend, "connect_tcp", rebound)

    async def go() -> None:
        backend = GuardedBackend(resolver=resolver_to("93.184.216.34"))
        with pytest.raises(AddressRefused, match=r"connected to 127\.0\.0\.1 is a loopback"):
            await backend.connect_tcp("partner.example", target.port)
    asyncio.run(go())
    assert target.requests == 0


def test_ssrf_loopback_with_test_flag_reaches_the_server(target: Counting) -> None:
    async def go() -> int:
        async with make_client(timeout_s=2, allow_loopback=True) as client:
            return (await client.post(f"http://127.0.0.1:{target.port}/x", content=b"{}")).status_code
    assert asyncio.run(go()) == 200 and target.requests == 1


def test_ssrf_response_body_is_bounded() -> None:
    big = Counting((200, {}, b"x" * 2_000_000))
    try:
        async def go() -> int:
            async with make_client(timeout_s=5, allow_loopback=True) as client, client.stream(
                    "POST", f"http://127.0.0.1:{big.port}/", content=b"{}") as response:
                return len(await read_bounded(response))
        assert asyncio.run(go()) == 64 * 1024
    finally:
        big.close()


def test_ssrf_redirect_to_metadata_is_not_followed(tmp_path: Path) -> None:
    async def go() -> None:
        with PartnerServer("webhook") as hook:
            hook.script(("redirect", "http://169.254.169.254/latest/meta-data/iam/"))
            config = make_config({"hook": hook.url}, tmp_path / "l.sqlite3")
            fw = make_forwarder(config)
            await fw.forward(scope(), consent(config, {"measurement"}), "purchase", {"value": 1})
            for _ in range(100):
                if outbox_rows(tmp_path / "l.sqlite3") == 0:
                    break
                await asyncio.sleep(0.05)
            await fw.aclose()
            await fw.writer.aclose()
            assert len(hook.requests) == 1
        final = ledger_rows(tmp_path / "l.sqlite3")[-1]
        assert final["delivery"] == "rejected" and "redirects are not followed" in final["detail"]
    asyncio.run(go())


def test_forward_transport_speaks_http2_where_the_partner_offers_it() -> None:
    from tests.support.h2_partner import H2Partner

    async def go() -> None:
        async with H2Partner() as partner:
            async with make_client(timeout_s=5, allow_loopback=True,
                                   ssl_context=partner.client_context) as client:
                answers = await asyncio.gather(*(client.post(f"{partner.url}/v21.0/1/events",
                                                             content=b'{"data": []}') for _ in range(5)))
            assert {a.http_version for a in answers} == {"HTTP/2"}
            assert {a.status_code for a in answers} == {200}
            assert len(partner.requests) == 5 and partner.connections == 1  # one multiplexed connection
    asyncio.run(go())
