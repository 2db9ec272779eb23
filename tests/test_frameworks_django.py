"""consent-gate in front of a real Django project (examples/django_site), under ASGI.

Django's own ``AsyncClient`` calls Django's handler directly, past any ASGI middleware, so the
wrapped application is driven with Starlette's ``TestClient`` (an ASGI client), by hand through
raw ASGI messages (to see the streamed chunks), and once on a real uvicorn server.
"""

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
from starlette.testclient import TestClient

from examples.django_site import asgi as django_asgi
from examples.django_site import views
from middleware import ConsentMiddleware
from tests.asgi_helpers import SECRET, cookie_for, http_scope
from tests.support.servers import REPO_ROOT, start_consent_gate

SITE = REPO_ROOT / "examples" / "django_site"
PARTNERS = SITE / "partners.toml"

BANNER = 'id="consent-gate-banner"'
X_LOADER = "platform.twitter.com/widgets.js"
ADS_LOADER = "pagead2.googlesyndication.com/pagead/js/adsbygoogle.js"

def config_in(tmp: Path) -> Path:
    """The example's partners.toml, with the ledger in ``tmp`` rather than the working directory."""
    text = PARTNERS.read_text(encoding="utf-8")
    ledger = tmp / "consent-ledger.sqlite3"
    assert 'path = "consent-ledger.sqlite3"' in text
    path = tmp / "partners.toml"
    path.write_text(text.replace('path = "consent-ledger.sqlite3"', f'path = "{ledger.as_posix()}"'),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def gate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsentMiddleware]:
    middleware = ConsentMiddleware(django_asgi.application,
                                   config=config_in(tmp_path_factory.mktemp("django")), secret=SECRET)
    yield middleware
    asyncio.run(middleware.discloser.aclose())


def client(gate: ConsentMiddleware, granted: set[str] | None = None) -> TestClient:
    # No ``with``: Django's ASGI handler does not speak the lifespan protocol.
    c = TestClient(gate)
    if granted is not None:
        c.headers["cookie"] = cookie_for(gate, granted)
    return c


def consent_state(html: str) -> dict[str, str]:
    tag = re.search(r'<p id="consent-state"[^>]*>', html)
    assert tag, "the home page renders #consent-state"
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', tag.group(0)))


# -- the bare site ---------------------------------------------------------------------------


def test_bare_site_renders_as_if_nothing_was_granted() -> None:
    bare = TestClient(django_asgi.application)
    page = bare.get("/")
    assert page.status_code == 200 and "Kissa Notes" in page.text
    assert consent_state(page.text) == {"social": "denied", "ads": "denied", "partner-x": "denied"}
    assert BANNER not in page.text and "content-security-policy" not in page.headers


# -- through consent-gate ----------------------------------------------------------------------


def test_no_cookie_shows_banner_and_no_partner(gate: ConsentMiddleware) -> None:
    page = client(gate).get("/")
    assert page.status_code == 200
    assert consent_state(page.text)["social"] == "denied"
    assert X_LOADER not in page.text and ADS_LOADER not in page.text
    assert BANNER in page.text
    assert "content-security-policy" in page.headers


def test_views_and_templates_see_the_consent(gate: ConsentMiddleware) -> None:
    social = client(gate, {"social"}).get("/")
    assert consent_state(social.text) == {"social": "granted", "ads": "denied", "partner-x": "granted"}
    assert 'class="twitter-share-button"' in social.text  # {% if consent|allows:"social" %}
    assert 'class="adsbygoogle"' not in social.text  # the view's own decision (show_ad_unit)
    both = client(gate, {"social", "ads"}).get("/")
    assert consent_state(both.text) == {"social": "granted", "ads": "granted", "partner-x": "granted"}
    assert '<ins class="adsbygoogle"' in both.text
    nothing = client(gate).get("/")
    assert 'class="twitter-share-button"' not in nothing.text


def test_social_consent_injects_the_social_snippet_only(gate: ConsentMiddleware) -> None:
    page = client(gate, {"social"}).get("/")
    assert X_LOADER in page.text and ADS_LOADER not in page.text
    assert BANNER not in page.text
    assert page.text.index(X_LOADER) < page.text.index("</body>")
    assert "*.twitter.com" in page.headers["content-security-policy"]


async def _call(app: Any, scope: dict[str, Any], body: bytes = b"") -> list[dict[str, Any]]:
    """One request through raw ASGI; returns every message the app sent."""
    sent: list[dict[str, Any]] = []
    done = asyncio.Event()
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": body, "more_body": False}
        await done.wait()  # Django listens for a disconnect while it streams
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    done.set()
    return sent


def _bodies(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "http.response.body"]


def test_streaming_page_is_streamed_through_the_gate(gate: ConsentMiddleware) -> None:
    messages = asyncio.run(_call(gate, http_scope("/cafes/", cookie=cookie_for(gate, {"social"}))))
    bodies = _bodies(messages)
    assert len([m for m in bodies if m.get("body")]) >= 5, "the page arrives in several chunks"
    assert all(m.get("more_body") for m in bodies[:-1]) and not bodies[-1].get("more_body")
    html = b"".join(m.get("body", b"") for m in bodies).decode()
    assert html.count("<li>") == len(views.CAFES) * 5 and html.rstrip().endswith("</html>")
    assert 'id="stream-end" data-social="granted"' in html


def test_streaming_page_is_rewritten(gate: ConsentMiddleware) -> None:
    messages = asyncio.run(_call(gate, http_scope("/cafes/", cookie=cookie_for(gate, {"social"}))))
    start = next(m for m in messages if m["type"] == "http.response.start")
    html = b"".join(m.get("body", b"") for m in _bodies(messages)).decode()
    assert X_LOADER in html and BANNER not in html
    assert b"content-security-policy" in {k.lower() for k, _ in start["headers"]}
    nobody = asyncio.run(_call(gate, http_scope("/cafes/")))
    assert BANNER in b"".join(m.get("body", b"") for m in _bodies(nobody)).decode()


def test_csrf_form_and_session_work_through_the_gate(gate: ConsentMiddleware) -> None:
    c = client(gate)
    form = c.get("/contact/")
    assert form.status_code == 200 and "csrftoken" in c.cookies
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token, "the form carries Django's CSRF token"
    refused = c.post("/contact/", data={"name": "Ann", "message": "Try Lion."}, follow_redirects=False)
    assert refused.status_code == 403  # Django's CSRF protection still applies
    sent = c.post("/contact/", data={"csrfmiddlewaretoken": token.group(1), "name": "Ann",
                                     "message": "Try Lion."}, follow_redirects=False)
    assert sent.status_code == 302 and sent.headers["location"] == "/contact/thanks/"
    assert "sessionid" in c.cookies  # the signed-cookie session survived the gate
    thanks = c.get("/contact/thanks/")
    assert thanks.status_code == 200 and "Thank you, Ann!" in thanks.text


def test_json_and_static_files_are_untouched(gate: ConsentMiddleware) -> None:
    bare, wrapped = TestClient(django_asgi.application), client(gate, {"social", "ads"})
    for path in ("/api/cafes.json", "/static/django_site/site.css"):
        plain, gated = bare.get(path), wrapped.get(path)
        assert gated.status_code == 200 and gated.content == plain.content, path
        assert "content-security-policy" not in gated.headers, path
    assert wrapped.get("/api/cafes.json").json() == {"cafes": views.CAFES}


def test_consent_routes_are_answered_in_front_of_django(gate: ConsentMiddleware) -> None:
    page = client(gate).get("/.consent/partners")
    assert page.status_code == 200
    assert "Google AdSense" in page.text and "X (Twitter)" in page.text


def test_wrapped_module_imports(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CONSENT_GATE_SECRET", secrets.token_urlsafe(36))
    monkeypatch.chdir(tmp_path)  # the ledger path in partners.toml is relative
    monkeypatch.delitem(sys.modules, "examples.django_site.wrapped", raising=False)
    module = importlib.import_module("examples.django_site.wrapped")
    assert isinstance(module.application, ConsentMiddleware)
    asyncio.run(module.application.discloser.aclose())


# -- a real server -----------------------------------------------------------------------------




@pytest.mark.server
def test_consent_gate_run_serves_django_on_real_uvicorn(tmp_path: Path) -> None:
    shutil.copy(PARTNERS, tmp_path / "partners.toml")  # the ledger lands in tmp_path (the cwd)
    with start_consent_gate("examples.django_site.asgi:application", tmp_path / "partners.toml", tmp_path) as server:
        page = httpx2.get(server.url + "/", timeout=10)
        assert page.status_code == 200 and "Kissa Notes" in page.text
        css = httpx2.get(server.url + "/static/django_site/site.css", timeout=10)
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert BANNER in page.text
