"""A shop page whose conversion goes through ``POST /.consent/collect`` (no partner script at
all), wrapped by ConsentMiddleware with the config named by ``$FORWARD_SITE_CONFIG``."""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from middleware import ConsentMiddleware

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shop</title></head>
<body>
<h1>Thank you for your order</h1>
<button id="buy" type="button">Send conversion</button>
<p id="result">not sent</p>
<script>
document.cookie = "_fbp=fb.1.1700000000.777; path=/";
document.getElementById("buy").addEventListener("click", async () => {
  const r = await fetch("/.consent/collect", {
    method: "POST", headers: {"content-type": "application/json"},
    body: JSON.stringify({event: "purchase", value: 49.9, currency: "EUR",
                          email: " Shopper@Example.COM ", order_id: "order-123"})});
  document.getElementById("result").textContent = "status " + r.status;
});
</script>
</body></html>"""


async def shop(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


app = ConsentMiddleware(Starlette(routes=[Route("/thanks", shop)]),
                        os.environ.get("FORWARD_SITE_CONFIG", "partners.toml"))
