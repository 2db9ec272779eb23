"""Start real servers (uvicorn or any command) on a loopback port in a subprocess.

    with start_uvicorn("tests.support.sample_site:app") as srv:
        httpx.get(srv.url + "/")

    argv = ["consent-gate", "run", "examples.japan_talk.app:app",
            "--config", "partners.toml", "--port", "{port}"]
    with start_command(argv, cwd="examples/japan_talk") as srv:
        ...

Output (stdout and stderr together) goes to a temporary log file, never to a pipe that
could fill up and block the server; it is included in the error when start-up fails and
available as ``srv.output()``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Self

__all__ = [
    "REPO_ROOT",
    "ServerProcess",
    "ServerStartError",
    "bound_socket",
    "free_port",
    "start_all",
    "start_command",
    "start_uvicorn",
    "uvicorn_process",
    "wait_for_port",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"


class ServerStartError(RuntimeError):
    pass


_RUNNING: set[ServerProcess] = set()


@atexit.register
def _stop_leftovers() -> None:
    """Servers started without ``with`` and never stopped die with the test process."""
    for srv in list(_RUNNING):
        with contextlib.suppress(Exception):
            srv.stop()


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on ``host`` right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not _accepts(host, port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing accepts connections on {host}:{port} after {timeout}s")
        time.sleep(0.05)


class ServerProcess:
    """A server subprocess listening on ``host:port``; use as a context manager."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int,
        host: str = LOOPBACK,
        env: Mapping[str, str] | None = None,
        inherit_env: bool = True,
        cwd: str | os.PathLike[str] | None = None,
        startup_timeout: float = 20.0,
        stop_timeout: float = 5.0,
        sock: socket.socket | None = None,
    ) -> None:
        self.port = port
        self.host = host
        #: A socket bound to ``port`` that the server inherits (``{fd}`` in argv); this
        #: process's copy is closed once the server started.
        self.sock = sock
        fd = str(sock.fileno()) if sock is not None else ""
        self.argv = [a.replace("{port}", str(port)).replace("{host}", host).replace("{fd}", fd)
                     for a in argv]
        base = dict(os.environ) if inherit_env else {}
        base.setdefault("PYTHONUNBUFFERED", "1")
        # "{port}" in a given value too (a script that reads its port from the environment).
        self.env = {**base, **{k: v.replace("{port}", str(port)) for k, v in (env or {}).items()}}
        self.cwd = Path(cwd) if cwd is not None else REPO_ROOT
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path: Path | None = None
        self.startup_seconds: float | None = None
        self._spawned = 0.0
        self._terminated = False

    @property
    def url(self) -> str:
        """Base URL without trailing slash, e.g. ``http://127.0.0.1:40123``."""
        return f"http://{self.host}:{self.port}"

    def output(self) -> str:
        """Everything the server wrote to stdout/stderr so far."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def start(self) -> Self:
        """Spawn the server and wait until it accepts connections."""
        self.spawn()
        return self.wait_started()

    def spawn(self) -> Self:
        """Start the process without waiting for it (``wait_started`` does): several servers
        spawned first and then awaited start up side by side (``start_all``)."""
        if self.proc is not None:
            raise RuntimeError("already started")
        if _accepts(self.host, self.port):
            raise ServerStartError(f"{self.host}:{self.port} is already in use")
        fd, name = tempfile.mkstemp(prefix="consent-gate-server-", suffix=".log")
        self.log_path = Path(name)
        self._spawned = time.monotonic()
        with os.fdopen(fd, "wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() reaches its children
                pass_fds=() if self.sock is None else (self.sock.fileno(),),
            )
        _RUNNING.add(self)
        return self

    def wait_started(self) -> Self:
        """Wait until the spawned server accepts connections; stop it and raise
        ServerStartError (with its output) if it exits or stays silent."""
        if self.proc is None:
            raise RuntimeError("not spawned")
        t0 = self._spawned
        deadline = t0 + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                problem = (
                    f"server exited with code {self.proc.returncode} before accepting connections"
                )
                break
            if _accepts(self.host, self.port):
                self.startup_seconds = time.monotonic() - t0
                self._close_sock()
                return self
            if time.monotonic() > deadline:
                problem = (
                    f"server did not accept connections on {self.host}:{self.port} "
                    f"within {self.startup_timeout}s"
                )
                break
            time.sleep(0.05)
        self.stop()
        out = self.output()
        self._remove_log()
        raise ServerStartError(
            f"{problem}\nargv: {self.argv}\ncwd: {self.cwd}\n--- output ---\n{out}"
        )

    def _close_sock(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def _signal(self, sig: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, sig)  # the group we created with start_new_session
        except (ProcessLookupError, PermissionError):
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(sig)

    def terminate(self) -> None:
        """SIGTERM without waiting (``stop`` then waits): several servers shut down side by
        side."""
        if self.proc is not None and self.proc.poll() is None and not self._terminated:
            self._signal(signal.SIGTERM)
            self._terminated = True

    def stop(self) -> int | None:
        """SIGTERM, wait ``stop_timeout``, then SIGKILL. Returns the exit code."""
        self._close_sock()
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if not self._terminated:
                self._signal(signal.SIGTERM)
            try:
                self.proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.proc.wait(self.stop_timeout)
        _RUNNING.discard(self)
        return self.proc.returncode

    def _remove_log(self) -> None:
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                self.log_path.unlink()

    def __enter__(self) -> Self:
        # start_uvicorn()/start_command() return a started server: enter only once.
        return self if self.proc is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._remove_log()


def start_command(
    argv: Sequence[str],
    *,
    port: int | None = None,
    host: str = LOOPBACK,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    startup_timeout: float = 20.0,
) -> ServerProcess:
    """Start ``argv`` (``{port}``/``{host}`` are substituted, ``{port}`` in ``env`` values
    too) and wait until it listens.

    Without ``port`` a free one is picked; if another process grabs it in the meantime
    ("address already in use"), it retries with a new port, up to three times.
    """
    attempts = 3 if port is None else 1
    for attempt in range(attempts):
        srv = ServerProcess(
            argv,
            port=free_port(host) if port is None else port,
            host=host,
            env=env,
            inherit_env=inherit_env,
            cwd=cwd,
            startup_timeout=startup_timeout,
        )
        try:
            return srv.start()
        except ServerStartError as exc:
            if attempt + 1 < attempts and "address already in use" in str(exc).lower():
                continue
            raise
    raise AssertionError("unreachable")


def start_uvicorn(
    app: str,
    *,
    port: int | None = None,
    host: str = LOOPBACK,
    env: Mapping[str, str] | None = None,
    inherit_env: bool = True,
    cwd: str | os.PathLike[str] | None = None,
    app_dir: str | os.PathLike[str] | None = None,
    extra_args: Sequence[str] = (),
    log_level: str = "info",
    startup_timeout: float = 20.0,
) -> ServerProcess:
    """Run uvicorn's command line for ``APP`` (an import string) and wait until it listens.

    ``cwd`` defaults to the repository root, which uvicorn puts on ``sys.path``
    (``--app-dir``, default: ``cwd``), so ``tests.support.sample_site:app`` and
    ``examples.japan_talk.app:app`` import from there. Without ``port``, the port is bound
    here and the socket handed to uvicorn (``tests/support/uvicorn_on_socket.py``): no other
    server can take it between the pick and the bind.
    """
    launcher = ["-m", "uvicorn"] if port is not None else [
        "-m", "tests.support.uvicorn_on_socket", "{fd}"]
    argv = [
        sys.executable,
        *launcher,
        app,
        "--host",
        "{host}",
        "--port",
        "{port}",
        "--log-level",
        log_level,
        "--timeout-graceful-shutdown",
        "2",
    ]
    if app_dir is not None:
        argv += ["--app-dir", str(app_dir)]
    argv += list(extra_args)
    if port is not None:
        return start_command(argv, port=port, host=host, env=env, inherit_env=inherit_env,
                             cwd=cwd, startup_timeout=startup_timeout)
    return _on_bound_socket(argv, host=host, env=env, inherit_env=inherit_env, cwd=cwd,
                            startup_timeout=startup_timeout).start()


def uvicorn_process(app: str, *, host: str = LOOPBACK, env: Mapping[str, str] | None = None,
                    extra_args: Sequence[str] = (), log_level: str = "info",
                    startup_timeout: float = 20.0) -> ServerProcess:
    """``start_uvicorn(app, ...)`` on a port bound here, not yet spawned: for ``start_all``."""
    argv = [sys.executable, "-m", "tests.support.uvicorn_on_socket", "{fd}", app,
            "--host", "{host}", "--port", "{port}", "--log-level", log_level,
            "--timeout-graceful-shutdown", "2", *extra_args]
    return _on_bound_socket(argv, host=host, env=env, inherit_env=True, cwd=None,
                            startup_timeout=startup_timeout)


def _on_bound_socket(argv: list[str], *, host: str, env: Mapping[str, str] | None,
                     inherit_env: bool, cwd: str | os.PathLike[str] | None,
                     startup_timeout: float) -> ServerProcess:
    sock = bound_socket(host)
    # The launcher is imported from the repository root, wherever the app's cwd is.
    root = str(REPO_ROOT)
    base = dict(os.environ) if inherit_env else {}
    path = (env or {}).get("PYTHONPATH", base.get("PYTHONPATH", ""))
    env = {**(env or {}), "PYTHONPATH": root + (os.pathsep + path if path else "")}
    return ServerProcess(argv, port=int(sock.getsockname()[1]), host=host, env=env,
                         inherit_env=inherit_env, cwd=cwd, startup_timeout=startup_timeout,
                         sock=sock)


@contextlib.contextmanager
def start_all(servers: Sequence[ServerProcess]) -> Iterator[list[ServerProcess]]:
    """Spawn every server, then wait for each: their start-ups (mostly imports) overlap
    instead of adding up. All are stopped at the end, or when one fails to start."""
    try:
        for srv in servers:
            srv.spawn()
        for srv in servers:
            srv.wait_started()
        yield list(servers)
    finally:
        for srv in servers:
            srv.terminate()
        for srv in reversed(servers):
            srv.__exit__(None, None, None)


def bound_socket(host: str = LOOPBACK) -> socket.socket:
    """A TCP socket bound to a free port of ``host`` and not listening (connections are
    refused until the server that inherits it listens), inheritable by a child."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    sock.set_inheritable(True)
    return sock


def start_consent_gate(app: str, config: str | os.PathLike[str], cwd: str | os.PathLike[str], *,
                       extra_args: Sequence[str] = (),
                       env: Mapping[str, str] | None = None) -> ServerProcess:
    """``consent-gate run APP --config CONFIG`` on a free loopback port, from ``cwd`` (where a
    relative ledger path lands), with a fresh random signing secret unless ``env`` sets one."""
    import secrets

    argv = [str(Path(sys.executable).with_name("consent-gate")), "run", app, "--config", str(config),
            "--port", "{port}", "--app-dir", str(REPO_ROOT), *extra_args]
    return start_command(argv, cwd=cwd,
                         env={"CONSENT_GATE_SECRET": secrets.token_urlsafe(36), **(env or {})})
