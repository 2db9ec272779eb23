"""glibc's heap trimming, turned down in ``consent-gate run``'s workers.

Why: glibc gives the free memory at the top of its heap back to the kernel whenever more than
``M_TRIM_THRESHOLD`` (128 KB, until a freed ``mmap`` block raises it) is free there, and the next
allocation there takes its pages back one page fault at a time, each page zeroed by the kernel.
A page of the Japan Talk article is ~30 KB of response, encoded (``str.encode``) at the top of
the heap; with the ledger on, ~16 page views per worker wait for their commit and keep the heap's
shape changing, so at 2 workers every few requests freed a response block that tipped the top over
the threshold: 1.4-2.3 page faults per request (ledger off 0.005), most of them in
``PyBytes_FromStringAndSize`` under ``unicode_encode``. docs/ledger.md, "glibc's heap trim".

What: ``mallopt(M_TRIM_THRESHOLD)`` and ``mallopt(M_MMAP_THRESHOLD)`` (setting either one turns
off glibc's dynamic thresholds, so both are set): up to :data:`DEFAULT_MALLOC_TRIM_MB` MB free at
the heap top stay with the process; blocks of a quarter of that (at most glibc's 32 MB ceiling)
and more still come from ``mmap`` and go back to the kernel when freed. A process-wide choice:
the site's own code in the worker allocates under it too. ``0`` (``--malloc-trim-mb 0``,
``CONSENT_GATE_MALLOC_TRIM_MB=0``) leaves glibc as it is, and so do glibc's own settings when
the environment has them (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``, or
``GLIBC_TUNABLES`` naming either). Not glibc (musl, macOS), no ``mallopt`` or no ``ctypes``:
nothing, silently.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .env import DEFAULT_MALLOC_TRIM_MB, MALLOC_TRIM_ENV, whole_number

__all__ = ["DEFAULT_MALLOC_TRIM_MB", "applied_malloc_trim", "apply_malloc_trim", "malloc_trim_mb",
           "mmap_threshold"]

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
#: glibc's ceiling for M_MMAP_THRESHOLD on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX): larger is refused.
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024
_GLIBC_OWN = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")
_TUNABLES = ("glibc.malloc.trim_threshold", "glibc.malloc.mmap_threshold")
#: What the last apply_malloc_trim of this process set (bytes; 0: glibc left alone).
_applied = 0


def malloc_trim_mb() -> int:
    """The trim threshold in MB from ``$CONSENT_GATE_MALLOC_TRIM_MB``, or
    :data:`DEFAULT_MALLOC_TRIM_MB` when unset; ``RuntimeError`` for anything but a whole number
    of 0 or more (``consent-gate run`` checks it before it serves)."""
    return whole_number(MALLOC_TRIM_ENV, DEFAULT_MALLOC_TRIM_MB, " of MB")


def mmap_threshold(trim_bytes: int) -> int:
    """The ``M_MMAP_THRESHOLD`` that goes with a trim threshold: a quarter of it, at most glibc's
    32 MB ceiling (a block that large still comes from ``mmap`` and is given back when freed)."""
    return min(trim_bytes // 4, MMAP_THRESHOLD_MAX)


def _glibc_mallopt() -> Callable[[int, int], int] | None:
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return None
    except (AttributeError, ValueError, OSError):  # not glibc (macOS, musl: no such name)
        return None
    try:  # (imported here: an interpreter built without _ctypes still serves, untrimmed)
        import ctypes
    except ImportError:
        return None
    try:
        fn = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    mallopt: Callable[[int, int], int] = fn
    return mallopt


def _glibc_settings_in_environment() -> bool:
    if any(os.environ.get(name) for name in _GLIBC_OWN):
        return True
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(name in tunables for name in _TUNABLES)


def apply_malloc_trim(mb: int | None = None) -> int:
    """Set this process's glibc trim threshold to ``mb`` MB (``None``: :func:`malloc_trim_mb`)
    and its mmap threshold to :func:`mmap_threshold` of it. Returns the trim threshold set, in
    bytes, or 0 when glibc was left alone (``mb`` 0, glibc's own settings in the environment,
    not glibc, or ``mallopt`` refused)."""
    global _applied
    _applied = 0
    if mb is None:
        mb = malloc_trim_mb()
    if mb < 0:
        raise RuntimeError(f"the malloc trim threshold must be 0 (glibc's own) or more MB, not {mb}")
    if not mb or _glibc_settings_in_environment():
        return 0
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return 0
    trim = min(mb * 1024 * 1024, 2**31 - 1)  # mallopt takes an int
    if not mallopt(M_MMAP_THRESHOLD, mmap_threshold(trim)):
        return 0
    if not mallopt(M_TRIM_THRESHOLD, trim):
        return 0
    _applied = trim
    return trim


def applied_malloc_trim() -> int:
    """What this process's last :func:`apply_malloc_trim` set, in bytes (0: glibc left alone,
    or never called). The worker test reads it per worker: the faults alone cannot show it,
    because glibc's own (dynamic) thresholds also keep the heap top once the process has freed
    one large ``mmap`` block (a fresh interpreter: 2,200 faults over the 1 MB cycles; after
    freeing one 4 MB block, 0), so glibc's default trims in some workers and not others."""
    return _applied
