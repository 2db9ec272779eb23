"""Measured in Chromium through the recording proxy: which ways of reaching a partner at run
time (URLs built by script, out of the rewriter's sight) the CSP stops for a visitor without
consent, and which remain. docs/csp.md lists the remaining ones and why."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.browser.csp_site import CONSENTED_VECTORS, VECTORS
from tests.support.config_text import partner
from tests.support.consented_site import consented_site as serve_consented
from tests.support.servers import ServerProcess, start_uvicorn

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.support.proxy import RecordingProxy

from tests.support.tracker_config import PARTNER, tracker_config

pytestmark = pytest.mark.browser


#: Measured with Chromium 156: these reach the partner with our CSP in force. Top-level
#: navigations are governed by no shipped CSP directive (navigate-to never shipped); a
#: <meta http-equiv=refresh> that script inserts is a navigation too. An https iframe that
#: frame-src blocks still gets a speculative connection (CONNECT host:443, no request sent).
RESIDUAL = frozenset({"location", "anchor-click", "window-open", "meta-refresh", "iframe-https"})


@pytest.fixture(scope="module")
def csp_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("csp-site")
    config = tmp / "partners.toml"
    config.write_text(tracker_config((tmp / "ledger.sqlite3").as_posix()))
    env = {"CSP_SITE_CONFIG": str(config), "CONSENT_GATE_SECRET": secrets.token_urlsafe(36)}
    with start_uvicorn("tests.browser.csp_site:create_app", env=env,
                       extra_args=["--factory"], log_level="warning") as server:
        yield server


def visit_quietly(page: Page, proxy: RecordingProxy, url: str, label: str) -> set[str]:
    proxy.mark(label)
    # A navigation to the partner fails at the proxy: that is the point. The page's own load
    # is awaited in the page: goto(wait_until="load") never returned for a page whose script
    # navigates to the partner at once (form-post, location, anchor-click; the proxy's 204
    # leaves the page as it was), and waited its whole 10 s timeout each time (60 s a run).
    with contextlib.suppress(Exception):
        page.goto(url, wait_until="commit")
        page.wait_for_function("document.readyState === 'complete'")
    proxy.wait_quiet(0.4)
    return proxy.hosts(section=label)


def test_csp_runtime_vectors_without_consent(page: Page, recording_proxy: RecordingProxy,
                                             csp_site: ServerProcess) -> None:
    reached = {}
    for name in VECTORS:
        reached[name] = PARTNER in visit_quietly(page, recording_proxy,
                                                 f"{csp_site.url}/v/{name}", name)
        # Popups closed and the page left before the next vector's mark: a popup left open
        # (window-open) or a partner page navigated to (anchor-click) made requests that
        # landed in the next vector's section.
        for other in page.context.pages:
            if other is not page:
                other.close()
        with contextlib.suppress(Exception):
            page.goto("about:blank")
        recording_proxy.wait_quiet(0.2)  # what they still sent counts for `name`
    print("\nruntime vector -> reached the partner without consent")
    for name, hit in reached.items():
        paths = sorted({r.path for r in recording_proxy.section(name) if r.host == PARTNER})
        print(f"  {name:20s} {'REACHED ' + ' '.join(paths) if hit else 'blocked'}")
    # Everything the CSP can stop is stopped; the residual ones may or may not show in one
    # run (the speculative connection is timing-dependent), docs/csp.md lists them.
    assert {n for n, hit in reached.items() if hit} <= RESIDUAL


def test_site_inline_code_and_styles_run_under_our_policy(page: Page, csp_site: ServerProcess) -> None:
    """Our policy leaves script-src and style-src to default-src (docs/csp.md): the site's
    inline scripts, eval, inline and attribute styles and its own scripts keep running, and
    Chromium reports no violation. Also the control for the vector test above: its vectors are
    inline scripts, so if they were blocked every vector would look stopped."""
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(csp_site.url + "/own-code")
    page.wait_for_function("window.ran && window.ran.length === 5")
    assert page.evaluate("window.ran") == ["inline", "eval", "function", "data", "self"]
    assert page.evaluate("getComputedStyle(document.querySelector('h1')).color") == "rgb(1, 2, 3)"
    assert page.evaluate("getComputedStyle(document.querySelector('h1')).marginLeft") == "7px"
    csp = page.evaluate("fetch(location.href).then(r => r.headers.get('content-security-policy'))")
    assert "script-src" not in csp and "'unsafe-inline'" in csp, csp
    assert not [m for m in messages if "Content Security Policy" in m], messages


@pytest.mark.parametrize("path", ["/missing", "/untyped", "/untyped-nosniff", "/xhtml"])
def test_gate_pages_contact_no_partner_without_consent(page: Page, recording_proxy: RecordingProxy,
                                                       csp_site: ServerProcess, path: str) -> None:
    hosts = visit_quietly(page, recording_proxy, csp_site.url + path, path)
    assert PARTNER not in hosts, f"{path} reached the partner without consent: {hosts}"


def test_prefetch_src_and_navigate_to_are_unknown_to_chromium(page: Page,
                                                               csp_site: ServerProcess) -> None:
    """Why our policy leaves them out: Chromium ignores both (and says so)."""
    messages: list[str] = []
    page.on("console", lambda m: messages.append(m.text))
    page.goto(csp_site.url + "/csp-probe")
    page.wait_for_function("document.readyState === 'complete'")
    text = "\n".join(messages)
    assert "prefetch-src" in text and "navigate-to" in text, text
    assert text.count("Unrecognized Content-Security-Policy directive") >= 2, text


#: The consented partner that declares nothing, the consented one that declares
#: ``csp = ["object-src", "form-action"]``, and the one the visitor did not consent to.
PLAIN, DECLARING, REFUSED = "tracker.partner.example", "forms.partner.example", "social.partner.example"


@pytest.fixture(scope="module")
def consented_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """The CSP site with three partners, and a consent cookie granting ``ads`` only."""
    with serve_consented(tmp_path_factory.mktemp("csp-consented"),
                         {"tracker": partner(["ads"], [PLAIN]),
                          "forms": partner(["ads"], [DECLARING], csp=["object-src", "form-action"]),
                          "social": partner(["social"], [REFUSED])}) as served:
        yield served


def test_csp_with_consent_loads_consented_partners_and_blocks_the_rest(
        page: Page, recording_proxy: RecordingProxy, consented_site: tuple[ServerProcess, str]) -> None:
    """Under the policy of a visitor who granted ``ads``: both ads partners' scripts and images
    load; plugins and form posts reach only the partner that declares them; the social
    partner is blocked throughout (docs/csp.md)."""
    server, cookie = consented_site
    name, value = cookie.split("=", 1)
    page.context.add_cookies([{"name": name, "value": value, "url": server.url}])
    reached: dict[tuple[str, str], bool] = {}
    outcome: dict[tuple[str, str], object] = {}
    for host in (PLAIN, DECLARING, REFUSED):
        for vector in CONSENTED_VECTORS:
            label = f"{vector} {host}"
            reached[vector, host] = host in visit_quietly(page, recording_proxy,
                                                          f"{server.url}/c/{vector}/{host}", label)
            if vector in ("script", "img"):
                page.wait_for_function("window.outcome !== undefined")
                outcome[vector, host] = page.evaluate("window.outcome")
            with contextlib.suppress(Exception):
                page.goto("about:blank")
    response = page.goto(f"{server.url}/c/img/{REFUSED}")
    assert response is not None
    policy = response.headers["content-security-policy"]
    assert "object-src forms.partner.example" in policy and PLAIN not in policy.split("object-src")[1], policy
    expected = {(v, h): h != REFUSED and (v in ("script", "img") or h == DECLARING)
                for v in CONSENTED_VECTORS for h in (PLAIN, DECLARING, REFUSED)}
    assert reached == expected
    assert outcome == {(v, h): "blocked" if h == REFUSED else "loaded"
                       for v in ("script", "img") for h in (PLAIN, DECLARING, REFUSED)}
