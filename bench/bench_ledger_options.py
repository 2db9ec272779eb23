"""Design evidence for the ledger's hot path: what a durable record costs a busy event loop.

    .venv/bin/python bench/bench_ledger_options.py            # ~1 min
    .venv/bin/python bench/bench_ledger_options.py --seconds 3 --rounds 3

One process, one event loop, 32 concurrent "page views" in a closed loop (like wrk -c32):
each burns ``--work-us`` of CPU (the rewrite), awaits the ledger, burns a little more (the
send). Variants, interleaved per round, medians of page views per second:

* ledger off             - no await at all
* 5 rows per view        - the old design: one DisclosureRecord per (view, partner)
* 1 record per view      - PageView holding its 5 partners (today's design)
* 1 record, switch 0.5ms - the same, with ``sys.setswitchinterval(0.0005)``: the writer
                           thread gets the GIL back sooner after each SQLite call
* 5 rows, switch 0.5ms

SQLite: WAL, synchronous=FULL, in a temp dir. Also prints the disk's fsync p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_load import fsync_samples, pct  # noqa: E402

from middleware.ledger import (  # noqa: E402
    DisclosureRecord,
    LedgerWriter,
    PageView,
    PartnerShare,
    SqliteStore,
)

PARTNERS = tuple(
    PartnerShare(p, (purpose,), "consent", ("ip_address", "cookies", "page_url", "user_agent"),
                 ("cookie_a",))
    for p, purpose in [("facebook", "social"), ("google-adsense", "ads"),
                       ("google-publisher-tag", "ads"), ("pinterest", "social"),
                       ("x-twitter", "social")])


def fsync_floor(directory: Path) -> tuple[float, float]:
    """p50, p99 in ms of a 4 KB append + fsync in ``directory`` (a durable commit's floor)."""
    samples = fsync_samples(directory)
    return pct(samples, 0.5), pct(samples, 0.99)


def burn(us: float) -> None:
    """CPU for ``us`` microseconds, releasing the GIL every ~25 us as a server's socket
    calls do (each recv/send lets a waiting thread in)."""
    end = time.perf_counter() + us / 1e6
    x = 0
    while time.perf_counter() < end:
        step = time.perf_counter() + 25e-6
        while time.perf_counter() < step:
            x += 1
        time.sleep(0)


def make_records(kind: str, i: int) -> Sequence[object]:
    now = dt.datetime.now(dt.UTC)
    if kind == "rows":
        return [DisclosureRecord(time=now, request_id=f"r{i}", consent_id="cid-bench", path="/a",
                                 partner=s.partner, purposes=s.purposes, legal_basis="consent",
                                 data_categories=s.data_categories, cookies=s.cookies,
                                 policy_version="v1", ip="203.0.113.0/24", ua_family="Chrome 124")
                for s in PARTNERS]
    return [PageView(time=now, request_id=f"r{i}", consent_id="cid-bench", path="/a",
                     partners=PARTNERS, policy_version="v1", ip="203.0.113.0/24",
                     ua_family="Chrome 124")]


async def drive(seconds: float, clients: int, work_us: float,
                write: Callable[[int], object] | None) -> tuple[float, float]:
    """Page views per second and p99 latency (ms)."""
    stop = time.perf_counter() + seconds
    count = 0
    lat: list[float] = []

    async def client(c: int) -> None:
        nonlocal count
        i = c
        while time.perf_counter() < stop:
            t = time.perf_counter()
            burn(work_us * 0.8)
            if write is not None:
                await write(i)  # type: ignore[misc]
            else:
                await asyncio.sleep(0)
            burn(work_us * 0.2)
            count += 1
            lat.append(time.perf_counter() - t)
            i += clients

    t0 = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    lat.sort()
    return count / (time.perf_counter() - t0), lat[int(len(lat) * 0.99)] * 1e3


def run_variant(name: str, tmp: Path, args: argparse.Namespace) -> tuple[float, float]:
    old = sys.getswitchinterval()
    if "switch" in name:
        sys.setswitchinterval(0.0005)
    try:
        if name == "ledger off":
            return asyncio.run(drive(args.seconds, args.clients, args.work_us, None))
        kind = "rows" if name.startswith("5 rows") else "view"
        writer = LedgerWriter(SqliteStore(tmp / f"{name.replace(' ', '_')}.sqlite3"))

        async def write(i: int) -> None:
            await writer.write(make_records(kind, i))  # type: ignore[arg-type]

        try:
            return asyncio.run(drive(args.seconds, args.clients, args.work_us, write))
        finally:
            writer.close()
    finally:
        sys.setswitchinterval(old)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--work-us", type=float, default=150.0,
                    help="CPU per page view without the ledger (default 150 us)")
    args = ap.parse_args()
    variants = ["ledger off", "5 rows per view", "1 record per view",
                "1 record, switch 0.5ms", "5 rows, switch 0.5ms"]
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory(prefix="ledger-options-") as d:
        tmp = Path(d)
        p50, p99 = fsync_floor(tmp)
        for r in range(args.rounds):
            for v in variants[r % len(variants):] + variants[:r % len(variants)]:
                results[v].append(run_variant(v, tmp, args))
        p50b, p99b = fsync_floor(tmp)
    print(f"fsync of 4 KB in the temp dir: p50 {p50:.3f} ms, p99 {p99:.3f} ms (before); "
          f"p50 {p50b:.3f} ms, p99 {p99b:.3f} ms (after)")
    print(f"{args.clients} concurrent page views, {args.work_us:g} us CPU each, "
          f"{args.rounds} rounds x {args.seconds:g} s, medians\n")
    off = statistics.median(x[0] for x in results["ledger off"])
    print(f"{'variant':<26} {'views/s':>8} {'vs off':>7} {'p99 ms':>7}")
    for v in variants:
        rate = statistics.median(x[0] for x in results[v])
        p99v = statistics.median(x[1] for x in results[v])
        print(f"{v:<26} {rate:8.0f} {rate / off:7.2f} {p99v:7.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
