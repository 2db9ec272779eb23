"""The C extension (``middleware/_speedups.c``), when it was built and is not switched off.

One place decides, so every part with a C twin (the rewriter's native pass, the response
start decision) falls back to its pure-Python reference together: when the build had no
compiler, or ``CONSENT_GATE_PURE_PYTHON=1`` is set (read at import).
"""

from __future__ import annotations

import os
from types import ModuleType

from .env import PURE_PYTHON_ENV


def _load() -> ModuleType | None:
    if os.environ.get(PURE_PYTHON_ENV):
        return None
    try:
        from . import _speedups
    except ImportError:
        return None
    return _speedups


#: The extension module, or None: use the pure-Python twins.
speedups: ModuleType | None = _load()
