"""The injected fragments (banner, footer link, placeholder), language choice and texts."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from middleware.config import load_config
from middleware.consent import Consent, ConsentCodec, ConsentResolver
from middleware.routes import ConsentUI
from middleware.ui.texts import DEFAULT_TEXTS

from .test_routes import (
    KEY,
    UiApp,
    assert_no_inline_script_or_style,
    make_config,
    make_ui_app,
    parse,
)

JAPAN_TOML = Path(__file__).resolve().parent.parent / "examples" / "japan_talk" / "partners.toml"


def scope(**headers: str) -> dict[str, Any]:
    raw = [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    return {"type": "http", "method": "GET", "path": "/", "headers": raw}


@pytest.fixture
def app() -> UiApp:
    return make_ui_app()


def undecided(app: UiApp, **headers: str) -> Consent:
    return app.consent_of(scope(**headers))


def stale_consent(app: UiApp) -> Consent:
    old = make_config(policy={"version": "2025-01"})
    old_cookie = ConsentResolver(old, app.codec).choose({"ads"}, "banner", previous=None)[1]
    return app.consent_of(scope(cookie=f"consent={old_cookie}"))


# --------------------------------------------------------------------------- banner


def test_banner_structure_and_buttons(app: UiApp) -> None:
    html = app.ui.banner(undecided(app), "en").decode()
    tags = parse(html).tags
    root = next(a for t, a in tags if a.get("id") == "consent-gate-banner")
    assert root["role"] == "region" and root["aria-labelledby"] == "consent-gate-title"
    assert root["lang"] == "en"
    assert any(a.get("id") == "consent-gate-title" for _, a in tags)
    assert "aria-modal" not in html and "autofocus" not in html
    # Focusable only as the skip link's target (tabindex -1), never a tab stop of its own.
    assert html.count("tabindex") == 1 and 'id="consent-gate-banner" class="consent-gate" role="region" tabindex="-1"' in html
    form = next(a for t, a in tags if t == "form")
    assert form["method"] == "post" and form["action"] == "/.consent/choice"
    actions = {a["data-consent-action"]: (t, a) for t, a in tags if "data-consent-action" in a}
    assert set(actions) == {"accept-all", "reject-all", "customize"}
    assert actions["accept-all"][1]["value"] == "accept-all"
    assert actions["reject-all"][1]["value"] == "reject-all"
    # Reject is exactly as easy as accept: same element, same class.
    assert actions["accept-all"][1]["class"] == actions["reject-all"][1]["class"] == "cg-btn"
    assert actions["customize"] == ("a", {"class": "cg-btn", "href": "/.consent/preferences",
                                           "data-consent-action": "customize"})
    assert ('<input type="hidden" name="return_to" value="">' in html)
    assert '<input type="hidden" name="source" value="banner">' in html
    links = [a for t, a in tags if t == "link"]
    assert links[0]["rel"] == "stylesheet"
    assert str(links[0]["href"]).startswith("/.consent/banner.css")
    scripts = [a for t, a in tags if t == "script"]
    assert len(scripts) == 1 and str(scripts[0]["src"]).startswith("/.consent/banner.js")
    assert "defer" in scripts[0]
    assert "<strong>Purposes:</strong> Advertising, Analytics, Social media</p>" in html
    assert "Necessary" not in html  # necessary purposes are not asked about
    assert_no_inline_script_or_style(html)


def test_banner_is_precomputed_lookup(app: UiApp) -> None:
    consent = undecided(app)
    assert app.ui.banner(consent, "en") is app.ui.banner(consent, "en")


def test_banner_empty_once_decided(app: UiApp) -> None:
    cookie = app.cookie_for({"ads"})
    assert app.ui.banner(app.consent_of(scope(cookie=f"consent={cookie}")), "en") == b""


def test_banner_policy_changed_variant(app: UiApp) -> None:
    consent = stale_consent(app)
    assert consent.stale_version == "2025-01" and consent.needs_banner
    html = app.ui.banner(consent, "en").decode()
    assert "Our privacy policy has changed" in html
    assert '<a href="/.consent/partners">' in html.split("Our privacy policy has changed")[1]
    assert "Our privacy policy has changed" not in app.ui.banner(undecided(app), "en").decode()


def test_banner_gpc_variant(app: UiApp) -> None:
    consent = undecided(app, sec_gpc="1")
    assert consent.gpc
    html = app.ui.banner(consent, "en").decode()
    assert "Global Privacy Control" in html
    assert "Global Privacy Control" not in app.ui.banner(undecided(app), "en").decode()


def test_banner_opt_out_variant() -> None:
    app = make_ui_app(policy={"default": "allow"})
    html = app.ui.banner(undecided(app), "en").decode()
    assert "You can object at any time." in html
    labels = [a.get("data-consent-action") for t, a in parse(html).tags
              if "data-consent-action" in a]
    assert labels == ["reject-all", "customize", "accept-all"]
    assert ">OK</button>" in html and "Accept all" not in html


def test_banner_served_on_site_page_through_wrapper(app: UiApp) -> None:
    with app.client() as client:
        r = client.get("/article")
        assert 'id="consent-gate-banner"' in r.text
        assert 'id="consent-gate-preferences-link"' in r.text
        decided = client.get("/article", headers={"cookie": f"consent={app.cookie_for(set())}"})
    assert 'id="consent-gate-banner"' not in decided.text
    assert 'id="consent-gate-preferences-link"' in decided.text


# --------------------------------------------------------------------------- language


@pytest.mark.parametrize(("header", "lang"), [
    ("ja", "ja"),
    ("ja-JP,ja;q=0.9,en;q=0.8", "ja"),
    ("en-US,en;q=0.9,ja;q=0.8", "en"),
    ("fr-FR,ja;q=0.5", "ja"),
    ("fr, de", "en"),
    ("en;q=0.1, ja;q=0.9", "ja"),
    ("ja;q=0, en", "en"),
    ("ja;q=bogus, en", "en"),
    ("*", "en"),
    ("", "en"),
    ("JA", "ja"),
])
def test_language_from_accept_language(app: UiApp, header: str, lang: str) -> None:
    assert app.ui.language(scope(accept_language=header)) == lang


def test_language_default_from_config() -> None:
    app = make_ui_app(ui={"default_language": "ja"})
    assert app.ui.language(scope()) == "ja"
    assert app.ui.language(scope(accept_language="fr")) == "ja"
    assert app.ui.language(scope(accept_language="en")) == "en"


def test_japanese_banner_and_pages(app: UiApp) -> None:
    html = app.ui.banner(undecided(app), "ja").decode()
    assert 'lang="ja"' in html
    assert "すべて同意する" in html and "すべて拒否する" in html and "プライバシーの選択" in html
    assert "Choose" in html  # untranslated keys fall back to English
    with app.client() as client:
        r = client.get("/.consent/partners", headers={"accept-language": "ja"})
        page = client.get("/article", headers={"accept-language": "ja-JP"})
    assert '<html lang="ja">' in r.text
    assert "すべて同意する" in page.text


def test_unknown_language_falls_back_to_default(app: UiApp) -> None:
    assert app.ui.banner(undecided(app), "xx") == app.ui.banner(undecided(app), "en")
    assert app.ui.footer_link("xx") == app.ui.footer_link("en")


# --------------------------------------------------------------------------- footer


def test_footer_link(app: UiApp) -> None:
    html = app.ui.footer_link("en").decode()
    anchors = [a for t, a in parse(html).tags if t == "a"]
    assert anchors == [{"href": "/.consent/preferences", "id": "consent-gate-preferences-link"}]
    assert ">Privacy choices</a>" in html
    assert_no_inline_script_or_style(html)


# --------------------------------------------------------------------------- placeholder


def test_placeholder_form_grants_partner_purposes(app: UiApp) -> None:
    html = app.ui.placeholder("video", {"src": "https://video.example/x", "width": "560",
                                        "height": "315"}, "en").decode()
    tags = parse(html).tags
    div = next(a for t, a in tags if t == "div")
    assert div["class"] == "consent-gate-placeholder"
    assert div["data-consent-partner"] == "video"
    assert div["style"] == "width:560px;min-height:315px;"
    assert div["data-width"] == "560px" and div["data-height"] == "315px"
    assert "VideoTube" in html and "IP address, browser type and version" in html
    assert 'href="/.consent/partners"' in html
    form = next(a for t, a in tags if t == "form")
    assert form["action"] == "/.consent/choice" and form["method"] == "post"
    hidden = {(a["name"], a["value"]) for t, a in tags if t == "input"}
    assert hidden == {("source", "placeholder"), ("return_to", ""), ("social", "on"),
                      ("ads", "on")}
    button = next(a for t, a in tags if t == "button")
    assert (button["name"], button["value"]) == ("action", "save")
    assert "Load content" in html
    assert "https://video.example/x" not in html


@pytest.mark.parametrize(("attrs", "style"), [
    ({"width": "100%", "height": "250"}, "width:100%;min-height:250px;"),
    ({"width": "300px"}, "width:300px;"),
    ({"width": " 12.5% "}, "width:12.5%;"),
    ({"width": "expression(alert(1))", "height": "1;background:url(//evil)"}, None),
    ({"width": '300"><script>', "height": "calc(100vh)"}, None),
    ({"width": "-5", "height": "5em"}, None),
    ({}, None),
])
def test_placeholder_size_is_sanitised(app: UiApp, attrs: dict[str, str],
                                       style: str | None) -> None:
    html = app.ui.placeholder("adsense", attrs, "en").decode()
    div = next(a for t, a in parse(html).tags if t == "div")
    assert div.get("style") == style
    assert "<script" not in html and "url(" not in html


def test_placeholder_unknown_partner_is_empty(app: UiApp) -> None:
    assert app.ui.placeholder("nobody", {}, "en") == b""


def test_placeholder_button_posts_through_choice(app: UiApp) -> None:
    """JS off: the placeholder's own form, posted as is, enables the partner."""
    html = app.ui.placeholder("stats", {}, "en").decode()
    fields = [(str(a["name"]), str(a["value"])) for t, a in parse(html).tags
              if t in ("input", "button") and a.get("name")]
    with app.client() as client:
        r = client.post("/.consent/choice", data=dict(fields),
                        headers={"accept": "application/json", "origin": "http://testserver"})
    assert r.json()["allowed_partners"] == ["stats"]
    assert app.events[0][3] == "placeholder"


# --------------------------------------------------------------------------- texts, example


def test_translation_keys_are_validated() -> None:
    from middleware.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown text key"):
        make_config(ui={"texts": {"ja": {"no_such_key": "x"}}})


def test_texts_with_markup_are_escaped() -> None:
    app = make_ui_app(ui={"texts": {"en": {"accept_all": "<img src=x onerror=alert(1)>"}}})
    html = app.ui.banner(undecided(app), "en").decode()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html


def test_japan_talk_example_has_complete_japanese_translation() -> None:
    if b"[ui" not in JAPAN_TOML.read_bytes():
        pytest.fail("examples/japan_talk/partners.toml has no [ui] section yet")
    config = load_config(JAPAN_TOML)
    ja = config.ui.texts["ja"]
    assert set(ja) == set(DEFAULT_TEXTS)
    assert "{partner}" in ja["placeholder_text"] and "{receives}" in ja["placeholder_text"]
    ui = ConsentUI(config, ConsentResolver(config, ConsentCodec([KEY], max_age_seconds=60)))
    resolver = ui.resolver
    consent = resolver.resolve(None, signal=False)
    html = ui.banner(consent, ui.language(scope(accept_language="ja-JP,ja;q=0.9"))).decode()
    assert 'lang="ja"' in html and ja["accept_all"] in html
    tomllib.loads(JAPAN_TOML.read_text(encoding="utf-8"))  # still valid TOML


def test_skip_link_only_while_banner_shown(app: UiApp) -> None:
    undecided = app.resolver.resolve(None, signal=False)
    decided, _ = app.resolver.choose({"ads"}, "banner", previous=None)
    link = app.ui.skip_link(undecided, "en").decode()
    assert link.startswith('<a class="consent-gate-skip" href="#consent-gate-banner"')
    assert "Skip to privacy choices" in link
    assert app.ui.skip_link(decided, "en") == b""
