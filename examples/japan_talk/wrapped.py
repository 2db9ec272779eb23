"""Japan Talk wrapped in consent-gate: ``uvicorn examples.japan_talk.wrapped:app``."""

from __future__ import annotations

from pathlib import Path

from middleware import ConsentMiddleware

from .app import app as inner_app

CONFIG = Path(__file__).resolve().with_name("partners.toml")

app = ConsentMiddleware(inner_app, config=str(CONFIG))
