"""The 1 MB unique page as one body (bench_asgi's ``big_app``/``page_of``), in-process, for
page-fault counts and A/B runs of two trees (docs/performance.md, "The output block reused").

    CASE=none N=100 perf stat -e page-faults .venv/bin/python bench/profile_onebody.py
    TIME=1 CASE=both .venv/bin/python bench/profile_onebody.py   # thread CPU µs, paired rounds
    TREE=/tmp/before TIME=1 CASE=both .venv/bin/python bench/profile_onebody.py

``CASE``: bare, none (no consent), all (all consent), both (the three, interleaved); ledger
off. ``CHUNK=65536`` serves it in chunks instead. ``TREE``: the tree to import (default: this
one), for before/after runs with the same venv.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = os.environ.get("TREE", str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, ROOT)
sys.path.insert(0, ROOT + "/bench")

import bench_asgi as B  # noqa: E402

from middleware import ConsentMiddleware  # noqa: E402
from middleware.config import load_config  # noqa: E402
from middleware.disclosure import Discloser  # noqa: E402


async def setup() -> tuple[Any, Any, dict[str, Any], dict[str, Any], int]:
    base = load_config(B.ROOT / "examples/japan_talk/partners.toml")
    ledger = str(Path(tempfile.gettempdir()) / "profile-onebody.sqlite3")
    config = dataclasses.replace(base, ledger=dataclasses.replace(base.ledger, path=ledger))
    head, unit, tail = await B.build_big_page(1 << 20)
    big = B.page_of(head, unit, tail, 1 << 20)
    chunk = os.environ.get("CHUNK")
    app = B.big_app(big, int(chunk) if chunk else None, vary=True)
    gate = ConsentMiddleware(app, config=config, secret=B.SECRET,
                             ledger=Discloser(config, None, None))
    return app, gate, B.make_scope("/big"), B.make_scope("/big", B.cookie_for(gate, config)), len(big)


async def main() -> None:
    app, gate, s_none, s_all, size = await setup()
    which = os.environ.get("CASE", "none")
    n = int(os.environ.get("N", "10"))
    cases = {"none": (gate, s_none), "all": (gate, s_all), "bare": (app, s_none)}
    sel = [which] if which != "both" else ["bare", "none", "all"]
    for _ in range(3):
        for c in sel:
            a, s = cases[c]
            await a(dict(s), B.receive, B.Collect())
    if not os.environ.get("TIME"):
        a, s = cases[which]
        for _ in range(n):
            await a(dict(s), B.receive, B.Collect())
        return
    res: dict[str, list[float]] = {c: [] for c in sel}
    for _ in range(int(os.environ.get("ROUNDS", "5"))):
        for c in sel:
            a, s = cases[c]
            ts = []
            for _ in range(n):
                t0 = time.thread_time_ns()
                await a(dict(s), B.receive, B.Collect())
                ts.append(time.thread_time_ns() - t0)
            res[c].append(statistics.median(ts) / 1000)
    bare = res.get("bare")
    for c in sel:
        if c == "bare":
            continue
        wrapped = statistics.median(res[c])
        line = f"{ROOT}: {c}: wrapped {wrapped:.0f} us"
        if bare:
            added = statistics.median(x - b for x, b in zip(res[c], bare, strict=True))
            line += (f", bare {statistics.median(bare):.0f} us, added {added:.0f} us"
                     f" = {size / added:.0f} MB/s")
        print(line)


asyncio.run(main())
