"""Instructions per request of several named cases in one valgrind run (callgrind).

    .venv/bin/python bench/callgrind_cases.py --list
    .venv/bin/python bench/callgrind_cases.py                       # the default cases
    .venv/bin/python bench/callgrind_cases.py uv-article-none uv-article-off memo-all
    .venv/bin/python bench/callgrind_cases.py --keep /tmp/cg uv-json-none     # keep the dumps

Why: one valgrind start-up (≈ 30 s of imports under callgrind) measures every case, and the
counts are repeatable on a loaded host where wall-clock and CPU timings are not. The script
re-runs itself under ``valgrind --tool=callgrind --collect-atstart=no`` with
``PYTHONHASHSEED=0``. Inside, each case runs ``--warmup`` requests uncollected, then two
collected segments of ``--short`` and ``--long`` requests, each between callgrind client
requests (``CALLGRIND_TOGGLE_COLLECT``, then ``CALLGRIND_DUMP_STATS_AT(label)``: one dump file
per segment). Instructions per request = (long - short) / (long - short requests): the
segments' fixed costs (the marks themselves, the loop's set-up) cancel. The client requests
come from a 4-line C file compiled on first use (``cc``, valgrind's ``callgrind.h``) and
called through ctypes; outside valgrind they do nothing.

Each case has a bare twin (the same request to the app without the middleware); the table
prints both and the difference. Cases:

* ASGI level (``bench/profile_asgi.py``'s apps, the request headers of a browser):
  ``memo-none``/``memo-all`` (30 KB article, one body, identical every time: a memo hit),
  ``unique-none``/``unique-all`` (unique per request), ``json-none``/``json-all`` (raw JSON
  endpoint), ``starlette-article-none``/``-all`` and ``starlette-json-none``/``-all`` (the Japan
  Talk Starlette app itself, as bench_load serves it). "all" = all-consent cookie, ledger off.
* uvicorn level, in process: ``uv-article-none``, ``uv-article-off`` (all consent, ledger off),
  ``uv-json-none``, ``uv-json-all``: uvicorn's own h11 protocol object (``H11Protocol``, with
  ``ProxyHeadersMiddleware`` as ``uvicorn.Config`` loads it) fed the exact request bytes wrk
  sends in bench/bench_load.py (``Host`` + the consent ``Cookie``), over a transport that keeps
  what is written: everything a worker does per request except the socket system calls.
* pieces of one all-consent Starlette article request, each called alone (bare twin: an
  empty step): ``piece-consent`` (``consent_for``: ``piece-request-inputs`` + ``piece-resolve``),
  ``piece-plan`` (``PlanBuilder.plan``, with ``piece-language``), ``piece-start-kind``,
  ``piece-decide``, ``piece-memo-find``, ``piece-headers`` (``ResponseHeaders.rewritten`` on
  the app's start), ``piece-state`` (scope copy + ConsentState); ``piece-h11-start`` /
  ``piece-h11-start-none``: h11 accepting a request and writing the all-consent / no-consent
  start (bare twin: the bare app's start).

A measurement script: prints, never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT))

MARK_C = r"""
#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_TOGGLE_COLLECT; }
void cg_stop(const char *label) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS_AT(label); }
"""

DEFAULT_CASES = ["memo-none", "memo-all", "json-none", "json-all",
                 "starlette-article-none", "starlette-article-all",
                 "uv-article-none", "uv-article-off", "uv-json-none", "uv-json-all"]

#: One request of a case: an awaitable made fresh per call.
Step = Callable[[], Awaitable[Any]]


def marks() -> tuple[Callable[[], None], Callable[[bytes], None]]:
    """(start, stop(label)): the callgrind client requests, compiled once into a cache dir."""
    digest = hashlib.sha256(MARK_C.encode()).hexdigest()[:12]
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "consent-gate"
    lib = cache / f"cgmark-{digest}.so"
    if not lib.exists():
        cache.mkdir(parents=True, exist_ok=True)
        src = cache / f"cgmark-{digest}.c"
        src.write_text(MARK_C)
        cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
        tmp = cache / f"cgmark-{digest}.{os.getpid()}.so"
        subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", str(tmp), str(src)], check=True)
        tmp.replace(lib)
    dll = ctypes.CDLL(str(lib))
    dll.cg_start.restype = None
    dll.cg_stop.restype = None
    dll.cg_stop.argtypes = [ctypes.c_char_p]
    return dll.cg_start, dll.cg_stop


# ----------------------------------------------------------------------------- the cases


class Transport:
    """What uvicorn's H11Protocol needs of an asyncio transport; keeps nothing it writes
    (the bytes are counted, so a response that did not go out shows)."""

    def __init__(self) -> None:
        self.written = 0
        self.statuses: set[bytes] = set()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if data.startswith(b"HTTP/1.1 "):
            self.statuses.add(data[9:12])

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_protocol(self, protocol: Any) -> None:  # pragma: no cover - no upgrades here
        pass


def uvicorn_step(app: Any, request: bytes) -> tuple[Step, Transport]:
    """One keep-alive connection of uvicorn's h11 protocol serving ``app``: each step feeds
    ``request`` and waits for the response task to finish."""
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.server import ServerState

    # (a keep-alive timeout that cannot fire while the other cases run under valgrind)
    config = uvicorn.Config(app, http="h11", lifespan="off", log_level="warning",
                            access_log=False, timeout_keep_alive=86400)
    config.load()
    state = ServerState()
    state.default_headers = [(b"date", b"Thu, 03 Dec 2026 18:00:00 GMT"), *config.encoded_headers]
    protocol = H11Protocol(config, state, {})
    transport = Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]
    tasks = state.tasks

    async def step() -> None:
        protocol.data_received(request)
        for task in list(tasks):
            await task

    return step, transport


def wrk_request(path: str, cookie: str | None) -> bytes:
    """The request wrk sends in bench/bench_load.py (``-H Cookie: ...`` for the consent rows)."""
    lines = [f"GET {path} HTTP/1.1", "Host: 127.0.0.1:8000"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def build_cases(names: list[str]) -> dict[str, tuple[Step | None, Step]]:
    """name -> (bare step or None, wrapped step)."""
    import h11
    import profile_asgi
    from bench_asgi import ARTICLE, JSON_PATH, SECRET, Collect, cookie_for, make_scope, receive

    from examples.japan_talk.app import app as japan_app
    from middleware import ConsentMiddleware
    from middleware.config import load_config
    from middleware.disclosure import Discloser

    config = load_config(ROOT / "examples/japan_talk/partners.toml")
    off = Discloser(config, None, None)
    asgi = await profile_asgi.cases()
    site = ConsentMiddleware(japan_app, config=config, secret=SECRET, ledger=off)
    cookie = cookie_for(site, config)
    asgi["starlette-article-none"] = (japan_app, site, make_scope(ARTICLE))
    asgi["starlette-article-all"] = (japan_app, site, make_scope(ARTICLE, cookie))
    asgi["starlette-json-none"] = (japan_app, site, make_scope(JSON_PATH))
    asgi["starlette-json-all"] = (japan_app, site, make_scope(JSON_PATH, cookie))

    def asgi_step(app: Any, scope: dict[str, Any]) -> Step:
        return lambda: app(dict(scope), receive, Collect())

    out: dict[str, tuple[Step | None, Step]] = {}
    for name in names:
        if name in asgi and name not in ("json-starlette", "article-starlette"):
            bare, gate, scope = asgi[name]
            out[name] = (asgi_step(bare, scope), asgi_step(gate, scope))
        elif name.startswith("uv-"):
            path = JSON_PATH if name.startswith("uv-json") else ARTICLE
            with_cookie = name.endswith(("-off", "-all"))
            request = wrk_request(path, cookie if with_cookie else None)
            bare_step, bare_out = uvicorn_step(japan_app, request)
            wrapped_step, wrapped_out = uvicorn_step(site, request)
            for check, sink in ((bare_step, bare_out), (wrapped_step, wrapped_out)):
                await check()
                if sink.statuses != {b"200"} or sink.closed:
                    raise SystemExit(f"{name}: uvicorn answered {sink.statuses}, closed={sink.closed}")
            out[name] = (bare_step, wrapped_step)
        elif name.startswith("piece-"):
            out[name] = await piece(name, site, japan_app, make_scope(ARTICLE, cookie), h11)
        else:
            raise SystemExit(f"unknown case {name!r}; --list shows them")
    return out


async def piece(name: str, gate: Any, app: Any, scope: dict[str, Any],
                h11: Any) -> tuple[Step | None, Step]:
    """One step of an all-consent article request, run alone (bare twin: an empty step, so
    the loop's own cost cancels)."""
    from bench_asgi import call

    from middleware.gate.decision import decide
    from middleware.gate.start import HTML, start_kind
    from middleware.gate.state import ConsentState
    from middleware.plan import language_of_scope

    sent = await call(gate, dict(scope))
    start, body = (await call(app, dict(scope))).messages
    headers = start["headers"]
    consent = gate.consent_for(scope)
    allowed = consent.allowed_partners
    language = language_of_scope(scope)
    plan = gate.plans.plan(consent, allowed, language, "utf-8")
    cookie, signal, _ = gate._request_inputs(scope["headers"])
    length = b"%d" % len(sent.body)

    def state() -> None:
        inner = dict(scope)
        made = inner["state"] = ConsentState()
        made._gate = gate
        made._scope = scope
        made._resolved = made.consent_read = False

    calls: dict[str, Callable[[], object]] = {
        "piece-consent": lambda: gate.consent_for(scope),
        "piece-request-inputs": lambda: gate._request_inputs(scope["headers"]),
        "piece-resolve": lambda: gate.resolver.resolve(cookie, signal, None),
        "piece-plan": lambda: gate.plans.plan(consent, allowed, language, "utf-8"),
        "piece-language": lambda: gate.ui.language(scope),
        "piece-start-kind": lambda: start_kind(headers),
        "piece-decide": lambda: decide(HTML, "GET", start, body, gate),
        "piece-memo-find": lambda: gate.memo.find(plan, body["body"]),
        "piece-headers": lambda: gate.response_headers.rewritten(
            {"headers": list(headers)}, scope, allowed, enforced_no_partner=False, length=length),
        "piece-state": state,
    }

    async def nothing() -> None:
        return None

    if name in calls:
        call_it = calls[name]

        async def step() -> None:
            call_it()
        return nothing, step
    if name in ("piece-h11-start", "piece-h11-start-none"):
        wrapped = (sent if name == "piece-h11-start" else
                   await call(gate, {**scope, "headers": [h for h in scope["headers"]
                                                          if h[0] != b"cookie"]}))

        def h11_step(start_headers: list[tuple[bytes, bytes]]) -> Step:
            async def step() -> None:
                conn = h11.Connection(h11.SERVER)
                conn.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                conn.next_event()
                conn.send(h11.Response(status_code=200, headers=start_headers, reason=b"OK"))
            return step
        return h11_step(headers), h11_step(wrapped.messages[0]["headers"])
    raise SystemExit(f"unknown case {name!r}; --list shows them")


async def inside(args: argparse.Namespace) -> None:
    start, stop = marks()
    cases = await build_cases(args.cases)
    for name, (bare, wrapped) in cases.items():
        for which, step in (("bare", bare), ("wrapped", wrapped)):
            if step is None:
                continue
            for _ in range(args.warmup):
                await step()
            for n in (args.short, args.long):
                start()
                for _ in range(n):
                    await step()
                stop(f"{name}|{which}|{n}".encode())


# ----------------------------------------------------------------------------- outside


def read_dumps(directory: Path) -> dict[tuple[str, str, int], Path]:
    out = {}
    for path in directory.glob("cg.*"):
        head = path.read_text(errors="replace")[:4000]
        m = re.search(r"^desc: Trigger: Client Request: (\S+)\|(\S+)\|(\d+)$", head, re.M)
        if m:
            out[(m.group(1), m.group(2), int(m.group(3)))] = path
    return out


def total(path: Path) -> int:
    text = path.read_text(errors="replace")
    m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    return int(m.group(1)) if m else 0


def report(dumps: dict[tuple[str, str, int], Path], args: argparse.Namespace) -> None:
    extra = args.long - args.short
    print(f"instructions per request, (segment of {args.long} - segment of {args.short}) / {extra},"
          " PYTHONHASHSEED=0")
    print(f"{'case':26s} {'bare':>10s} {'wrapped':>10s} {'added':>10s} {'bare/wrapped':>13s}")
    for name in args.cases:
        per = {}
        for which in ("bare", "wrapped"):
            a, b = dumps.get((name, which, args.short)), dumps.get((name, which, args.long))
            per[which] = (total(b) - total(a)) / extra if a and b else None
        bare, wrapped = per["bare"], per["wrapped"]

        def k(v: float | None) -> str:
            return "-" if v is None else f"{v / 1000:.2f} k"
        added = ratio = None
        if wrapped is not None and bare is not None:
            added = wrapped - bare
            ratio = f"{bare / wrapped:.3f}" if not name.startswith("piece-") and wrapped else "-"
        print(f"{name:26s} {k(bare):>10s} {k(wrapped):>10s} {k(added):>10s} {ratio or '-':>13s}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="case names (default: " + " ".join(DEFAULT_CASES) + ")")
    parser.add_argument("--list", action="store_true", help="print the case names")
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--short", type=int, default=200)
    parser.add_argument("--long", type=int, default=1200)
    parser.add_argument("--keep", type=Path, help="keep the dump files in this directory")
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.cases = args.cases or DEFAULT_CASES
    if args.list:
        print("memo-none memo-all unique-none unique-all json-none json-all\n"
              "starlette-article-none starlette-article-all starlette-json-none starlette-json-all\n"
              "uv-article-none uv-article-off uv-json-none uv-json-all\n"
              "piece-consent piece-request-inputs piece-resolve piece-plan piece-language\n"
              "piece-start-kind piece-decide piece-memo-find piece-headers piece-state\n"
              "piece-h11-start piece-h11-start-none")
        return 0
    if args.inside:
        asyncio.run(inside(args))
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 2
    marks()  # compiled before valgrind starts
    directory = args.keep or Path(tempfile.mkdtemp(prefix="callgrind-cases-"))
    directory.mkdir(parents=True, exist_ok=True)
    argv = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--dump-instr=no",
            f"--callgrind-out-file={directory}/cg.%p", sys.executable, str(Path(__file__).resolve()),
            "--inside", "--warmup", str(args.warmup), "--short", str(args.short),
            "--long", str(args.long), *args.cases]
    env = dict(os.environ, PYTHONHASHSEED="0")
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    report(read_dumps(directory), args)
    if args.keep is None:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
