"""The app factory ``consent-gate run`` hands to uvicorn, so every worker process builds its own
middleware (and its own ledger writer chain) from the same environment."""

from __future__ import annotations

import gc
import os

from starlette.types import ASGIApp
from uvicorn.importer import import_from_string

from .asgi import ConsentMiddleware
from .env import APP_ENV, CONFIG_ENV, DEFAULT_GC_THRESHOLD, GC_THRESHOLD_ENV, whole_number
from .malloc import apply_malloc_trim

__all__ = ["DEFAULT_GC_THRESHOLD", "apply_gc_threshold", "apply_worker_settings", "create_app"]


def apply_gc_threshold(threshold: int | None = None) -> int:
    """Set this process's generation-0 GC threshold (older generations keep theirs) and
    return it. ``None``: ``CONSENT_GATE_GC_THRESHOLD`` or :data:`DEFAULT_GC_THRESHOLD`;
    ``0``: leave Python's setting as it is. A process-wide choice: it applies to the site's
    own code in the worker too (cyclic garbage waits longer before it is freed).

    Why: with the ledger on, the page views of a worker (up to one per connection) wait for
    their commit with their coroutines, dicts and the framework's objects alive. Python starts
    a young collection whenever container allocations outnumber deallocations by 700 since the
    last one; with 32 views in flight that count swings by thousands, and each collection
    re-scans every waiting view (in process, 32 concurrent views of the Japan Talk article:
    55 young and 6 middle collections per 960 requests, ~5 us of CPU per request, against 1
    with the ledger off; callgrind ~36 k of 749 k instructions per request). docs/ledger.md,
    "The worker's share".
    """
    if threshold is None:
        threshold = whole_number(GC_THRESHOLD_ENV, DEFAULT_GC_THRESHOLD)
    if threshold < 0:
        raise RuntimeError(f"the GC threshold must be 0 (Python's own) or more, not {threshold}")
    if threshold:
        gc.set_threshold(threshold, *gc.get_threshold()[1:])
    return gc.get_threshold()[0]


def apply_worker_settings() -> None:
    """The process-wide settings of a ``consent-gate run`` worker, from the environment the
    supervisor hands it: the GC threshold (:func:`apply_gc_threshold`) and glibc's heap trim
    (:func:`middleware.malloc.apply_malloc_trim`). The benchmarks' bare and ledger-off apps
    call it too, so that their rows differ from the gate's by the middleware alone."""
    apply_gc_threshold()
    apply_malloc_trim()


def create_app() -> ASGIApp:
    target = os.environ.get(APP_ENV)
    if not target:
        raise RuntimeError(f"{APP_ENV} is not set; start the server with `consent-gate run module:app`")
    apply_worker_settings()
    site: ASGIApp = import_from_string(target)
    return ConsentMiddleware(site, config=os.environ.get(CONFIG_ENV, "partners.toml"))
