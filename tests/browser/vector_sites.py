"""The raw site and the same site behind the gate, started side by side, for the Chromium
tests that show a vector reaching the partner as written and never through the gate."""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from tests.support.config_text import config_text, partner
from tests.support.servers import ServerProcess, start_all, start_uvicorn, uvicorn_process
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


@contextmanager
def raw_and_modes(module: str, tmp: Path, modes: Sequence[str], *,
                  env: Mapping[str, str] | None = None) -> Iterator[dict[str, ServerProcess]]:
    """``"raw"``: ``module:site`` as is; each of ``modes``: ``module:create_app`` (the gate)
    with that ``[csp] mode``, one partner on ``*.partner.example`` and its own ledger
    (``tmp/MODE.toml``, ``tmp/MODE.sqlite3``), the config named by ``FETCH_SITE_CONFIG``.
    ``env`` goes to every server. All start side by side (servers.start_all).

    The red-team modules (test_redteam_vectors, _round4, _speculation) each wrote this
    fixture out (duplicate D1)."""
    secret = secrets.token_urlsafe(36)
    servers = {"raw": uvicorn_process(f"{module}:site", env=env, log_level="warning")}
    for mode in modes:
        config = tmp / f"{mode}.toml"
        config.write_text(config_text(
            ledger=(tmp / f"{mode}.sqlite3").as_posix(), csp=mode,
            partners={"tracker": partner(["ads"], ["*.partner.example"])}))
        servers[mode] = uvicorn_process(
            f"{module}:create_app", extra_args=["--factory"],
            env={**(env or {}), "FETCH_SITE_CONFIG": str(config), "CONSENT_GATE_SECRET": secret},
            log_level="warning")
    with start_all(list(servers.values())):
        yield servers
