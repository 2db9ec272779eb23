"""The bare ASGI example behind consent-gate: ``uvicorn examples.plain_asgi.wrapped:app``."""

from __future__ import annotations

from pathlib import Path

from middleware import ConsentMiddleware

from .app import app as inner_app

CONFIG = Path(__file__).resolve().with_name("partners.toml")

app = ConsentMiddleware(inner_app, config=str(CONFIG))
