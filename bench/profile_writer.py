"""The ledger writer process's CPU per page view and per commit, in instructions.

    .venv/bin/python bench/profile_writer.py                   # callgrind, batches 1 5 10 32
    .venv/bin/python bench/profile_writer.py --batches 5 10 --views 1024 --conns 2
    .venv/bin/python bench/profile_writer.py --native          # thread CPU instead (noisy host)
    .venv/bin/python bench/profile_writer.py --keep /tmp/cg    # keep the callgrind files
    callgrind_annotate --inclusive=yes /tmp/cg/callgrind.b10.out | head -60

What it runs is the writer process's own code: a ``host.Server`` over a ``SqliteStore``
opened as the writer process opens it (``deferred_checkpoints=True``, ``synchronous=full``),
fed through real socketpairs with the frames that a worker's ``wire.Encoder`` makes
(Japan Talk's partner lists, one view in five with its ads partners only; visitors with
~3 views each, consent ids in random order; built before, not measured). One step is what
``Server.run`` does per wake-up: ``select``, read every ready connection, ``_round`` (split
frames, decode, link the chain, ``append``, acknowledge, the deferred checkpoint when due).

Each batch size (views per commit, split over ``--conns`` worker connections: 2 workers
under wrk commit 5-11 views at a time) runs in a child process under ``valgrind
--tool=callgrind --toggle-collect=functools_reduce``: the measured steps, and nothing else,
run inside ``functools.reduce`` (a C function: callgrind cannot see Python frames), so
start-up, imports, the prefill, the warm-up and the worker side's sends and ack reads are
not counted. Instructions are user space only: the kernel's part of the ``fdatasync``,
``pwrite64`` and socket calls (~76 µs per commit for the fsync on this VM) is not in them;
``--native`` reports thread CPU (user + system) of the same steps, which has it but is
noisy on a shared host. The per-commit and per-view figures are a least-squares fit of
instructions per commit against batch size (``commit = fixed + per_view x batch``).

``--prefill N`` views are appended first (straight through ``SqliteStore.append``, not
measured) so the indexes have the depth of a ledger in use. Run with ``PYTHONHASHSEED=0``
(the script sets it for its children).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import os
import random
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from middleware.config import load_config  # noqa: E402
from middleware.ledger import PageView, PartnerShare, SqliteStore  # noqa: E402
from middleware.ledger.chain import ChainCursor  # noqa: E402
from middleware.ledger.host import Server  # noqa: E402
from middleware.ledger.wire import Encoder, frame, frames  # noqa: E402

T0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


def partner_lists() -> tuple[tuple[PartnerShare, ...], tuple[PartnerShare, ...]]:
    config = load_config(ROOT / "examples" / "japan_talk" / "partners.toml")
    every = tuple(sorted((PartnerShare(pid, p.purposes, "consent", p.receives, p.cookies)
                          for pid, p in config.partners.items()), key=lambda s: s.partner))
    ads = tuple(s for s in every if "ads" in s.purposes) or every[:1]
    return every, ads


def make_views(start: int, n: int, rng: random.Random,
               lists: tuple[tuple[PartnerShare, ...], tuple[PartnerShare, ...]]) -> list[PageView]:
    """``n`` page views from view number ``start`` on: ~3 views per visitor, visitors in
    random order (each view's consent id lands in a random leaf of its index)."""
    every, ads = lists
    visitors = max(1, (start + n) // 3)
    return [PageView(time=T0 + dt.timedelta(milliseconds=i), request_id=f"{rng.getrandbits(48):012x}",
                     consent_id=f"{rng.randrange(visitors * 7919) % (1 << 62):016x}",
                     path=f"/articles/{i % 200}", partners=ads if i % 5 == 0 else every,
                     policy_version="2024-05", ip="203.0.113.0", ua_family="Chrome")
            for i in range(start, start + n)]


class Feed:
    """A writer-process ``Server`` and ``conns`` worker ends of socketpairs."""

    def __init__(self, path: Path, conns: int, synchronous: str = "full") -> None:
        self.store = SqliteStore(path, synchronous=synchronous, deferred_checkpoints=True)
        self.store.open()
        # Fixed writer ids (here and in ``prefill``): a random one moved a run's SQLite
        # share by up to ~3 k instructions per view (where its rows sort in the
        # ``(writer_id, seq)`` index against the prefill's), more than some changes measured.
        self.server = Server(self.store, ChainCursor("f" * 16), idle_exit=0.0)
        self.workers: list[tuple[socket.socket, Encoder]] = []
        for _ in range(conns):
            ours, theirs = socket.socketpair()
            self.server._add(theirs)
            ours.setblocking(False)
            self.workers.append((ours, Encoder()))
        self.write_id = 0
        self.acked = 0
        self.inbox = [bytearray() for _ in self.workers]

    def frames_for(self, views: list[PageView]) -> list[bytes]:
        """One frame (with any partner list registration first) per worker connection."""
        out: list[bytes] = []
        k = len(self.workers)
        for i, (_, enc) in enumerate(self.workers):
            part = views[i::k]
            pre: list[bytes] = []
            if part:
                self.write_id += 1
                items = enc.encode(part, pre)
                pre.append(frame(("W", self.write_id, items)))
            out.append(b"".join(pre))
        return out

    def send(self, data: list[bytes]) -> None:
        for (sock, _), d in zip(self.workers, data, strict=True):
            if d:
                sock.sendall(d)

    def step(self, _acc: Any = None, _item: Any = None) -> None:
        """``Server.run``'s loop body, once: what the writer process does per wake-up."""
        self.server.poll(0)

    def read_acks(self) -> None:
        for (sock, _), buf in zip(self.workers, self.inbox, strict=True):
            while True:
                try:
                    data = sock.recv(1 << 20)
                except BlockingIOError:
                    break
                if not data:
                    break
                buf += data
            for f in frames(buf):
                if f[0] == "A":
                    if f[2] is not None:
                        raise RuntimeError(f"commit failed: {f[2]}")
                    self.acked += len(f[1])


def prefill(path: Path, views: int) -> None:
    """A ledger of ``views`` page views (one chain, 512 per commit), checkpointed."""
    rng = random.Random(99)
    lists = partner_lists()
    store = SqliteStore(path, synchronous="normal")
    cursor = ChainCursor("7" * 16)
    n = 0
    while n < views:
        rows = cursor.link(make_views(n, min(512, views - n), rng, lists))
        store.append(rows)
        cursor.advance(rows)
        n += len(rows)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def run(args: argparse.Namespace, batch: int, tmp: Path) -> dict[str, float]:
    rng = random.Random(1234 + batch)
    lists = partner_lists()
    path = tmp / f"ledger-b{batch}.sqlite3"
    n = 0
    if args.prefilled:
        shutil.copyfile(args.prefilled, path)
        os.chmod(path, 0o600)
        n = args.prefill
    feed = Feed(path, args.conns, args.synchronous)
    warm = max(args.warmup // batch, 8)
    commits = max(args.views // batch, 4)
    plan = [feed.frames_for(make_views(n + i * batch, batch, rng, lists))
            for i in range(warm + commits)]
    for data in plan[:warm]:
        feed.send(data)
        feed.step()
        feed.read_acks()
    cpu = 0.0
    wall = 0.0
    for data in plan[warm:]:
        feed.send(data)
        w, c = time.perf_counter(), time.thread_time()
        functools.reduce(feed.step, (0,), None)  # the measured region (--toggle-collect)
        cpu += time.thread_time() - c
        wall += time.perf_counter() - w
        feed.read_acks()
    if feed.acked != feed.write_id:
        raise RuntimeError(f"acknowledged {feed.acked} of {feed.write_id} writes")
    want = n + (warm + commits) * batch
    ((count,),) = feed.store._read("SELECT COUNT(*) FROM page_views", [])
    if int(count) != want:
        raise RuntimeError(f"{count} page views in the ledger, expected {want}")
    feed.store.close()
    return {"batch": batch, "commits": commits, "views": commits * batch,
            "cpu_us": cpu * 1e6, "wall_us": wall * 1e6}


def child(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="profile-writer-") as tmp:
        r = run(args, args.child, Path(tmp))
    print(" ".join(f"{k}={v}" for k, v in r.items()))
    return 0


def _fit(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares ``y = a + b x``: (a, b)."""
    n = len(points)
    sx = sum(x for x, _ in points)
    sy = sum(y for _, y in points)
    sxx = sum(x * x for x, _ in points)
    sxy = sum(x * y for x, y in points)
    d = n * sxx - sx * sx
    if n < 2 or d == 0:
        return 0.0, sy / max(sx, 1)
    b = (n * sxy - sx * sy) / d
    return (sy - b * sx) / n, b


def _inclusive(outf: Path, name: str) -> int:
    """Inclusive instructions of the function whose annotated name ends with ``name``."""
    text = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", str(outf)],
                          check=True, capture_output=True, text=True).stdout
    best = 0
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) .*" + re.escape(name) + r"(?:\s|$)", line)
        if m:
            best = max(best, int(m.group(1).replace(",", "")))
    return best


def _child_cmd(args: argparse.Namespace, batch: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--child", str(batch),
            "--views", str(args.views), "--warmup", str(args.warmup),
            "--prefill", str(args.prefill), "--conns", str(args.conns),
            "--prefilled", str(args.prefilled), "--synchronous", args.synchronous]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 5, 10, 32],
                    help="views per commit (default 1 5 10 32)")
    ap.add_argument("--views", type=int, default=1024, help="measured views per batch size")
    ap.add_argument("--warmup", type=int, default=256, help="views committed before measuring")
    ap.add_argument("--prefill", type=int, default=20000,
                    help="views in the ledger before the warm-up (index depth)")
    ap.add_argument("--conns", type=int, default=2, help="worker connections (2 workers)")
    ap.add_argument("--synchronous", choices=("full", "normal"), default="full",
                    help="the store's setting (normal: no fsync per commit)")
    ap.add_argument("--native", action="store_true",
                    help="thread CPU of the measured steps, no valgrind")
    ap.add_argument("--keep", type=Path, default=None, help="keep callgrind files here")
    ap.add_argument("--child", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--prefilled", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        return child(args)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    with tempfile.TemporaryDirectory(prefix="profile-writer-prefill-") as tmp:
        if args.prefill:
            args.prefilled = str(Path(tmp) / "prefilled.sqlite3")
            prefill(Path(args.prefilled), args.prefill)
        return measure(args, env)


def measure(args: argparse.Namespace, env: dict[str, str]) -> int:
    rows: list[tuple[int, float, float, float]] = []  # batch, per commit, per view, SHA-256
    for batch in args.batches:
        if args.native:
            out = subprocess.run(_child_cmd(args, batch), env=env, check=True,
                                 capture_output=True, text=True).stdout
            got = dict(kv.split("=") for kv in out.split())
            per_commit = float(got["cpu_us"]) / int(got["commits"])
            sha = 0.0
        else:
            keep = args.keep or Path(tempfile.mkdtemp(prefix="profile-writer-cg-"))
            keep.mkdir(parents=True, exist_ok=True)
            outf = keep / f"callgrind.b{batch}.out"
            res = subprocess.run(
                ["valgrind", "--tool=callgrind", "--dump-instr=no",
                 "--toggle-collect=functools_reduce", f"--callgrind-out-file={outf}",
                 *_child_cmd(args, batch)], env=env, check=True, capture_output=True, text=True)
            got = dict(kv.split("=") for kv in res.stdout.split())
            m = re.search(r"^(?:summary|totals): (\d+)", outf.read_text(), re.M)
            if m is None:
                raise RuntimeError(f"no totals in {outf}")
            per_commit = int(m.group(1)) / int(got["commits"])
            sha = _inclusive(outf, ":_hashlib_openssl_sha256") / int(got["commits"])
            if args.keep is None:
                outf.unlink()
                keep.rmdir()
        rows.append((batch, per_commit, per_commit / batch, sha / batch))
    unit = "µs (thread CPU)" if args.native else "instructions"
    scale = 1.0 if args.native else 1e-3
    suffix = "" if args.native else " k"
    print(f"writer process, {args.conns} connection(s), prefill {args.prefill} views, "
          f"{args.views} measured views per batch size; {unit}")
    print("| views per commit | per commit | per view | of which SHA-256 |")
    print("|---:|---:|---:|---:|")
    for batch, pc, pv, sv in rows:
        print(f"| {batch} | {pc * scale:,.1f}{suffix} | {pv * scale:,.1f}{suffix} "
              f"| {sv * scale:,.1f}{suffix} |")
    if len(rows) >= 2:
        fixed, per_view = _fit([(b, pc) for b, pc, _, _ in rows])
        print(f"fit: per commit {fixed * scale:,.1f}{suffix} + per view "
              f"{per_view * scale:,.1f}{suffix}")
    if not args.native:
        print("(SHA-256 runs without the CPU's SHA extensions under valgrind: ~25 instructions "
              "a byte, ~1.3 µs per view natively)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
