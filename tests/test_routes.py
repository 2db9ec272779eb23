"""ConsentUI routes under the prefix: choice, preferences, partners, assets, gpc.json.

The routes are driven without the middleware: a tiny ASGI wrapper resolves the consent
from the cookie with ConsentResolver and calls ``ui.handle`` (see :func:`make_ui_app`).
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from collections.abc import Mapping
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers
from starlette.requests import cookie_parser
from starlette.testclient import TestClient
from starlette.types import Receive, Scope, Send

from middleware.config import Config, parse_config
from middleware.consent import Consent, ConsentCodec, ConsentResolver, privacy_signal
from middleware.errors import ConfigError
from middleware.routes import MAX_BODY, PAGE_CSP, ConsentUI, safe_return_path
from tests.support.budget import examples

KEY = "routes-test-key-" + "k" * 40
BASE = "http://testserver"

CONFIG: dict[str, Any] = {
    "policy": {"version": "2026-02", "effective": dt.date(2026, 2, 1)},
    "purposes": {
        "necessary": {"title": "Necessary", "description": "Keeps your choice.", "necessary": True},
        "ads": {"title": "Advertising", "description": "Ads <b>chosen</b> for you.",
                "sale_or_sharing": True},
        "analytics": {"title": "Analytics", "description": "Counting visits."},
        "social": {"title": "Social media", "description": "Videos and share buttons."},
    },
    "partners": {
        "adsense": {
            "name": "Google AdSense", "purposes": ["ads"],
            "hosts": ["pagead2.googlesyndication.com"],
            "receives": ["ip_address", "cookies", "page_url"],
            "cookies": ["__gads", "__gpi"], "cookie_domains": [".example.com"],
            "privacy_url": "https://policies.google.com/privacy",
        },
        "stats": {
            "name": "Stats & Co", "purposes": ["analytics"], "hosts": ["stats.example"],
            "receives": ["ip_address"], "cookies": ["_st"],
            "privacy_url": "https://stats.example/privacy",
        },
        "video": {
            "name": "VideoTube", "purposes": ["social", "ads"], "hosts": ["video.example"],
            "receives": ["ip_address", "user_agent"], "cookies": ["vt"],
            "privacy_url": "https://video.example/privacy",
        },
    },
    "ui": {"texts": {"ja": {"accept_all": "すべて同意する", "reject_all": "すべて拒否する",
                            "banner_title": "プライバシーの選択"}}},
}


def make_config(**sections: Mapping[str, Any]) -> Config:
    """CONFIG with the given sections merged in one level deep."""
    data = copy.deepcopy(CONFIG)
    for name, values in sections.items():
        data.setdefault(name, {}).update(copy.deepcopy(dict(values)))
    return parse_config(data, "test.toml")


Event = tuple[str, Consent, "Consent | None", str]


class UiApp:
    """The routes behind a minimal consent-resolving wrapper; other paths get a tiny page."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.codec = ConsentCodec([KEY], max_age_seconds=config.policy.cookie.max_age_days * 86400)
        self.resolver = ConsentResolver(config, self.codec)
        self.events: list[Event] = []
        self.ui = ConsentUI(config, self.resolver, record_event=self._record)

    async def _record(self, action: str, new: Consent, previous: Consent | None, source: str,
                      scope: Scope) -> None:
        self.events.append((action, new, previous, source))

    def consent_of(self, scope: Scope) -> Consent:
        headers = Headers(scope=scope)
        cookie = cookie_parser(headers.get("cookie", "")).get(self.config.policy.cookie.name)
        signal = privacy_signal(scope["headers"], honor_gpc=self.config.policy.honor_gpc,
                                honor_dnt=self.config.policy.honor_dnt)
        return self.resolver.resolve(cookie, signal)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        consent = self.consent_of(scope)
        if self.ui.owns(scope["path"]):
            await self.ui.handle(scope, receive, send, consent)
            return
        lang = self.ui.language(scope)
        body = (b"<!doctype html><html><head><title>Demo</title></head><body><h1>Demo</h1>"
                + self.ui.banner(consent, lang) + self.ui.footer_link(lang) + b"</body></html>")
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/html; charset=utf-8")]})
        await send({"type": "http.response.body", "body": body})

    def cookie_for(self, granted: set[str], source: str = "banner") -> str:
        _, value = self.resolver.choose(granted, source, previous=None)
        return value

    def client(self, *, origin: bool = True) -> TestClient:
        """A client that sends ``Origin`` like a browser does with every POST (unless told not to)."""
        return TestClient(self, base_url=BASE, follow_redirects=False,
                          headers={"origin": BASE} if origin else None)


def make_ui_app(**sections: Mapping[str, Any]) -> UiApp:
    return UiApp(make_config(**sections))


@pytest.fixture
def app() -> UiApp:
    return make_ui_app()


def post(app: UiApp, data: Mapping[str, str] | list[tuple[str, str]], *,
         cookie: str | None = None, headers: Mapping[str, str] | None = None) -> Any:
    h = {"content-type": "application/x-www-form-urlencoded", "origin": BASE,
         "sec-fetch-site": "same-origin", **(headers or {})}
    if cookie is not None:
        h["cookie"] = f"consent={cookie}"
    with app.client() as client:
        return client.post("/.consent/choice", content=urlencode(data).encode(), headers=h)


def set_cookies(response: Any) -> list[str]:
    return [v for k, v in response.headers.multi_items() if k == "set-cookie"]


def consent_cookie(response: Any) -> str:
    cookies = [c for c in set_cookies(response) if c.startswith("consent=")]
    assert len(cookies) == 1, set_cookies(response)
    return cookies[0]


def cookie_value(response: Any) -> str:
    return consent_cookie(response).split(";")[0].split("=", 1)[1]


# --------------------------------------------------------------------------- choice: actions


def test_choice_accept_all_grants_every_purpose_and_redirects(app: UiApp) -> None:
    r = post(app, {"action": "accept-all", "source": "banner", "return_to": "/articles/x?p=2"})
    assert r.status_code == 303
    assert r.headers["location"] == "/articles/x?p=2"
    stored = app.codec.loads(cookie_value(r))
    assert stored is not None
    assert stored.granted == {"necessary", "ads", "analytics", "social"}
    assert stored.source == "banner"
    assert [(e[0], e[3]) for e in app.events] == [("given", "banner")]


def test_choice_reject_all_keeps_only_necessary(app: UiApp) -> None:
    r = post(app, {"action": "reject-all", "source": "banner", "return_to": "/"})
    stored = app.codec.loads(cookie_value(r))
    assert stored is not None and stored.granted == {"necessary"}
    assert app.events[0][0] == "given"


def test_choice_save_grants_checked_purposes_only(app: UiApp) -> None:
    r = post(app, [("action", "save"), ("source", "preferences"), ("analytics", "on"),
                   ("social", "off"), ("bogus", "on")])
    stored = app.codec.loads(cookie_value(r))
    assert stored is not None and stored.granted == {"necessary", "analytics"}
    assert stored.source == "preferences"


def test_choice_change_keeps_consent_id_and_records_changed(app: UiApp) -> None:
    first = post(app, {"action": "accept-all", "source": "banner"})
    cid = app.codec.loads(cookie_value(first)).consent_id  # type: ignore[union-attr]
    second = post(app, {"action": "save", "source": "preferences", "ads": "on"},
                  cookie=cookie_value(first))
    stored = app.codec.loads(cookie_value(second))
    assert stored is not None and stored.consent_id == cid
    assert [e[0] for e in app.events] == ["given", "changed"]
    assert app.events[1][2] is not None and app.events[1][2].consent_id == cid


def test_choice_withdraw_rejects_all_keeps_id_and_records_withdrawn(app: UiApp) -> None:
    cookie = app.cookie_for({"ads", "analytics", "social"})
    cid = app.codec.loads(cookie).consent_id  # type: ignore[union-attr]
    r = post(app, {"action": "withdraw", "source": "preferences"}, cookie=cookie)
    stored = app.codec.loads(cookie_value(r))
    assert stored is not None and stored.granted == {"necessary"} and stored.consent_id == cid
    assert app.events[-1][0] == "withdrawn"


def test_choice_withdraw_without_previous_consent_is_fine(app: UiApp) -> None:
    r = post(app, {"action": "withdraw", "source": "preferences"})
    assert r.status_code == 303
    assert app.codec.loads(cookie_value(r)) is not None
    assert app.events[0][0] == "withdrawn"


def test_choice_placeholder_adds_to_previous_consent_never_narrows(app: UiApp) -> None:
    cookie = app.cookie_for({"analytics"})
    r = post(app, {"action": "save", "source": "placeholder", "social": "on", "ads": "on"},
             cookie=cookie)
    stored = app.codec.loads(cookie_value(r))
    assert stored is not None and stored.granted == {"necessary", "analytics", "social", "ads"}
    assert [c for c in set_cookies(r) if "Max-Age=0" in c] == []


def test_choice_missing_source_defaults_to_form(app: UiApp) -> None:
    r = post(app, {"action": "accept-all"})
    assert r.status_code == 303
    assert app.events[0][3] == "form"


@pytest.mark.parametrize("data", [
    {"action": "delete-everything", "source": "banner"},
    {"source": "banner"},
    {"action": "accept-all", "source": "evil"},
])
def test_choice_rejects_unknown_action_or_source(app: UiApp, data: dict[str, str]) -> None:
    r = post(app, data)
    assert r.status_code == 400
    assert not set_cookies(r)
    assert app.events == []


# --------------------------------------------------------------------------- choice: cookie


def test_choice_cookie_attributes_plain_http(app: UiApp) -> None:
    header = consent_cookie(post(app, {"action": "accept-all", "source": "banner"}))
    attrs = [a.strip().lower() for a in header.split(";")[1:]]
    assert "httponly" in attrs
    assert "samesite=lax" in attrs
    assert "path=/" in attrs
    assert f"max-age={180 * 86400}" in attrs
    assert "secure" not in attrs
    assert not any(a.startswith("domain=") for a in attrs)


def test_choice_cookie_secure_over_https_and_domain_when_configured() -> None:
    app = make_ui_app(policy={"cookie": {"name": "consent", "max_age_days": 30,
                                         "domain": "example.com"}})
    with TestClient(app, base_url="https://example.com", follow_redirects=False) as client:
        r = client.post("/.consent/choice", content=b"action=accept-all&source=banner",
                        headers={"content-type": "application/x-www-form-urlencoded",
                                 "origin": "https://example.com"})
    attrs = [a.strip().lower() for a in consent_cookie(r).split(";")[1:]]
    assert "secure" in attrs and "httponly" in attrs
    assert "domain=example.com" in attrs
    assert f"max-age={30 * 86400}" in attrs


@pytest.mark.parametrize(("trust_proxy", "secure"), [(True, True), (False, False)])
def test_choice_cookie_secure_from_forwarded_proto_only_when_trusted(
        trust_proxy: bool, secure: bool) -> None:
    app = make_ui_app(policy={"trust_proxy": trust_proxy})
    r = post(app, {"action": "accept-all"}, headers={"x-forwarded-proto": "https",
                                                     "origin": "https://testserver"})
    attrs = [a.strip().lower() for a in consent_cookie(r).split(";")[1:]]
    assert ("secure" in attrs) is secure


# --------------------------------------------------------------------------- withdrawal


def expiries(response: Any) -> list[str]:
    return [c for c in set_cookies(response) if "Max-Age=0" in c]


def test_withdraw_expires_partner_cookies_with_and_without_domain(app: UiApp) -> None:
    cookie = app.cookie_for({"ads", "analytics", "social"})
    r = post(app, {"action": "withdraw", "source": "preferences"}, cookie=cookie)
    headers = set_cookies(r)
    print("\n".join(headers))  # shown with -s: the full Set-Cookie list
    assert sorted(expiries(r)) == sorted([
        "__gads=; Max-Age=0; Path=/",
        "__gads=; Max-Age=0; Path=/; Domain=.example.com",
        "__gpi=; Max-Age=0; Path=/",
        "__gpi=; Max-Age=0; Path=/; Domain=.example.com",
        "_st=; Max-Age=0; Path=/",
        "vt=; Max-Age=0; Path=/",
    ])
    # The consent cookie itself is re-set (HttpOnly), never expired.
    assert "HttpOnly" in consent_cookie(r) and "Max-Age=0" not in consent_cookie(r)


def test_narrowing_expires_only_partners_of_removed_purposes(app: UiApp) -> None:
    cookie = app.cookie_for({"ads", "analytics", "social"})
    # Keep analytics and social, drop ads: adsense and video (social+ads) lose consent.
    r = post(app, {"action": "save", "source": "preferences", "analytics": "on", "social": "on"},
             cookie=cookie)
    names = {c.split("=")[0] for c in expiries(r)}
    assert names == {"__gads", "__gpi", "vt"}


def test_narrowing_keeps_partner_still_allowed(app: UiApp) -> None:
    cookie = app.cookie_for({"ads", "analytics", "social"})
    r = post(app, {"action": "save", "source": "preferences", "ads": "on", "social": "on"},
             cookie=cookie)
    assert {c.split("=")[0] for c in expiries(r)} == {"_st"}


def test_first_reject_in_opt_in_expires_nothing(app: UiApp) -> None:
    assert expiries(post(app, {"action": "reject-all", "source": "banner"})) == []


def test_reject_in_opt_out_expires_default_allowed_partners() -> None:
    app = make_ui_app(policy={"default": "allow"})
    r = post(app, {"action": "reject-all", "source": "banner"})
    assert {c.split("=")[0] for c in expiries(r)} == {"__gads", "__gpi", "_st", "vt"}


def test_expiries_carry_secure_over_https() -> None:
    app = make_ui_app()
    cookie = app.cookie_for({"analytics"})
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        r = client.post("/.consent/choice", content=b"action=reject-all",
                        headers={"content-type": "application/x-www-form-urlencoded",
                                 "origin": "https://testserver", "cookie": f"consent={cookie}"})
    assert expiries(r) == ["_st=; Max-Age=0; Path=/; Secure"]


# --------------------------------------------------------------------------- redirect safety

EVIL_RETURN_TO = [
    "https://evil.example/",
    "http://evil.example",
    "//evil.example/path",
    "///evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "\\/evil.example",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    " /ok",
    "/\t/evil.example",
    "/\n/evil.example",
    "/\r\nSet-Cookie: x=1",
    "/\x00",
    '/a"><script>alert(1)</script>',
    "/caf\u00e9",
    "relative/path",
    "evil.example",
    "?q=1",
    "#frag",
    "",
    "/" + "a" * 3000,
]


@pytest.mark.parametrize("evil", EVIL_RETURN_TO)
def test_choice_redirect_refuses_unsafe_return_to(app: UiApp, evil: str) -> None:
    r = post(app, {"action": "reject-all", "source": "banner", "return_to": evil})
    assert r.status_code == 303
    assert r.headers["location"] == "/"


@pytest.mark.parametrize("good", ["/", "/a/b?c=d&e=f", "/%2F%2Fevil.example", "/x#y",
                                  "/.consent/preferences"])
def test_choice_redirect_keeps_same_site_paths(app: UiApp, good: str) -> None:
    r = post(app, {"action": "reject-all", "source": "banner", "return_to": good})
    assert r.headers["location"] == good


def test_safe_return_path_table() -> None:
    for evil in EVIL_RETURN_TO:
        assert safe_return_path(evil) is None, evil
    assert safe_return_path("/ok?x=1") == "/ok?x=1"


def test_choice_falls_back_to_same_origin_referer_path(app: UiApp) -> None:
    r = post(app, {"action": "reject-all", "source": "banner"},
             headers={"referer": f"{BASE}/articles/one?page=2"})
    assert r.headers["location"] == "/articles/one?page=2"


@pytest.mark.parametrize("referer", ["https://evil.example/articles", "http://testserver.evil/x",
                                     "http://user@testserver/x", "not a url"])
def test_choice_ignores_cross_site_referer(app: UiApp, referer: str) -> None:
    r = post(app, {"action": "reject-all", "source": "banner"}, headers={"referer": referer})
    assert r.headers["location"] == "/"


# --------------------------------------------------------------------------- JSON mode


def test_choice_json_mode_answers_json_with_cookie(app: UiApp) -> None:
    r = post(app, {"action": "save", "source": "banner", "analytics": "on", "return_to": "/x"},
             headers={"accept": "application/json"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"granted": ["analytics", "necessary"], "allowed_partners": ["stats"],
                        "reload": True}
    assert "location" not in r.headers
    assert "HttpOnly" in consent_cookie(r)
    assert r.headers["cache-control"] == "no-store"


def test_choice_accepts_json_body(app: UiApp) -> None:
    with app.client() as client:
        r = client.post("/.consent/choice",
                        content=json.dumps({"action": "save", "source": "form",
                                            "granted": ["ads"], "social": True}).encode(),
                        headers={"content-type": "application/json", "accept": "application/json"})
    assert r.status_code == 200
    assert r.json()["granted"] == ["ads", "necessary", "social"]


@pytest.mark.parametrize("body", [b"[1]", b"{", b'{"action": 5}', b"\xff"])
def test_choice_bad_json_is_400(app: UiApp, body: bytes) -> None:
    with app.client() as client:
        r = client.post("/.consent/choice", content=body,
                        headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert not set_cookies(r)


# --------------------------------------------------------------------------- CSRF


def test_choice_cross_site_origin_is_403(app: UiApp) -> None:
    r = post(app, {"action": "accept-all"}, headers={"origin": "https://evil.example",
                                                     "sec-fetch-site": "same-origin"})
    assert r.status_code == 403
    assert "Origin" in r.text
    assert not set_cookies(r) and app.events == []


@pytest.mark.parametrize("site", ["cross-site", "same-site", "none"])
def test_choice_sec_fetch_site_not_same_origin_is_403(app: UiApp, site: str) -> None:
    r = post(app, {"action": "accept-all"}, headers={"sec-fetch-site": site})
    assert r.status_code == 403
    assert "Sec-Fetch-Site" in r.text
    assert not set_cookies(r)


@pytest.mark.parametrize("origin", ["http://testserver:8080", "http://evil.testserver"])
def test_choice_other_origins_are_403(app: UiApp, origin: str) -> None:
    assert post(app, {"action": "accept-all"}, headers={"origin": origin}).status_code == 403


def raw_post(app: UiApp, headers: Mapping[str, str]) -> Any:
    with app.client(origin=False) as client:
        return client.post("/.consent/choice", content=b"action=accept-all",
                           headers={"content-type": "application/x-www-form-urlencoded", **headers})


def test_choice_origin_null_without_fetch_metadata_is_403(app: UiApp) -> None:
    # A sandboxed frame on any site posts with Origin: null.
    assert raw_post(app, {"origin": "null"}).status_code == 403
    assert app.events == []


def test_choice_origin_null_with_same_origin_fetch_metadata_is_accepted(app: UiApp) -> None:
    # What a page with Referrer-Policy: no-referrer sends.
    assert raw_post(app, {"origin": "null", "sec-fetch-site": "same-origin"}).status_code == 303


def test_choice_without_origin_fetch_metadata_or_referer_is_refused_with_a_page(app: UiApp) -> None:
    r = raw_post(app, {})
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/html")
    assert "neither Origin, Sec-Fetch-Site nor a Referer" in r.text
    assert 'href="/.consent/preferences" target="_top"' in r.text
    assert not set_cookies(r) and app.events == []


def test_choice_without_origin_or_fetch_metadata_accepts_same_origin_referer(app: UiApp) -> None:
    assert raw_post(app, {"referer": BASE + "/article"}).status_code == 303
    assert raw_post(app, {"referer": "https://evil.example/"}).status_code == 403
    assert len(app.events) == 1


@pytest.mark.parametrize("dest", ["iframe", "frame", "embed", "object"])
def test_choice_form_submitted_inside_a_frame_is_refused(app: UiApp, dest: str) -> None:
    r = post(app, {"action": "accept-all"}, headers={"sec-fetch-dest": dest})
    assert r.status_code == 403
    assert "inside a frame" in r.text
    assert not set_cookies(r) and app.events == []


def test_choice_from_banner_script_in_another_sites_frame_is_refused(app: UiApp) -> None:
    r = post(app, {"action": "accept-all", "source": "banner", "framed": "cross-origin"},
             headers={"sec-fetch-dest": "empty", "accept": "application/json"})
    assert r.status_code == 403
    assert "inside a frame of another site" in r.text
    assert not set_cookies(r) and app.events == []


def test_choice_top_level_document_post_is_accepted(app: UiApp) -> None:
    r = post(app, {"action": "accept-all"}, headers={"sec-fetch-dest": "document"})
    assert r.status_code == 303 and len(app.events) == 1


def test_choice_origin_with_default_port_is_same_origin(app: UiApp) -> None:
    r = post(app, {"action": "accept-all"}, headers={"origin": "http://testserver:80"})
    assert r.status_code == 303


# --------------------------------------------------------------------------- limits, methods


def test_choice_body_too_large_is_413(app: UiApp) -> None:
    r = post(app, {"action": "accept-all", "pad": "x" * (MAX_BODY + 1)})
    assert r.status_code == 413
    assert not set_cookies(r)


@pytest.mark.parametrize(("length", "status"), [
    (b"\xb2", 400),  # "²" is a digit to str.isdigit, not to int()
    (b"\xd9\xa1", 400),  # not ASCII either
    (b"9" * 5000, 413),  # more digits than int() converts by default
    (b"+12", 400),
    (b" 17 ", 303),
])
def test_choice_odd_content_length_is_a_clear_4xx(app: UiApp, length: bytes, status: int) -> None:
    """Servers other than uvicorn may pass any Content-Length through: never a 500."""
    import asyncio

    body = b"action=accept-all"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/.consent/choice", "raw_path": b"/.consent/choice",
             "query_string": b"", "root_path": "", "client": ("127.0.0.1", 1),
             "server": ("testserver", 80),
             "headers": [(b"host", b"testserver"), (b"origin", BASE.encode()),
                         (b"sec-fetch-site", b"same-origin"), (b"content-length", length),
                         (b"content-type", b"application/x-www-form-urlencoded")]}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == status


def test_choice_streamed_body_too_large_is_413(app: UiApp) -> None:
    def chunks() -> Any:
        yield b"action=accept-all&pad="
        for _ in range(20):
            yield b"x" * 1024

    with app.client() as client:
        r = client.post("/.consent/choice", content=chunks(),
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413


@pytest.mark.parametrize("body", [b"action=accept-all&&x", b"action", b"a=%ff", b"\xc3\xa9=1"])
def test_choice_malformed_form_is_400(app: UiApp, body: bytes) -> None:
    with app.client() as client:
        r = client.post("/.consent/choice", content=body,
                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 400


def test_choice_multipart_is_415(app: UiApp) -> None:
    with app.client() as client:
        r = client.post("/.consent/choice", files={"action": ("a", b"accept-all")})
    assert r.status_code == 415


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("GET", "/.consent/choice", "POST"),
    ("PUT", "/.consent/choice", "POST"),
    ("POST", "/.consent/preferences", "GET, HEAD"),
    ("DELETE", "/.consent/partners", "GET, HEAD"),
    ("POST", "/.consent/banner.js", "GET, HEAD"),
    ("POST", "/.well-known/gpc.json", "GET, HEAD"),
])
def test_wrong_method_is_405_with_allow(app: UiApp, method: str, path: str, allow: str) -> None:
    with app.client() as client:
        r = client.request(method, path)
    assert r.status_code == 405
    assert r.headers["allow"] == allow


def test_get_choice_changes_nothing(app: UiApp) -> None:
    with app.client() as client:
        r = client.get("/.consent/choice?action=accept-all")
    assert r.status_code == 405 and not set_cookies(r) and app.events == []


@pytest.mark.parametrize("path", ["/.consent/", "/.consent/nope", "/.consent/choice/",
                                  "/.consent/banner.css.map", "/.consent"])
def test_unknown_prefix_path_is_404(app: UiApp, path: str) -> None:
    assert app.ui.owns(path)
    with app.client() as client:
        r = client.get(path)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("text/plain")
    assert "nope" not in r.text


def test_owns_only_prefix_and_gpc() -> None:
    app = make_ui_app()
    assert not app.ui.owns("/")
    assert not app.ui.owns("/consent/choice")
    assert app.ui.owns("/.well-known/gpc.json")
    assert not make_ui_app(policy={"honor_gpc": False}).ui.owns("/.well-known/gpc.json")


def test_custom_prefix_routes() -> None:
    app = make_ui_app(policy={"prefix": "/privacy/"})
    with app.client() as client:
        assert client.get("/privacy/preferences").status_code == 200
        assert client.get("/.consent/preferences").status_code == 200  # the demo page, not ours
    assert b'action="/privacy/choice"' in app.ui.banner(app.consent_of(_scope()), "en")


def test_reserved_purpose_id_is_a_config_error() -> None:
    config = make_config(purposes={"source": {"title": "S", "description": "S"}})
    with pytest.raises(ConfigError, match=r"purposes\.source"):
        UiApp(config)


def _scope(headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {"type": "http", "method": "GET", "path": "/", "headers": headers or []}


# --------------------------------------------------------------------------- GPC well-known


def test_gpc_json(app: UiApp) -> None:
    with app.client() as client:
        r = client.get("/.well-known/gpc.json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"gpc": True, "lastUpdate": "2026-02-01"}


def test_gpc_json_not_served_when_gpc_not_honoured() -> None:
    app = make_ui_app(policy={"honor_gpc": False})
    with app.client() as client:
        r = client.get("/.well-known/gpc.json")
    assert "consent-gate-banner" in r.text  # the site's own page, not our JSON


# --------------------------------------------------------------------------- pages


class Tags(HTMLParser):
    """Collects (tag, attrs, inline text) for script tags and every attribute name."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.script_text.append(data)


def parse(html: str) -> Tags:
    p = Tags()
    p.feed(html)
    return p


def assert_no_inline_script_or_style(html: str) -> None:
    p = parse(html)
    assert p.script_text == []
    for tag, attrs in p.tags:
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        assert "style" not in attrs, (tag, attrs)
        if tag == "script":
            assert attrs.get("src", "").startswith("/.consent/")  # type: ignore[union-attr]
        if tag == "style":
            raise AssertionError("inline <style>")
    assert "javascript:" not in html.lower()


def assert_page_headers(r: Any, *, no_store: bool) -> None:
    assert r.headers["content-security-policy"] == PAGE_CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    # Our pages can be framed by the site itself only (clickjacking of the choice buttons).
    assert "frame-ancestors 'self'" in PAGE_CSP
    assert r.headers["x-frame-options"] == "SAMEORIGIN"
    assert (r.headers.get("cache-control") == "no-store") is no_store


def test_preferences_page_lists_purposes_partners_and_choices(app: UiApp) -> None:
    cookie = app.cookie_for({"analytics"}, source="banner")
    cid = app.codec.loads(cookie).consent_id  # type: ignore[union-attr]
    with app.client() as client:
        r = client.get("/.consent/preferences", headers={"cookie": f"consent={cookie}"})
    assert r.status_code == 200
    assert_page_headers(r, no_store=True)
    assert_no_inline_script_or_style(r.text)
    inputs = {a["name"]: a for t, a in parse(r.text).tags
              if t == "input" and a.get("type") == "checkbox"}
    assert set(inputs) == {"necessary", "ads", "analytics", "social"}
    assert "disabled" in inputs["necessary"] and "checked" in inputs["necessary"]
    assert "checked" in inputs["analytics"]
    assert "checked" not in inputs["ads"] and "checked" not in inputs["social"]
    forms = [a for t, a in parse(r.text).tags if t == "form"]
    assert forms == [{"method": "post", "action": "/.consent/choice"}]
    assert 'name="source" value="preferences"' in r.text
    assert 'value="save"' in r.text and 'value="withdraw"' in r.text
    assert cid in r.text
    assert "Stats &amp; Co" in r.text and "Ads &lt;b&gt;chosen&lt;/b&gt; for you." in r.text
    assert "only be cleared by your browser" in r.text  # third-party cookies note


def test_preferences_page_undecided_and_gpc_note(app: UiApp) -> None:
    with app.client() as client:
        plain = client.get("/.consent/preferences")
        gpc = client.get("/.consent/preferences", headers={"sec-gpc": "1"})
    assert "You have not made a choice yet." in plain.text
    assert "Global Privacy Control" not in plain.text
    assert "Global Privacy Control" in gpc.text


def test_preferences_page_keeps_a_safe_return_to_only(app: UiApp) -> None:
    with app.client() as client:
        good = client.get("/.consent/preferences?return_to=/articles/a%3Fb%3D1")
        evil = client.get("/.consent/preferences?return_to=//evil.example")
    assert 'name="return_to" value="/articles/a?b=1"' in good.text
    assert "evil.example" not in evil.text


def test_preferences_form_round_trip_without_js(app: UiApp) -> None:
    """JS off: the page's own form posts to choice, which redirects back."""
    with app.client() as client:
        page = client.get("/.consent/preferences?return_to=/back")
        assert 'name="return_to" value="/back"' in page.text
        r = client.post("/.consent/choice",
                        data={"action": "save", "source": "preferences", "return_to": "/back",
                              "social": "on"},
                        headers={"origin": BASE})
        assert r.status_code == 303 and r.headers["location"] == "/back"
        client.cookies.set("consent", cookie_value(r))
        again = client.get("/.consent/preferences")
    inputs = {a["name"]: a for t, a in parse(again.text).tags
              if t == "input" and a.get("type") == "checkbox"}
    assert "checked" in inputs["social"] and "checked" not in inputs["ads"]


def test_partners_page_declares_each_partner(app: UiApp) -> None:
    with app.client() as client:
        r = client.get("/.consent/partners")
    assert r.status_code == 200
    assert_page_headers(r, no_store=False)
    assert r.headers["vary"] == "Accept-Language"
    assert_no_inline_script_or_style(r.text)
    for name in ("Google AdSense", "Stats &amp; Co", "VideoTube"):
        assert name in r.text
    assert "https://policies.google.com/privacy" in r.text
    assert "__gads, __gpi (.example.com)" in r.text
    assert "IP address, cookies, address of the page" in r.text
    assert "Social media, Advertising" in r.text  # VideoTube's purposes
    assert "2026-02" in r.text and 'datetime="2026-02-01"' in r.text
    assert 'href="/.consent/preferences"' in r.text


def test_partners_page_etag_revalidates(app: UiApp) -> None:
    with app.client() as client:
        first = client.get("/.consent/partners")
        again = client.get("/.consent/partners", headers={"if-none-match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b""


def test_head_request_sends_headers_only(app: UiApp) -> None:
    with app.client() as client:
        r = client.head("/.consent/partners")
    assert r.status_code == 200 and r.content == b""
    assert int(r.headers["content-length"]) > 1000


# --------------------------------------------------------------------------- assets


def test_assets_small_cached_and_etagged(app: UiApp) -> None:
    with app.client() as client:
        css = client.get("/.consent/banner.css")
        js = client.get("/.consent/banner.js")
        again = client.get("/.consent/banner.js", headers={"if-none-match": js.headers["etag"]})
    assert css.headers["content-type"].startswith("text/css")
    assert js.headers["content-type"].startswith("text/javascript")
    assert len(css.content) + len(js.content) < 10 * 1024
    for r in (css, js):
        assert r.headers["cache-control"].startswith("public, max-age=")
        assert r.headers["etag"].startswith('"')
        assert r.headers["x-content-type-options"] == "nosniff"
    assert again.status_code == 304


def test_assets_make_no_external_requests(app: UiApp) -> None:
    css = app.ui.css.decode()
    js = app.ui.js.decode()
    assert "url(" not in css and "@import" not in css
    assert not re.search(r"https?://|//[a-z]", js.replace("// ", ""))
    assert "credentials: \"same-origin\"" in js
    assert '"Accept": "application/json"' in js
    assert "location.reload()" in js


# --------------------------------------------------------------------------- fuzz

_NAMES = st.sampled_from(["action", "source", "return_to", "ads", "analytics", "granted", "x"])
_VALUES = st.one_of(
    st.sampled_from(["accept-all", "reject-all", "save", "withdraw", "banner", "form", "on",
                     "placeholder", "/ok", "//evil.example", "javascript:alert(1)"]),
    st.text(max_size=40),
    st.text(alphabet="<>\"'&/\\:;= \t\r\n%", max_size=20).map(lambda s: "<x" + s + '">'),
)


def _fuzz_app() -> UiApp:
    return make_ui_app()


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fields=st.lists(st.tuples(_NAMES, _VALUES), max_size=8),
       accept_json=st.booleans())
def test_fuzz_choice_form_never_500_never_reflected(fields: list[tuple[str, str]],
                                                     accept_json: bool) -> None:
    app = _fuzz_app()
    headers = {"accept": "application/json"} if accept_json else {}
    r = post(app, fields, headers=headers)
    assert r.status_code in (200, 303, 400)
    for _, value in fields:
        if value.startswith("<x"):
            assert value not in r.text
    if r.status_code == 303:
        assert safe_return_path(r.headers["location"]) == r.headers["location"]


@settings(max_examples=examples(100), deadline=None)
@given(body=st.binary(max_size=200))
def test_fuzz_choice_raw_body_never_500(body: bytes) -> None:
    app = _fuzz_app()
    with app.client() as client:
        for ctype in ("application/x-www-form-urlencoded", "application/json"):
            r = client.post("/.consent/choice", content=body, headers={"content-type": ctype})
            assert r.status_code in (200, 303, 400), (body, ctype)


@settings(max_examples=examples(100), deadline=None)
@given(value=_VALUES)
def test_fuzz_preferences_return_to_escaped(value: str) -> None:
    app = _fuzz_app()
    with app.client() as client:
        r = client.get("/.consent/preferences", params={"return_to": value})
    assert r.status_code == 200
    if value.startswith("<x"):
        assert value not in r.text
    fields = [a for t, a in parse(r.text).tags if t == "input" and a.get("name") == "return_to"]
    assert fields[0]["value"] == (safe_return_path(value) or "")
    assert_no_inline_script_or_style(r.text)
