"""consent-gate tcf update-gvl against a loopback HTTP server serving a small list."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from middleware.cli import main
from tests.test_signals_tcf_gate import GVL


@pytest.fixture
def gvl_server() -> Iterator[str]:
    routes = {"/v3/vendor-list.json": (200, json.dumps(GVL).encode()), "/broken": (200, b"{not json"),
              "/missing": (404, b"no"), "/wrong": (200, json.dumps({"vendors": []}).encode())}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, body = routes.get(self.path, (404, b""))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # bound here: no race
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_cli_tcf_update_gvl_writes_the_list(gvl_server: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "data" / "gvl.json"
    code = main(["tcf", "update-gvl", "--url", gvl_server + "/v3/vendor-list.json", "--output", str(out)])
    assert code == 0
    assert json.loads(out.read_text()) == GVL
    assert "Global Vendor List v321 (TCF policy 5, 4 vendors) written to" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["gvl.json"]  # no temp file left


@pytest.mark.parametrize(("path", "message"), [
    ("/broken", "did not send JSON"), ("/missing", "HTTP 404"), ("/wrong", "Global Vendor List"),
])
def test_cli_tcf_update_gvl_keeps_the_old_file_on_bad_answers(gvl_server: str, tmp_path: Path, path: str,
                                                              message: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gvl.json"
    out.write_text("old")
    assert main(["tcf", "update-gvl", "--url", gvl_server + path, "--output", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert out.read_text() == "old"


def test_cli_tcf_update_gvl_needs_a_destination(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONSENT_GATE_CONFIG", raising=False)
    assert main(["tcf", "update-gvl", "--url", "http://127.0.0.1:9/x"]) == 2
    assert "--output PATH" in capsys.readouterr().err


def test_cli_tcf_update_gvl_writes_the_configs_gvl_file(gvl_server: str, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """The config names a list that does not exist yet: update-gvl creates it, then the config loads."""
    from middleware.config import load_config
    from tests.test_signals_settings import EXAMPLE

    target = tmp_path / "vendor-list.json"
    config = tmp_path / "partners.toml"
    text = EXAMPLE.read_text().replace('# gvl = "/var/lib/consent-gate/vendor-list.json"', f'gvl = "{target}"')
    config.write_text(text.replace("tcf_vendor_id = 755", "tcf_vendor_id = 10"))
    assert main(["tcf", "update-gvl", "--url", gvl_server + "/v3/vendor-list.json", "--config", str(config)]) == 0
    assert str(target) in capsys.readouterr().out
    loaded = load_config(config)
    assert loaded.tcf.gvl is not None and loaded.tcf.gvl.version == 321
