"""The three examples wrapped by the middleware: each page carries exactly the consented partners."""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from examples.fastapi_app.app import create_app as create_fastapi_app
from examples.japan_talk.app import app as japan_talk
from examples.plain_asgi.app import app as plain_asgi
from middleware import ConsentMiddleware, load_config
from middleware.consent import StoredChoice

from .asgi_helpers import SECRET

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
JT_PAGES = ["/", "/articles/kyoto-autumn", "/articles/onsen-etiquette", "/articles/tokyo-trains",
            "/articles/hakone-day-trip", "/about", "/privacy", "/embeds"]


def wrap(app: object, name: str, tmp_path: Path) -> ConsentMiddleware:
    config_path = tmp_path / f"{name}.toml"
    shutil.copy(EXAMPLES / name / "partners.toml", config_path)
    text = config_path.read_text()
    config_path.write_text(text.replace('path = "consent-ledger.sqlite3"',
                                        f'path = "{tmp_path / "ledger.sqlite3"}"'))
    return ConsentMiddleware(app, config=load_config(config_path), secret=SECRET)  # type: ignore[arg-type]


def client_for(gate: ConsentMiddleware, granted: set[str] | None) -> TestClient:
    client = TestClient(gate)
    if granted is not None:
        choice = StoredChoice("example-consent-id", frozenset(granted), gate.config.policy.version,
                              "banner", dt.datetime.now(dt.UTC))
        client.cookies.set(gate.config.policy.cookie.name, gate.codec.dumps(choice))
    return client


def snippets_of(gate: ConsentMiddleware, purpose: str) -> list[str]:
    return [s.html for p in gate.config.partners_for_purpose(purpose) for s in p.inject]


@pytest.fixture
def jt(tmp_path: Path) -> Iterator[ConsentMiddleware]:
    yield wrap(japan_talk, "japan_talk", tmp_path)


@pytest.mark.parametrize("path", JT_PAGES)
@pytest.mark.parametrize(("granted", "ads", "social"), [
    (None, False, False), ({"ads"}, True, False), ({"social"}, False, True),
    ({"ads", "social"}, True, True),
])
def test_japan_talk_pages_carry_exactly_consented_snippets(jt: ConsentMiddleware, path: str,
                                                           granted: set[str] | None, ads: bool,
                                                           social: bool) -> None:
    page = client_for(jt, granted).get(path)
    assert page.status_code == 200
    for html in snippets_of(jt, "ads"):
        assert (html in page.text) is ads, html
    for html in snippets_of(jt, "social"):
        assert (html in page.text) is social, html
    assert ('id="consent-gate-banner"' in page.text) is (granted is None)


def test_japan_talk_json_untouched(jt: ConsentMiddleware) -> None:
    bare = TestClient(japan_talk).get("/api/articles.json")
    wrapped = client_for(jt, {"ads", "social"}).get("/api/articles.json")
    assert wrapped.content == bare.content
    assert "vary" not in wrapped.headers or "Cookie" not in wrapped.headers["vary"]


def test_fastapi_example_view_sees_consent(tmp_path: Path) -> None:
    gate = wrap(create_fastapi_app(), "fastapi_app", tmp_path)
    none = client_for(gate, None).get("/tasting")
    ads = client_for(gate, {"ads"}).get("/tasting")
    assert none.status_code == ads.status_code == 200
    assert none.text != ads.text, "the view renders differently once ads are allowed"
    for html in snippets_of(gate, "ads"):
        assert html in ads.text and html not in none.text


def test_plain_asgi_streamed_page_rewritten(tmp_path: Path) -> None:
    gate = wrap(plain_asgi, "plain_asgi", tmp_path)
    for path in ("/", "/stream"):
        none = client_for(gate, None).get(path)
        social = client_for(gate, {"social"}).get(path)
        for html in snippets_of(gate, "social"):
            assert html in social.text and html not in none.text
        assert 'id="consent-gate-banner"' in none.text


@pytest.mark.server
@pytest.mark.parametrize(("name", "app", "paths"), [
    ("fastapi_app", "examples.fastapi_app.app:app", ["/", "/tasting"]),
    ("plain_asgi", "examples.plain_asgi.app:app", ["/", "/stream"]),
])
def test_example_served_by_consent_gate_run_on_real_uvicorn(tmp_path: Path, name: str, app: str,
                                                            paths: list[str]) -> None:
    import httpx2

    from .support.servers import start_consent_gate

    config = tmp_path / "partners.toml"
    shutil.copy(EXAMPLES / name / "partners.toml", config)
    with start_consent_gate(app, config, tmp_path) as server:
        for path in paths:
            page = httpx2.get(server.url + path, timeout=10)
            assert page.status_code == 200, path
            assert 'id="consent-gate-banner"' in page.text, path
            assert page.headers["cache-control"].startswith("private"), path
