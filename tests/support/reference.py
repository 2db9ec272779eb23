"""The IAB reference implementations (npm: @iabtcf/core, @iabgpp/cmpapi), run by node for the tests.

``npm ci`` installs tests/node/package-lock.json into tests/node/node_modules once per test
session. Without npm the tests that need it skip with the reason, except under CI=true, where
a missing reference is a failure: CI must check against it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
_installed = False


def _require_npm() -> None:
    global _installed
    if _installed:
        return
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        reason = "node/npm not installed: the IAB reference implementations run on node"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: this check must run)")
        pytest.skip(reason)
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=NODE_DIR,
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"npm ci in {NODE_DIR} failed:\n{result.stdout}\n{result.stderr}")
    _installed = True


def run(op: str, items: list[Any]) -> list[Any]:
    """One harness.js call: ``op`` applied by the reference to each item."""
    _require_npm()
    result = subprocess.run(["node", str(NODE_DIR / "harness.js")], input=json.dumps({"op": op, "items": items}),
                            capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
    if result.returncode != 0:
        raise AssertionError(f"reference harness failed ({op}):\n{result.stderr[-3000:]}")
    out: list[Any] = json.loads(result.stdout)
    return out
