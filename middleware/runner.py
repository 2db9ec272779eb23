"""The app factory ``consent-gate run`` hands to uvicorn, so every worker process builds its own
middleware (and its own ledger writer chain) from the same environment."""

from __future__ import annotations

import os

from starlette.types import ASGIApp
from uvicorn.importer import import_from_string

from .asgi import ConsentMiddleware
from .env import APP_ENV, CONFIG_ENV


def create_app() -> ASGIApp:
    target = os.environ.get(APP_ENV)
    if not target:
        raise RuntimeError(f"{APP_ENV} is not set; start the server with `consent-gate run module:app`")
    site: ASGIApp = import_from_string(target)
    return ConsentMiddleware(site, config=os.environ.get(CONFIG_ENV, "partners.toml"))
