"""``consent-gate run``'s workers import ``middleware.malloc`` (through ``middleware.runner``):
an interpreter without ``ctypes`` (built without libffi's ``_ctypes``, as some minimal images
are) must still serve, with glibc's own trimming. ``sys.modules["ctypes"] = None`` makes
``import ctypes`` raise ImportError in a fresh interpreter, as a missing module does."""

from __future__ import annotations

import json
import subprocess
import sys

from .support.servers import REPO_ROOT

_PROBE = """
import json, sys
sys.modules["ctypes"] = None
import middleware.runner
from middleware.malloc import apply_malloc_trim
print(json.dumps({"applied": apply_malloc_trim(64), "runner": hasattr(middleware.runner, "__file__")}))
"""


def test_no_ctypes_leaves_glibc_alone_and_the_runner_imports() -> None:
    done = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"applied": 0, "runner": True}
