"""scripts/bootstrap.sh installs once: a ready venv starts offline (no package index)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import httpx2
import pytest

from .support.servers import REPO_ROOT, start_command

#: pip can reach no index and reads no config (whose find-links could serve it locally).
OFFLINE = {"PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_CONFIG_FILE": os.devnull,
           "PIP_FIND_LINKS": "", "PIP_RETRIES": "0", "PIP_TIMEOUT": "2"}
FAKE_TOOL = """#!/usr/bin/env bash
echo "$(basename "$0") $*" >> "$(dirname "$0")/../../calls.log"
"""


@pytest.fixture
def fake_repo(tmp_path: Path) -> Path:
    """The scripts and the files the stamp covers, with a venv whose python and
    consent-gate only log how they were called."""
    repo = tmp_path / "repo"
    for name in ("scripts/bootstrap.sh", "scripts/serve-example.sh", "pyproject.toml", "setup.py",
                 "middleware/_speedups.c"):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO_ROOT / name, repo / name)
    bin_dir = repo / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    for tool in ("python", "consent-gate"):
        (bin_dir / tool).write_text(FAKE_TOOL)
        (bin_dir / tool).chmod(0o755)
    return repo


def script(repo: Path, name: str, *args: str) -> list[str]:
    """Run scripts/NAME offline; return the venv calls it made."""
    log = repo / "calls.log"
    log.unlink(missing_ok=True)
    subprocess.run(["bash", str(repo / "scripts" / name), *args], check=True, timeout=60,
                   env={**os.environ, **OFFLINE, "PORT": "1"})
    return log.read_text().splitlines() if log.exists() else []


def test_scripts_bootstrap_installs_once_then_starts_offline(fake_repo: Path) -> None:
    assert script(fake_repo, "bootstrap.sh", "test") == [
        "python -m pip install --quiet --disable-pip-version-check -e .[test]"]
    assert script(fake_repo, "bootstrap.sh", "test") == [], "reinstalled although nothing changed"
    # The test extra includes the plain install that serve-example.sh asks for.
    assert script(fake_repo, "serve-example.sh") == [
        "consent-gate run examples.japan_talk.app:app --config examples/japan_talk/partners.toml "
        "--host 127.0.0.1 --port 1"]


@pytest.mark.parametrize("changed", ["pyproject.toml", "setup.py", "middleware/_speedups.c"])
def test_scripts_bootstrap_reinstalls_when_its_inputs_change(fake_repo: Path, changed: str) -> None:
    script(fake_repo, "bootstrap.sh", "test")
    with (fake_repo / changed).open("a") as f:
        f.write("\n# changed\n")
    assert len(script(fake_repo, "bootstrap.sh", "test")) == 1
    assert script(fake_repo, "bootstrap.sh", "test") == []


def test_scripts_bootstrap_drops_a_stale_accelerator_and_says_so(fake_repo: Path) -> None:
    """A failed C build still installs (the extension is optional): the old build must not
    stay behind to be loaded against a changed _speedups.c, and the fallback is announced."""
    stale = fake_repo / "middleware" / "_speedups.cpython-311-x86_64-linux-gnu.so"
    stale.write_bytes(b"an old build")
    done = subprocess.run(["bash", str(fake_repo / "scripts" / "bootstrap.sh"), "test"],
                          check=True, timeout=60, capture_output=True, text=True,
                          env={**os.environ, **OFFLINE})
    assert not stale.exists()
    assert "the C accelerator (middleware/_speedups.c) did not build" in done.stderr


def test_scripts_bootstrap_other_extra_installs_it(fake_repo: Path) -> None:
    script(fake_repo, "bootstrap.sh")
    assert script(fake_repo, "bootstrap.sh", "test") == [
        "python -m pip install --quiet --disable-pip-version-check -e .[test]"]


@pytest.mark.server
def test_scripts_serve_example_starts_offline_with_a_ready_venv() -> None:
    """The real script on this checkout's venv, with no package index reachable."""
    stamp = REPO_ROOT / ".venv" / ".consent-gate-install"
    if not stamp.exists():
        pytest.skip("the venv was not installed by this scripts/bootstrap.sh (run it once)")
    # No port given: a pick another server took first is retried with a new one.
    with start_command(["bash", str(REPO_ROOT / "scripts" / "serve-example.sh")],
                       env={**OFFLINE, "PORT": "{port}"}, cwd=REPO_ROOT) as server:
        assert httpx2.get(server.url + "/", timeout=10).status_code == 200
