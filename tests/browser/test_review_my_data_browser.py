"""/.consent/my-data in real Chromium: two visitors in two browser contexts each see their
own consent history and disclosures and never the other's; it works without JavaScript and in
Japanese; the consent pages carry the site's frame. Screenshots at 1280 and 390 px."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser

from tests.support.browser import screenshot
from tests.support.servers import REPO_ROOT

JAPAN_TALK = REPO_ROOT / "examples" / "japan_talk" / "partners.toml"
SECRET = "my-data-test-" + "s" * 40
SIZES = {"desktop": (1280, 800), "phone": (390, 844)}


def _site(start_server: Any, tmp_path: Path) -> Any:
    config = tmp_path / "partners.toml"
    config.write_text(JAPAN_TALK.read_text().replace(
        'path = "consent-ledger.sqlite3"', f'path = "{tmp_path / "ledger.sqlite3"}"', 1))
    return start_server(argv=[sys.executable, "-m", "middleware", "run",
                              "examples.japan_talk.app:app", "--config", str(config),
                              "--port", "{port}"],
                        cwd=str(REPO_ROOT), env={"CONSENT_GATE_SECRET": SECRET})


def test_my_data_two_visitors_see_only_their_own_rows(chromium: Browser, start_server: Any,
                                                       tmp_path: Path) -> None:
    site = _site(start_server, tmp_path)
    alice_ctx = chromium.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    bob_ctx = chromium.new_context(viewport={"width": 1280, "height": 800}, locale="en-US",
                                   java_script_enabled=False)
    try:
        alice, bob = alice_ctx.new_page(), bob_ctx.new_page()
        alice.goto(site.url + "/")
        with alice.expect_navigation():
            alice.click("#consent-gate-banner button[value='accept-all']")
        alice.goto(site.url + "/articles/kyoto-autumn")
        bob.goto(site.url + "/")
        with bob.expect_navigation():  # a plain form POST and its redirect
            bob.click("#consent-gate-banner button[value='accept-all']")
        bob.goto(site.url + "/articles/tokyo-trains")

        alice.goto(site.url + "/.consent/preferences")
        screenshot(alice, "review-preferences", sizes=SIZES)
        alice.click("#consent-gate-my-data-link")
        assert alice.url.endswith("/.consent/my-data")
        text_a = alice.inner_text("main")
        bob.goto(site.url + "/.consent/my-data")
        text_b = bob.inner_text("main")
        id_a = alice.inner_text("main code")
        id_b = bob.inner_text("main code")
        assert id_a != id_b
        assert "/articles/kyoto-autumn" in text_a and "/articles/tokyo-trains" not in text_a
        assert "/articles/tokyo-trains" in text_b and "/articles/kyoto-autumn" not in text_b
        assert id_b not in alice.content() and id_a not in bob.content()
        assert "Choice made" in text_a and "Google AdSense" in text_a
        assert alice.locator("main a[href='https://policies.google.com/privacy']").count() >= 1
        assert "privacy@japantalk.example" in text_a
        # The exact consent screen Alice answered, from her own history only.
        # Wait for the linked page to load: on a loaded host a bare count() ran before it had.
        with alice.expect_navigation(wait_until="load"):
            alice.click("main a:has-text('The consent screen you saw')")
        assert alice.locator(".cg-shown #consent-gate-banner").count() == 1
        alice.goto(site.url + "/.consent/my-data")
        screenshot(alice, "review-my-data", sizes=SIZES)
        # The site's frame: who runs it, a way back, the privacy policy.
        footer = alice.inner_text("footer.cg-site-footer")
        assert "This site is run by Japan Talk." in footer and "Privacy policy" in footer
        assert alice.locator("header .cg-back a").count() == 1
        alice.goto(site.url + "/.consent/partners")
        screenshot(alice, "review-partners", sizes=SIZES)
        assert alice.locator("link[href='/static/site.css']").count() == 1
    finally:
        alice_ctx.close()
        bob_ctx.close()


def test_my_data_in_japanese_and_for_a_visitor_without_a_choice(chromium: Browser,
                                                                start_server: Any,
                                                                tmp_path: Path) -> None:
    site = _site(start_server, tmp_path)
    ctx = chromium.new_context(viewport={"width": 390, "height": 844}, locale="ja-JP")
    try:
        page = ctx.new_page()
        page.goto(site.url + "/.consent/my-data")
        assert page.inner_text("h1") == "このサイトがあなたについて記録している情報"
        assert "保存された選択がない" in page.inner_text("main")
        assert page.locator("main code").count() == 0
        screenshot(page, "review-my-data-ja-none", sizes={"phone": (390, 844)})
    finally:
        ctx.close()
