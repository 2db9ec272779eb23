"""The CSP built from consent, its report-only mode, and the violation-report counter."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import HTMLResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from middleware import ConsentMiddleware
from middleware.config import parse_config
from middleware.csp import without_covered
from middleware.errors import ConfigError
from tests.support.budget import examples

from .asgi_helpers import CONFIG, SECRET, cookie_for, html_app, http_scope, make_config, make_gate, run

#: Fetch directives a browser reads from default-src when the policy leaves them out (CSP3
#: fallback list; worker-src falls back to script-src, and we always send it).
FALLS_BACK_TO_DEFAULT = ("script-src", "frame-src", "img-src", "connect-src", "style-src",
                         "font-src", "media-src", "manifest-src", "object-src")


def sent_directives(value: bytes) -> dict[str, list[str]]:
    parts = [p.strip().split() for p in value.decode().split(";")]
    return {p[0]: p[1:] for p in parts if p}


def directives(value: bytes) -> dict[str, list[str]]:
    """The sources a browser enforces per directive, fallback to default-src applied."""
    policy = sent_directives(value)
    for directive in FALLS_BACK_TO_DEFAULT:
        policy.setdefault(directive, policy["default-src"])
    return policy


@pytest.mark.parametrize(("granted", "present", "absent"), [
    (set(), set(), {"pagead2.googlesyndication.com", "platform.twitter.com"}),
    ({"ads"}, {"pagead2.googlesyndication.com", "*.doubleclick.net"}, {"platform.twitter.com"}),
    ({"ads", "social"}, {"pagead2.googlesyndication.com", "platform.twitter.com"}, set()),
])
def test_csp_allows_self_and_exactly_consented_partner_hosts(tmp_path: Path, granted: set[str],
                                                            present: set[str], absent: set[str]) -> None:
    gate = make_gate(html_app(), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, granted) if granted else None)))
    policy = directives(out.header(b"content-security-policy")[0])
    for directive in ("script-src", "frame-src", "img-src", "connect-src"):
        assert "'self'" in policy[directive]
        assert present <= set(policy[directive]), directive
        assert not absent & set(policy[directive]), directive
    assert policy["report-uri"] == ["/.consent/csp-report"]


def test_csp_extra_sources_and_report_only_mode(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path,
                     csp={"mode": "report-only", "extra": {"script-src": ["cdn.example.net"]}})
    out = asyncio.run(run(gate, http_scope()))
    # Only the base rule is enforced (a foreign <base> would move the gate's own URLs).
    assert out.header(b"content-security-policy") == [b"base-uri 'self'"]
    policy = directives(out.header(b"content-security-policy-report-only")[0])
    assert "cdn.example.net" in policy["script-src"] and "cdn.example.net" not in policy["img-src"]


def test_csp_off_sends_only_the_base_rule(tmp_path: Path) -> None:
    """Off: no fetch directives, but base-uri 'self' stays enforced: a <base href> on another
    origin would load the gate's own banner from there (tests/browser/test_redteam_banner_base.py)."""
    gate = make_gate(html_app(), tmp_path, csp={"mode": "off"})
    out = asyncio.run(run(gate, http_scope()))
    assert out.header(b"content-security-policy") == [b"base-uri 'self'"]
    assert out.header(b"content-security-policy-report-only") == []


def test_csp_reports_counted_per_blocked_host_in_both_formats(tmp_path: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    gate = make_gate(html_app(), tmp_path)
    client = TestClient(gate)
    legacy = {"csp-report": {"blocked-uri": "https://connect.facebook.net/en_US/fbevents.js",
                             "violated-directive": "script-src"}}
    modern = [{"type": "csp-violation", "body": {"blockedURL": "https://evil.example/x.js"}}]
    for _ in range(2):
        r = client.post("/.consent/csp-report", content=json.dumps(legacy),
                        headers={"content-type": "application/csp-report"})
        assert r.status_code == 204
    client.post("/.consent/csp-report", content=json.dumps(modern),
                headers={"content-type": "application/reports+json"})
    assert gate.csp_reports.blocked == {"connect.facebook.net": 2, "evil.example": 1}
    assert caplog.text.count("connect.facebook.net") == 1, "each host logged once"
    assert client.post("/.consent/csp-report", content=b"{not json").status_code == 204
    assert client.post("/.consent/csp-report", content=b"x" * 20000).status_code == 413
    assert client.get("/.consent/csp-report").status_code == 405


def test_starlette_middleware_list_wraps_the_site(tmp_path: Path) -> None:
    async def home(request: object) -> HTMLResponse:
        return HTMLResponse("<html><head></head><body><p>home</p></body></html>")

    config = make_config(tmp_path)
    app = Starlette(routes=[Route("/", home)],
                    middleware=[Middleware(ConsentMiddleware, config=config, secret=SECRET)])
    with TestClient(app) as client:
        page = client.get("/")
    assert 'id="consent-gate-banner"' in page.text and "<p>home</p>" in page.text


FETCH_DIRECTIVES = ("default-src", "script-src", "frame-src", "img-src", "connect-src",
                    "style-src", "font-src", "media-src", "worker-src", "manifest-src")


def test_csp_is_an_allow_list_over_every_fetch_directive(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    policy = directives(asyncio.run(run(gate, http_scope())).header(b"content-security-policy")[0])
    for directive in FETCH_DIRECTIVES:
        assert "'self'" in policy[directive], directive
        assert not {s for s in policy[directive] if "." in s}, f"{directive}: no host without consent"
    assert policy["object-src"] == ["'none'"]
    assert policy["base-uri"] == ["'self'"] and policy["form-action"] == ["'self'"]
    # Left out on purpose: no shipping browser knows them (see docs/csp.md).
    assert "prefetch-src" not in policy and "navigate-to" not in policy


def test_csp_lists_each_partner_host_once_per_distinct_source_list(tmp_path: Path) -> None:
    """Directives equal to default-src are left to the browser's fallback, and object-src and
    form-action list no host a partner did not declare for them: every partner host appears
    once (in default-src), never 10 times."""
    gate = make_gate(html_app(), tmp_path)
    value = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads", "social"})))).header(
        b"content-security-policy")[0]
    sent = sent_directives(value)
    assert set(sent) >= {"default-src", "object-src", "form-action", "worker-src", "base-uri"}
    assert not {"script-src", "style-src", "frame-src", "img-src", "connect-src", "font-src",
                "media-src"} & set(sent)
    assert value.count(b"platform.twitter.com") == 1
    # Inline scripts and styles and eval keep running through the fallback to default-src.
    for source in ("data:", "blob:", "'unsafe-inline'", "'unsafe-eval'"):
        assert source in sent["default-src"]
    # An extra that makes one directive differ brings that directive back, complete.
    gate = make_gate(html_app(), tmp_path, csp={"extra": {"img-src": ["img.cdn.example"]}})
    sent = sent_directives(asyncio.run(run(gate, http_scope())).header(b"content-security-policy")[0])
    assert sent["img-src"] == ["'self'", "'unsafe-inline'", "'unsafe-eval'", "data:", "blob:",
                               "img.cdn.example"]
    assert "img.cdn.example" not in sent["default-src"] and "frame-src" not in sent


def test_csp_consented_partner_hosts_join_every_fetch_directive(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    policy = directives(out.header(b"content-security-policy")[0])
    for directive in ("default-src", "script-src", "img-src", "media-src", "font-src"):
        assert "pagead2.googlesyndication.com" in policy[directive], directive
        assert "platform.twitter.com" not in policy[directive], directive
    # Declared by no partner: plugins stay off and forms post only to the site, consent or not.
    assert policy["object-src"] == ["'none'"]
    assert policy["form-action"] == ["'self'"]
    assert "pagead2.googlesyndication.com" not in policy["base-uri"]


def _declaring(csp: dict[str, list[str]]) -> dict[str, Any]:
    """The test partners, each with ``[partners.ID] csp`` set as given (by partner id)."""
    partners = copy.deepcopy(CONFIG["partners"])
    for pid, directives_ in csp.items():
        partners[pid]["csp"] = directives_
    return partners


@pytest.mark.parametrize(("granted", "object_src", "form_action"), [
    (set(), ["'none'"], ["'self'"]),
    ({"ads"}, ["pagead2.googlesyndication.com", "*.doubleclick.net", "doubleclick.net"], ["'self'"]),
    ({"social"}, ["'none'"], ["'self'", "platform.twitter.com"]),
    ({"ads", "social"}, ["pagead2.googlesyndication.com", "*.doubleclick.net", "doubleclick.net"],
     ["'self'", "platform.twitter.com"]),
])
def test_csp_object_src_and_form_action_list_only_consented_partners_that_declare_them(
        tmp_path: Path, granted: set[str], object_src: list[str], form_action: list[str]) -> None:
    gate = make_gate(html_app(), tmp_path,
                     partners=_declaring({"adsense": ["object-src"], "x": ["form-action"]}))
    cookie = cookie_for(gate, granted) if granted else None
    policy = directives(asyncio.run(run(gate, http_scope(cookie=cookie))).header(
        b"content-security-policy")[0])
    assert policy["object-src"] == object_src
    assert policy["form-action"] == form_action


def test_partner_csp_accepts_only_object_src_and_form_action() -> None:
    data = copy.deepcopy(CONFIG)
    data["partners"]["x"]["csp"] = ["form-action", "script-src", "form-action"]
    with pytest.raises(ConfigError) as info:
        parse_config(data, "p.toml")
    assert str(info.value).split("\n") == [
        "p.toml: partners.x.csp[1]: expected one of 'object-src', 'form-action', got str 'script-src'",
        "p.toml: partners.x.csp[2]: duplicate 'form-action'",
    ]


def test_csp_extra_default_src_is_the_sites_own_in_every_fetch_directive(tmp_path: Path) -> None:
    gate = make_gate(html_app(), tmp_path, csp={"extra": {"default-src": ["cdn.site.example"],
                                                          "object-src": ["'self'"]}})
    policy = directives(asyncio.run(run(gate, http_scope())).header(b"content-security-policy")[0])
    for directive in FETCH_DIRECTIVES:
        assert "cdn.site.example" in policy[directive], directive
    assert policy["object-src"] == ["'self'"]
    assert "cdn.site.example" not in policy["base-uri"]


@pytest.mark.parametrize("mode", ["enforce", "report-only"])
def test_csp_site_policy_stays_enforced_beside_ours(tmp_path: Path, mode: str) -> None:
    site_csp = b"default-src 'self'; script-src 'nonce-abc'"
    headers = [(b"content-type", b"text/html"), (b"content-security-policy", site_csp)]
    gate = make_gate(html_app(headers=headers), tmp_path, csp={"mode": mode})
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    enforced = out.header(b"content-security-policy")
    assert enforced[0] == site_csp, "the site's policy is kept as it was, still enforced"
    ours = enforced[1:] if mode == "enforce" else out.header(b"content-security-policy-report-only")
    assert len(ours) == 1 and b"default-src 'self' 'unsafe-inline' 'unsafe-eval' data: blob: pagead2" in ours[0]


def test_link_and_refresh_headers_to_partners_are_dropped(tmp_path: Path) -> None:
    headers = [(b"content-type", b"text/html"),
               (b"link", b"</app.css>; rel=preload; as=style, "
                         b"<https://pagead2.googlesyndication.com/a.js>; rel=preload; as=script"),
               (b"link", b"<https://platform.twitter.com>; rel=preconnect"),
               (b"link", b"<https://cdn.site.example/x.woff2>; rel=preload; as=font"),
               (b"refresh", b"0; URL='https://platform.twitter.com/intent'")]
    gate = make_gate(html_app(headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"}))))
    assert out.header(b"link") == [b"</app.css>; rel=preload; as=style",
                                   b"<https://cdn.site.example/x.woff2>; rel=preload; as=font"]
    assert out.header(b"refresh") == []


@pytest.mark.parametrize("link", [
    # Chromium 156 preloads a Link header's imagesrcset (measured through the recording proxy).
    b'</a.png>; rel=preload; as=image; imagesrcset="https://platform.twitter.com/x.png 2x"',
    b'</a.png>; rel=preload; as=image; imagesrcset="/b.png 1x, //platform.twitter.com/y.png 2x"',
    b"</a.png>; rel=preload; as=image; imagesrcset=https:platform.twitter.com/z.png",
    b'</a.png>; rel="preload"; anchor="https://platform.twitter.com/"',
    b'</a.png>; title="a, <https://platform.twitter.com/>; rel=preconnect"',
    b'</a.png>; title="unclosed, <https://platform.twitter.com/>; rel=preconnect',
])
def test_link_header_entry_naming_a_partner_in_a_parameter_is_dropped(tmp_path: Path,
                                                                       link: bytes) -> None:
    headers = [(b"content-type", b"text/html"), (b"link", link),
               (b"link", b"</app.css>; rel=preload; as=style")]
    gate = make_gate(html_app(headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope()))
    assert out.header(b"link") == [b"</app.css>; rel=preload; as=style"]


def test_link_header_quoted_commas_do_not_split_entries() -> None:
    from middleware.headers import gated_link

    def blocked(url: str) -> bool:
        return "partner.example" in url

    value = '</a>; title="x, y"; rel=preload, </b>; rel=preload, <https://partner.example/>'
    assert gated_link(value, blocked) == '</a>; title="x, y"; rel=preload, </b>; rel=preload'


@pytest.mark.parametrize("mode", ["enforce", "report-only", "off"])
def test_site_csp_report_uri_to_a_partner_is_removed(tmp_path: Path, mode: str) -> None:
    """Chromium 156 POSTs the site's own violation reports (page URL, referrer) to its
    report-uri, whatever our CSP says (measured through the recording proxy)."""
    headers = [(b"content-type", b"text/html"),
               (b"content-security-policy",
                b"img-src 'none'; report-uri https://platform.twitter.com/r /own-reports"),
               (b"content-security-policy-report-only",
                b"script-src 'self'; report-uri //platform.twitter.com/r, img-src 'self'"),
               (b"content-security-policy", b"frame-ancestors 'none'")]
    gate = make_gate(html_app(headers=headers), tmp_path, csp={"mode": mode})
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"social"}))))
    assert out.header(b"content-security-policy")[:2] == [
        b"img-src 'none'; report-uri /own-reports", b"frame-ancestors 'none'"]
    assert out.header(b"content-security-policy-report-only")[0] == b"script-src 'self', img-src 'self'"


def test_speculation_rules_and_reporting_headers_naming_a_partner_are_dropped(
        tmp_path: Path) -> None:
    """Chromium 156 fetches a Speculation-Rules header's rule set from the partner, with the
    enforced CSP too (measured); report endpoints would receive the page's reports."""
    headers = [(b"content-type", b"text/html"),
               (b"speculation-rules", b'"https://platform.twitter.com/rules.json", "/rules.json"'),
               (b"reporting-endpoints",
                b'default="https://platform.twitter.com/r", own="/reports", x="https:platform.twitter.com"'),
               (b"report-to", b'{"group":"default","max_age":60,'
                              b'"endpoints":[{"url":"https://platform.twitter.com/nel"}]}'),
               (b"report-to", b'{"group":"own","max_age":60,"endpoints":[{"url":"/nel"}]}')]
    gate = make_gate(html_app(headers=headers), tmp_path)
    out = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"social"}))))
    assert out.header(b"speculation-rules") == [b'"/rules.json"']
    assert out.header(b"reporting-endpoints") == [b'own="/reports"']
    assert out.header(b"report-to") == [b'{"group":"own","max_age":60,"endpoints":[{"url":"/nel"}]}']


@pytest.mark.parametrize(("value", "target"), [
    ("5; url=https://a.example/x", "https://a.example/x"),
    ("0;URL='//b.example/'", "//b.example/"),
    ("0 https://c.example", "https://c.example"),
    ("3, url = \"/local\"", "/local"),
    ("10", ""),
])
def test_refresh_header_url_follows_the_declarative_refresh_steps(value: str, target: str) -> None:
    from middleware.html.fetch import refresh_url

    assert refresh_url(value) == target


def csp3_host_matches(source: str, host: str) -> bool:
    """CSP3 §6.7.2.7 host-part matching, for the bare host-sources partners declare."""
    if source.startswith("*."):
        return host.endswith(source[1:])
    return host == source


_LABELS = st.sampled_from(["a", "b", "ads", "cdn", "x"])
_NAMES = st.lists(_LABELS, min_size=1, max_size=4).map(".".join)
_SOURCES = st.one_of(_NAMES, _NAMES.map(lambda name: "*." + name))


@settings(max_examples=examples(400), deadline=None)
@given(sources=st.lists(_SOURCES, max_size=8, unique=True), hosts=st.lists(_NAMES, max_size=10))
def test_without_covered_allows_exactly_the_same_hosts(sources: list[str], hosts: list[str]) -> None:
    kept = without_covered(sources)
    assert set(kept) <= set(sources) and kept == [s for s in sources if s in kept]  # order kept
    for host in [*hosts, *(s.removeprefix("*.") for s in sources)]:
        assert (any(csp3_host_matches(s, host) for s in sources)
                == any(csp3_host_matches(s, host) for s in kept)), (sources, kept, host)


def test_japan_talk_policy_lists_each_host_once_and_still_allows_every_declared_one() -> None:
    from middleware.config import load_config
    from middleware.csp import CspBuilder

    config = load_config(Path(__file__).parent.parent / "examples/japan_talk/partners.toml")
    value = CspBuilder(config).value(config.partners)
    policy = sent_directives(value)
    declared = [h for p in config.partners.values() for h in p.hosts]
    listed = [s for s in policy["default-src"] if "." in s]
    # The example has names its wildcards cover; each wildcard brings its apex (csp.apex_of).
    assert len([s for s in listed if s in declared]) < len(declared)
    assert [s for s in listed if s not in declared] == [s[2:] for s in listed if s.startswith("*.")]
    for host in declared:  # a wildcard stands for its own suffix's subdomains
        name = host.replace("*.", "sub.")
        assert any(csp3_host_matches(s, name) for s in listed), host
    # No example partner embeds plugins or takes the site's form posts.
    assert policy["object-src"] == ["'none'"] and policy["form-action"] == ["'self'"]
    assert "connect.facebook.net" not in policy["default-src"]
    assert "*.facebook.net" in policy["default-src"]


_PATTERNS = st.one_of(_NAMES, _NAMES.map(lambda name: "*." + name)).filter(lambda p: "." in p)


@settings(max_examples=examples(300), deadline=None)
@given(declared=st.lists(st.tuples(_PATTERNS, st.integers(0, 2)), min_size=1, max_size=8,
                         unique_by=lambda d: d[0]),
       allowed=st.sets(st.sampled_from(["p0", "p1", "p2"])), probes=st.lists(_NAMES, max_size=8))
def test_csp_never_allows_a_refused_partners_host(declared: list[tuple[str, int]],
                                                  allowed: set[str], probes: list[str]) -> None:
    """Differential against HostMatcher (who owns a host: the most specific pattern): whatever
    two partners declare, the policy allows no host of a partner left out, and every exact
    host of an allowed one."""
    from middleware.csp import CspBuilder
    from middleware.hosts import HostMatcher

    data = copy.deepcopy(CONFIG)
    owned: dict[str, list[str]] = {f"p{i}": [] for i in range(3)}
    for pattern, owner in declared:
        owned[f"p{owner}"].append(pattern)
    data["partners"] = {pid: {"name": pid, "purposes": ["ads"], "hosts": hosts,
                              "receives": ["ip_address"], "privacy_url": "https://p.example/"}
                        for pid, hosts in owned.items() if hosts}
    config = parse_config(data, "p.toml")
    listed = [s for s in sent_directives(CspBuilder(config).value(allowed))["default-src"] if "." in s]
    matcher = HostMatcher({pid: p.hosts for pid, p in config.partners.items()})
    names = [*probes, *(p.replace("*.", "sub.") for p, _ in declared), *(p.removeprefix("*.") for p, _ in declared)]
    for host in names:
        if any(csp3_host_matches(s, host) for s in listed):
            assert matcher.partner_for_host(host) in {*allowed, None}, (host, listed)
    for pid in allowed & set(config.partners):
        for host in config.partners[pid].hosts:
            if not host.startswith("*."):
                assert any(csp3_host_matches(s, host) for s in listed), (host, listed)


def test_csp_leaves_out_a_consented_wildcard_that_covers_a_refused_partners_host(tmp_path: Path) -> None:
    partners = copy.deepcopy(CONFIG["partners"])
    partners["adsense"]["hosts"] = ["pagead2.google.example", "*.google.example"]
    partners["x"]["hosts"] = ["ads.google.example"]
    gate = make_gate(html_app(), tmp_path, partners=partners)
    value = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads"})))).header(
        b"content-security-policy")[0]
    # The wildcard's apex is adsense's for HostMatcher and allows nothing else (csp.apex_of).
    assert sent_directives(value)["default-src"][5:] == ["pagead2.google.example", "google.example"]
    both = asyncio.run(run(gate, http_scope(cookie=cookie_for(gate, {"ads", "social"})))).header(
        b"content-security-policy")[0]
    assert sent_directives(both)["default-src"][5:] == ["*.google.example", "google.example"]
