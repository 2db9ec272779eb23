"""The consent-gate command: check, scan, run (a real uvicorn), and its error handling."""

from __future__ import annotations

import gc
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest

from middleware.cli import main
from middleware.env import DEFAULT_GC_THRESHOLD, GC_THRESHOLD_ENV
from middleware.runner import apply_gc_threshold

from .support.servers import REPO_ROOT, free_port, start_consent_gate

JAPAN_TALK = REPO_ROOT / "examples" / "japan_talk" / "partners.toml"


def test_cli_check_prints_effective_policy(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENT_GATE_SECRET", "s" * 48)
    assert main(["check", str(JAPAN_TALK)]) == 0
    out = capsys.readouterr().out
    assert "policy version 2008-01-23" in out
    assert "opt-in (nothing runs until the visitor agrees)" in out
    for needle in ("google-adsense", "pagead2.googlesyndication.com", "receives: ip_address",
                   "injects:  1 snippet(s) at head-end", "youtube", "OK: the configuration is valid"):
        assert needle in out, needle


def test_cli_check_without_secret_says_run_would_refuse(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENT_GATE_SECRET", raising=False)
    monkeypatch.delenv("CONSENT_GATE_DEV", raising=False)
    assert main(["check", str(JAPAN_TALK)]) == 0
    out = capsys.readouterr().out
    assert "OK:" not in out
    assert "`consent-gate run` would refuse to start: environment variable CONSENT_GATE_SECRET is not set" in out
    assert 'export CONSENT_GATE_SECRET="$(python -c' in out
    assert main(["check", str(JAPAN_TALK), "--json"]) == 0
    assert '"run_would_start": false' in capsys.readouterr().out
    monkeypatch.setenv("CONSENT_GATE_DEV", "1")
    assert main(["check", str(JAPAN_TALK)]) == 0
    assert "would start with the PUBLIC development key" in capsys.readouterr().out


def test_cli_check_invalid_config_exits_2_with_key_path(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(JAPAN_TALK.read_text().replace('purposes = ["ads"]', 'purposes = ["adz"]', 1))
    assert main(["check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: partners.google-adsense.purposes[0]: unknown purpose 'adz'" in err


def test_cli_scan_file_groups_known_and_unknown_hosts(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "page.html"
    page.write_text(
        "<html><head><script src='https://pagead2.googlesyndication.com/a.js'></script>"
        "<!-- <script src='https://commented.example/x.js'></script> -->"
        "<script src='//cdn.unknown-widgets.example/w.js'></script></head>"
        "<body><img src='https://www.facebook.com/tr?id=1'><img src='/local.png'></body></html>")
    assert main(["scan", str(page), "--config", str(JAPAN_TALK)]) == 0
    out = capsys.readouterr().out
    known, unknown = out.split("Unknown third parties")
    assert "google-adsense" in known and "facebook" in known and "x-twitter" not in known
    assert "cdn.unknown-widgets.example" in unknown
    assert "commented.example" not in out, "comments are not tags"


def test_cli_run_missing_secret_stops_with_clear_message(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSENT_GATE_SECRET", raising=False)
    monkeypatch.delenv("CONSENT_GATE_DEV", raising=False)
    code = main(["run", "examples.japan_talk.app:app", "--config", str(JAPAN_TALK)])
    assert code == 2
    assert "CONSENT_GATE_SECRET is not set" in capsys.readouterr().err


def test_cli_run_unimportable_app_is_clear(capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENT_GATE_SECRET", "s" * 48)
    assert main(["run", "no_such_module:app", "--config", str(JAPAN_TALK)]) == 2
    assert "cannot import the site's app 'no_such_module:app'" in capsys.readouterr().err


@pytest.mark.server
def test_cli_run_serves_wrapped_site_on_real_uvicorn(tmp_path: Path) -> None:
    config = tmp_path / "partners.toml"
    shutil.copy(JAPAN_TALK, config)
    with start_consent_gate("examples.japan_talk.app:app", config, tmp_path) as server:
        page = httpx2.get(server.url + "/articles/kyoto-autumn", timeout=10)
        assert page.status_code == 200
        assert 'id="consent-gate-banner"' in page.text
        assert "adsbygoogle.js" not in page.text.split("</head>")[0]
        assert page.headers["cache-control"].startswith("private")
        assert "googlesyndication" not in page.headers["content-security-policy"]
        with httpx2.Client(base_url=server.url, timeout=10) as client:
            accepted = client.post("/.consent/choice", data={"action": "accept-all"},
                                   headers={"Origin": server.url}, follow_redirects=False)
            assert accepted.status_code == 303
            again = client.get("/articles/kyoto-autumn")
        assert "pagead2.googlesyndication.com/pagead/js/adsbygoogle.js" in again.text
        assert 'id="consent-gate-banner"' not in again.text
        data = httpx2.get(server.url + "/api/articles.json", timeout=10)
        assert data.headers["content-type"].startswith("application/json") and data.json()
    assert (tmp_path / "consent-ledger.sqlite3").exists(), "the ledger lives in the server's cwd"
    assert "DEV MODE" not in server.output()


@pytest.mark.server
def test_cli_run_workers_answer_keep_alive_requests_without_delayed_ack(tmp_path: Path) -> None:
    """uvicorn's own multi-worker socket leaves TCP_NODELAY off: each keep-alive response then
    waits ~40 ms for the client's delayed ACK. consent-gate binds the socket itself."""
    config = tmp_path / "partners.toml"
    shutil.copy(JAPAN_TALK, config)
    with start_consent_gate("examples.japan_talk.app:app", config, tmp_path,
                            extra_args=["--workers", "2", "--no-access-log"]) as server, \
            httpx2.Client(base_url=server.url, timeout=10) as client:
        client.get("/health")  # connect and warm up
        started = time.perf_counter()
        for _ in range(10):
            assert client.get("/health").status_code == 200
        elapsed = time.perf_counter() - started
    # With the delayed-ACK stall this takes >= 10 x 40 ms; without it, a few milliseconds each.
    assert elapsed < 0.3, f"10 keep-alive requests took {elapsed * 1000:.0f} ms"


# --------------------------------------------------------------------------- scan a wrapped site


def test_scan_token_binds_key_method_path_and_time() -> None:
    from middleware.scan_token import check_token, make_token

    key, other = "k" * 40, "o" * 40
    token = make_token(key, "GET", "/embeds", now=1000)
    assert check_token([key], token, "GET", "/embeds", now=1030)
    assert check_token([other, key], token, "GET", "/embeds", now=1000), "rotated keys verify"
    assert not check_token([other], token, "GET", "/embeds", now=1000)
    assert not check_token([key], token, "GET", "/other", now=1000)
    assert not check_token([key], token, "POST", "/embeds", now=1000)
    assert not check_token([key], token, "GET", "/embeds", now=1061), "expired"
    for bad in ("", "1000", "1000.zz", "x.y", token + "0"):
        assert not check_token([key], bad, "GET", "/embeds", now=1000)


@pytest.mark.parametrize("stamp", ["\u00b2", "\u0661\u0660\u0660\u0660", "\uff11", "-1", "+1"])
def test_scan_header_with_a_non_ascii_digit_is_no_token(tmp_path: Path, stamp: str) -> None:
    """Any visitor can send the header (h11 passes bytes 0x80-0xFF, read as latin-1): a
    stamp that str.isdigit() takes and int() refuses was a 500 on every page."""
    import asyncio

    from middleware.scan_token import HEADER_BYTES, check_token

    from .asgi_helpers import html_app, http_scope, make_gate, run

    assert not check_token(["k" * 40], stamp + "." + "a" * 64, "GET", "/")
    gate = make_gate(html_app(), tmp_path)
    scope = http_scope()
    scope["headers"] = [*scope["headers"], (HEADER_BYTES, b"\xb2." + b"a" * 64)]
    out = asyncio.run(run(gate, scope))
    assert out.start["status"] == 200 and b"consent-gate-banner" in out.body


@pytest.mark.server
def test_cli_scan_wrapped_site_sees_what_the_site_sends(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from middleware.config import load_config
    from middleware.errors import ConsentGateError
    from middleware.scan import scan_source
    from middleware.scan_token import HEADER, make_token

    secret = "scan-secret-" + "s" * 40
    config = tmp_path / "partners.toml"
    shutil.copy(JAPAN_TALK, config)
    with start_consent_gate("examples.japan_talk.app:app", config, tmp_path,
                            env={"CONSENT_GATE_SECRET": secret}) as server:
        url = server.url + "/embeds"
        monkeypatch.setenv("CONSENT_GATE_SECRET", secret)
        assert main(["scan", url, "--config", str(config)]) == 0
        known = capsys.readouterr().out.split("Unknown third parties")[0]
        for partner in ("google-adsense", "youtube", "facebook", "x-twitter"):
            assert partner in known, partner
        loaded = load_config(config)
        # Visitors (no token, or a token made without the secret) get the rewritten page.
        visitor = httpx2.get(url, timeout=10)
        assert 'id="consent-gate-banner"' in visitor.text and "x-consent-gate" not in visitor.headers
        forged = httpx2.get(url, timeout=10, headers={HEADER: make_token("f" * 40, "GET", "/embeds")})
        assert 'id="consent-gate-banner"' in forged.text
        own = httpx2.get(url, timeout=10, headers={HEADER: make_token(secret, "GET", "/embeds")})
        assert own.headers["x-consent-gate"] == "original" and own.headers["cache-control"] == "no-store"
        assert 'id="consent-gate-banner"' not in own.text
        # Without the secret, scan refuses the rewritten page instead of reporting "no partners".
        monkeypatch.delenv("CONSENT_GATE_SECRET")
        monkeypatch.delenv("CONSENT_GATE_DEV", raising=False)
        assert main(["scan", url, "--config", str(config)]) == 2
        err = capsys.readouterr().err
        assert "was rewritten by consent-gate" in err and "Set CONSENT_GATE_SECRET" in err
        with pytest.raises(ConsentGateError, match="refused the scan token"):
            scan_source(url, loaded, keys=["w" * 40])


@pytest.mark.parametrize("layout", ["middleware.py", "middleware/__init__.py"])
def test_cli_run_site_with_own_middleware_module_is_refused(tmp_path: Path, layout: str,
                                                            capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSENT_GATE_SECRET", "s" * 48)
    site = tmp_path / "site"
    (site / layout).parent.mkdir(parents=True, exist_ok=True)
    (site / layout).write_text("MARKER = 'the site'\n")
    (site / "mysite.py").write_text("import middleware\nasync def app(scope, receive, send): ...\n")
    monkeypatch.chdir(site)
    with socket.socket() as busy:  # if the check were missing, the server must not stay up
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        assert main(["run", "mysite:app", "--config", str(JAPAN_TALK), "--port", port]) == 2
        err = capsys.readouterr().err
        assert f"{site / layout.split('/')[0]} is your site's own module named 'middleware'" in err
        assert "Rename your module" in err
        assert main(["run", "mysite:app", "--config", str(JAPAN_TALK), "--port", port,
                     "--app-dir", str(site)]) == 2


def test_cli_run_from_the_repository_is_not_a_clash() -> None:
    from middleware.cli.site import clashing_module

    assert clashing_module(REPO_ROOT) is None


def _pythons_own_gc_threshold() -> list[int]:
    out = subprocess.run([sys.executable, "-c", "import gc; print(list(gc.get_threshold()))"],
                         capture_output=True, text=True, check=True).stdout
    return list(json.loads(out))


@pytest.mark.server
def test_cli_run_sets_the_gc_threshold_in_every_worker_process(tmp_path: Path) -> None:
    """The page views waiting for the ledger are not re-scanned by a young collection every
    few requests: each worker (not only the supervisor) runs with the larger threshold."""
    config = tmp_path / "partners.toml"
    shutil.copy(JAPAN_TALK, config)
    own = _pythons_own_gc_threshold()
    assert own[0] != DEFAULT_GC_THRESHOLD
    with start_consent_gate("tests.support.sample_site:app", config, tmp_path,
                            extra_args=["--workers", "2", "--no-access-log"]) as server:
        assert server.proc is not None
        seen = {}
        for _ in range(40):  # new connections: both workers answer sooner or later
            info = httpx2.get(server.url + "/_gc", timeout=10).json()
            seen[info["pid"]] = info["threshold"]
            if len(seen) == 2:
                break
    assert server.proc.pid not in seen, "answered by the workers, not the supervisor"
    assert seen and all(t == [DEFAULT_GC_THRESHOLD, *own[1:]] for t in seen.values()), seen


@pytest.mark.server
def test_cli_run_gc_threshold_zero_keeps_pythons_own(tmp_path: Path) -> None:
    config = tmp_path / "partners.toml"
    shutil.copy(JAPAN_TALK, config)
    with start_consent_gate("tests.support.sample_site:app", config, tmp_path,
                            extra_args=["--gc-threshold", "0", "--no-access-log"]) as server:
        info = httpx2.get(server.url + "/_gc", timeout=10).json()
    assert info["threshold"] == _pythons_own_gc_threshold()


def test_apply_gc_threshold_reads_the_environment_and_keeps_older_generations(
        monkeypatch: pytest.MonkeyPatch) -> None:
    before = gc.get_threshold()
    try:
        monkeypatch.setenv(GC_THRESHOLD_ENV, "12345")
        assert apply_gc_threshold() == 12345
        assert gc.get_threshold() == (12345, *before[1:])
        monkeypatch.delenv(GC_THRESHOLD_ENV)
        assert apply_gc_threshold() == DEFAULT_GC_THRESHOLD
        assert apply_gc_threshold(0) == DEFAULT_GC_THRESHOLD, "0 changes nothing"
        monkeypatch.setenv(GC_THRESHOLD_ENV, "lots")
        with pytest.raises(RuntimeError, match="CONSENT_GATE_GC_THRESHOLD='lots'"):
            apply_gc_threshold()
    finally:
        gc.set_threshold(*before)


@pytest.mark.parametrize("value", ["lots", "-5", "1e4"])
def test_cli_run_refuses_a_bad_gc_threshold_in_the_environment(
        value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed $CONSENT_GATE_GC_THRESHOLD fails `consent-gate run` before it serves, as a
    bad --gc-threshold does: it used to start the supervisor ("serving on ..."), whose workers
    then each raised in create_app, died and were restarted, forever, no page ever served."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    served: list[object] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: served.append(self))
    monkeypatch.setattr(Multiprocess, "run", lambda self, *a, **k: served.append(self))
    monkeypatch.setenv("CONSENT_GATE_SECRET", "s" * 48)
    monkeypatch.setenv(GC_THRESHOLD_ENV, value)
    port = str(free_port())
    assert main(["run", "examples.japan_talk.app:app", "--config", str(JAPAN_TALK),
                 "--workers", "2", "--port", port]) == 2
    assert not served
    assert GC_THRESHOLD_ENV in capsys.readouterr().err
