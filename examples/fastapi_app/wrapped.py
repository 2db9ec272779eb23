"""The FastAPI example behind consent-gate: ``uvicorn examples.fastapi_app.wrapped:app``."""

from __future__ import annotations

from pathlib import Path

from middleware import ConsentMiddleware

from .app import create_app

CONFIG = Path(__file__).resolve().with_name("partners.toml")

app = create_app()  # a fresh app, so examples.fastapi_app.app:app stays unwrapped
app.add_middleware(ConsentMiddleware, config=str(CONFIG))
