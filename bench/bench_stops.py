"""Count where the tokenizer stops for Python, by class, and the Python time per class.

    .venv/bin/python bench/bench_stops.py            # native pass (scan_end) if built
    .venv/bin/python bench/bench_stops.py --skip     # the C skip alone (as before the native pass)
    .venv/bin/python bench/bench_stops.py --cpu      # HtmlRewriter feed + finish, thread CPU time
    valgrind --tool=callgrind .venv/bin/python bench/bench_stops.py --once "article, no consent"
                                                     # one page 20 times (instruction counts;
                                                     # subtract a run with --reps 0)

Pages: the Japan Talk article (~30 KB) with no consent and all consent, bench_asgi's 1 MB page
(article + every /embeds partner tag), bench_rewrite's 30 KB and 1 MB pages. A stop is a call
of the skip/scan function that returns before the end of the buffer; its class is what starts
there (a comment, an end tag, a start tag by name, "url" when the tag may hold an absolute
URL); its Python time is the time until the next call (it includes careful mode after a
<svg>/<noscript>). A measurement script: prints, never fails on a number.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_asgi
import bench_rewrite

from middleware.config import load_config
from middleware.hosts import HostMatcher
from middleware.html import native
from middleware.html.grammar import _MAYBE_URL_RE
from middleware.rewrite import HtmlRewriter, RewritePlan
from middleware.ui.templates import placeholder_size


def classify(head: bytes) -> str:
    """The class of a stop from the bytes that start there (lowercased)."""
    if head.startswith(b"<!--"):
        return "comment"
    if head.startswith((b"<!", b"<?")):
        return "doctype / bogus comment"
    if head.startswith(b"</"):
        return "</" + head[2:].split(b">")[0].split()[0][:12].decode("latin-1") if head[2:] else "short"
    name = head[1:].split(b">")[0].split(b"/")[0].split()
    tag = head[: head.find(b">") + 1 or len(head)]
    kind = "srcdoc" if b" srcdoc" in tag else "url" if _MAYBE_URL_RE.search(tag) else "quiet"
    return f"<{name[0].decode('latin-1') if name else ''} {kind}"


class Counter:
    def __init__(self, skip_only: bool) -> None:
        self.skip_only = skip_only
        self.stats: dict[str, list[float]] = collections.defaultdict(lambda: [0, 0.0])
        self.current: str | None = None
        self.since = 0.0

    def close(self) -> None:
        if self.current is not None:
            self.stats[self.current][1] += time.perf_counter() - self.since
            self.current = None

    def wrap(self, fn: Callable[..., int]) -> Callable[..., int]:
        def counted(buf: bytes, pos: int, *rest: Any) -> int:
            self.close()
            end = fn(buf, pos, *rest)
            at = ~end if end < 0 else end
            if at < len(buf):
                self.current = classify(buf[at : at + 200].lower())
                self.stats[self.current][0] += 1
            self.since = time.perf_counter()
            return end
        return counted


def run(label: str, doc: bytes, plan: RewritePlan, skip_only: bool, reps: int) -> None:
    counter = Counter(skip_only)
    skip, scan = native.skip_end, native.scan_end
    if skip_only or scan is None:
        native.scan_end, native.skip_end = None, counter.wrap(skip) if skip else None
    else:
        native.scan_end = counter.wrap(scan)
    try:
        for _ in range(reps):
            rw = HtmlRewriter(plan)
            rw.feed(doc)
            counter.close()
            rw.finish()
            counter.close()
    finally:
        native.skip_end, native.scan_end = skip, scan
    total = sum(n for n, _ in counter.stats.values()) / reps
    secs = sum(t for _, t in counter.stats.values()) / reps * 1e6
    print(f"== {label}: {len(doc) // 1024} KB, {total:.0f} stops, Python after them {secs:.0f} µs")
    for name, (n, t) in sorted(counter.stats.items(), key=lambda kv: -kv[1][1])[:14]:
        print(f"  {name:<28} {n / reps:>6.0f} stops {t / reps * 1e6:>9.1f} µs {t / n * 1e6:>7.2f} µs/stop")


def rewrite_once(doc: bytes, plan: RewritePlan, chunk: int) -> None:
    rw = HtmlRewriter(plan)
    for i in range(0, len(doc), chunk):
        rw.feed(doc[i : i + chunk])
    rw.finish()
    rw.take_enabled()


def cpu_table(cases: dict[str, tuple[bytes, RewritePlan, int]], rounds: int) -> None:
    """Medians of ``rounds`` interleaved rounds of thread CPU time per feed + finish."""
    samples: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(rounds):
        for label, (doc, plan, chunk) in cases.items():
            reps = max(1, (2 << 20) // len(doc))
            rewrite_once(doc, plan, chunk)  # warm
            t0 = time.thread_time_ns()
            for _ in range(reps):
                rewrite_once(doc, plan, chunk)
            samples[label].append((time.thread_time_ns() - t0) / reps / 1e3)
    print(f"thread CPU time per HtmlRewriter feed + finish, median of {rounds} rounds:")
    for label, xs in samples.items():
        med = statistics.median(xs)
        size = len(cases[label][0])
        print(f"  {label:<40} {med:>10.1f} µs {size / med:>8.0f} MB/s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip", action="store_true", help="the C skip alone (native pass off)")
    parser.add_argument("--cpu", action="store_true", help="thread CPU time per page instead")
    parser.add_argument("--rounds", type=int, default=11, help="rounds for --cpu")
    parser.add_argument("--once", metavar="PAGE", help="rewrite one page --reps times, print nothing")
    parser.add_argument("--reps", type=int, default=20, help="repetitions for --once")
    parser.add_argument("--no-parts", action="store_true",
                        help="plans without placeholder_parts (Python makes every placeholder)")
    args = parser.parse_args()
    if native.skip_end is None:
        parser.error("needs the C extension (pip install -e .)")
    config = load_config(bench_asgi.ROOT / "examples/japan_talk/partners.toml")
    matcher = HostMatcher({p.id: p.hosts for p in config.partners.values()})

    # Placeholders as the real plan makes them: head + placeholder_size(attrs) + tail, also
    # handed over in parts (RewritePlan.placeholder_parts) for the native pass.
    parts = {pid: (f'<div class="consent-placeholder" data-partner="{pid}"'.encode(),
                   b">Load content?</div>") for pid in config.partners}

    def placeholder(pid: str, attrs: Mapping[str, str]) -> bytes:
        head, tail = parts[pid]
        return head + placeholder_size(attrs).encode() + tail

    def plan(allowed: frozenset[str]) -> RewritePlan:
        return RewritePlan(b"<!--H-->", b"", b"<!--E-->", frozenset(), allowed,
                           frozenset({"necessary"}), matcher, placeholder,
                           placeholder_parts=None if args.no_parts else parts)

    async def pages() -> tuple[bytes, bytes]:
        art = (await bench_asgi.call(bench_asgi.japan_app, bench_asgi.make_scope(bench_asgi.ARTICLE))).body
        head, unit, tail = await bench_asgi.build_big_page(1 << 20)
        return art, bench_asgi.page_of(head, unit, tail, 1 << 20)

    art, big = asyncio.run(pages())
    everyone = frozenset(config.partners)
    if args.cpu or args.once:
        if args.skip:
            native.scan_end = None
        none, allc = plan(frozenset()), plan(everyone)
        cases = {
            "article, no consent": (art, none, len(art)),
            "article, all consent": (art, allc, len(art)),
            "1 MB page, no consent": (big, none, len(big)),
            "1 MB page, all consent": (big, allc, len(big)),
            "1 MB page, no consent, 64 KB chunks": (big, none, 1 << 16),
            "1 MB page, all consent, 64 KB chunks": (big, allc, 1 << 16),
            "bench_rewrite 30 KB page": (bench_rewrite.page(30 * 1024), bench_rewrite.make_plan(), 1 << 30),
            "bench_rewrite 1 MB page": (bench_rewrite.page(1 << 20), bench_rewrite.make_plan(), 1 << 30),
        }
        if args.once:
            doc, p, chunk = cases[args.once]
            for _ in range(args.reps):
                rewrite_once(doc, p, chunk)
            return 0
        cpu_table(cases, args.rounds)
        return 0
    print("mode:", "C skip" if args.skip or native.scan_end is None else "native pass (scan_end)")
    run("Japan Talk article, no consent", art, plan(frozenset()), args.skip, 20)
    run("Japan Talk article, all consent", art, plan(everyone), args.skip, 20)
    run("bench_asgi 1 MB page, no consent", big, plan(frozenset()), args.skip, 2)
    run("bench_asgi 1 MB page, all consent", big, plan(everyone), args.skip, 2)
    run("bench_rewrite 30 KB page", bench_rewrite.page(30 * 1024), bench_rewrite.make_plan(), args.skip, 20)
    run("bench_rewrite 1 MB page", bench_rewrite.page(1 << 20), bench_rewrite.make_plan(), args.skip, 2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
