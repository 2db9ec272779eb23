"""A partner host served over TLS on loopback, for what Chromium only does to an https origin
that no proxy stands in front of (a speculation-rules prefetch: with the RecordingProxy in
the way Chromium refuses it, PrefetchNotEligibleExistingProxy). Chromium is pointed at it
with ``chromium_flags(port)``: the host resolves to 127.0.0.1 and bypasses the proxy; every
other name still resolves to nothing. It records each request and answers a small page."""

from __future__ import annotations

import datetime as dt
import http.server
import ssl
import tempfile
import threading
from pathlib import Path
from typing import Any, NamedTuple, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.browser import SAFETY_FLAGS


class Seen(NamedTuple):
    host: str
    path: str
    purpose: str | None  # Sec-Purpose ("prefetch" for a speculation-rules prefetch)
    referer: str | None


def _self_signed(domain: str, directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain),
                                                        x509.DNSName("*." + domain)]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class TlsPartner:
    """``with TlsPartner("spec.partner.example") as p:`` p.port, p.origin, p.seen."""

    def __init__(self, domain: str) -> None:
        self.domain = domain
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("TlsPartner not started")
        return int(self._server.server_address[1])

    @property
    def origin(self) -> str:
        return f"https://{self.domain}:{self.port}"

    def chromium_flags(self) -> list[str]:
        """Chromium args (after BASE_FLAGS and the proxy): the safety flags, but this domain
        resolves to loopback, skips the proxy and its certificate is accepted."""
        rules = (f"--host-resolver-rules=MAP *.{self.domain} 127.0.0.1, MAP {self.domain} 127.0.0.1, "
                 "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost")
        return [rules, *(f for f in SAFETY_FLAGS if not f.startswith("--host-resolver-rules")),
                f"--proxy-bypass-list=*.{self.domain};{self.domain}", "--ignore-certificate-errors"]

    def __enter__(self) -> Self:
        seen, lock = self.seen, self._lock

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with lock:
                    seen.append(Seen(self.headers.get("host", ""), self.path,
                                     self.headers.get("sec-purpose"), self.headers.get("referer")))
                body = b"<!DOCTYPE html><title>partner</title><p>partner"
                self.send_response(200)
                self.send_header("content-type", "text/html")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        with tempfile.TemporaryDirectory() as tmp:
            cert, key = _self_signed(self.domain, Path(tmp))
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(cert, key)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        self._server = server
        threading.Thread(target=server.serve_forever, name="tls-partner", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def paths(self) -> list[str]:
        with self._lock:
            return [s.path for s in self.seen]
