"""A loopback HTTPS partner that speaks HTTP/2 only (ALPN ``h2``), with its own throwaway
certificate authority: proves the sender uses HTTP/2 where a partner offers it."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import tempfile
from pathlib import Path

import h2.config
import h2.connection
import h2.events
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1: (cert file, key file)."""
    import ipaddress

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


class H2Partner:
    """``async with H2Partner() as p``: p.url, p.client_context (trusts p's certificate),
    p.requests (one (method, path, body) per stream)."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.connections = 0
        self._dir = tempfile.TemporaryDirectory()
        cert, key = certificate(Path(self._dir.name))
        self.server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.server_context.load_cert_chain(cert, key)
        self.server_context.set_alpn_protocols(["h2"])
        self.client_context = ssl.create_default_context(cafile=str(cert))
        self.client_context.set_alpn_protocols(["h2", "http/1.1"])
        self.port = 0

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    async def __aenter__(self) -> H2Partner:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.server_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()
        self._dir.cleanup()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        streams: dict[int, tuple[dict[str, str], bytearray]] = {}
        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = {k.decode() if isinstance(k, bytes) else k:
                                   v.decode() if isinstance(v, bytes) else v for k, v in event.headers}
                        streams[event.stream_id] = (headers, bytearray())
                    elif isinstance(event, h2.events.DataReceived):
                        streams[event.stream_id][1].extend(event.data)
                        conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                    elif isinstance(event, h2.events.StreamEnded):
                        headers, body = streams.pop(event.stream_id)
                        self.requests.append((headers[":method"], headers[":path"], bytes(body)))
                        answer = b'{"events_received": 1}'
                        conn.send_headers(event.stream_id, [(":status", "200"),
                                                            ("content-length", str(len(answer)))])
                        conn.send_data(event.stream_id, answer, end_stream=True)
                writer.write(conn.data_to_send())
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()
