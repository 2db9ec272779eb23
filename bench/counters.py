"""Per-process counters around one load run: what each worker and the writer did per request.

Wall-clock req/s on a shared 2-core host swings more than the differences being looked for;
counts of events (syscalls by kind, context switches, wake-ups, migrations) and the split of a
process's CPU into user, kernel and run-queue wait do not depend on how fast a neighbour ran.
``perf stat`` counts tracepoints per process (counting mode: no samples, little overhead);
``/proc/PID/stat`` and ``/proc/PID/schedstat`` give user/system CPU and time spent runnable
but waiting for a core. Hardware counters (``instructions:u``) are not offered in every VM:
events that perf reports as unsupported are left out of the result.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

#: Counted per process. Syscall tracepoints count the syscalls the process itself makes;
#: ``sched_wakeup`` is counted in the waker's context (the wake-ups this process caused).
EVENTS = [
    "task-clock", "context-switches", "cpu-migrations", "page-faults",
    "raw_syscalls:sys_enter", "syscalls:sys_enter_sendto", "syscalls:sys_enter_recvfrom",
    "syscalls:sys_enter_epoll_wait", "syscalls:sys_enter_write", "syscalls:sys_enter_read",
    "syscalls:sys_enter_pwrite64", "syscalls:sys_enter_fdatasync", "sched:sched_wakeup",
]
_TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")


def proc_times(pid: int) -> dict[str, float]:
    """User and system CPU (µs), run-queue wait (µs) and voluntary/involuntary switches."""
    out: dict[str, float] = {}
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2:].split()
        out["user_us"] = int(fields[11]) * _TICK_US
        out["sys_us"] = int(fields[12]) * _TICK_US
        _run_ns, wait_ns, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
        out["runq_wait_us"] = int(wait_ns) / 1e3
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                out["vol_cs"] = float(line.split()[1])
            elif line.startswith("nonvoluntary_ctxt_switches"):
                out["invol_cs"] = float(line.split()[1])
    except (OSError, ValueError):
        pass
    return out


@dataclass
class Recording:
    """perf stat processes attached to some PIDs, and their /proc readings at the start."""

    pids: dict[int, str]
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    files: dict[int, Path] = field(default_factory=dict)
    before: dict[int, dict[str, float]] = field(default_factory=dict)
    tmp: tempfile.TemporaryDirectory[str] | None = None


def start(pids: dict[int, str], events: list[str] | None = None) -> Recording:
    """Attach one ``perf stat`` per PID (``pids``: pid -> role, e.g. "worker", "writer")."""
    if events is None:  # BENCH_COUNTERS_EVENTS="syscalls:sys_enter_*": every syscall by kind
        chosen = os.environ.get("BENCH_COUNTERS_EVENTS", "")
        events = chosen.split(",") if chosen else EVENTS
    rec = Recording(pids, tmp=tempfile.TemporaryDirectory(prefix="counters-"))
    assert rec.tmp is not None
    for pid in pids:
        rec.before[pid] = proc_times(pid)
        path = Path(rec.tmp.name) / f"{pid}.csv"
        rec.files[pid] = path
        rec.procs[pid] = subprocess.Popen(
            ["perf", "stat", "-x", ",", "-o", str(path), "-e", ",".join(events),
             "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return rec


def _parse(path: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        parts = line.split(",")
        if len(parts) < 3 or line.startswith("#"):
            continue
        try:
            out[parts[2]] = float(parts[0])
        except ValueError:  # "<not supported>", "<not counted>"
            continue
    return out


def stop(rec: Recording) -> dict[int, dict[str, float]]:
    """Stop the perf processes; per PID, every counter's increase during the recording."""
    result: dict[int, dict[str, float]] = {}
    for proc in rec.procs.values():
        proc.send_signal(signal.SIGINT)
    for pid, proc in rec.procs.items():
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        counts = _parse(rec.files[pid])
        after = proc_times(pid)
        for k, v in after.items():
            counts[k] = v - rec.before[pid].get(k, 0.0)
        result[pid] = counts
    if rec.tmp is not None:
        rec.tmp.cleanup()
    return result


def per_request(counts: dict[int, dict[str, float]], roles: dict[int, str],
                requests: int) -> dict[str, dict[str, float]]:
    """Sum the counters of each role's processes and divide by the run's requests."""
    out: dict[str, dict[str, float]] = {}
    for pid, c in counts.items():
        role = out.setdefault(roles[pid], {})
        for k, v in c.items():
            role[k] = role.get(k, 0.0) + v / max(requests, 1)
    return out


def short(name: str) -> str:
    """``syscalls:sys_enter_sendto`` -> ``sendto``; ``raw_syscalls:sys_enter`` -> ``syscalls``."""
    if name == "raw_syscalls:sys_enter":
        return "syscalls"
    return name.rsplit("sys_enter_", 1)[-1].rsplit(":", 1)[-1]
