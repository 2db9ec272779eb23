"""A site under uvicorn behind ConsentMiddleware with the given partners, and the consent
cookie of a visitor who granted some purposes: the set-up of the browser tests that look at
what a consented visitor's page may load."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from middleware import ConsentMiddleware
from tests.asgi_helpers import SECRET, cookie_for

from .config_text import config_text
from .servers import ServerProcess, start_uvicorn

#: Two purposes: the partners of one can be consented while the other's are refused.
ADS_AND_SOCIAL = {"ads": {"title": "Ads", "description": "Ads."},
                  "social": {"title": "Social", "description": "Buttons."}}


@contextlib.contextmanager
def consented_site(tmp: Path, partners: Mapping[str, Mapping[str, Any]], *,
                   app: str = "tests.browser.csp_site:create_app", config_env: str = "CSP_SITE_CONFIG",
                   granted: frozenset[str] = frozenset({"ads"})) -> Iterator[tuple[ServerProcess, str]]:
    """``app`` (a ``--factory`` reading its partners.toml from ``config_env``) served with
    ``partners``; yields the server and the ``name=value`` cookie granting ``granted``."""
    config = tmp / "partners.toml"
    config.write_text(config_text(ledger=(tmp / "ledger.sqlite3").as_posix(), purposes=ADS_AND_SOCIAL,
                                  partners=partners))
    cookie = cookie_for(ConsentMiddleware(lambda *a: None, config=str(config), secret=SECRET),
                        set(granted))
    env = {config_env: str(config), "CONSENT_GATE_SECRET": SECRET}
    with start_uvicorn(app, env=env, extra_args=["--factory"], log_level="warning") as server:
        yield server, cookie
