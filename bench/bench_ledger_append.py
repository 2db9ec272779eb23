"""Writer CPU per page view: ``SqlStore.append``, or the writer process's whole path.

    .venv/bin/python bench/bench_ledger_append.py                 # ~20 s
    .venv/bin/python bench/bench_ledger_append.py --views 4096 --rounds 7 --batch 32
    .venv/bin/python bench/bench_ledger_append.py --wire          # decode + chain + append
    .venv/bin/python bench/bench_ledger_append.py --postgres      # PostgresStore.append

The Japan Talk example's partners, all consented (the largest partner list a page sends),
and, for one view in five, only its ads partners: two distinct lists, as on a real site.
Records are linked into a chain first (not timed); ``append`` alone is timed with
``time.thread_time`` (CPU of this thread: a loaded host's waits for a core and the fsync
wait are not counted), batches of ``--batch`` views per commit as the writer process
commits them. Bytes per view: database + WAL after a TRUNCATE checkpoint, divided by the
views. Prints medians over ``--rounds`` fresh files; a same-run A/B runs this script from
two source trees alternately.

``--wire``: what the writer process (``host.Server._round``) does per commit, each stage
timed: the frames a worker's ``Encoder`` made (built before, not timed) are split
(``wire.frames``) and decoded, linked into the chain, appended (a store with deferred
checkpoints, as the writer process opens it) and checkpointed when due. ``--stop-after
STAGE`` ends each commit after that stage (``load``: frames built, nothing done): under
``valgrind --tool=callgrind`` the difference of two runs' totals, divided by the views, is
the instructions per view of the stages between them.

``--postgres``: ``PostgresStore.append`` against a PostgreSQL this script starts (as
``bench_load.py`` does: initdb in a temp dir, fsync and ``synchronous_commit`` on), a fresh
database per round. Besides the client's thread CPU it reads, from ``/proc``, the CPU of
the connection's backend and of the cluster's other processes (WAL writer, checkpointer...)
and the wall time per commit (which includes the fsync the commit waits for).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from middleware.config import load_config  # noqa: E402
from middleware.ledger import PageView, PartnerShare, SqliteStore  # noqa: E402
from middleware.ledger.chain import ChainCursor  # noqa: E402

STAGES = ("load", "decode", "link", "append", "checkpoint")


def partner_lists() -> tuple[tuple[PartnerShare, ...], tuple[PartnerShare, ...]]:
    config = load_config(ROOT / "examples" / "japan_talk" / "partners.toml")
    every = tuple(sorted((PartnerShare(pid, p.purposes, "consent", p.receives, p.cookies)
                          for pid, p in config.partners.items()), key=lambda s: s.partner))
    ads = tuple(s for s in every if "ads" in s.purposes) or every[:1]
    return every, ads


def views_of(start: int, end: int, every: tuple[PartnerShare, ...],
             ads: tuple[PartnerShare, ...]) -> list[PageView]:
    t0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    return [PageView(time=t0 + dt.timedelta(milliseconds=i), request_id=f"r{i:07d}",
                     consent_id=f"cid-{i % 5000:05d}", path=f"/articles/{i % 200}",
                     partners=ads if i % 5 == 0 else every, policy_version="2024-05",
                     ip="203.0.113.0/24", ua_family="Chrome 124")
            for i in range(start, end)]


def size_of(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())


def one_round(path: Path, views: int, batch: int, skip: bool = False) -> tuple[float, float]:
    """CPU µs per view in append, bytes per view."""
    every, ads = partner_lists()
    store = SqliteStore(path, synchronous="full")
    store.open()
    cursor = ChainCursor()
    cpu = 0.0
    for start in range(0, views, batch):
        rows = cursor.link(views_of(start, min(start + batch, views), every, ads))
        c = time.thread_time()
        if not skip:
            store.append(rows)
        cpu += time.thread_time() - c
        cursor.advance(rows)
    store.close()
    return cpu / views * 1e6, size_of(path) / views


def wire_round(path: Path, views: int, batch: int,
               stop_after: str = "checkpoint") -> tuple[dict[str, float], float]:
    """The writer process's path: CPU µs per view of each stage, bytes per view."""
    from middleware.ledger.wire import Decoder, Encoder, frame, frames

    every, ads = partner_lists()
    enc = Encoder()
    bufs: list[bytearray] = []
    for start in range(0, views, batch):
        out: list[bytes] = []
        items = enc.encode(views_of(start, min(start + batch, views), every, ads), out)
        out.append(frame(("W", start, items)))
        bufs.append(bytearray(b"".join(out)))
    last = STAGES.index(stop_after)
    store = SqliteStore(path, synchronous="full", deferred_checkpoints=True)
    store.open()
    decoder = Decoder()
    cursor = ChainCursor()
    cpu = dict.fromkeys(STAGES[1:], 0.0)
    clock = time.thread_time
    for buf in bufs:
        if last < 1:
            continue
        a = clock()
        records = []
        for f in frames(buf):
            if f[0] == "S":
                decoder.share_list(f[1], f[2])
            else:
                records += [decoder.decode(item) for item in f[2]]
        b = clock()
        cpu["decode"] += b - a
        if last < 2:
            continue
        rows = cursor.link(records)
        c = clock()
        cpu["link"] += c - b
        if last < 3:
            continue
        store.append(rows)
        cursor.advance(rows)
        d = clock()
        cpu["append"] += d - c
        if last < 4:
            continue
        store.checkpoint_if_due()
        cpu["checkpoint"] += clock() - d
    store.close()
    return {k: v / views * 1e6 for k, v in cpu.items()}, size_of(path) / views


def _proc_cpu_us(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) * 1e6 / os.sysconf("SC_CLK_TCK")


def _cluster_cpu_us(postmaster: int, skip: int) -> float:
    """CPU of the postmaster and its children except the backend ``skip``."""
    total = 0.0
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == skip:
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2:].split()[1])
            if int(name) == postmaster or ppid == postmaster:
                total += _proc_cpu_us(int(name))
        except (OSError, ValueError):
            continue
    return total


def pg_round(dsn: str, postmaster: int, views: int, batch: int) -> dict[str, float]:
    """Per view: client append CPU, backend CPU, other server CPU (µs); wall per commit (ms)."""
    from middleware.ledger.postgres import PostgresStore

    every, ads = partner_lists()
    store = PostgresStore(dsn)
    store.open()
    assert store._conn is not None
    backend = int(store._conn.info.backend_pid)
    cursor = ChainCursor()
    batches = [cursor.link(views_of(s, min(s + batch, views), every, ads))
               for s in range(0, 2 * batch, batch)]  # warm-up: lists, prepared statements
    for rows in batches:
        store.append(rows)
        cursor.advance(rows)
    cpu = 0.0
    b0, o0, w0 = _proc_cpu_us(backend), _cluster_cpu_us(postmaster, backend), time.perf_counter()
    for start in range(0, views, batch):
        rows = cursor.link(views_of(start, min(start + batch, views), every, ads))
        c = time.thread_time()
        store.append(rows)
        cpu += time.thread_time() - c
        cursor.advance(rows)
    wall = time.perf_counter() - w0
    b1, o1 = _proc_cpu_us(backend), _cluster_cpu_us(postmaster, backend)
    store.close()
    commits = -(-views // batch)
    return {"client": cpu / views * 1e6, "backend": (b1 - b0) / views,
            "server other": (o1 - o0) / views, "wall ms/commit": wall / commits * 1e3}


def postgres_rounds(args: argparse.Namespace, what: str) -> int:
    from bench_load import Postgres, pg_bindir

    if pg_bindir() is None:
        print("no PostgreSQL binaries (initdb, pg_ctl)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        pg = Postgres(Path(tmp))
        pg.start()
        try:
            postmaster = int((pg.base / "data" / "postmaster.pid").read_text().split()[0])
            got = [pg_round(pg.database(f"append_{r}"), postmaster, args.views, args.batch)
                   for r in range(args.rounds)]
        finally:
            pg.stop()
    parts = ", ".join(f"{k} {statistics.median(x[k] for x in got):.1f}" for k in got[0])
    print(f"{ROOT.name}: PostgreSQL append per view µs CPU: {parts}; {what}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--views", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--skip-append", action="store_true",
                    help="everything but append (for instruction counts: valgrind --tool="
                         "callgrind, once with and once without, the difference is append's)")
    ap.add_argument("--wire", action="store_true",
                    help="the writer process's path: decode, link, append, checkpoint")
    ap.add_argument("--stop-after", choices=STAGES, default="checkpoint",
                    help="with --wire: do each commit's stages up to this one only")
    ap.add_argument("--postgres", action="store_true",
                    help="PostgresStore.append against a PostgreSQL started here (fsync on)")
    args = ap.parse_args()
    every, _ = partner_lists()
    what = (f"{args.views} views x {args.rounds} rounds, {args.batch}/commit, "
            f"{len(every)} partners")
    if args.postgres:
        return postgres_rounds(args, what)
    with tempfile.TemporaryDirectory() as tmp:
        if args.wire:
            stages: list[dict[str, float]] = []
            sizes: list[float] = []
            for r in range(args.rounds):
                c, s = wire_round(Path(tmp) / f"l{r}.sqlite3", args.views, args.batch,
                                  args.stop_after)
                stages.append(c)
                sizes.append(s)
            parts = ", ".join(f"{k} {statistics.median(x[k] for x in stages):.1f}"
                              for k in STAGES[1:])
            total = statistics.median(sum(x.values()) for x in stages)
            print(f"{ROOT.name}: writer {total:.1f} µs/view CPU ({parts}), "
                  f"{statistics.median(sizes):,.0f} B/view, {what}")
            return 0
        cpus, sizes = [], []
        for r in range(args.rounds):
            c, s = one_round(Path(tmp) / f"l{r}.sqlite3", args.views, args.batch,
                             args.skip_append)
            cpus.append(c)
            sizes.append(s)
    print(f"{ROOT.name}: append {statistics.median(cpus):.1f} µs/view CPU "
          f"(min {min(cpus):.1f}, max {max(cpus):.1f}), {statistics.median(sizes):,.0f} B/view, "
          f"{what}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
