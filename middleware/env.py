"""Every environment variable consent-gate reads, named once.

The signing secret's variable is configurable (``[policy] secret_env``); this is its default.
"""

from __future__ import annotations

import os

#: The partners.toml to use when no ``--config`` is given (also how ``run`` hands it to workers).
CONFIG_ENV = "CONSENT_GATE_CONFIG"
#: The ledger (SQLite path or postgresql:// DSN) when no ``--ledger`` is given.
LEDGER_ENV = "CONSENT_GATE_LEDGER"
#: The site's ASGI app as module:attribute, handed by ``consent-gate run`` to its workers.
APP_ENV = "CONSENT_GATE_APP"
#: Default name of the variable holding the cookie signing key(s).
SECRET_ENV = "CONSENT_GATE_SECRET"
#: ``1`` allows the insecure development key when no secret is set.
DEV_ENV = "CONSENT_GATE_DEV"
#: HMAC key for purge checkpoints (written by the middleware, checked by ``log verify``).
LEDGER_KEY_ENV = "CONSENT_GATE_LEDGER_KEY"
#: ``1`` forces the pure-Python rewriter scan and start_kind (read at import).
PURE_PYTHON_ENV = "CONSENT_GATE_PURE_PYTHON"
#: The cyclic GC's generation-0 threshold each worker of ``consent-gate run`` sets
#: (``--gc-threshold``; ``0`` leaves Python's own). Read by ``middleware.runner``.
GC_THRESHOLD_ENV = "CONSENT_GATE_GC_THRESHOLD"
#: Its default (Python's own is 700): ``middleware.runner.apply_gc_threshold`` says why.
DEFAULT_GC_THRESHOLD = 50_000
#: The glibc heap-trim threshold, in MB, each worker of ``consent-gate run`` sets
#: (``--malloc-trim-mb``; ``0`` leaves glibc's own). Read by ``middleware.malloc``.
MALLOC_TRIM_ENV = "CONSENT_GATE_MALLOC_TRIM_MB"
#: Its default (glibc's is 128 KB): ``middleware.malloc`` says why.
DEFAULT_MALLOC_TRIM_MB = 32

ALL = (CONFIG_ENV, LEDGER_ENV, APP_ENV, SECRET_ENV, DEV_ENV, LEDGER_KEY_ENV, PURE_PYTHON_ENV,
       GC_THRESHOLD_ENV, MALLOC_TRIM_ENV)


def whole_number(name: str, default: int, unit: str = "") -> int:
    """The whole number of 0 or more in the environment variable ``name`` (surrounding blanks
    ignored), ``default`` when it is unset or blank. ``RuntimeError`` naming the variable for
    anything else, so a worker setting that cannot be read stops ``consent-gate run`` before
    it serves instead of being silently replaced."""
    raw = os.environ.get(name, "").strip()
    try:
        value = int(raw) if raw else default
    except ValueError:
        raise RuntimeError(f"{name}={raw!r} is not a whole number{unit}") from None
    if value < 0:
        raise RuntimeError(f"{name} must be 0 or more{unit}, not {value}")
    return value
