"""Measured in Chromium: a consented partner's ``*.domain`` covers the bare domain in our CSP
as it does in HostMatcher (csp.apex_of), unless the apex is a refused partner's own host."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.csp_site import CONSENTED_VECTORS, HARD_VECTORS
from tests.support.config_text import partner
from tests.support.consented_site import consented_site
from tests.support.servers import ServerProcess

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.support.proxy import RecordingProxy

pytestmark = pytest.mark.browser

#: host -> what the consented visitor's page may load from it. The consented partner
#: declares ``*.wild.example`` and ``*.shared.example``; the refused one ``shared.example``.
EXPECTED = {"wild.example": "loaded",          # the apex of a consented wildcard
            "cdn.wild.example": "loaded",      # a subdomain, as before
            "shared.example": "blocked",       # the refused partner's exact host
            "cdn.shared.example": "loaded"}


@pytest.fixture(scope="module")
def apex_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    with consented_site(tmp_path_factory.mktemp("csp-apex"),
                        {"wild": partner(["ads"], ["*.wild.example", "*.shared.example"]),
                         "apex": partner(["social"], ["shared.example"])}) as served:
        yield served


@pytest.mark.parametrize("kind", ["h", "c"], ids=["in-markup", "by-script"])
def test_consented_wildcard_apex_loads_under_our_csp(page: Page, recording_proxy: RecordingProxy,
                                                     apex_site: tuple[ServerProcess, str],
                                                     kind: str) -> None:
    """In the markup (``/h/``) the rewriter keeps or takes out the tag (HostMatcher gives
    ``wild.example`` to the consented partner); built by script (``/c/``) the CSP alone
    decides. Either way the apex's script and image load with no CSP violation, and the
    refused partner's apex gets no request."""
    server, cookie = apex_site
    name, value = cookie.split("=", 1)
    page.context.add_cookies([{"name": name, "value": value, "url": server.url}])
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text
            else None)
    outcome: dict[tuple[str, str], object] = {}
    reached: dict[tuple[str, str], bool] = {}
    for host, expected in EXPECTED.items():
        for vector in HARD_VECTORS if kind == "h" else ("script", "img"):
            assert vector in CONSENTED_VECTORS
            label = f"{kind} {vector} {host}"
            recording_proxy.mark(label)
            violations.clear()
            page.goto(f"{server.url}/{kind}/{vector}/{host}", wait_until="load")
            if kind == "c" or expected == "loaded":
                page.wait_for_function("window.outcome !== undefined")
            # A tag the rewriter took out has no element left to say so: blocked.
            outcome[vector, host] = page.evaluate("window.outcome") or "blocked"
            recording_proxy.wait_quiet(0.3)
            reached[vector, host] = host in recording_proxy.hosts(section=label)
            if expected == "loaded":
                assert not violations, (label, violations)
            with contextlib.suppress(Exception):
                page.goto("about:blank")
    assert outcome == {(v, h): e for h, e in EXPECTED.items() for v in HARD_VECTORS}
    assert reached == {(v, h): e == "loaded" for h, e in EXPECTED.items() for v in HARD_VECTORS}
