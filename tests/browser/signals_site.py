"""A news page behind ConsentMiddleware with the README's signals example (tests/signals_data).

``SIGNALS_SITE_LEDGER`` is the ledger file (a temp dir); the region comes from the
CloudFront headers the browser context sends, as a CDN in front of the origin would.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from middleware import ConsentMiddleware
from middleware.config import parse_config
from tests.asgi_helpers import html_app

EXAMPLE = Path(__file__).resolve().parent.parent / "signals_data" / "signals.toml"
PAGE = (b"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Daily news</title>"
        b"<style>body{font-family:sans-serif;margin:2rem;max-width:40rem}</style></head>"
        b"<body><h1>Daily news</h1><p>Today's stories, with ads from our partners.</p>"
        b"</body></html>")


site = html_app([PAGE])


def _config() -> Any:
    data = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    data["ledger"] = {"path": os.environ["SIGNALS_SITE_LEDGER"]}
    return parse_config(data, str(EXAMPLE))


app = ConsentMiddleware(site, config=_config())
