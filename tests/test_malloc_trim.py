"""glibc's heap trim in ``consent-gate run``'s workers (``middleware.malloc``): the free memory at
the heap's top stays with the worker across a free/allocate cycle, so a response re-allocated
there is not faulted in page by page again; ``0`` (or glibc's own settings) leaves glibc alone."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx2
import pytest

from middleware.cli import main
from middleware.env import DEFAULT_MALLOC_TRIM_MB, MALLOC_TRIM_ENV
from middleware.malloc import MMAP_THRESHOLD_MAX, apply_malloc_trim, malloc_trim_mb, mmap_threshold

from .support.servers import REPO_ROOT, free_port, start_consent_gate

JAPAN_TALK = REPO_ROOT / "examples" / "japan_talk" / "partners.toml"

glibc_only = pytest.mark.skipif(
    not (hasattr(os, "confstr") and "CS_GNU_LIBC_VERSION" in os.confstr_names
         and os.confstr("CS_GNU_LIBC_VERSION")), reason="glibc's malloc only")

_CYCLE = """
import json, sys
from middleware.malloc import apply_malloc_trim
from tests.support.sample_site import heap_cycle_faults
applied = apply_malloc_trim(None if sys.argv[1] == "env" else int(sys.argv[1]))
print(json.dumps({"applied": applied, "faults": heap_cycle_faults()}))
"""

#: 10 cycles of 1 MB freed at the heap top: glibc (128 KB trim threshold) gives back and faults
#: in again ~160-250 pages per cycle; kept, a handful (the interpreter's own allocations).
TRIMMED = 500
KEPT = 64


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in (MALLOC_TRIM_ENV, "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_",
                        "GLIBC_TUNABLES")}
    return {**env, **extra}


def _cycle(arg: str, **env: str) -> dict[str, int]:
    out = subprocess.run([sys.executable, "-c", _CYCLE, arg], cwd=REPO_ROOT, env=_clean_env(**env),
                         capture_output=True, text=True, check=True).stdout
    return dict(json.loads(out))


@glibc_only
def test_the_heap_top_is_kept_with_the_setting_and_trimmed_without() -> None:
    kept = _cycle("32")
    assert kept["applied"] == 32 << 20
    assert kept["faults"] <= KEPT, kept
    trimmed = _cycle("0")
    assert trimmed["applied"] == 0
    assert trimmed["faults"] >= TRIMMED, trimmed


@glibc_only
def test_the_environment_sets_it_and_zero_leaves_glibc_alone() -> None:
    default = _cycle("env")
    assert default["applied"] == DEFAULT_MALLOC_TRIM_MB << 20
    assert default["faults"] <= KEPT, default
    off = _cycle("env", **{MALLOC_TRIM_ENV: "0"})
    assert off["applied"] == 0 and off["faults"] >= TRIMMED, off


@glibc_only
def test_glibcs_own_settings_in_the_environment_win() -> None:
    """A site that tuned glibc itself keeps its tuning: nothing is set over it."""
    tiny = _cycle("32", MALLOC_TRIM_THRESHOLD_="0")  # glibc's: trim everything, always
    assert tiny["applied"] == 0 and tiny["faults"] >= TRIMMED, tiny
    tunable = _cycle("32", GLIBC_TUNABLES="glibc.malloc.trim_threshold=0")
    assert tunable["applied"] == 0 and tunable["faults"] >= TRIMMED, tunable


def test_the_mmap_threshold_is_a_quarter_up_to_glibcs_ceiling() -> None:
    assert mmap_threshold(32 << 20) == 8 << 20
    assert mmap_threshold(1 << 20) == 256 << 10
    assert mmap_threshold(1 << 30) == MMAP_THRESHOLD_MAX == 32 << 20


def test_malloc_trim_mb_parses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MALLOC_TRIM_ENV, raising=False)
    assert malloc_trim_mb() == DEFAULT_MALLOC_TRIM_MB
    monkeypatch.setenv(MALLOC_TRIM_ENV, " 64 ")
    assert malloc_trim_mb() == 64
    monkeypatch.setenv(MALLOC_TRIM_ENV, "0")
    assert malloc_trim_mb() == 0
    monkeypatch.setenv(MALLOC_TRIM_ENV, "")
    assert malloc_trim_mb() == DEFAULT_MALLOC_TRIM_MB
    for bad in ("lots", "-1", "1.5"):
        monkeypatch.setenv(MALLOC_TRIM_ENV, bad)
        with pytest.raises(RuntimeError, match=MALLOC_TRIM_ENV):
            malloc_trim_mb()
    with pytest.raises(RuntimeError):
        apply_malloc_trim(-1)


@pytest.mark.parametrize("value", ["lots", "-5", "1e4"])
def test_cli_run_refuses_a_bad_malloc_trim_in_the_environment(
        value: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed $CONSENT_GATE_MALLOC_TRIM_MB fails `consent-gate run` before it serves, not in
    each worker (which would die and be restarted forever)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    served: list[object] = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, *a, **k: served.append(self))
    monkeypatch.setattr(Multiprocess, "run", lambda self, *a, **k: served.append(self))
    monkeypatch.setenv("CONSENT_GATE_SECRET", "s" * 48)
    monkeypatch.setenv(MALLOC_TRIM_ENV, value)
    assert main(["run", "examples.japan_talk.app:app", "--config", str(JAPAN_TALK),
                 "--workers", "2", "--port", str(free_port())]) == 2
    assert not served
    assert MALLOC_TRIM_ENV in capsys.readouterr().err


def _heap_per_worker(config: Path, cwd: Path, extra: list[str],
                     ) -> tuple[int, dict[int, tuple[int, int]]]:
    """(the supervisor's pid, per worker: (the fewest faults of its first three answers, the
    trim threshold it set))."""
    with start_consent_gate("tests.support.sample_site:app", config, cwd,
                            extra_args=["--workers", "2", "--no-access-log", *extra]) as server:
        assert server.proc is not None
        # Per worker, the fewest faults of its first three answers: the setting's effect is
        # the same every time, while a worker's other work (still starting up, another
        # connection) can only add faults (CI once saw 472 and 1,610 on one answer each).
        answers: dict[int, list[tuple[int, int]]] = {}
        for _ in range(80):  # new connections: both workers answer sooner or later
            info = httpx2.get(server.url + "/_heap", timeout=10).json()
            answers.setdefault(info["pid"], []).append((info["faults"], info["applied"]))
            if len(answers) == 2 and all(len(a) >= 3 for a in answers.values()):
                break
        return server.proc.pid, {pid: (min(f for f, _ in a[:3]), a[0][1])
                                 for pid, a in answers.items()}


@glibc_only
@pytest.mark.server
def test_cli_run_keeps_the_heap_top_in_every_worker_process(tmp_path: Path) -> None:
    """Each worker sets the threshold and keeps its heap top; with ``--malloc-trim-mb 0`` each
    worker sets nothing. (This was marked xfail as an open bug, "one worker still trims":
    review3 found the failing assertion was the ``0`` run's, ``{pid: 1600, pid: 0}`` in 4 of 7
    runs, and the setting in effect in every worker of every run. glibc's *own* thresholds
    are dynamic: once a process has freed one large ``mmap`` block, glibc keeps the heap top
    too (a fresh interpreter: 2,200 faults over the cycles; after one 4 MB block freed, 0), so
    at glibc's default some workers trim and some do not. The ``0`` run therefore checks what
    each worker set, not its faults; the single-process tests above, in fresh interpreters,
    pin that ``0`` leaves glibc trimming.)"""
    config = tmp_path / "partners.toml"
    shutil.copy(JAPAN_TALK, config)
    supervisor, seen = _heap_per_worker(config, tmp_path, [])
    assert len(seen) == 2 and supervisor not in seen, "answered by the workers, not the supervisor"
    assert all(applied == DEFAULT_MALLOC_TRIM_MB << 20 for _, applied in seen.values()), seen
    assert all(faults <= KEPT for faults, _ in seen.values()), seen
    supervisor, seen = _heap_per_worker(config, tmp_path, ["--malloc-trim-mb", "0"])
    assert len(seen) == 2 and all(applied == 0 for _, applied in seen.values()), seen
