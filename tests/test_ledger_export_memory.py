"""``consent-gate log export`` streams: its peak memory does not grow with the ledger.

Issue 10, goal 6: with a million page views in the ledger, ``log export`` streams in flat
memory. A million views take minutes to write and to export (bench/bench_review.py measures
that, bench/results/review.md); a test need not: an export that buffers grows with the
ledger, so the same command on 5,000 and on 50,000 page views shows it. No timing: the peak
RSS of each export, from ``wait4`` on that process alone.

A buffering export of the bigger ledger holds 45,000 more views than the small one: their
JSON lines alone are ~1 KB each (45 MB; the records as objects more), far above the bound
below, while a streaming export's peak is the same at both sizes (measured: the same within
~0.5 MiB, ~56 MiB each, most of it the imports).
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from middleware.ledger import PageView, PartnerShare, SqliteStore
from middleware.ledger.chain import ChainCursor

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SMALL, BIG = 5_000, 50_000
#: How much more the export of BIG views may take at its peak than that of SMALL ones.
BOUND_MIB = 8
CATS = ("ip_address", "cookies", "page_url", "user_agent")
ALL5 = tuple(PartnerShare(p, (u,), "consent", CATS, (f"{p}_id",))
             for p, u in [("facebook", "social"), ("google-adsense", "ads"),
                          ("google-publisher-tag", "ads"), ("pinterest", "social"),
                          ("x-twitter", "social")])

# Forks the command from a small Python process and prints its peak RSS (KB) and exit code.
# Not from pytest's process: at exec the kernel carries the pre-exec high-water mark into
# the child's ru_maxrss (after fork, the parent's pages; after vfork, the parent's own mm),
# so an export started from a 100+ MB pytest would report pytest's RSS at both sizes and
# could never tell a growing export from a flat one (as the test this replaces could not,
# below pytest's RSS).
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print(usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def write_views(path: Path, n: int) -> None:
    """``n`` page views with five partners each, through the real store and hash chain."""
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    store = SqliteStore(path, synchronous="normal")
    cursor = ChainCursor()
    for first in range(0, n, 5000):
        batch = [PageView(time=start + dt.timedelta(seconds=i), request_id=f"r{i:07d}",
                          consent_id=f"cid-{i % 2000:05d}", path=f"/articles/{i % 200}",
                          partners=ALL5, policy_version="2024-05", ip="203.0.113.0/24",
                          ua_family="Chrome 124")
                 for i in range(first, min(n, first + 5000))]
        rows = cursor.link(batch)
        store.append(rows)
        cursor.advance(rows)
    store.close()


def copy_views(path: Path, times: int) -> int:
    """Append ``times - 1`` copies of every page view (new request ids and seqs; the
    copies' hashes no longer match, which an export does not check). Minutes faster than
    hashing and inserting each view, and the rows are the store's own."""
    with sqlite3.connect(path) as db:
        cols = [r[1] for r in db.execute("PRAGMA table_info(page_views)") if r[1] != "id"]
        (n,) = db.execute("SELECT count(*) FROM page_views").fetchone()
        for k in range(1, times):
            exprs = [f"request_id || '-{k}'" if c == "request_id" else
                     f"seq + {k * n}" if c == "seq" else c for c in cols]
            db.execute(f"INSERT INTO page_views ({', '.join(cols)}) "
                       f"SELECT {', '.join(exprs)} FROM page_views WHERE id <= ?", (n,))
        (total,) = db.execute("SELECT count(*) FROM page_views").fetchone()
    return int(total)


def export_peak_kib(ledger: Path, out: Path) -> int:
    """Peak RSS (KiB) of ``consent-gate log export --ledger LEDGER -o OUT``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "middleware",
                        "log", "export", "--ledger", str(ledger), "-o", str(out)],
                       capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    kib, code = r.stdout.splitlines()[-1].split()  # after the command's own summary line
    assert int(code) == 0, r.stderr
    return int(kib)


def lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for _ in f)


def test_cli_export_peak_memory_does_not_grow_with_the_ledger(tmp_path: Path) -> None:
    small, big = tmp_path / "small.sqlite3", tmp_path / "big.sqlite3"
    write_views(small, SMALL)
    big.write_bytes(small.read_bytes())
    assert copy_views(big, BIG // SMALL) == BIG
    small_kib = export_peak_kib(small, tmp_path / "small.jsonl")
    big_kib = export_peak_kib(big, tmp_path / "big.jsonl")
    assert (lines(tmp_path / "small.jsonl"), lines(tmp_path / "big.jsonl")) == (SMALL, BIG)
    print(f"\nlog export peak RSS: {SMALL:,} views {small_kib / 1024:.1f} MiB, "
          f"{BIG:,} views {big_kib / 1024:.1f} MiB")
    assert big_kib - small_kib < BOUND_MIB * 1024, (
        f"the export of {BIG:,} views peaked {(big_kib - small_kib) / 1024:.1f} MiB above "
        f"that of {SMALL:,}: it holds records instead of streaming them")
