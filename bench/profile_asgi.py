"""Profile ConsentMiddleware's per-request work outside the tokenizer (cProfile, in-process).

    .venv/bin/python bench/profile_asgi.py                     # table of the top functions
    .venv/bin/python bench/profile_asgi.py --case unique-none  # one case only
    .venv/bin/python bench/profile_asgi.py --time              # median µs per case, no profiler
    .venv/bin/python bench/profile_asgi.py --steps --cpu       # median µs per step (CPU time)
    .venv/bin/python bench/profile_asgi.py --time --cpu --stub-tokenizer  # the tokenizer replaced
                                                               # by a copy: what is left around it
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python bench/profile_asgi.py --run --case memo-all -n 600   # instructions

Cases: the 30 KB article served as one body, identical every time (a RewriteMemo hit: the
tokenizer does not run) or unique per request, with no consent and with all consent (ledger
off), and the JSON endpoint. A measurement script: prints, never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_asgi import (
    ARTICLE,
    JSON_PATH,
    SECRET,
    Collect,
    big_app,
    call,
    cookie_for,
    make_scope,
    receive,
)

from examples.japan_talk.app import app as japan_app
from middleware import ConsentMiddleware
from middleware.config import load_config
from middleware.disclosure import Discloser

ROOT = Path(__file__).resolve().parent.parent


async def json_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A raw JSON endpoint (the app's own cost near zero, so the middleware's shows)."""
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}", "more_body": False})


async def cases() -> dict[str, tuple[Any, Any, dict[str, Any]]]:
    config = load_config(ROOT / "examples/japan_talk/partners.toml")
    off = Discloser(config, None, None)
    article = (await call(japan_app, make_scope(ARTICLE))).body
    same, unique = big_app(article, None), big_app(article, None, vary=True)
    out: dict[str, tuple[Any, Any, dict[str, Any]]] = {}
    for name, app in (("memo", same), ("unique", unique)):
        gate = ConsentMiddleware(app, config=config, secret=SECRET, ledger=off)
        cookie = cookie_for(gate, config)
        out[f"{name}-none"] = (app, gate, make_scope(ARTICLE))
        out[f"{name}-all"] = (app, gate, make_scope(ARTICLE, cookie))
    gate = ConsentMiddleware(json_app, config=config, secret=SECRET, ledger=off)
    out["json-none"] = (json_app, gate, make_scope(JSON_PATH))
    out["json-all"] = (json_app, gate, make_scope(JSON_PATH, cookie_for(gate, config)))
    gate = ConsentMiddleware(japan_app, config=config, secret=SECRET, ledger=off)
    out["json-starlette"] = (japan_app, gate, make_scope(JSON_PATH))
    out["article-starlette"] = (japan_app, gate, make_scope(ARTICLE))
    return out


#: The clock per request: wall time, or this thread's CPU time (--cpu), which leaves out the
#: time the process waits for a core on a loaded machine.
CLOCK = time.perf_counter_ns


async def loop(app: Any, scope: dict[str, Any], n: int) -> list[float]:
    times = []
    clock = CLOCK
    for _ in range(n):
        t0 = clock()
        await app(dict(scope), receive, Collect())
        times.append((clock() - t0) / 1000)
    return times


class TokenizerClock:
    """Wraps the rewriter's ``feed`` and ``finish`` (``HtmlRewriter``, as the responder calls
    them) to time the tokenizer's share of a request, so that the rest of the added time is
    what the middleware adds around it. A ``finish`` adds to its ``feed``'s entry."""

    def __init__(self) -> None:
        from middleware.rewrite import HtmlRewriter

        real_feed, real_finish = HtmlRewriter.feed, HtmlRewriter.finish
        self.spent: list[float] = []

        def feed(rewriter: Any, data: bytes) -> bytes:
            t0 = CLOCK()
            try:
                return real_feed(rewriter, data)
            finally:
                self.spent.append((CLOCK() - t0) / 1000)

        def finish(rewriter: Any) -> bytes:
            t0 = CLOCK()
            try:
                return real_finish(rewriter)
            finally:
                if self.spent:
                    self.spent[-1] += (CLOCK() - t0) / 1000

        HtmlRewriter.feed = feed  # type: ignore[method-assign]
        HtmlRewriter.finish = finish  # type: ignore[method-assign]

    def take(self, requests: int) -> float:
        """Median µs per request spent in the tokenizer since the last call (0: never ran;
        each request of these cases feeds one whole body, so one call per request)."""
        spent, self.spent = self.spent, []
        if not spent or len(spent) < requests:
            return 0.0
        return statistics.median(spent)


async def timing(selected: list[str], n: int, rounds: int) -> None:
    all_cases = await cases()
    clock = TokenizerClock()
    rows: dict[str, list[float]] = {}
    for _ in range(rounds):
        for name in selected:
            bare, gate, scope = all_cases[name]
            await loop(gate, scope, 50)
            b = statistics.median(await loop(bare, scope, n))
            clock.take(0)
            w = statistics.median(await loop(gate, scope, n))
            tokenizer = clock.take(n)
            rows.setdefault(name, []).append(w - b)
            rows.setdefault(name + " ratio", []).append(b / w)
            rows.setdefault(name + " tokenizer", []).append(tokenizer)
    print("case          added µs   ratio to bare   of which tokenizer (median)   outside it")
    for name in selected:
        added = statistics.median(rows[name])
        tok = statistics.median(rows[name + " tokenizer"])
        print(f"{name:12s} {added:9.1f}   {statistics.median(rows[name + ' ratio']):13.3f}"
              f"   {tok:27.1f}   {added - tok:10.1f}")


#: (module, owner, attribute, label): the steps --steps times, where they exist.
STEPS = [
    ("middleware.asgi", "ConsentMiddleware", "__call__", "whole request (app included)"),
    ("middleware.asgi", "ConsentMiddleware", "consent_for", "consent: cookie, signals, resolve"),
    ("middleware.asgi", None, "client_ip", "client_ip (ipaddress parse)"),
    ("middleware.gate.responder", None, "start_kind", "start message: body kind"),
    ("middleware.gate.responder", "HtmlResponder", "_allowed_partners",
     "allowed partners (+ consent)"),
    ("middleware.plan", "PlanBuilder", "plan", "plan lookup (+ language)"),
    ("middleware.routes", "ConsentUI", "language", "Accept-Language"),
    ("middleware.gate.responder", "HtmlRewriter", "__init__", "rewriter made"),
    ("middleware.memo", "RewriteMemo", "find", "memo lookup"),
    ("middleware.memo", "RewriteMemo", "put", "memo entry stored"),
    ("middleware.gate.responder", None, "_run", "tokenizer (feed + finish)"),
    ("middleware.gate.responder", "HtmlResponder", "_disclose", "disclosure (ledger off)"),
    ("middleware.gate.response_headers", "ResponseHeaders", "rewritten",
     "headers: Vary, Cache-Control, CSP"),
]


def time_steps() -> dict[str, list[float]]:
    """Wrap each step of STEPS with a clock (about 0.3 µs of its own per call)."""
    import importlib
    import inspect

    spent: dict[str, list[float]] = {}
    for module_name, owner_name, attr, label in STEPS:
        module = importlib.import_module(module_name)
        owner = getattr(module, owner_name) if owner_name else module
        real = getattr(owner, attr, None)
        if real is None:
            continue
        bucket = spent.setdefault(label, [])

        def wrap(real: Any, bucket: list[float]) -> Any:
            if inspect.iscoroutinefunction(real):
                async def timed_async(*args: Any, **kwargs: Any) -> Any:
                    t0 = CLOCK()
                    try:
                        return await real(*args, **kwargs)
                    finally:
                        bucket.append((CLOCK() - t0) / 1000)
                return timed_async

            def timed(*args: Any, **kwargs: Any) -> Any:
                t0 = CLOCK()
                try:
                    return real(*args, **kwargs)
                finally:
                    bucket.append((CLOCK() - t0) / 1000)
            return timed

        setattr(owner, attr, wrap(real, bucket))
    return spent


async def steps(selected: list[str], n: int) -> None:
    spent = time_steps()
    all_cases = await cases()
    for name in selected:
        _, gate, scope = all_cases[name]
        await loop(gate, scope, 200)
        for bucket in spent.values():
            bucket.clear()
        await loop(gate, scope, n)
        print(f"== {name}: median µs per call (calls per request)")
        for label, bucket in spent.items():
            if bucket:
                print(f"  {label:38s} {statistics.median(bucket):7.1f}  ({len(bucket) / n:.0f})")


async def run_plain(name: str, n: int, *, bare: bool) -> None:
    """n requests of one case and nothing else: instructions per request are the difference
    of two callgrind totals (e.g. n=100 and n=600) divided by the extra requests."""
    bare_app, gate, scope = (await cases())[name]
    app = bare_app if bare else gate
    await loop(app, scope, 50)
    await loop(app, scope, n)


async def profile(name: str, n: int, top: int) -> None:
    _, gate, scope = (await cases())[name]
    await loop(gate, scope, 200)
    prof = cProfile.Profile()
    prof.enable()
    await loop(gate, scope, n)
    prof.disable()
    print(f"\n== {name}: {n} requests; per-request µs = cumtime / {n} * 1e6")
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append",
                        help="memo-none, memo-all, unique-none, unique-all, json-none, json-all, "
                        "json-starlette (the example app's JSON endpoint), article-starlette "
                        "(its article, a memo hit); default: all")
    parser.add_argument("--time", action="store_true", help="median added µs, no profiler")
    parser.add_argument("--cpu", action="store_true",
                        help="with --time/--steps: this thread's CPU time instead of wall time")
    parser.add_argument("--steps", action="store_true",
                        help="median µs of each step (wrapped with a clock), no profiler")
    parser.add_argument("--run", action="store_true",
                        help="just run -n requests of one --case (for valgrind --tool=callgrind)")
    parser.add_argument("--bare", action="store_true", help="with --run: the bare app")
    parser.add_argument("--stub-tokenizer", action="store_true",
                        help="replace the rewriter's feed/finish by a copy of the body (the "
                        "rewriter is still made): the unique cases then show the cost around the "
                        "tokenizer")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    selected = args.case or ["memo-none", "memo-all", "unique-none", "unique-all",
                             "json-none", "json-all", "json-starlette", "article-starlette"]
    global CLOCK
    if args.cpu:
        CLOCK = time.thread_time_ns
    if args.stub_tokenizer:
        from middleware.rewrite import HtmlRewriter

        def copy(rewriter: Any, data: bytes) -> bytes:
            return memoryview(data).tobytes()

        def nothing(rewriter: Any) -> bytes:
            return b""

        HtmlRewriter.feed = copy  # type: ignore[method-assign]
        HtmlRewriter.finish = nothing  # type: ignore[method-assign]
    if args.time:
        asyncio.run(timing(selected, args.n, args.rounds))
        return
    if args.steps:
        asyncio.run(steps(selected, args.n))
        return
    if args.run:
        asyncio.run(run_plain(selected[0], args.n, bare=args.bare))
        return
    for name in selected:
        asyncio.run(profile(name, args.n, args.top))


if __name__ == "__main__":
    main()
