"""consent-gate in front of a Litestar app (examples/litestar_app): Litestar's own TestClient
drives the wrapped ASGI app (lifespan included), raw ASGI shows the streamed chunks, and one
test runs it on a real uvicorn server."""

from __future__ import annotations

import asyncio
import importlib
import re
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from litestar.testing import TestClient

from examples.litestar_app.app import TEAS, create_app
from middleware import ConsentMiddleware
from tests.asgi_helpers import SECRET, cookie_for, http_scope
from tests.support.servers import REPO_ROOT, start_consent_gate

PARTNERS = REPO_ROOT / "examples" / "litestar_app" / "partners.toml"

BANNER = 'id="consent-gate-banner"'
X_LOADER = "platform.twitter.com/widgets.js"
ADS_LOADER = "pagead2.googlesyndication.com/pagead/js/adsbygoogle.js"


def config_in(tmp: Path) -> Path:
    """The example's partners.toml, with the ledger in ``tmp`` rather than the working directory."""
    text = PARTNERS.read_text(encoding="utf-8")
    assert 'path = "consent-ledger.sqlite3"' in text
    path = tmp / "partners.toml"
    ledger = (tmp / "consent-ledger.sqlite3").as_posix()
    path.write_text(text.replace('path = "consent-ledger.sqlite3"', f'path = "{ledger}"'), encoding="utf-8")
    return path


@pytest.fixture
def gate(tmp_path: Path) -> ConsentMiddleware:
    return ConsentMiddleware(create_app(), config=config_in(tmp_path), secret=SECRET)


@pytest.fixture
def client(gate: ConsentMiddleware) -> Iterator[TestClient[Any]]:
    # ``with`` runs the lifespan through the middleware (it opens and flushes the ledger).
    with TestClient(app=gate) as c:
        yield c


def consent_state(html: str) -> dict[str, str]:
    tag = re.search(r'<p id="consent-state"[^>]*>', html)
    assert tag, "the home page renders #consent-state"
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag.group(0)))


def test_bare_app_renders_as_if_nothing_was_granted() -> None:
    with TestClient(app=create_app()) as bare:
        page = bare.get("/")
        assert page.status_code == 200 and consent_state(page.text) == {"social": "denied", "ads": "denied"}
        assert BANNER not in page.text
        assert bare.get("/api/consent").json() == {"wrapped": False, "granted": []}


def test_no_cookie_shows_banner_and_no_partner(client: TestClient[Any]) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert BANNER in page.text
    assert X_LOADER not in page.text and ADS_LOADER not in page.text
    assert consent_state(page.text)["social"] == "denied"
    assert "twitter.com" not in page.headers["content-security-policy"]


def test_social_consent_reaches_handler_and_template(gate: ConsentMiddleware,
                                                     client: TestClient[Any]) -> None:
    client.headers["cookie"] = cookie_for(gate, {"social"})
    page = client.get("/")
    assert consent_state(page.text) == {"social": "granted", "ads": "denied"}  # Jinja2: consent.allows("social")
    assert 'class="twitter-share-button"' in page.text
    assert X_LOADER in page.text and ADS_LOADER not in page.text
    assert BANNER not in page.text
    assert client.get("/api/consent").json() == {"wrapped": True, "granted": ["necessary", "social"]}


def test_plain_html_handler_is_rewritten(gate: ConsentMiddleware, client: TestClient[Any]) -> None:
    assert BANNER in client.get("/about").text
    client.headers["cookie"] = cookie_for(gate, {"ads"})
    page = client.get("/about")
    assert ADS_LOADER in page.text and X_LOADER not in page.text
    assert page.text.index(ADS_LOADER) < page.text.index("</head>")


def test_json_untouched(client: TestClient[Any]) -> None:
    with TestClient(app=create_app()) as bare:
        plain = bare.get("/api/teas")
    gated = client.get("/api/teas")
    assert gated.content == plain.content and gated.json() == {"teas": TEAS}
    assert "content-security-policy" not in gated.headers and "vary" not in gated.headers


def test_consent_routes_answered(client: TestClient[Any]) -> None:
    page = client.get("/.consent/partners")
    assert page.status_code == 200 and "X (Twitter)" in page.text


def test_streamed_page_is_streamed_and_rewritten(gate: ConsentMiddleware) -> None:
    sent: list[dict[str, Any]] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def call() -> None:
        finished = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if requests:
                return requests.pop()
            # Litestar listens for a disconnect while it streams; like a server, report one
            # once the response is complete.
            await finished.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished.set()

        await gate(http_scope("/stream", cookie=cookie_for(gate, {"social"})), receive, send)

    asyncio.run(call())
    bodies = [m for m in sent if m["type"] == "http.response.body"]
    assert len([m for m in bodies if m.get("body")]) >= 5, "the page arrives in several chunks"
    assert all(m.get("more_body") for m in bodies[:-1]) and not bodies[-1].get("more_body")
    html = b"".join(m.get("body", b"") for m in bodies).decode()
    assert html.count("<li>") == 30 and X_LOADER in html and BANNER not in html
    assert html.index(X_LOADER) < html.index("</body>")


def test_define_middleware_gates_pages_but_not_consent_routes(tmp_path: Path) -> None:
    """Litestar's own middleware list runs ConsentMiddleware for matched routes only (why
    wrapped.py wraps the whole app instead)."""
    from litestar.middleware import DefineMiddleware

    app = create_app(middleware=[DefineMiddleware(ConsentMiddleware, config=config_in(tmp_path),
                                                  secret=SECRET)])
    with TestClient(app=app) as c:
        assert BANNER in c.get("/").text
        assert c.get("/.consent/partners").status_code == 404


def test_wrapped_module_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONSENT_GATE_SECRET", secrets.token_urlsafe(36))
    monkeypatch.chdir(tmp_path)  # the ledger path in partners.toml is relative
    monkeypatch.delitem(sys.modules, "examples.litestar_app.wrapped", raising=False)
    module = importlib.import_module("examples.litestar_app.wrapped")
    assert isinstance(module.app, ConsentMiddleware)
    with TestClient(app=module.app) as c:
        assert BANNER in c.get("/").text




@pytest.mark.server
def test_consent_gate_run_serves_litestar_on_real_uvicorn(tmp_path: Path) -> None:
    shutil.copy(PARTNERS, tmp_path / "partners.toml")  # the ledger lands in tmp_path (the cwd)
    with start_consent_gate("examples.litestar_app.app:app", tmp_path / "partners.toml", tmp_path) as server:
        page = httpx2.get(server.url + "/", timeout=10)
        assert page.status_code == 200 and "Tea Leaves" in page.text
        assert BANNER in page.text and X_LOADER not in page.text
        assert httpx2.get(server.url + "/api/teas", timeout=10).json() == {"teas": TEAS}
