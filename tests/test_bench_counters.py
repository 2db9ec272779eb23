"""bench/counters.py: perf stat's CSV read back, per-request sums by role."""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

import counters


def test_parse_reads_counts_and_skips_unsupported(tmp_path: Path) -> None:
    csv = tmp_path / "p.csv"
    csv.write_text("# started on x\n\n12,,context-switches,100,100.00,,\n"
                   "<not supported>,,instructions:u,0,100.00,,\n"
                   "3.5,msec,task-clock,100,100.00,,\n")
    assert counters._parse(csv) == {"context-switches": 12.0, "task-clock": 3.5}


def test_per_request_sums_each_role() -> None:
    got = counters.per_request({1: {"a": 10.0}, 2: {"a": 30.0}, 3: {"a": 4.0}},
                               {1: "worker", 2: "worker", 3: "writer"}, 20)
    assert got == {"worker": {"a": 2.0}, "writer": {"a": 0.2}}


def test_proc_times_of_this_process() -> None:
    t = counters.proc_times(os.getpid())
    assert t["user_us"] >= 0 and t["vol_cs"] >= 0 and "runq_wait_us" in t
    assert counters.proc_times(2**22 + 12345) == {}  # no such process: nothing, no error


def test_short_names() -> None:
    assert counters.short("syscalls:sys_enter_sendto") == "sendto"
    assert counters.short("raw_syscalls:sys_enter") == "syscalls"
    assert counters.short("sched:sched_wakeup") == "sched_wakeup"
