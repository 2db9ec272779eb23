"""Writer-thread CPU of ``SqlStore.append`` per page view, and file bytes per view.

    .venv/bin/python bench/bench_ledger_append.py                 # ~20 s
    .venv/bin/python bench/bench_ledger_append.py --views 4096 --rounds 7 --batch 32

The Japan Talk example's partners, all consented (the largest partner list a page sends),
and, for one view in five, only its ads partners: two distinct lists, as on a real site.
Records are linked into a chain first (not timed); ``append`` alone is timed with
``time.thread_time`` (CPU of this thread: a loaded host's waits for a core and the fsync
wait are not counted), batches of ``--batch`` views per commit as the writer process
commits them. Bytes per view: database + WAL after a TRUNCATE checkpoint, divided by the
views. Prints medians over ``--rounds`` fresh files; a same-run A/B runs this script from
two source trees alternately.
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


def partner_lists() -> tuple[tuple[PartnerShare, ...], tuple[PartnerShare, ...]]:
    config = load_config(ROOT / "examples" / "japan_talk" / "partners.toml")
    every = tuple(sorted((PartnerShare(pid, p.purposes, "consent", p.receives, p.cookies)
                          for pid, p in config.partners.items()), key=lambda s: s.partner))
    ads = tuple(s for s in every if "ads" in s.purposes) or every[:1]
    return every, ads


def one_round(path: Path, views: int, batch: int, skip: bool = False) -> tuple[float, float]:
    """CPU µs per view in append, bytes per view."""
    every, ads = partner_lists()
    store = SqliteStore(path, synchronous="full")
    store.open()
    cursor = ChainCursor()
    t0 = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    cpu = 0.0
    for start in range(0, views, batch):
        recs = [PageView(time=t0 + dt.timedelta(milliseconds=i), request_id=f"r{i:07d}",
                         consent_id=f"cid-{i % 5000:05d}", path=f"/articles/{i % 200}",
                         partners=ads if i % 5 == 0 else every, policy_version="2024-05",
                         ip="203.0.113.0/24", ua_family="Chrome 124")
                for i in range(start, min(start + batch, views))]
        rows = cursor.link(recs)
        c = time.thread_time()
        if not skip:
            store.append(rows)
        cpu += time.thread_time() - c
        cursor.advance(rows)
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = sum(os.path.getsize(p) for p in (path, Path(f"{path}-wal")) if p.exists())
    return cpu / views * 1e6, size / views


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--views", type=int, default=4096)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--skip-append", action="store_true",
                    help="everything but append (for instruction counts: valgrind --tool="
                         "callgrind, once with and once without, the difference is append's)")
    args = ap.parse_args()
    cpus, sizes = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            c, s = one_round(Path(tmp) / f"l{r}.sqlite3", args.views, args.batch,
                             args.skip_append)
            cpus.append(c)
            sizes.append(s)
    every, _ = partner_lists()
    print(f"{ROOT.name}: append {statistics.median(cpus):.1f} µs/view CPU "
          f"(min {min(cpus):.1f}, max {max(cpus):.1f}), {statistics.median(sizes):,.0f} B/view, "
          f"{args.views} views x {args.rounds} rounds, {args.batch}/commit, "
          f"{len(every)} partners")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
