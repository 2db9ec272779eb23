# ruff: noqa: E501  (HTML templates: partner tags are kept on one line, as pasted)
"""A small FastAPI site. Views may read the visitor's consent from ``request.state.consent``.

Bare: ``uvicorn examples.fastapi_app.app:app``;
wrapped: ``uvicorn examples.fastapi_app.wrapped:app``.
Without consent-gate in front there is no ``request.state.consent`` and the views behave as if
nothing was granted.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 17px/1.6 system-ui, sans-serif; max-width: 42rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; }}
.ad {{ border: 1px dashed #bbb; padding: .5rem; text-align: center; color: #777; }}
</style>
</head>
<body>
<header><p><a href="/">Sake Notes</a> &middot; <a href="/tasting">Tasting notes</a>
&middot; <a href="/api/sakes">API</a></p></header>
<main>
{body}
</main>
<footer><p>&copy; Sake Notes &middot; <a href="/.consent/partners">Our partners</a></p></footer>
</body>
</html>
"""

SAKES: list[dict[str, Any]] = [
    {"id": 1, "name": "Dassai 45", "prefecture": "Yamaguchi", "style": "Junmai Daiginjo"},
    {"id": 2, "name": "Hakkaisan", "prefecture": "Niigata", "style": "Tokubetsu Honjozo"},
    {"id": 3, "name": "Kubota Senju", "prefecture": "Niigata", "style": "Ginjo"},
]

AD_UNIT = """<aside class="ad" aria-label="Advertisement">
<ins class="adsbygoogle" style="display:block" data-ad-client="ca-pub-0000000000000000" data-ad-slot="3456789012" data-ad-format="auto"></ins>
<script>(adsbygoogle = window.adsbygoogle || []).push({});</script>
</aside>"""

HOUSE_AD = """<aside class="ad" aria-label="From Sake Notes">
<p>Enjoying Sake Notes? Our <a href="/tasting">tasting notes</a> are ad-free for everyone.</p>
</aside>"""


def create_app() -> FastAPI:
    app = FastAPI(title="Sake Notes", docs_url=None, redoc_url=None)

    @app.get("/", response_class=HTMLResponse)
    async def home() -> str:
        items = "".join(f"<li>{s['name']} ({s['style']}, {s['prefecture']})</li>" for s in SAKES)
        body = f"<h1>Sake Notes</h1><p>A short list of sakes we like.</p><ul>{items}</ul>{AD_UNIT}"
        return PAGE.format(title="Sake Notes", body=body)

    @app.get("/tasting", response_class=HTMLResponse)
    async def tasting(request: Request) -> str:
        # Decide server-side: only render the AdSense unit when "ads" is granted;
        # otherwise show a house ad, so there is no empty slot to hide.
        consent = getattr(request.state, "consent", None)
        ads = consent is not None and consent.allows("ads")
        body = (
            "<h1>Tasting notes</h1>"
            "<p>Dassai 45: fruity, clean and soft, with melon and pear on the nose.</p>"
            "<p>Hakkaisan: dry and crisp, excellent warm on a winter evening.</p>"
            f"{AD_UNIT if ads else HOUSE_AD}"
            f'<p id="ads-state" data-ads="{"granted" if ads else "denied"}">'
            f"Advertising: {'granted' if ads else 'not granted'}.</p>"
        )
        return PAGE.format(title="Tasting notes - Sake Notes", body=body)

    @app.get("/api/sakes")
    async def sakes() -> dict[str, Any]:
        return {"sakes": SAKES}

    return app


app = create_app()
