"""What a logged page view costs a worker's event loop, counted per request (issue 10).

    .venv/bin/python bench/profile_ledger_wait.py --procs 2 --conc 16 -n 3000 --pairs 3
    .venv/bin/python bench/profile_ledger_wait.py --solo on -n 1500      # one process, for
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        .venv/bin/python bench/profile_ledger_wait.py --solo on -n 1500  # instruction counts

``--procs`` worker processes (as uvicorn's workers) each run ``--conc`` clients in one event
loop, every client calling ConsentMiddleware over the Japan Talk app for the 30 KB article
with all consent, one request after another: with the ledger on, each page waits for the
host's real writer process (shared by the processes, SQLite FULL in a temp dir), so a loop
whose clients all wait goes to sleep, as a uvicorn worker holding 16 of wrk's connections
does. No sockets to a client: what is counted is the middleware, the loop and the ledger's
wire. Per request and per process, summed over the processes: user and system CPU of the
loop's thread, voluntary and involuntary context switches, page faults, loop iterations (selector calls)
and those that blocked, frames sent to the writer; the writer process's CPU per request from
``/proc``. ``--pairs`` alternates ledger on and ledger off runs (fresh processes each) and
prints every run and the medians: on a shared host only such pairs can be compared.
``--pin`` puts process i on CPU i (mod the CPU count) and the writer process on the last CPU,
and prints each process's CPU per request: does the worker that shares its core with the
writer pay more? ``--polluter KB:MS`` adds a control process (on the last CPU with ``--pin``)
that writes a KB buffer every MS ms: a cache footprint like the writer's, without the writer.
A measurement script: prints, never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
ROOT = Path(__file__).resolve().parent.parent
_TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def _thread_usage() -> tuple[float, float, int, int, int]:
    r = resource.getrusage(resource.RUSAGE_THREAD)
    return r.ru_utime * 1e6, r.ru_stime * 1e6, r.ru_nvcsw, r.ru_nivcsw, r.ru_minflt


async def _clients(mode: str, ledger: str, conc: int, warmup: int, n: int,
                   go: Any, segments: Any = None) -> dict[str, float]:
    from bench_asgi import ARTICLE, SECRET, Collect, cookie_for, make_scope, receive

    from examples.japan_talk.app import app as japan_app
    from middleware import ConsentMiddleware
    from middleware.config import load_config
    from middleware.disclosure import Discloser
    from middleware.runner import apply_worker_settings

    apply_worker_settings()  # as consent-gate run's workers (and bench_load's ledger-off app)

    base = load_config(ROOT / "examples/japan_talk/partners.toml")
    config = dataclasses.replace(base, ledger=dataclasses.replace(base.ledger, path=ledger))
    if mode == "on":
        disc = Discloser.from_config(config, SECRET)
    elif mode == "nullnow":  # records built, nothing awaited: no suspension
        disc = Discloser(config, NullWriter(-1), None)
    elif mode == "nullpath":  # the ledger-on path through the responder, no record built
        disc = Discloser(config, NullWriter(-1), None)

        async def disclose(partners: Any, *request: Any) -> None:
            return None

        disc.disclose = disclose  # type: ignore[method-assign]
    elif mode.startswith("null"):
        disc = Discloser(config, NullWriter(float(mode[4:] or 0) / 1000), None)  # type: ignore[arg-type]
    else:
        disc = Discloser(config, None, None)
    gate = ConsentMiddleware(japan_app, config=config, secret=SECRET, ledger=disc)
    scope = make_scope(ARTICLE, cookie_for(gate, config))
    loop = asyncio.get_running_loop()
    sel = loop._selector  # type: ignore[attr-defined]
    real_select = sel.select
    counts = {"iterations": 0, "blocked": 0}

    def select(timeout: float | None = None) -> Any:
        counts["iterations"] += 1
        if timeout is None or timeout > 0:
            counts["blocked"] += 1
        return real_select(timeout)

    sel.select = select
    left = [0]

    async def client() -> None:
        while left[0] > 0:
            left[0] -= 1
            sink = Collect()
            # Each request its own task, as uvicorn starts one per request.
            await asyncio.create_task(gate(dict(scope), receive, sink))
            if sink.status != 200:
                raise SystemExit(f"status {sink.status}")

    left[0] = warmup
    await asyncio.gather(*(client() for _ in range(conc)))
    if segments is not None:  # --cg: collected segments between callgrind client requests
        start, stop, sizes, label = segments
        for size in sizes:
            frames0 = getattr(disc.writer, "_next", 0)
            counts["iterations"] = 0
            start()
            left[0] = size
            await asyncio.gather(*(client() for _ in range(conc)))
            stop(f"{label}|{size}".encode())
            print(f"{label}|{size} frames={getattr(disc.writer, '_next', 0) - frames0} "
                  f"iterations={counts['iterations']}", file=sys.stderr, flush=True)
        if disc.writer is not None:
            await disc.writer.aclose()  # type: ignore[attr-defined]
        return {}
    await go()
    writer = disc.writer
    frames0 = getattr(writer, "_next", 0)
    counts["iterations"] = counts["blocked"] = 0
    u0, s0, v0, i0, f0 = _thread_usage()
    t0 = time.perf_counter()
    left[0] = n
    await asyncio.gather(*(client() for _ in range(conc)))
    wall = time.perf_counter() - t0
    u1, s1, v1, i1, f1 = _thread_usage()
    frames = getattr(writer, "_next", 0) - frames0
    if writer is not None:
        await writer.aclose()  # type: ignore[attr-defined]
    return {"requests": n, "user_us": u1 - u0, "sys_us": s1 - s0, "vol_cs": v1 - v0,
            "invol_cs": i1 - i0, "page_faults": f1 - f0, "iterations": counts["iterations"],
            "blocked": counts["blocked"], "frames": frames, "wall_s": wall}


class NullWriter:
    """A control: page views wait as for the writer process (suspended, resumed together once
    per batch) but nothing is encoded, sent or committed. ``delay`` 0: the batch resolves in
    the next loop iteration; otherwise after ``delay`` seconds (the loop sleeps meanwhile, if
    every client waits), as a commit would; below 0 (mode ``nullnow``) ``write`` returns at once."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.store = None
        self.futs: list[asyncio.Future[None]] = []
        self._next = 0

    def _resolve(self, futs: list[asyncio.Future[None]]) -> None:
        for f in futs:
            if not f.done():
                f.set_result(None)

    def _flush(self) -> None:
        futs, self.futs = self.futs, []
        self._next += 1
        loop = asyncio.get_running_loop()
        if self.delay:
            loop.call_later(self.delay, self._resolve, futs)
        else:
            loop.call_soon(self._resolve, futs)

    async def write(self, records: Any, timeout: float | None = None) -> None:
        if self.delay < 0:
            return
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        if not self.futs:
            loop.call_soon(self._flush)
        self.futs.append(fut)
        await fut

    async def aclose(self) -> None:
        return None


def cg_inside(args: argparse.Namespace) -> int:
    from callgrind_cases import marks

    start, stop = marks()
    for r in range(args.rounds):
        modes = args.cg.split(",")
        for mode in modes if r % 2 == 0 else modes[::-1]:
            asyncio.run(_clients(mode, args.ledger, args.conc, args.warmup, 0, _nothing,
                                 (start, stop, (args.short, args.long), f"{mode}|{r}")))
    return 0


def cg_outside(args: argparse.Namespace, ledger: str) -> int:
    """Every mode of ``--cg`` in one valgrind run (imports once), ``--rounds`` times
    alternating the order; instructions per request = (long - short) / (long - short)."""
    import shutil

    from callgrind_cases import marks, read_dumps, total

    marks()  # compiled before valgrind starts
    directory = Path(tempfile.mkdtemp(prefix="callgrind-wait-"))
    argv = ["valgrind", "--tool=callgrind", "--collect-atstart=no", "--dump-instr=no",
            f"--callgrind-out-file={directory}/cg.%p", sys.executable, __file__,
            "--cg-inside", "--cg", args.cg, "--ledger", ledger, "--conc", str(args.conc),
            "--warmup", str(args.warmup), "--short", str(args.short), "--long", str(args.long),
            "--rounds", str(args.rounds)]
    done = subprocess.run(argv, env=dict(os.environ, PYTHONHASHSEED="0"),
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return done.returncode
    for line in done.stderr.splitlines():
        if " frames=" in line:
            print(line)
    dumps = read_dumps(directory)
    extra = args.long - args.short
    print(f"instructions per request, (segment of {args.long} - segment of {args.short}) / {extra},"
          f" --conc {args.conc}, PYTHONHASHSEED=0")
    for mode in args.cg.split(","):
        per = []
        for r in range(args.rounds):
            a, b = dumps.get((mode, str(r), args.short)), dumps.get((mode, str(r), args.long))
            per.append(f"{(total(b) - total(a)) / extra / 1000:.1f} k" if a and b else "-")
        print(f"{mode:9s} " + " ".join(per))
    if args.keep:
        print(f"dumps in {directory}", flush=True)
    else:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


def child(args: argparse.Namespace) -> int:
    if args.cpu >= 0:
        os.sched_setaffinity(0, {args.cpu})

    async def go() -> None:
        if args.solo:
            return
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    out = asyncio.run(_clients(args.mode, args.ledger, args.conc, args.warmup, args.n, go))
    print(json.dumps(out), flush=True)
    return 0


def _writer_cpu(ledger: str) -> float:
    """CPU µs of the live writer process(es) of ``ledger``."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
            if b"--writer-id" not in cmd or ledger.encode() not in cmd:
                continue
            stat = Path(f"/proc/{name}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            total += (int(fields[11]) + int(fields[12])) * _TICK_US
        except (OSError, ValueError):
            continue
    return total


def _writer_pids(ledger: str) -> list[int]:
    pids = []
    for name in os.listdir("/proc"):
        try:
            cmd = Path(f"/proc/{name}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if name.isdigit() and b"--writer-id" in cmd and ledger.encode() in cmd:
            pids.append(int(name))
    return pids


def polluter(spec: str, cpu: int) -> int:
    """A control for the writer's cache footprint: every MS ms, write one byte per 64 of a KB
    buffer (then sleep), on ``cpu``, until killed."""
    kb, ms = (float(x) for x in spec.split(":"))
    if cpu >= 0:
        os.sched_setaffinity(0, {cpu})
    buf = bytearray(int(kb * 1024))
    view = memoryview(buf)
    while True:
        view[::64] = bytes(len(buf[::64]))
        time.sleep(ms / 1000)


def one_run(mode: str, args: argparse.Namespace, ledger: str) -> dict[str, float]:
    ncpu = os.cpu_count() or 1
    argv = [sys.executable, __file__, "--child", "--mode", mode, "--ledger", ledger,
            "--conc", str(args.conc), "--warmup", str(args.warmup), "-n", str(args.n)]
    procs = [subprocess.Popen([*argv, "--cpu", str(i % ncpu if args.pin else -1)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
             for i in range(args.procs)]
    for p in procs:
        assert p.stdout is not None
        if p.stdout.readline().strip() != "ready":
            raise SystemExit("a child did not start")
    if args.pin:  # the writer on the last CPU, with the last worker (or alone, if procs < ncpu)
        for pid in _writer_pids(ledger):
            os.sched_setaffinity(pid, {ncpu - 1})
    pol = None
    if args.polluter:
        pol = subprocess.Popen([sys.executable, __file__, "--pollute", args.polluter,
                                "--cpu", str(ncpu - 1 if args.pin else -1)])
    w0 = _writer_cpu(ledger)
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = []
    w1 = w0
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        w1 = max(w1, _writer_cpu(ledger))  # before the last child disconnects
        results.append(json.loads(line))
    for p in procs:
        p.wait()
    if pol is not None:
        pol.kill()
        pol.wait()
    total: dict[str, float] = {}
    for r in results:
        for k, v in r.items():
            total[k] = total.get(k, 0.0) + v
    reqs = total.pop("requests")
    wall = max(r["wall_s"] for r in results)
    total.pop("wall_s")
    per = {k: v / reqs for k, v in total.items()}
    per["cpu_us"] = per["user_us"] + per["sys_us"]
    per["writer_us"] = (w1 - w0) / reqs
    per["views_per_frame"] = 1 / per["frames"] if per["frames"] else float("nan")
    per["req_s"] = reqs / wall
    for i, r in enumerate(results):  # each process's own loop CPU per request (for --pin)
        per[f"cpu{i}_us"] = (r["user_us"] + r["sys_us"]) / r["requests"]
    return per


KEYS = ["cpu_us", "user_us", "sys_us", "writer_us", "vol_cs", "invol_cs", "page_faults", "iterations",
        "blocked", "frames", "views_per_frame", "req_s"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--solo", help="on, off or nullMS: one process in this one, no pairs")
    ap.add_argument("--mode", default="on", help=argparse.SUPPRESS)
    ap.add_argument("--ledger", default="", help=argparse.SUPPRESS)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--conc", type=int, default=16)
    ap.add_argument("--warmup", type=int, default=400)
    ap.add_argument("-n", type=int, default=3000, help="requests per process, measured")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--modes", default="on,off",
                    help="modes to alternate: on, off, null0 (a writer that answers in the next "
                         "loop iteration), null1 (after 1 ms: the loop sleeps), nullnow "
                         "(records built, write returns at once), nullpath (the ledger-on path, "
                         "no record built)")
    ap.add_argument("--pin", action="store_true",
                    help="process i on CPU i mod the CPU count, the writer process on the last "
                         "CPU (with the last process): prints each process's CPU per request")
    ap.add_argument("--polluter", default="", metavar="KB:MS",
                    help="a control process (on the last CPU with --pin) writing a KB buffer "
                         "every MS ms: a cache footprint like the writer's, without the writer")
    ap.add_argument("--cpu", type=int, default=-1, help=argparse.SUPPRESS)
    ap.add_argument("--pollute", default="", help=argparse.SUPPRESS)
    ap.add_argument("--cg", help="modes (comma-separated) counted under callgrind in one run")
    ap.add_argument("--cg-inside", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--short", type=int, default=400, help="--cg: the short segment's requests")
    ap.add_argument("--long", type=int, default=1600, help="--cg: the long segment's requests")
    ap.add_argument("--rounds", type=int, default=2, help="--cg: rounds, order alternating")
    ap.add_argument("--keep", action="store_true", help="--cg: keep the dump files")
    args = ap.parse_args()
    if args.pollute:
        return polluter(args.pollute, args.cpu)
    if args.child:
        return child(args)
    if args.cg_inside:
        return cg_inside(args)
    tmp = tempfile.TemporaryDirectory(prefix="consent-gate-wait-")
    ledger = str(Path(tmp.name) / "ledger.sqlite3")
    if args.cg:
        return cg_outside(args, ledger)
    if args.solo:
        args.mode, args.ledger = args.solo, ledger
        print(json.dumps(asyncio.run(_clients(args.solo, ledger, args.conc, args.warmup,
                                              args.n, _nothing))))
        return 0
    modes = args.modes.split(",")
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    for i in range(args.pairs):
        for mode in modes if i % 2 == 0 else modes[::-1]:
            r = one_run(mode, args, ledger)
            runs[mode].append(r)
            print(f"{mode:3} " + " ".join(f"{k}={r[k]:.3g}" for k in KEYS)
                  + " " + " ".join(f"{k}={v:.3g}" for k, v in r.items() if k.startswith("cpu") and
                                   k != "cpu_us"), flush=True)
    for mode in modes:
        med = {k: statistics.median(r[k] for r in runs[mode]) for k in KEYS}
        print(f"median {mode:3} " + " ".join(f"{k}={med[k]:.3g}" for k in KEYS))
    return 0


async def _nothing() -> None:
    return None


if __name__ == "__main__":
    raise SystemExit(main())
