"""Measured in Chromium: a consented partner's ``*.domain`` covers the bare domain in our CSP
as it does in HostMatcher (csp.apex_of), unless the apex is a refused partner's own host."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from middleware import ConsentMiddleware
from tests.asgi_helpers import SECRET, cookie_for
from tests.support.config_text import config_text, partner
from tests.support.servers import ServerProcess, start_uvicorn

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser

#: The consented partner declares both wildcards; the refused one declares the second's apex.
CONSENTED = ("*.wild.example", "*.shared.example")
REFUSED = ("shared.example",)
#: host -> what the consented visitor's page may load from it.
EXPECTED = {"wild.example": "loaded",          # the apex of a consented wildcard
            "cdn.wild.example": "loaded",      # a subdomain, as before
            "shared.example": "blocked",       # the refused partner's exact host
            "cdn.shared.example": "loaded"}


@pytest.fixture(scope="module")
def apex_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    tmp = tmp_path_factory.mktemp("csp-apex")
    config = tmp / "partners.toml"
    purposes = {"ads": {"title": "Ads", "description": "Ads."},
                "social": {"title": "Social", "description": "Buttons."}}
    config.write_text(config_text(ledger=(tmp / "ledger.sqlite3").as_posix(), purposes=purposes,
                                  partners={"wild": partner(["ads"], list(CONSENTED)),
                                            "apex": partner(["social"], list(REFUSED))}))
    cookie = cookie_for(ConsentMiddleware(lambda *a: None, config=str(config), secret=SECRET), {"ads"})
    env = {"APEX_SITE_CONFIG": str(config), "CONSENT_GATE_SECRET": SECRET}
    with start_uvicorn("tests.browser.apex_site:create_app", env=env,
                       extra_args=["--factory"], log_level="warning") as server:
        yield server, cookie


@pytest.mark.parametrize("kind", ["hard", "run"])
def test_consented_wildcard_apex_loads_under_our_csp(page: Page, recording_proxy: RecordingProxy,
                                                     apex_site: tuple[ServerProcess, str],
                                                     kind: str) -> None:
    """``hard``: tags in the markup, kept or neutralised by the rewriter (HostMatcher gives
    ``wild.example`` to the consented partner); ``run``: built by script, the CSP alone
    decides. Either way the apex loads, with no CSP violation, and the refused partner's
    apex gets no request."""
    server, cookie = apex_site
    name, value = cookie.split("=", 1)
    page.context.add_cookies([{"name": name, "value": value, "url": server.url}])
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text
            else None)
    outcome: dict[str, object] = {}
    reached: dict[str, bool] = {}
    for host in EXPECTED:
        recording_proxy.mark(host)
        violations.clear()
        page.goto(f"{server.url}/{kind}/{host}", wait_until="load")
        if kind == "run" or EXPECTED[host] == "loaded":
            page.wait_for_function("window.outcome && outcome.script && outcome.img")
            seen = page.evaluate("window.outcome")
        else:  # the rewriter neutralised both tags: no element, no event
            seen = page.evaluate("window.outcome")
            seen = {k: seen.get(k, "blocked") for k in ("script", "img")}
        outcome[host] = "loaded" if seen == {"script": "loaded", "img": "loaded"} else (
            "blocked" if seen == {"script": "blocked", "img": "blocked"} else seen)
        recording_proxy.wait_quiet(0.3)
        reached[host] = host in recording_proxy.hosts(section=host)
        if EXPECTED[host] == "loaded":
            assert not violations, (host, violations)
        with contextlib.suppress(Exception):
            page.goto("about:blank")
    assert outcome == EXPECTED
    assert reached == {host: seen == "loaded" for host, seen in EXPECTED.items()}
