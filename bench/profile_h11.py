"""What h11 (uvicorn's default HTTP/1.1 protocol) costs per response header the gate adds.

    .venv/bin/python bench/profile_h11.py

Builds the 30 KB article's response start (bare app, no consent, all consent, ledger off) as
``bench/profile_asgi.py`` does, then times (this thread's CPU clock, medians) h11 serialising
each header list, one header more at a time, and h11's value check (its ``field_value``
regex) on the CSP alone, against uvicorn's httptools-side check (one character-class search).
A measurement script: prints, never fails on a number.

Two versions' headers, compared in one process (A/B interleaved):

    .venv/bin/python bench/profile_h11.py --dump /tmp/after.json     # in each checkout
    .venv/bin/python bench/profile_h11.py --compare /tmp/before.json /tmp/after.json
    valgrind --tool=callgrind .venv/bin/python bench/profile_h11.py --loop /tmp/after.json unique-all 1000

``--loop`` only has h11 serialise one dumped start that many times: the difference of two
loop counts' instruction totals over the count is instructions per response, steady on a
loaded host.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import h11
from h11._abnf import field_value

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_asgi
from bench_asgi import call

Headers = list[tuple[bytes, bytes]]
REQUEST = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
#: uvicorn's httptools_impl check of a header value (a search for one forbidden byte).
HTTPTOOLS_VALUE_RE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


async def starts() -> dict[str, Headers]:
    cases: dict[str, Any] = await profile_asgi.cases()
    out: dict[str, Headers] = {}
    for name in ("unique-none", "unique-all"):
        app, gate, scope = cases[name]
        out["bare"] = (await call(app, dict(scope))).messages[0]["headers"]
        out[name] = (await call(gate, dict(scope))).messages[0]["headers"]
    return out


def serialise_us(headers: Headers, n: int = 2000, rounds: int = 7) -> float:
    """Median µs of h11 accepting one request and serialising a 200 with ``headers``."""
    times = []
    for _ in range(rounds):
        t0 = time.thread_time_ns()
        for _ in range(n):
            conn = h11.Connection(h11.SERVER)
            conn.receive_data(REQUEST)
            conn.next_event()
            conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK"))
        times.append((time.thread_time_ns() - t0) / n / 1000)
    return statistics.median(times)


def check_us(check: Any, value: bytes, n: int = 20000) -> float:
    t0 = time.thread_time_ns()
    for _ in range(n):
        check(value)
    return (time.thread_time_ns() - t0) / n / 1000


def main() -> None:
    heads = asyncio.run(starts())
    base = serialise_us(heads["bare"])
    print(f"bare start ({len(heads['bare'])} headers): {base:.2f} µs in h11")
    for name in ("unique-none", "unique-all"):
        head = heads[name]
        size = sum(len(k) + len(v) for k, v in head)
        print(f"{name}: {len(head)} headers, {size} B: +{serialise_us(head) - base:.2f} µs")
        before = serialise_us(head[:2])
        for i in range(2, len(head)):
            after = serialise_us(head[: i + 1])
            print(f"   + {head[i][0].decode()} ({len(head[i][1])} B): +{after - before:.2f} µs")
            before = after
        csp = dict(head).get(b"content-security-policy", b"")
        h11_re = re.compile(field_value.encode("ascii"))
        print(f"   CSP value check: h11 {check_us(h11_re.fullmatch, csp):.2f} µs, "
              f"httptools-side {check_us(HTTPTOOLS_VALUE_RE.search, csp):.2f} µs "
              f"({len(csp)} B, {csp.count(b' ')} spaces)")


def dump(path: str) -> None:
    heads = asyncio.run(starts())
    Path(path).write_text(json.dumps({name: [[k.decode("latin-1"), v.decode("latin-1")]
                                             for k, v in head] for name, head in heads.items()}))


def load(path: str) -> dict[str, Headers]:
    return {name: [(k.encode("latin-1"), v.encode("latin-1")) for k, v in head]
            for name, head in json.loads(Path(path).read_text()).items()}


def compare(path_a: str, path_b: str, rounds: int = 15) -> None:
    """Medians over ``rounds`` of A then B (each ``serialise_us``), the bare start between."""
    a, b = load(path_a), load(path_b)
    for name in ("unique-none", "unique-all"):
        ta, tb = [], []
        for _ in range(rounds):
            base = serialise_us(a["bare"], n=1000, rounds=1)
            ta.append(serialise_us(a[name], n=1000, rounds=1) - base)
            tb.append(serialise_us(b[name], n=1000, rounds=1) - base)
        size_a, size_b = (sum(len(k) + len(v) for k, v in h[name]) for h in (a, b))
        print(f"{name}: A {size_a} B, +{statistics.median(ta):.2f} µs over bare; "
              f"B {size_b} B, +{statistics.median(tb):.2f} µs")


def loop(path: str, name: str, n: int) -> None:
    """h11 serialising dumped start ``name`` ``n`` times, nothing else (for callgrind)."""
    head = load(path)[name]
    for _ in range(n):
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(REQUEST)
        conn.next_event()
        conn.send(h11.Response(status_code=200, headers=head, reason=b"OK"))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--dump"]:
        dump(sys.argv[2])
    elif sys.argv[1:2] == ["--compare"]:
        compare(sys.argv[2], sys.argv[3])
    elif sys.argv[1:2] == ["--loop"]:
        loop(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
