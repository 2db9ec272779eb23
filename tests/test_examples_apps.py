"""The example sites, bare (without consent-gate), plus sanity checks of their partners.toml."""

from __future__ import annotations

import asyncio
import importlib
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from examples.fastapi_app.app import create_app
from examples.japan_talk.app import app as japan_talk
from examples.japan_talk.articles import ARTICLES
from examples.plain_asgi import app as plain_module

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TOMLS = sorted(EXAMPLES.glob("*/partners.toml"))

LOADER_URLS = (
    "pagead2.googlesyndication.com/pagead/js/adsbygoogle.js",
    "securepubads.g.doubleclick.net/tag/js/gpt.js",
    "connect.facebook.net/en_US/sdk.js",
    "platform.twitter.com/widgets.js",
    "assets.pinterest.com/js/pinit.js",
)


@pytest.fixture(scope="module")
def jt() -> TestClient:
    return TestClient(japan_talk)


HTML_PAGES = ["/", "/about", "/privacy", "/embeds", *(f"/articles/{a.slug}" for a in ARTICLES)]


@pytest.mark.parametrize("path", HTML_PAGES)
def test_japan_talk_html_pages(jt: TestClient, path: str) -> None:
    r = jt.get(path)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    text = r.text
    assert text.startswith('<!DOCTYPE html>\n<html lang="en">')
    assert text.count("<head>") == 1 and text.count("</head>") == 1
    assert text.count("<body>") == 1 and text.count("</body>") == 1
    assert 'href="/privacy"' in text and 'href="/about"' in text and "&copy;" in text


def test_japan_talk_other_routes(jt: TestClient) -> None:
    assert jt.get("/health").text == "ok\n"
    data = jt.get("/api/articles.json").json()
    assert [a["slug"] for a in data["articles"]] == [a.slug for a in ARTICLES]
    assert jt.get("/static/site.css").headers["content-type"].startswith("text/css")
    assert "fbevents.js" in jt.get("/static/late.js").text
    missing = jt.get("/articles/no-such-article")
    assert missing.status_code == 404 and "<!DOCTYPE html>" in missing.text


def test_kyoto_article_is_about_30_kb(jt: TestClient) -> None:
    size = len(jt.get("/articles/kyoto-autumn").content)
    assert 28_000 <= size <= 33_000, size


def test_articles_hard_code_slots_and_share_buttons_but_no_loaders(jt: TestClient) -> None:
    with_video = 0
    for a in ARTICLES:
        text = jt.get(f"/articles/{a.slug}").text
        assert '<ins class="adsbygoogle"' in text
        assert "(adsbygoogle = window.adsbygoogle || []).push({});" in text
        assert '<div id="div-gpt-ad-' in text
        assert '<a href="https://twitter.com/share" class="twitter-share-button' in text
        assert '<a data-pin-do="buttonBookmark" href="https://www.pinterest.com/pin/create/' in text
        assert '<div class="fb-like" data-href=' in text
        for url in LOADER_URLS:  # loaders come from partners.toml injection
            assert url not in text, (a.slug, url)
        if '<iframe width="560" height="315" src="https://www.youtube.com/embed/' in text:
            with_video += 1
    assert with_video == 1


def test_embeds_page_hard_codes_every_tag_kind(jt: TestClient) -> None:
    text = jt.get("/embeds").text
    for needle in (
        '<script async src="https://pagead2.googlesyndication.com/pagead/js/adsbygoogle.js'
        '?client=ca-pub-0000000000000000" crossorigin="anonymous">',
        '<ins class="adsbygoogle"',
        "(adsbygoogle = window.adsbygoogle || []).push({});",
        'src="https://securepubads.g.doubleclick.net/tag/js/gpt.js"',
        '<img src="https://ad.doubleclick.net/ddm/activity/',
        '<noscript><img src="https://ad.doubleclick.net/ddm/activity/',
        'src="https://connect.facebook.net/en_US/sdk.js',
        '<iframe src="https://www.facebook.com/plugins/like.php?',
        'src="https://www.facebook.com/tr?id=',
        'src="https://platform.twitter.com/widgets.js"',
        'src="//assets.pinterest.com/js/pinit.js"',
        '<iframe width="560" height="315" src="https://www.youtube.com/embed/',
        '<link rel="preconnect" href="https://pagead2.googlesyndication.com">',
        '<link rel="dns-prefetch" href="//connect.facebook.net">',
        '<script src="/static/late.js"',
        '<script type="text/plain" data-consent="ads">window.__adsOptIn = true;</script>',
    ):
        assert needle in text, needle
    assert text.index('<link rel="preconnect"') < text.index("</head>")


@pytest.mark.parametrize("path", TOMLS, ids=lambda p: p.parent.name)
def test_partners_toml_is_consistent(path: Path) -> None:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    assert {"policy", "purposes", "partners", "csp", "ledger"} <= set(data) <= {"policy", "purposes", "partners", "csp", "ledger", "ui", "site"}
    purposes = data["purposes"]
    assert purposes["necessary"]["necessary"] is True
    for pid, partner in data["partners"].items():
        assert partner["purposes"] and set(partner["purposes"]) <= set(purposes), pid
        assert partner["hosts"] and partner["privacy_url"].startswith("https://"), pid
        for snippet in partner.get("inject", []):
            assert snippet["at"] in {"head-end", "body-start", "body-end"}, pid


@pytest.mark.parametrize("path", TOMLS, ids=lambda p: p.parent.name)
def test_partners_toml_loads_with_consent_gate(path: Path) -> None:
    config = pytest.importorskip("middleware.config")
    if not hasattr(config, "load_config"):
        pytest.skip("middleware.config.load_config not implemented yet")
    cfg = config.load_config(path)
    assert "necessary" in cfg.purposes


def test_japan_talk_partners() -> None:
    data = tomllib.loads((EXAMPLES / "japan_talk" / "partners.toml").read_text("utf-8"))
    partners = data["partners"]
    assert set(partners) == {
        "google-adsense",
        "google-publisher-tag",
        "facebook",
        "x-twitter",
        "pinterest",
        "youtube",
    }
    assert "inject" not in partners["youtube"]
    assert data["purposes"]["ads"]["sale_or_sharing"] is True


class FakeConsent:
    def __init__(self, granted: set[str]) -> None:
        self.granted = granted

    def allows(self, purpose: str) -> bool:
        return purpose in self.granted


def with_consent(app: Any, granted: set[str]) -> Any:
    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            scope.setdefault("state", {})["consent"] = FakeConsent(granted)
        await app(scope, receive, send)

    return wrapper


def test_fastapi_app_reads_consent_in_view() -> None:
    bare = TestClient(create_app())
    assert bare.get("/api/sakes").json()["sakes"]
    assert 'class="adsbygoogle"' in bare.get("/").text
    text = bare.get("/tasting").text
    assert 'data-ads="denied"' in text and "adsbygoogle" not in text
    granted = TestClient(with_consent(create_app(), {"ads"}))
    text = granted.get("/tasting").text
    assert 'data-ads="granted"' in text and 'class="adsbygoogle"' in text


def test_plain_asgi_pages() -> None:
    with TestClient(plain_module.app) as client:
        assert "<!DOCTYPE html>" in client.get("/").text
        assert client.get("/stream").content == plain_module.STREAM
        assert client.get("/nope").status_code == 404


def test_plain_asgi_streams_many_small_chunks() -> None:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        messages.append(dict(message))

    scope = {"type": "http", "method": "GET", "path": "/stream", "headers": []}
    asyncio.run(plain_module.app(scope, receive, send))
    bodies = [m for m in messages if m["type"] == "http.response.body"]
    assert len(bodies) > 50
    assert all(m.get("more_body") for m in bodies[:-1]) and not bodies[-1].get("more_body")
    assert b"".join(m["body"] for m in bodies) == plain_module.STREAM


@pytest.mark.parametrize("name", ["japan_talk", "fastapi_app", "plain_asgi"])
def test_wrapped_modules_import(name: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    middleware = pytest.importorskip("middleware")
    if not hasattr(middleware, "ConsentMiddleware"):
        pytest.skip("middleware.ConsentMiddleware not implemented yet")
    monkeypatch.setenv("CONSENT_GATE_SECRET", "test-secret-" + "x" * 48)
    monkeypatch.chdir(tmp_path)  # the ledger path in partners.toml is relative
    monkeypatch.delitem(sys.modules, f"examples.{name}.wrapped", raising=False)
    module = importlib.import_module(f"examples.{name}.wrapped")
    assert callable(module.app)
