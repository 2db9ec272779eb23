"""Review commands on a big ledger: 1,000,000 page views, timed and memory-checked.

    .venv/bin/python bench/bench_review.py                  # 1,000,000 views (~2-4 min)
    .venv/bin/python bench/bench_review.py --views 100000   # smaller, faster

Builds a SQLite ledger through the real store and hash chain (30 days, 20,000 consent ids,
four partner sets, one of them rare), then times the query functions behind ``consent-gate
log summary / subject / show`` (median of 5, warm cache) and the same commands end to end
(a fresh ``consent-gate`` process each, Python start-up included), and runs ``log export``
to /dev/null for a tenth of the ledger and for all of it, reporting each run's peak RSS:
flat memory means the two peaks are about the same. Targets (issue 10): summary < 2 s,
subject < 200 ms, show --partner P --limit 50 < 200 ms, export in flat memory.
Saves bench/results/review.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model, git_rev, nproc  # noqa: E402

from middleware.ledger import Filters, PageView, PartnerShare, SqliteStore  # noqa: E402
from middleware.ledger.chain import ChainCursor  # noqa: E402
from middleware.ledger.query import show, subject, summary  # noqa: E402

VENV_BIN = Path(sys.executable).parent
CATS = ("ip_address", "cookies", "page_url", "user_agent")


def share(p: str, purpose: str) -> PartnerShare:
    return PartnerShare(p, (purpose,), "consent", CATS, (f"{p}_id",))


ALL5 = tuple(share(p, u) for p, u in [("facebook", "social"), ("google-adsense", "ads"),
                                       ("google-publisher-tag", "ads"), ("pinterest", "social"),
                                       ("x-twitter", "social")])
ADS = tuple(s for s in ALL5 if s.purposes == ("ads",))
SOCIAL = tuple(s for s in ALL5 if s.purposes == ("social",))
RARE = (share("youtube", "media"),)  # one view in a thousand


def build(path: Path, views: int, seed: int = 7) -> float:
    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC)
    start = now - dt.timedelta(days=30)
    step = dt.timedelta(days=30) / views
    store = SqliteStore(path, synchronous="normal")
    cursor = ChainCursor()
    t0 = time.perf_counter()
    batch = []
    for i in range(views):
        r = rng.random()
        shares = RARE if r < 0.001 else ADS if r < 0.2 else SOCIAL if r < 0.3 else ALL5
        cid = None if r > 0.95 else f"cid-{rng.randrange(20_000):05d}"
        batch.append(PageView(time=start + i * step, request_id=f"r{i:07d}", consent_id=cid,
                              path=f"/articles/{rng.randrange(200)}", partners=shares,
                              policy_version="2024-05", ip="203.0.113.0/24",
                              ua_family="Chrome 124"))
        if len(batch) == 5000 or i == views - 1:
            rows = cursor.link(batch)
            store.append(rows)
            cursor.advance(rows)
            batch = []
    store.close()
    return time.perf_counter() - t0


def timed(fn: Callable[[], object], n: int = 5) -> tuple[float, float]:
    """Median wall and CPU milliseconds. On a shared, loaded host the CPU time is the
    fairer figure: wall time there includes waiting for a core."""
    walls, cpus = [], []
    for _ in range(n):
        t, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls) * 1e3, statistics.median(cpus) * 1e3


# Forks the command from a small Python process and reports its wall ms, peak RSS (KB) and
# exit code. Not from this one: a child's ru_maxrss keeps the pages it shared with its parent
# until its exec (fork and vfork alike), so every command would report at least this
# process's own RSS (~190 MB after the in-process queries) and a growing export could not be
# told from a flat one.
_MEASURE = """
import os, sys, time
t = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
print((time.perf_counter() - t) * 1e3, usage.ru_maxrss, os.waitstatus_to_exitcode(status))
"""


def peak_rss_of(*argv: str) -> tuple[float, float]:
    """Wall ms and peak RSS (MB) of one process, measured by wait4 on it alone."""
    r = subprocess.run([sys.executable, "-c", _MEASURE, str(VENV_BIN / "consent-gate"), *argv],
                       capture_output=True, text=True, cwd=ROOT, check=True)
    wall, kb, code = r.stdout.split()
    assert int(code) == 0, r.stderr
    return float(wall), int(kb) / 1024


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--views", type=int, default=1_000_000)
    ap.add_argument("--keep", metavar="FILE", help="build the ledger here and keep it")
    ap.add_argument("--no-csv", action="store_true", help="skip the CSV export (the slowest)")
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory(prefix="consent-gate-review-")
    path = Path(args.keep) if args.keep else Path(tmp.name) / "ledger.sqlite3"
    built = 0.0
    if not path.exists():
        built = build(path, args.views)
    size_mb = path.stat().st_size / 1e6
    store = SqliteStore(path)
    load = os.getloadavg()[0]
    common_cid = "cid-00042"
    q = {
        "summary (30 days, all partners)": timed(lambda: summary(
            store, dt.datetime.now(dt.UTC) - dt.timedelta(days=31)), 3),
        "summary (last 7 days)": timed(lambda: summary(
            store, dt.datetime.now(dt.UTC) - dt.timedelta(days=7)), 3),
        f"subject {common_cid}": timed(lambda: subject(store, common_cid)),
        "show --partner google-adsense --limit 50": timed(lambda: show(
            store, Filters(partner="google-adsense", limit=50))),
        "show --partner youtube --limit 50 (0.1% of views)": timed(lambda: show(
            store, Filters(partner="youtube", limit=50))),
        "show --limit 50 (no filter)": timed(lambda: show(store, Filters(limit=50))),
    }
    n_subject = len(subject(store, common_cid).disclosures)
    store.close()
    target = {"summary (30 days, all partners)": 2000, "summary (last 7 days)": 2000,
              f"subject {common_cid}": 200, "show --partner google-adsense --limit 50": 200,
              "show --partner youtube --limit 50 (0.1% of views)": 200,
              "show --limit 50 (no filter)": 200}
    ledger = ["--ledger", str(path)]
    ends = {
        "consent-gate log summary --since 30d": peak_rss_of("log", "summary", "--since", "30d", *ledger)[0],
        f"consent-gate log subject {common_cid}": peak_rss_of("log", "subject", common_cid, *ledger)[0],
        "consent-gate log show --partner google-adsense --limit 50":
            peak_rss_of("log", "show", "--partner", "google-adsense", "--limit", "50", *ledger)[0],
        "consent-gate --help (Python start-up and imports alone)": peak_rss_of("--help")[0],
    }
    since_tenth = (dt.datetime.now(dt.UTC) - dt.timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ex_tenth = peak_rss_of("log", "export", "--since", since_tenth, *ledger)
    ex_all = peak_rss_of("log", "export", *ledger)
    ex_csv = None if args.no_csv else peak_rss_of("log", "export", "--format", "csv", *ledger)

    out = ["### consent-gate review benchmark (bench/bench_review.py)",
           f"- date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}; nproc: {nproc()}; CPU: "
           f"{cpu_model()}; code: {git_rev()}; Python {platform.python_version()}",
           f"- ledger: SQLite, {args.views:,} page view records over 30 days (80% five partners, "
           f"20% ads only / social only, 0.1% youtube only), 20,000 consent ids; {size_mb:,.0f} MB"
           + (f"; built in {built:.0f} s through SqliteStore.append + the hash chain" if built else ""),
           "",
           f"- load average at the start of the queries: {load:.1f} on {nproc()} cores",
           "",
           "| query (in process, warm, median) | wall ms | CPU ms | target | verdict (wall; CPU) |",
           "|---|---:|---:|---:|---|"]
    for name, (wall, cpu) in q.items():
        out.append(f"| {name} | {wall:.1f} | {cpu:.1f} | < {target[name]} | "
                   f"{'met' if wall < target[name] else 'MISSED'}; "
                   f"{'met' if cpu < target[name] else 'MISSED'} |")
    out += ["", f"(subject {common_cid}: {n_subject} page view records)", "",
            "| command (a fresh process, Python start-up included) | ms |", "|---|---:|"]
    out += [f"| `{k}` | {v:.0f} |" for k, v in ends.items()]
    out += ["", "| export to /dev/null | wall s | peak RSS MB |", "|---|---:|---:|",
            f"| `log export --since 3 days ago` (~10% of the views) | {ex_tenth[0] / 1e3:.1f} | {ex_tenth[1]:.0f} |",
            f"| `log export` (all, JSON lines) | {ex_all[0] / 1e3:.1f} | {ex_all[1]:.0f} |",
            *([] if ex_csv is None else [
                f"| `log export --format csv` (all, one line per partner) | {ex_csv[0] / 1e3:.1f} | "
                f"{ex_csv[1]:.0f} |"]),
            "", f"flat memory (all vs a tenth, peak RSS): {ex_all[1] / ex_tenth[1]:.2f}x "
            f"-> {'met' if ex_all[1] < ex_tenth[1] * 1.3 else 'MISSED'}"]
    text = "\n".join(out)
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(exist_ok=True)
    if args.views >= 1_000_000 or args.keep:
        (results / "review.md").write_text(text + "\n")
    tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
