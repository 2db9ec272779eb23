"""The raw site and the same site behind the gate, started side by side, for the Chromium
tests that show a vector reaching the partner as written and never through the gate."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.servers import ServerProcess, start_uvicorn
from tests.support.tracker_config import tracker_config


@contextmanager
def raw_and_gated(module: str, tmp: Path, *, csp: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """``module:site`` as is and ``module:create_app`` (the gate, [csp] mode ``csp``), both
    reading the tracker config written to ``tmp``."""
    config = tmp / "partners.toml"
    config.write_text(tracker_config((tmp / "ledger.sqlite3").as_posix(), csp=csp))
    env = {"FETCH_SITE_CONFIG": str(config), "CONSENT_GATE_SECRET": secrets.token_urlsafe(36)}
    with start_uvicorn(f"{module}:site", log_level="warning") as raw, \
            start_uvicorn(f"{module}:create_app", env=env, extra_args=["--factory"],
                          log_level="warning") as gated:
        yield raw, gated
