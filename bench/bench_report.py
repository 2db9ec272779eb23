"""How long `consent-gate report` takes on a big ledger (issue 14: 1,000,000 page views < 30 s).

    .venv/bin/python bench/bench_report.py                  # 1,000,000 page views
    .venv/bin/python bench/bench_report.py --page-views 100000

The ledger is written through the real LedgerWriter (hash chains), then the report runs as an
owner runs it, in a subprocess: once with --no-verify (the report's own queries and charts) and
once with the default chain verification (the cost of `log verify`, done beside the queries).
Prints a Markdown table with the target and a verdict; never fails on a number.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import platform

from machine import ROOT, cpu_model, git_rev, nproc

from middleware.ledger import LedgerWriter, SqliteStore
from middleware.ledger.records import PageView, PartnerShare

CONFIG = ROOT / "examples" / "japan_talk" / "partners.toml"
TARGET_S = 30.0


def fill(path: Path, n: int) -> float:
    """n page views from 50,000 visitors, three partner sets; returns the seconds it took."""
    ads = PartnerShare("google-adsense", ("ads",), "consent", ("ip_address", "cookies"), ("__gads",))
    social = PartnerShare("facebook", ("social",), "consent", ("ip_address", "user_agent"))
    sets = ((ads,), (ads, social), (social,))
    start = datetime(2026, 11, 1, tzinfo=UTC)
    started = time.perf_counter()
    writer = LedgerWriter(SqliteStore(path, synchronous="normal"))
    batch: list[PageView] = []
    for i in range(n):
        batch.append(PageView(time=start + timedelta(seconds=i * 2.5), request_id=f"r{i}",
                              consent_id=f"c{i % 50_000}", path="/a", partners=sets[i % 3],
                              policy_version="2008-01-23", ip="203.0.113.0/24",
                              ua_family="Chrome 131"))
        if len(batch) == 10_000:
            writer.write_sync(batch)
            batch = []
    writer.write_sync(batch)
    writer.close()
    return time.perf_counter() - started


def report(ledger: Path, out: Path, *extra: str) -> tuple[float, dict[str, object]]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "middleware", "report", "--ledger", str(ledger),
                        "--config", str(CONFIG), "-o", str(out), "--json", *extra],
                       capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - started, json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--page-views", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ledger = Path(tmp) / "big.sqlite3"
        fill_s = fill(ledger, args.page_views)
        fast_s, data = report(ledger, Path(tmp) / "fast.html", "--no-verify")
        if data["page_views"] != args.page_views:
            raise SystemExit(f"report counted {data['page_views']} page views, wrote {args.page_views}")
        full_s, full = report(ledger, Path(tmp) / "full.html")
    print(f"{git_rev()}; {cpu_model()}, {nproc()} CPUs; Python {platform.python_version()}")
    print()
    print(f"{args.page_views:,} page views written in {fill_s:.1f} s "
          f"(LedgerWriter, synchronous=normal); chain verified: {full['ledger_health']['ok']}")
    print()
    print("| report | seconds | target | verdict |")
    print("|---|---|---|---|")
    verdict = "ok" if fast_s < TARGET_S else "MISSED"
    print(f"| `report --no-verify` | {fast_s:.1f} | < {TARGET_S:.0f} s | {verdict} |")
    print(f"| `report` (re-hashes every record, as `log verify`) | {full_s:.1f} | - | - |")


if __name__ == "__main__":
    main()
