"""Load-test the Japan Talk example, bare and wrapped in consent-gate, with uvicorn + wrk.

    .venv/bin/python bench/bench_load.py              # full run: 1 and 2 workers, 3 reps x 10 s (~15 min)
    .venv/bin/python bench/bench_load.py --quick      # smoke run: 1 worker, 1 rep x 2 s
    .venv/bin/python bench/bench_load.py --markdown   # tables as Markdown (for bench/README.md)
    .venv/bin/python bench/bench_load.py --workers 2 --reps 5 --duration 15

Servers (all on free 127.0.0.1 ports, ``--log-level warning``, no access log):

* bare      ``uvicorn bench_load:bare_app --factory --app-dir bench`` (the site unwrapped, with
            ``consent-gate run``'s worker GC threshold, as every wrapped row)
* wrapped   ``consent-gate run examples.japan_talk.app:app --config <tmp partners.toml>``
            (ledger: SQLite in a temp dir; ``CONSENT_GATE_SECRET`` = a fresh 48-char secret)
* wrapped, ledger off   ``uvicorn bench_load:ledger_off_app --factory --app-dir bench``: the same
            middleware built with ``ledger=Discloser(config, None, None)`` (records nothing), to
            measure what log-before-disclose costs
* wrapped, ledger on (PostgreSQL)   the wrapped server with ``[ledger] path`` a DSN of a
            PostgreSQL the bench starts on this host (initdb in a temp dir, fsync on); skipped
            with ``--no-postgres`` or when no PostgreSQL binaries are found
* (``--normal``) wrapped, ledger on, ``synchronous = "normal"``: no fsync per commit, to tell
            the disk's share of the cost from the CPU's
* (``--thread``) wrapped, ledger on, ``[ledger] writer = "thread"``: a writer thread in each
            worker instead of the default writer process shared by the host's workers

Before and after each worker count the bench measures this disk's fsync (4 KB append +
fsync in the ledger's directory, 300 times): its p99 is the physical floor of a durable
commit, and the p99 target is "<= 5 ms, or <= fsync p99 + 1 ms where the disk is slower".

Load: ``wrk -t2 -c32 -d10s --latency`` (the all-consent variants add a signed ``Cookie:
consent=...`` minted with the same secret) against ``/articles/kyoto-autumn`` (~30 KB HTML)
and ``/api/articles.json``. Runs are interleaved (bare, wrapped-no-consent, wrapped-all-consent,
... repeated), the tables quote medians. wrk and the server share this machine's cores, so the
absolute numbers are low and noisy; ratios to bare from the same run are what to compare.
After the run the ledger must hold one record per (page view, partner) and ``consent-gate log
verify`` must pass; both are printed. The last output is saved to bench/results/load.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import counters as proc_counters  # noqa: E402
from machine import cpu_model, git_rev, nproc  # noqa: E402

VENV_BIN = Path(sys.executable).parent
ARTICLE = "/articles/kyoto-autumn"
JSON_PATH = "/api/articles.json"
CONFIG_ENV = "CONSENT_GATE_CONFIG"
APP_ENV = "CONSENT_GATE_APP"
SECRET_ENV = "CONSENT_GATE_SECRET"
TARGETS = [
    ("JSON passthrough, req/s vs bare", ">= 0.97"),
    ("ledger cost: 30 KB all consent, ledger on vs ledger off (SQLite, synchronous=FULL)", ">= 0.90"),
    ("30 KB page, all consent + ledger, req/s vs bare", ">= 0.60 (stretch 0.75)"),
    ("log-before-disclose, p99 added (ledger on - ledger off, 32 conns)",
     "<= 5 ms or <= fsync p99 + 1 ms"),
    ("PostgreSQL ledger on vs ledger off (30 KB all consent)", ">= 0.90"),
]
VIEW_PARTNERS = 5  # partners enabled on the article with all consent


def serve(app: str, port: int, workers: int, factory: bool) -> None:
    """``uvicorn --workers N`` with a listening socket that keeps TCP_NODELAY.

    uvicorn's multiprocess path binds with ``socket.socket(family)`` (proto 0); accepted
    sockets inherit proto 0 and asyncio only sets TCP_NODELAY when proto is IPPROTO_TCP,
    so with ``--workers 2`` every keep-alive response waits ~40 ms on the client's delayed
    ACK (uvicorn issue #3149, measured here: 44 ms per request even at -c1). Same code path
    as ``uvicorn.run`` otherwise.
    """
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    config = uvicorn.Config(app, host="127.0.0.1", port=port, workers=workers, factory=factory,
                            log_level="warning", access_log=False)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.set_inheritable(True)
    Multiprocess(config, sockets=[sock]).run()


def bare_app() -> Any:
    """uvicorn factory (in each worker): the bare site, unwrapped, in a process with the GC
    threshold and glibc heap trim ``consent-gate run`` gives its workers, so that every row's
    ratio to bare is the middleware's cost and not those process-wide settings (which a bare
    site could take too)."""
    from examples.japan_talk.app import app as site
    from middleware.runner import apply_worker_settings

    apply_worker_settings()
    return site


def ledger_off_app() -> Any:
    """uvicorn factory (in each worker): the wrapped site with a Discloser that writes nothing,
    in a process set up as ``consent-gate run`` sets up its workers (the same GC threshold and
    glibc heap trim, ``runner.apply_worker_settings``), so that on/off differ by the ledger
    alone."""
    from examples.japan_talk.app import app as site
    from middleware import ConsentMiddleware
    from middleware.config import load_config
    from middleware.disclosure import Discloser
    from middleware.runner import apply_worker_settings

    apply_worker_settings()

    config = load_config(os.environ[CONFIG_ENV])
    return ConsentMiddleware(site, config=config, ledger=Discloser(config, None, None))


# ------------------------------------------------------------------------- helpers


def fsync_samples(directory: Path, n: int = 300) -> list[float]:
    """Milliseconds per fsync of a 4 KB append in ``directory``: a durable commit's floor."""
    path = directory / "fsync-probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    out = []
    try:
        for _ in range(n):
            os.write(fd, b"x" * 4096)
            t = time.perf_counter()
            os.fsync(fd)
            out.append((time.perf_counter() - t) * 1e3)
    finally:
        os.close(fd)
        path.unlink()
    return out


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(len(v) * q))]


def pg_bindir() -> Path | None:
    import glob

    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    return next((Path(d) for d in dirs if (Path(d) / "initdb").exists()), None)


class Postgres:
    """A throwaway PostgreSQL on a free loopback port with durable settings (fsync on)."""

    def __init__(self, tmp: Path) -> None:
        self.bindir = pg_bindir()
        # Its own directory under /tmp: the run's temp dir is private to us (0700), and as root
        # the cluster runs as nobody.
        self.base = Path(tempfile.mkdtemp(prefix="consent-gate-load-pg-")) / "pg"
        self.port = free_port()
        self.prefix: list[str] = []

    def start(self) -> str:
        import pwd

        assert self.bindir is not None
        self.base.mkdir()
        if os.geteuid() == 0:  # initdb refuses root: the cluster belongs to nobody
            nobody = pwd.getpwnam("nobody")
            os.chmod(self.base.parent, 0o755)
            os.chown(self.base, nobody.pw_uid, nobody.pw_gid)
            self.prefix = ["runuser", "-u", "nobody", "--"]
        data = self.base / "data"
        subprocess.run([*self.prefix, str(self.bindir / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "postgres", "-E", "UTF8"], check=True, capture_output=True, timeout=120)
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(data), "-l",
                        str(self.base / "log"), "-w", "-t", "60", "-o",
                        f"-h 127.0.0.1 -p {self.port} -k {self.base}", "start"],
                       check=True, capture_output=True, timeout=120)
        return f"postgresql://postgres@127.0.0.1:{self.port}"

    def database(self, name: str) -> str:
        import psycopg

        dsn = f"postgresql://postgres@127.0.0.1:{self.port}"
        with psycopg.connect(f"{dsn}/postgres", autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}".encode())
        return f"{dsn}/{name}"

    def cluster_cpu_us(self) -> float:
        """CPU µs (user + system) of the postmaster and its children so far."""
        try:
            pm = int((self.base / "data" / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return float("nan")
        total = 0.0
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            try:
                stat = Path(f"/proc/{name}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(name) == pm or int(fields[1]) == pm:
                total += (int(fields[11]) + int(fields[12])) * _TICK_US
        return total

    def commits(self, name: str) -> int:
        """Committed transactions of database ``name`` (pg_stat_database; flushed by the
        backends at most once a second, so a run's count is off by up to a second's)."""
        import psycopg

        with psycopg.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres",
                             autocommit=True) as c:
            row = c.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                            (name,)).fetchone()
        return int(row[0]) if row else 0

    def stop(self) -> None:
        if self.bindir is not None and (self.base / "data").exists():
            subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.base / "data"),
                            "-m", "fast", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(self.base.parent, ignore_errors=True)



def machine_description() -> list[str]:
    model = cpu_model()
    cores = nproc()
    wrk_v = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    wrk_line = (wrk_v.stdout or wrk_v.stderr).splitlines()[0].split(" Copyright")[0] if (wrk_v.stdout or wrk_v.stderr) else "wrk ?"
    try:
        import uvicorn
        uv = uvicorn.__version__
    except ImportError:
        uv = "?"
    return [
        f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"nproc: {cores}; CPU: {model}; code: {git_rev()}",
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}; uvicorn {uv} (h11, asyncio loop); {wrk_line}",
        f"CPU contention: wrk (2 threads) and the server worker(s) share these {cores} cores, "
        "so absolute req/s understate the server; compare ratios from the same run",
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mint_cookie(config_path: Path, secret: str) -> str:
    from middleware.config import load_config
    from middleware.consent import ConsentCodec, StoredChoice

    config = load_config(config_path)
    codec = ConsentCodec((secret,), max_age_seconds=config.policy.cookie.max_age_days * 86400)
    choice = StoredChoice("cid-bench" + secrets.token_hex(4), frozenset(config.purposes),
                          config.policy.version, "banner", dt.datetime.now(dt.UTC))
    return f"{config.policy.cookie.name}={codec.dumps(choice)}"


def fetch(url: str, cookie: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Cookie": cookie} if cookie else {})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, resp.read()


@dataclass
class Server:
    name: str
    argv: list[str]
    env: dict[str, str]
    port: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    #: The PostgreSQL it writes to (the PostgreSQL row): its server CPU and commits per run.
    db: Postgres | None = None
    db_name: str = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, start_new_session=True,
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                if fetch(self.base + "/health", timeout=1)[0] == 200:
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # Our own process group (start_new_session): the uvicorn supervisor and its workers.
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: str
    #: CPU time per request (µs) of the server's workers (+ supervisor), of its ledger writer
    #: process, and of wrk itself, read from /proc and getrusage around the run.
    cpu_workers: float = float("nan")
    cpu_writer: float = float("nan")
    cpu_wrk: float = float("nan")
    #: The busiest worker's share of all workers' CPU in the run (1.0 with one worker). With
    #: 2 workers and 32 keep-alive connections the kernel may hand most connections to one
    #: worker: such a run measures one core, not the middleware, and is flagged in the table.
    busiest_share: float = float("nan")
    #: Resident memory (MB) of the server's workers (+ supervisor) and its writer at the end.
    rss_workers: float = float("nan")
    rss_writer: float = float("nan")
    #: The PostgreSQL row: CPU µs per request of the whole cluster (backends, WAL writer...),
    #: and page views per committed transaction of the ledger's database (pg_stat_database).
    cpu_db: float = float("nan")
    views_per_commit: float = float("nan")
    #: (``--counters``) per role ("worker": all workers summed, "writer"), each counter of
    #: ``counters.py`` divided by the run's requests.
    counters: dict[str, dict[str, float]] = field(default_factory=dict)


#: A run whose busiest worker did more than this share of the workers' CPU is run again (at
#: most RETRIES_UNBALANCED times; wrk opens its connections at once and the first worker to
#: wake may accept them all), and flagged in the table if it stays so.
UNBALANCED_SHARE = 0.75
RETRIES_UNBALANCED = 2

_TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")
_PAGE_MB = os.sysconf("SC_PAGE_SIZE") / 2**20


def session_cpu(sid: int) -> dict[str, float]:
    """CPU µs (user + system) of the live processes of session ``sid`` (a server started with
    ``start_new_session``: its supervisor, workers and the ledger writer process they start),
    as {"workers": ..., "writer": ..., "pid:N": ...} (one "pid:N" per worker process, so a
    run's spread over the workers can be read), and their resident memory in MB
    ("rss_workers", "rss_writer")."""
    out = {"workers": 0.0, "writer": 0.0, "rss_workers": 0.0, "rss_writer": 0.0}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) != sid:
                continue
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue  # exited meanwhile
        role = "writer" if b"--writer-id" in cmdline else "workers"
        used = (int(fields[11]) + int(fields[12])) * _TICK_US
        out[role] += used
        out["rss_" + role] += int(fields[21]) * _PAGE_MB
        if role == "workers" and int(name) != sid:  # the session leader is the supervisor
            out[f"pid:{name}"] = used
    return out


def session_pids(sid: int) -> dict[int, str]:
    """The worker processes and the ledger writer of session ``sid``: its leader is the
    supervisor when it has workers, the worker itself with ``--workers 1``."""
    out: dict[int, str] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            if int(stat[stat.rindex(")") + 2:].split()[3]) != sid:
                continue
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        out[int(name)] = "writer" if b"--writer-id" in cmdline else "worker"
    if sum(role == "worker" for role in out.values()) > 1:
        out.pop(sid, None)
    return out


def busiest_share(before: dict[str, float], after: dict[str, float]) -> float:
    """The largest single worker's share of the workers' CPU between two readings."""
    used = [after[k] - before.get(k, 0.0) for k in after if k.startswith("pid:")]
    total = sum(used)
    return max(used) / total if total > 0 else float("nan")


def unbalanced(result: WrkResult, workers: int) -> bool:
    """True when one of several workers did most of a run's work (see UNBALANCED_SHARE)."""
    return workers > 1 and result.busiest_share > UNBALANCED_SHARE


def children_cpu_us() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1e6


def ms(text: str) -> float:
    m = re.match(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(url: str, cookie: str | None, duration: float, conns: int = 32,
            server: Server | None = None, counters: bool = False) -> WrkResult:
    argv = ["wrk", "-t2", f"-c{conns}", f"-d{duration:g}s", "--latency"]
    if cookie:
        argv += ["-H", f"Cookie: {cookie}"]
    sid = server.proc.pid if server is not None and server.proc is not None else None
    before = session_cpu(sid) if sid is not None else None
    db = server.db if server is not None else None
    db0 = (db.cluster_cpu_us(), db.commits(server.db_name)) if db and server else None
    roles = session_pids(sid) if counters and sid is not None else {}
    recording = proc_counters.start(roles) if roles else None
    wrk0 = children_cpu_us()
    out = subprocess.run([*argv, url], capture_output=True, text=True, check=True).stdout
    wrk_us = children_cpu_us() - wrk0
    counted = proc_counters.stop(recording) if recording is not None else {}
    after = session_cpu(sid) if sid is not None else None
    db1 = (db.cluster_cpu_us(), db.commits(server.db_name)) if db and server else None
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    reqs = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errs = []
    if m := re.search(r"Socket errors: (.*)", out):
        errs.append("socket " + m.group(1).strip())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errs.append(f"non-2xx {m.group(1)}")
    result = WrkResult(rps, p50, p99, reqs, "; ".join(errs))
    if counted:
        result.counters = proc_counters.per_request(counted, roles, reqs)
    if reqs:
        result.cpu_wrk = wrk_us / reqs
        if before is not None and after is not None:
            result.cpu_workers = (after["workers"] - before["workers"]) / reqs
            result.cpu_writer = (after["writer"] - before["writer"]) / reqs
            result.busiest_share = busiest_share(before, after)
        if db0 is not None and db1 is not None:
            result.cpu_db = (db1[0] - db0[0]) / reqs
            if db1[1] > db0[1]:
                result.views_per_commit = reqs / (db1[1] - db0[1])
    if after is not None:
        result.rss_workers, result.rss_writer = after["rss_workers"], after["rss_writer"]
    return result


@dataclass
class Variant:
    path: str
    name: str
    server: Server
    cookie: str | None
    results: list[WrkResult] = field(default_factory=list)

    def med(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.results)


def table(headers: list[str], rows: list[list[str]], markdown: bool, left: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(headers) + " |",
                 "|" + "|".join("---" if i == 0 or left else "---:" for i in range(len(headers))) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 or left else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths, strict=False)))
    return "\n".join([fmt(headers), fmt(["-" * w for w in widths])] + [fmt(r) for r in rows])


def verdict(ok: bool, stretch: bool | None = None) -> str:
    if not ok:
        return "MISSED"
    return "met" if stretch is None else ("met (stretch met)" if stretch else "met (stretch missed)")


# ------------------------------------------------------------------------- one worker count


def write_config(tmp: Path, name: str, ledger: str, synchronous: str = "full",
                 writer: str = "process") -> Path:
    cfg_text = (ROOT / "examples/japan_talk/partners.toml").read_text()
    cfg_text, n = re.subn(r'(?m)^path = "consent-ledger\.sqlite3"', f'path = "{ledger}"', cfg_text)
    assert n == 1, "could not set [ledger] path in the copy of partners.toml"
    extra = (f'synchronous = "{synchronous}"\n' if synchronous != "full" else "") + (
        f'writer = "{writer}"\n' if writer != "process" else "")
    if extra:
        cfg_text, n = re.subn(r'(?m)^(\[ledger\]\n)', lambda m: m.group(1) + extra, cfg_text)
        assert n == 1, "no [ledger] table in partners.toml"
    config = tmp / f"partners-{name}.toml"
    config.write_text(cfg_text)
    return config


LEDGER_ON = "wrapped, all consent, ledger on"
LEDGER_OFF = "wrapped, all consent, ledger off"
LEDGER_PG = "wrapped, all consent, ledger on (PostgreSQL)"
LEDGER_NORMAL = "wrapped, all consent, ledger on (synchronous=normal)"
LEDGER_THREAD = "wrapped, all consent, ledger on (thread writer)"
#: --only keys -> variant names (article rows; "json" selects the three JSON rows).
ONLY = {"bare": "bare", "none": "wrapped, no consent", "on": LEDGER_ON, "off": LEDGER_OFF,
        "pg": LEDGER_PG, "normal": LEDGER_NORMAL, "thread": LEDGER_THREAD}


def bench_workers(workers: int, args: argparse.Namespace, tmp: Path, out: list[str],
                  commands: list[str], pg: Postgres | None) -> None:
    md = args.markdown
    secret = secrets.token_urlsafe(36)  # 48 characters
    assert len(secret) == 48
    ledger = tmp / f"ledger-w{workers}.sqlite3"
    config = write_config(tmp, f"w{workers}", str(ledger))
    env = dict(os.environ, **{SECRET_ENV: secret, CONFIG_ENV: str(config),
                              "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH)])})
    env.pop("CONSENT_GATE_DEV", None)
    uv = [str(VENV_BIN / "uvicorn"), "--log-level", "warning", "--no-access-log",
          "--host", "127.0.0.1", "--workers", str(workers)]
    env[APP_ENV] = "examples.japan_talk.app:app"  # read by middleware.runner:create_app
    launcher = [sys.executable, str(Path(__file__).resolve()), "--serve"]

    def wrapped(cfg: Path) -> list[str]:
        return [str(VENV_BIN / "consent-gate"), "run", "examples.japan_talk.app:app", "--config",
                str(cfg), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]

    plan: list[tuple[str, list[str], str, bool, dict[str, str]]] = [
        ("bare", [*uv, "--factory", "--app-dir", str(BENCH), "bench_load:bare_app"],
         "bench_load:bare_app", True, env),
        ("wrapped", wrapped(config), "middleware.runner:create_app", True, env),
        ("wrapped-ledger-off", [*uv, "--factory", "--app-dir", str(BENCH), "bench_load:ledger_off_app"],
         "bench_load:ledger_off_app", True, env),
    ]
    pg_dsn = None
    if pg is not None:
        pg_dsn = pg.database(f"ledger_w{workers}")
        pg_cfg = write_config(tmp, f"w{workers}-pg", pg_dsn)
        plan.append(("wrapped-pg", wrapped(pg_cfg), "middleware.runner:create_app", True,
                     dict(env, **{CONFIG_ENV: str(pg_cfg)})))
    if args.thread:
        t_cfg = write_config(tmp, f"w{workers}-thread", str(tmp / f"ledger-w{workers}-thread.sqlite3"),
                             writer="thread")
        plan.append(("wrapped-thread", wrapped(t_cfg), "middleware.runner:create_app", True,
                     dict(env, **{CONFIG_ENV: str(t_cfg)})))
    normal_ledger = tmp / f"ledger-w{workers}-normal.sqlite3"
    if args.normal:
        n_cfg = write_config(tmp, f"w{workers}-normal", str(normal_ledger), "normal")
        plan.append(("wrapped-normal", wrapped(n_cfg), "middleware.runner:create_app", True,
                     dict(env, **{CONFIG_ENV: str(n_cfg)})))
    servers = {}
    for name, argv, app, factory, senv in plan:
        port = free_port()
        if workers > 1:  # same app, same uvicorn, but a listening socket that keeps TCP_NODELAY
            argv = launcher + [app, str(port), str(workers)] + (["--factory"] if factory else [])
        else:
            argv = [*argv, "--port", str(port)]
        servers[name] = Server(name, argv, senv, port, tmp / f"{name}-w{workers}.log")
        if name == "wrapped-pg":
            servers[name].db, servers[name].db_name = pg, f"ledger_w{workers}"
        commands.append(f"{workers}w {name}: " + " ".join(
            Path(a).name if a.startswith("/") and not a.endswith(".toml") else a for a in argv))
    cookie = mint_cookie(config, secret)
    fsync_ms = fsync_samples(tmp)
    try:
        for s in servers.values():
            s.start()
        checks = check_servers(servers, cookie)
        variants = [
            Variant(ARTICLE, "bare", servers["bare"], None),
            Variant(ARTICLE, "wrapped, no consent", servers["wrapped"], None),
            Variant(ARTICLE, LEDGER_ON, servers["wrapped"], cookie),
            Variant(ARTICLE, LEDGER_OFF, servers["wrapped-ledger-off"], cookie),
        ]
        if "wrapped-pg" in servers:
            variants.append(Variant(ARTICLE, LEDGER_PG, servers["wrapped-pg"], cookie))
        if "wrapped-normal" in servers:
            variants.append(Variant(ARTICLE, LEDGER_NORMAL, servers["wrapped-normal"], cookie))
        if "wrapped-thread" in servers:
            variants.append(Variant(ARTICLE, LEDGER_THREAD, servers["wrapped-thread"], cookie))
        if not args.no_json:
            variants += [
                Variant(JSON_PATH, "bare", servers["bare"], None),
                Variant(JSON_PATH, "wrapped, no consent", servers["wrapped"], None),
                Variant(JSON_PATH, LEDGER_ON, servers["wrapped"], cookie),
            ]
        if args.only:
            keep = {ONLY[k] for k in args.only if k in ONLY}
            variants = [v for v in variants if (v.path == ARTICLE and v.name in keep)
                        or (v.path == JSON_PATH and "json" in args.only)]
        counted: dict[str, int] = {}  # server -> all-consent article views wrk saw complete
        runs: dict[str, int] = {}
        retried: list[str] = []  # runs repeated for connection placement (RETRIES_UNBALANCED)

        def count(v: Variant, r: WrkResult) -> None:
            if v.path == ARTICLE and v.cookie and v.server.name != "wrapped-ledger-off":
                counted[v.server.name] = counted.get(v.server.name, 0) + r.requests
                runs[v.server.name] = runs.get(v.server.name, 0) + 1

        # Warm-up: every server/path pair once (imports, caches, ledger file, worker spread).
        for v in variants:
            count(v, run_wrk(v.server.base + v.path, v.cookie, args.warmup, server=v.server))
        t0 = time.monotonic()
        for rep in range(args.reps):
            k = rep % len(variants)
            for v in variants[k:] + variants[:k]:
                r = run_wrk(v.server.base + v.path, v.cookie, args.duration, server=v.server,
                            counters=args.counters)
                count(v, r)
                for _ in range(RETRIES_UNBALANCED):  # connection placement, not the middleware
                    if not unbalanced(r, workers):
                        break
                    retried.append(f"{v.path} {v.name} {r.busiest_share:.0%}")
                    r = run_wrk(v.server.base + v.path, v.cookie, args.duration, server=v.server,
                                counters=args.counters)
                    count(v, r)
                v.results.append(r)
                for role, c in sorted(r.counters.items()):
                    print(f"    counters/req {workers}w {v.name} {role}: " + " ".join(
                        f"{proc_counters.short(k)}={x:.3g}" for k, x in sorted(c.items())),
                          file=sys.stderr, flush=True)
                if not md:
                    print(f"  [{workers}w rep {rep + 1}/{args.reps} {time.monotonic() - t0:4.0f}s] "
                          f"{v.path} {v.name}: {r.rps:.0f} req/s p50 {r.p50_ms:.2f} ms "
                          f"p99 {r.p99_ms:.2f} ms; CPU µs/req workers {r.cpu_workers:.0f} "
                          f"writer {r.cpu_writer:.0f} wrk {r.cpu_wrk:.0f} busiest worker "
                          f"{r.busiest_share:.0%}; RSS MB workers {r.rss_workers:.0f} "
                          f"writer {r.rss_writer:.0f}"
                          + (f"; PostgreSQL CPU µs/req {r.cpu_db:.0f}, views/commit "
                             f"{r.views_per_commit:.1f}" if v.server.db is not None else "")
                          + f" {r.errors}",
                          file=sys.stderr, flush=True)
    finally:
        for s in servers.values():
            s.stop()
    fsync_ms += fsync_samples(tmp)

    # ---- tables
    h = (lambda s: f"#### {s}") if md else (lambda s: f"\n== {s}")
    out.append(h(f"uvicorn --workers {workers}: wrk -t2 -c32 -d{args.duration:g}s --latency, "
                 f"median of {args.reps} interleaved runs"))
    f50, f99 = pct(fsync_ms, 0.5), pct(fsync_ms, 0.99)
    out.append(("- " if md else "  ") + f"this disk's fsync (4 KB append + fsync in the ledger's "
               f"directory, {len(fsync_ms)} samples before and after the runs): p50 {f50:.2f} ms, "
               f"p99 {f99:.2f} ms, max {max(fsync_ms):.2f} ms")
    out.append("")
    rows = []
    for path in (ARTICLE, JSON_PATH):
        vs = [v for v in variants if v.path == path]
        if not vs:
            continue
        bare = vs[0] if vs[0].name == "bare" else None
        for v in vs:
            ratio = (statistics.median(a.rps / b.rps for a, b in zip(v.results, bare.results,
                                                                     strict=False))
                     if bare is not None else float("nan"))
            errs = sorted({r.errors for r in v.results if r.errors})
            rows.append([f"{path} {v.name}", f"{v.med('rps'):.0f}",
                         "1.00" if v is bare else f"{ratio:.2f}",
                         f"{v.med('p50_ms'):.2f}", f"{v.med('p99_ms'):.2f}",
                         f"{v.med('cpu_workers'):.0f} + {v.med('cpu_writer'):.0f}",
                         f"{v.med('cpu_wrk'):.0f}",
                         " / ".join(f"{r.rps:.0f}{'*' if unbalanced(r, workers) else ''}"
                                    for r in v.results), "; ".join(errs) or "-"])
    out.append(table(["variant", "req/s", "ratio to bare", "p50 ms", "p99 ms",
                      "CPU µs/req workers + writer", "wrk CPU µs/req", "req/s per run",
                      "errors"], rows, md))
    for v in variants:
        if v.server.db is not None and v.results:
            out.append(("- " if md else "  ") + f"{v.path} {v.name}: PostgreSQL server CPU "
                       f"(all the cluster's processes) {v.med('cpu_db'):.0f} µs/req, "
                       f"{v.med('views_per_commit'):.1f} page views per commit (medians)")
    flagged = [(v, r) for v in variants for r in v.results if unbalanced(r, workers)]
    if retried:
        out.append(("- " if md else "  ") + f"runs repeated because one worker did more than "
                   f"{UNBALANCED_SHARE:.0%} of the workers' CPU (discarded, their requests still "
                   f"counted in the ledger check): " + ", ".join(retried))
    if flagged:
        out.append(("- " if md else "  ") + f"* = a run whose busiest worker did more than "
                   f"{UNBALANCED_SHARE:.0%} of the workers' CPU (the kernel placed most of wrk's "
                   f"keep-alive connections on one worker: that run measures one core): "
                   + ", ".join(f"{v.path} {v.name} {r.busiest_share:.0%}" for v, r in flagged))
    out.append("")
    by = {(v.path, v.name): v for v in variants}
    nan = float("nan")

    def paired(a: Variant | None, b: Variant | None, f: Any) -> float:
        if a is None or b is None:
            return nan
        return float(statistics.median(f(x, y) for x, y in zip(a.results, b.results, strict=False)))

    def rate(a: Variant, b: Variant) -> float:
        return a.rps / b.rps  # type: ignore[attr-defined]

    bare_a = by.get((ARTICLE, "bare"))
    j_ratio = statistics.median(
        a.rps / b.rps for v in (by[(JSON_PATH, "wrapped, no consent")], by[(JSON_PATH, LEDGER_ON)])
        for a, b in zip(v.results, by[(JSON_PATH, "bare")].results, strict=False)
    ) if (JSON_PATH, "bare") in by else nan
    on, off = by.get((ARTICLE, LEDGER_ON)), by.get((ARTICLE, LEDGER_OFF))
    cost = paired(on, off, rate)
    a_ratio = paired(on, bare_a, rate)
    off_ratio = paired(off, bare_a, rate)
    p99_add = paired(on, off, lambda a, b: a.p99_ms - b.p99_ms)
    p50_add = paired(on, off, lambda a, b: a.p50_ms - b.p50_ms)
    nc_ratio = paired(by.get((ARTICLE, "wrapped, no consent")), bare_a, rate)
    p99_goal = max(5.0, f99 + 1.0)
    targets = [
        [TARGETS[0][0], TARGETS[0][1], f"{j_ratio:.2f} (no consent and all consent runs)",
         verdict(j_ratio >= 0.97)],
        [TARGETS[1][0], TARGETS[1][1], f"{cost:.2f}", verdict(cost >= 0.90)],
        [TARGETS[2][0], TARGETS[2][1], f"{a_ratio:.2f} (ledger off: {off_ratio:.2f}, no consent: "
         f"{nc_ratio:.2f})", verdict(a_ratio >= 0.60, a_ratio >= 0.75)],
        [TARGETS[3][0], TARGETS[3][1] + f" = {p99_goal:.2f} ms here",
         f"{p99_add:+.2f} ms (p50 {p50_add:+.2f} ms; fsync p99 {f99:.2f} ms)",
         verdict(p99_add <= p99_goal)],
    ]
    if (ARTICLE, LEDGER_PG) in by:
        pg_cost = paired(by[(ARTICLE, LEDGER_PG)], off, rate)
        pg_bare = paired(by[(ARTICLE, LEDGER_PG)], bare_a, rate)
        pg_p99 = paired(by[(ARTICLE, LEDGER_PG)], off, lambda a, b: a.p99_ms - b.p99_ms)
        targets.append([TARGETS[4][0], TARGETS[4][1],
                        f"{pg_cost:.2f} (vs bare {pg_bare:.2f}; p99 added {pg_p99:+.2f} ms)",
                        verdict(pg_cost >= 0.90)])
    if (ARTICLE, LEDGER_THREAD) in by:
        t_cost = paired(by[(ARTICLE, LEDGER_THREAD)], off, rate)
        t_p99 = paired(by[(ARTICLE, LEDGER_THREAD)], off, lambda a, b: a.p99_ms - b.p99_ms)
        targets.append(["(design evidence) writer thread in each worker, ledger on vs off",
                        "-", f"{t_cost:.2f} (p99 added {t_p99:+.2f} ms)", "-"])
    if (ARTICLE, LEDGER_NORMAL) in by:
        n_cost = paired(by[(ARTICLE, LEDGER_NORMAL)], off, rate)
        targets.append(["(diagnosis) synchronous=normal ledger on vs ledger off", "-",
                        f"{n_cost:.2f}", "-"])
    out.append(table(["target", "goal", "measured", "verdict"], targets, md, left=True))
    out.append("")
    out.append(h(f"Ledger check ({workers} worker(s))"))
    out += [("- " if md else "  ") + c for c in checks]
    out += [("- " if md else "  ") + c for c in ledger_check(
        str(ledger), counted.get("wrapped", 0), runs.get("wrapped", 0), md, "SQLite")]
    if pg_dsn is not None:
        out += [("- " if md else "  ") + c for c in ledger_check(
            pg_dsn, counted.get("wrapped-pg", 0), runs.get("wrapped-pg", 0), md, "PostgreSQL",
            commands=False)]
    out.append("")


def check_servers(servers: dict[str, Server], cookie: str) -> list[str]:
    """Before loading: the variants really differ the way their names say."""
    loader = b"pagead/js/adsbygoogle.js"
    _, bare = fetch(servers["bare"].base + ARTICLE)
    _, none = fetch(servers["wrapped"].base + ARTICLE)
    _, full = fetch(servers["wrapped"].base + ARTICLE, cookie)
    _, off = fetch(servers["wrapped-ledger-off"].base + ARTICLE, cookie)
    ok = loader not in none and loader in full and loader in off
    return [f"article sizes: bare {len(bare)} B, no consent {len(none)} B, all consent {len(full)} B, "
            f"ledger-off {len(off)} B; AdSense loader injected only with consent: {'OK' if ok else 'NO'}"]


def ledger_check(target: str, counted: int, runs: int, md: bool, label: str,
                 commands: bool = True) -> list[str]:
    """Every page view wrk saw complete has exactly one record holding its 5 partners."""
    from middleware.ledger import Filters, PageView, StoredRow, open_store

    lines = []
    records = broken = 0
    ids: set[str] = set()
    shapes: dict[int, int] = {}
    paths: dict[str, int] = {}
    with open_store(target) as store:
        for row in store.disclosures(Filters(), newest_first=False):
            if not isinstance(row, StoredRow) or not isinstance(row.record, PageView):
                broken += 1
                continue
            rec = row.record
            records += 1
            ids.add(rec.request_id)
            shapes[len(rec.partners)] = shapes.get(len(rec.partners), 0) + 1
            paths[rec.path] = paths.get(rec.path, 0) + 1
    # The server also serves requests wrk had in flight when it stopped (<= 32 per run) and one check.
    slack = 32 * runs + 1
    ok = counted <= records <= counted + slack and len(ids) == records and broken == 0
    lines.append(f"{label}: page view records {records:,} (distinct request ids {len(ids):,}); "
                 f"page views wrk counted {counted:,} (+ up to {slack} in flight / checks): "
                 f"{'OK' if ok else 'MISMATCH'}; partners per record -> records: "
                 f"{', '.join(f'{k}->{c}' for k, c in sorted(shapes.items()))}; other rows: {broken}; "
                 f"paths: {sorted(paths.items())}")
    cmds = (["log", "summary"], ["log", "verify"]) if commands else (["log", "verify"],)
    for cmd in cmds:
        r = subprocess.run([str(VENV_BIN / "consent-gate"), *cmd, "--ledger", target],
                           capture_output=True, text=True, cwd=ROOT)
        text = (r.stdout + r.stderr).strip()
        shown = "PATH" if label == "SQLite" else "DSN"
        if md:
            lines.append(f"`consent-gate {' '.join(cmd)} --ledger {shown}` ({label}) exit "
                         f"{r.returncode}:\n\n```\n{text}\n```")
        else:
            lines.append(f"consent-gate {' '.join(cmd)} --ledger {shown} ({label}) -> exit "
                         f"{r.returncode}\n" + "\n".join("    " + t for t in text.splitlines()))
    return lines


# ------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 worker, 1 rep x 2 s")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--workers", type=int, nargs="*", default=None, help="default: 1 2")
    parser.add_argument("--reps", type=int, default=None, help="interleaved repetitions (default 3)")
    parser.add_argument("--duration", type=float, default=None, help="seconds per wrk run (default 10)")
    parser.add_argument("--no-postgres", action="store_true",
                        help="skip the PostgreSQL ledger row (default: on when initdb is found)")
    parser.add_argument("--normal", action="store_true",
                        help="add a ledger-on row with synchronous=normal (no fsync per commit)")
    parser.add_argument("--no-json", action="store_true", help="skip the JSON endpoint rows")
    parser.add_argument("--thread", action="store_true",
                        help="add a ledger-on row with [ledger] writer = \"thread\" (a writer thread in "
                             "each worker instead of the host's writer process)")
    parser.add_argument("--only", type=lambda t: t.split(","), default=None, metavar="KEYS",
                        help="run only these variants, comma-separated: " + ", ".join(ONLY)
                             + ", json (the three JSON rows); for short directional runs, e.g. "
                               "--only on,off --reps 1 --duration 4 --workers 1")
    parser.add_argument("--counters", action="store_true",
                        help="print per-request counters of the workers and the writer process for "
                             "each measured run (perf stat tracepoints: syscalls by kind, context "
                             "switches, wake-ups, migrations; /proc: user/system CPU, run-queue wait)")
    parser.add_argument("--process", action="store_true",
                        help="(the default writer now; kept so older commands still run)")
    parser.add_argument("--serve", nargs="+", metavar="ARG",
                        help="internal: APP PORT WORKERS [--factory], run uvicorn with a TCP_NODELAY socket")
    args, rest = parser.parse_known_args()
    if args.serve:
        serve(args.serve[0], int(args.serve[1]), int(args.serve[2]), "--factory" in args.serve + rest)
        return 0
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    args.workers = args.workers or ([1] if args.quick else [1, 2])
    args.reps = args.reps or (1 if args.quick else 3)
    args.duration = args.duration or (2.0 if args.quick else 10.0)
    args.warmup = 1.0 if args.quick else 3.0
    md = args.markdown
    out: list[str] = []
    out.append(("### " if md else "== ") + "consent-gate load benchmark (bench/bench_load.py"
               + (" --quick)" if args.quick else ")"))
    out += [("- " if md else "  ") + line for line in machine_description()]
    out.append(("- " if md else "  ") + "ledger: SQLite (WAL, synchronous=FULL) in a temp dir, one "
               "record per page view, written by the host's ledger writer process (the default "
               "[ledger] writer = \"process\"); ledger off = ConsentMiddleware(..., ledger=Discloser(config, "
               "None, None)); PostgreSQL: started by the bench on this host, fsync on, "
               "synchronous_commit on")
    out.append("")
    commands: list[str] = []
    with tempfile.TemporaryDirectory(prefix="consent-gate-load-") as tmp:
        pg = None
        if not args.no_postgres and pg_bindir() is not None:
            pg = Postgres(Path(tmp))
            try:
                pg.start()
            except (subprocess.CalledProcessError, OSError) as exc:
                print(f"PostgreSQL did not start ({exc}); no PostgreSQL row", file=sys.stderr)
                pg = None
        try:
            for w in args.workers:
                bench_workers(w, args, Path(tmp), out, commands, pg)
        finally:
            if pg is not None:
                pg.stop()
    out.append(("#### " if md else "== ") + "Server commands")
    if any(w > 1 for w in args.workers):
        out.append("With more than one worker every server (bare and wrapped alike) is started by "
                   "`bench_load.py --serve`: uvicorn's own Multiprocess supervisor and the same app, "
                   "but a listening socket created with IPPROTO_TCP. `uvicorn --workers 2` binds with "
                   "proto 0, so asyncio never sets TCP_NODELAY and every keep-alive response waits "
                   "~40 ms for a delayed ACK (uvicorn issue #3149): every variant then measures "
                   "~727 req/s = 32 connections / 44 ms.")
    out += [("- `" if md else "  ") + c + ("`" if md else "") for c in commands]
    text = "\n".join(out)
    print(text)
    results = BENCH / "results"
    results.mkdir(parents=True, exist_ok=True)
    name = "load-quick.md" if args.quick else "load-partial.md" if args.only else "load.md"
    (results / name).write_text(text if md else "```\n" + text + "\n```\n")
    print(f"\n(saved to {results / name})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
