"""A consented ``*.domain`` brings its apex into our CSP exactly where HostMatcher gives the
apex to that partner (csp.apex_of): CSP3's ``*.x.com`` does not match ``x.com``, HostMatcher's
does, and the two must agree or a consented partner's tag on ``x.com`` is kept by the
rewriter and blocked by our own policy."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.config import Config, parse_config
from middleware.csp import CspBuilder
from middleware.hosts import HostMatcher
from tests.support.budget import examples

from .asgi_helpers import CONFIG
from .test_csp import csp3_host_matches, directives, sent_directives


def config_of(partners: dict[str, list[str]], csp: dict[str, list[str]] | None = None) -> Config:
    data = copy.deepcopy(CONFIG)
    data["partners"] = {pid: {"name": pid, "purposes": ["ads"], "hosts": hosts,
                              "receives": ["ip_address"], "privacy_url": "https://p.example/",
                              **({"csp": (csp or {})[pid]} if pid in (csp or {}) else {})}
                        for pid, hosts in partners.items()}
    return parse_config(data, "p.toml")


def allows(sources: list[str], host: str) -> bool:
    return any(csp3_host_matches(s, host) for s in sources)


def test_consented_wildcard_brings_its_apex() -> None:
    config = config_of({"a": ["*.x.example", "cdn.y.example"]})
    listed = sent_directives(CspBuilder(config).value({"a"}))["default-src"][5:]
    assert listed == ["*.x.example", "x.example", "cdn.y.example"]


def test_apex_declared_by_a_refused_partner_is_left_out() -> None:
    config = config_of({"a": ["*.x.example"], "b": ["x.example"]})
    builder = CspBuilder(config)
    assert sent_directives(builder.value({"a"}))["default-src"][5:] == ["*.x.example"]
    assert sent_directives(builder.value({"b"}))["default-src"][5:] == ["x.example"]
    assert sent_directives(builder.value({"a", "b"}))["default-src"][5:] == ["*.x.example", "x.example"]


def test_apex_kept_where_its_wildcard_overlaps_a_refused_host() -> None:
    """``*.x.example`` would reach the refused ``ads.x.example``; ``x.example`` reaches nothing else."""
    config = config_of({"a": ["*.x.example"], "b": ["ads.x.example"]})
    assert sent_directives(CspBuilder(config).value({"a"}))["default-src"][5:] == ["x.example"]


def test_declared_directive_apex_follows_the_apex_owner() -> None:
    """object-src lists a declaring partner's apex only if the apex is that partner's: here a
    consented partner that does not declare object-src owns it exactly."""
    config = config_of({"a": ["*.x.example", "*.y.example"], "b": ["x.example"]},
                       csp={"a": ["object-src"]})
    policy = directives(CspBuilder(config).value({"a", "b"}))
    assert policy["object-src"] == ["*.x.example", "*.y.example", "y.example"]
    assert {"*.x.example", "x.example", "*.y.example", "y.example"} <= set(policy["default-src"])


def test_apex_covered_by_a_shorter_wildcard_is_not_listed_twice() -> None:
    config = config_of({"a": ["*.example", "*.x.example"]})
    listed = sent_directives(CspBuilder(config).value({"a"}))["default-src"][5:]
    assert listed == ["*.example", "example"]


_LABELS = st.sampled_from(["a", "b", "ads", "x"])
_NAMES = st.lists(_LABELS, min_size=1, max_size=3).map(".".join)
_PATTERNS = st.one_of(_NAMES, _NAMES.map(lambda name: "*." + name)).filter(lambda p: "." in p)


@settings(max_examples=examples(400), deadline=None)
@given(declared=st.lists(st.tuples(_PATTERNS, st.integers(0, 2)), min_size=1, max_size=8,
                         unique_by=lambda d: d[0]),
       allowed=st.sets(st.sampled_from(["p0", "p1", "p2"])), probes=st.lists(_NAMES, max_size=8))
def test_csp_agrees_with_host_matcher_on_declared_hosts_and_apexes(
        declared: list[tuple[str, int]], allowed: set[str], probes: list[str]) -> None:
    """Differential against HostMatcher: every declared exact host and every wildcard's apex is
    allowed by the policy exactly when HostMatcher gives it to a consented partner; no host at
    all (probes, subdomains) is allowed that HostMatcher gives to a refused partner."""
    owned: dict[str, list[str]] = {}
    for pattern, owner in declared:
        owned.setdefault(f"p{owner}", []).append(pattern)
    config = config_of(owned)
    listed = sent_directives(CspBuilder(config).value(allowed))["default-src"][5:]  # after _OWN
    matcher = HostMatcher({pid: p.hosts for pid, p in config.partners.items()})
    apexes = [p.removeprefix("*.") for p, _ in declared]  # exact hosts and wildcards' apexes
    for host in apexes:
        assert allows(listed, host) == (matcher.partner_for_host(host) in allowed), (host, listed)
    for host in [*probes, *(p.replace("*.", "sub.") for p, _ in declared)]:
        if allows(listed, host):
            assert matcher.partner_for_host(host) in {*allowed, None}, (host, listed)
