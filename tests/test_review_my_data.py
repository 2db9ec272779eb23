"""/.consent/my-data without a browser: only the signed cookie opens it, it is rate-limited,
an owner can switch it off, and the consent pages keep their strict CSP inside the site frame."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx2
import pytest

from middleware.asgi import ConsentMiddleware
from middleware.review.mydata import BURST, REFILL, RateLimit

from .asgi_helpers import SECRET, html_app, make_config

ORIGIN = {"origin": "http://site.example"}


def _gate(tmp_path: Path, **site: object) -> ConsentMiddleware:
    return ConsentMiddleware(html_app(), config=make_config(tmp_path, site=site), secret=SECRET)


def _run(gate: ConsentMiddleware, script: object) -> object:
    async def run() -> object:
        await gate._open()
        transport = httpx2.ASGITransport(app=gate, client=("203.0.113.9", 5000))
        try:
            async with httpx2.AsyncClient(transport=transport, base_url="http://site.example") as c:
                return await script(c)  # type: ignore[operator]
        finally:
            await gate._close()

    return asyncio.run(run())


def test_my_data_shows_the_cookie_holders_rows_only(tmp_path: Path) -> None:
    gate = _gate(tmp_path, name="Example Ltd", contact="dpo@example.com")

    async def script(c: httpx2.AsyncClient) -> tuple[str, str, str, httpx2.Response]:
        await c.post("/.consent/choice", data={"action": "accept-all"}, headers=ORIGIN)
        await c.get("/articles/one")
        mine = (await c.get("/.consent/my-data")).text
        cid = str(c.cookies.get(gate.cookie_name))
        c.cookies.clear()
        forged = await c.get("/.consent/my-data",
                             headers={"cookie": f"{gate.cookie_name}={cid[:-3]}AAA"})
        anonymous = (await c.get("/.consent/my-data?consent_id=whatever")).text
        return mine, forged.text, anonymous, forged

    mine, forged, anonymous, response = _run(gate, script)  # type: ignore[misc]
    assert "/articles/one" in mine and "Google AdSense" in mine and "dpo@example.com" in mine
    assert "This site is run by Example Ltd." in mine
    for other in (forged, anonymous):
        assert "/articles/one" not in other and "<code>" not in other
        assert "no stored choice" in other
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "style-src 'self'" in csp
    assert response.headers["cache-control"] == "no-store"


def test_my_data_is_rate_limited_per_client(tmp_path: Path) -> None:
    gate = _gate(tmp_path)

    async def script(c: httpx2.AsyncClient) -> list[int]:
        return [(await c.get("/.consent/my-data")).status_code for _ in range(BURST + 2)]

    codes = _run(gate, script)
    assert codes == [200] * BURST + [429, 429]
    now = [0.0]
    limit = RateLimit(clock=lambda: now[0])
    assert all(limit.allow("a") for _ in range(BURST)) and not limit.allow("a")
    assert limit.allow("b"), "another client has its own bucket"
    now[0] += REFILL
    assert limit.allow("a") and not limit.allow("a")


def test_my_data_can_be_switched_off(tmp_path: Path) -> None:
    gate = _gate(tmp_path, my_data_page=False)

    async def script(c: httpx2.AsyncClient) -> tuple[int, str]:
        return ((await c.get("/.consent/my-data")).status_code,
                (await c.get("/.consent/preferences")).text)

    status, prefs = _run(gate, script)  # type: ignore[misc]
    assert status == 404 and "my-data" not in prefs


def test_site_frame_on_consent_pages_keeps_the_strict_csp(tmp_path: Path) -> None:
    gate = _gate(tmp_path, name="Example Ltd", stylesheet="/static/site.css",
                 privacy_policy_url="https://example.com/privacy",
                 header_html='<nav class="site"><a href="/">Example</a></nav>',
                 footer_html="<p>© Example Ltd</p>")

    async def script(c: httpx2.AsyncClient) -> list[httpx2.Response]:
        return [await c.get("/.consent/preferences", headers={"referer": "http://site.example/a"}),
                await c.get("/.consent/partners")]

    for r in _run(gate, script):  # type: ignore[attr-defined]
        html = r.text
        assert '<link rel="stylesheet" href="/static/site.css">' in html
        assert '<nav class="site"><a href="/">Example</a></nav>' in html
        assert "<p>© Example Ltd</p>" in html and "This site is run by Example Ltd." in html
        assert 'href="https://example.com/privacy"' in html
        assert "default-src 'none'" in r.headers["content-security-policy"]
    prefs = _run(gate, lambda c: c.get("/.consent/preferences?return_to=/a"))
    assert 'class="cg-back"><a href="/a">' in prefs.text  # type: ignore[attr-defined]


@pytest.mark.parametrize("key, value, message", [
    ("stylesheet", "https://cdn.example/x.css", "same-origin styles only"),
    ("header_html", "<script>alert(1)</script>", "without scripts"),
    ("footer_html", '<a href="/" onclick="x()">x</a>', "without scripts"),
    ("contact", "call us", "an e-mail address or an https:// URL"),
])
def test_site_config_refuses_what_the_pages_csp_would_block(tmp_path: Path, key: str, value: str,
                                                            message: str) -> None:
    from middleware.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        make_config(tmp_path, site={key: value})
