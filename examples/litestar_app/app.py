"""A small Litestar site: a Jinja2 page that reads the consent, a plain HTML page, a streamed
page and a JSON endpoint.

Bare: ``uvicorn examples.litestar_app.app:app``;
wrapped: ``uvicorn examples.litestar_app.wrapped:app``.
Without consent-gate in front there is no consent on the request and the pages behave as if
nothing was granted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from litestar import Litestar, MediaType, Request, get
from litestar.middleware import DefineMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.response import Stream, Template
from litestar.template.config import TemplateConfig

from middleware import Consent, consent_of

TEMPLATES = Path(__file__).resolve().with_name("templates")

TEAS: list[dict[str, Any]] = [
    {"id": 1, "name": "Gyokuro", "region": "Yame, Fukuoka", "brew": "50 C, 2 minutes"},
    {"id": 2, "name": "Sencha", "region": "Shizuoka", "brew": "70 C, 1 minute"},
    {"id": 3, "name": "Hojicha", "region": "Kyoto", "brew": "90 C, 30 seconds"},
]

ABOUT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>About - Tea Leaves</title>
</head>
<body>
<h1>About Tea Leaves</h1>
<p>Notes on Japanese green tea. <a href="/">Home</a></p>
<p><a href="https://twitter.com/share" class="twitter-share-button">Post on X</a></p>
</body>
</html>
"""


def request_consent(request: Request[Any, Any, Any]) -> Consent | None:
    """The visitor's consent, or None when the app runs without consent-gate."""
    try:
        return consent_of(request)
    except LookupError:
        return None


@get("/")
async def home(request: Request[Any, Any, Any]) -> Template:
    # The template decides with {% if consent and consent.allows("social") %}: Jinja2 can call
    # methods with arguments (Django templates cannot; see examples/django_site).
    return Template(template_name="home.html", context={"teas": TEAS, "consent": request_consent(request)})


@get("/about", media_type=MediaType.HTML)
async def about() -> str:
    return ABOUT


@get("/api/teas")
async def api_teas() -> dict[str, Any]:
    return {"teas": TEAS}


@get("/api/consent")
async def api_consent(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """What the handler sees: the purposes granted to this visitor (a JSON response, untouched)."""
    consent = request_consent(request)
    return {"wrapped": consent is not None,
            "granted": sorted(consent.granted) if consent is not None else []}


async def _stream_page() -> AsyncIterator[bytes]:
    yield b'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>Steeping'
    yield b" log - Tea Leaves</title>\n</head>\n<body>\n<h1>Steeping log</h1>\n<ol>\n"
    for i in range(1, 31):
        await asyncio.sleep(0)
        yield f"<li>Infusion {i}: {TEAS[i % 3]['name']}</li>\n".encode()
    yield b'</ol>\n<p><a href="https://twitter.com/share" class="twitter-share-button">Post on X</a></p>\n'
    yield b"</body>\n</html>\n"


@get("/stream")
async def stream() -> Stream:
    return Stream(_stream_page(), media_type=MediaType.HTML)


def create_app(middleware: Sequence[DefineMiddleware] = ()) -> Litestar:
    return Litestar(
        route_handlers=[home, about, api_teas, api_consent, stream],
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        middleware=list(middleware),
    )


app = create_app()
