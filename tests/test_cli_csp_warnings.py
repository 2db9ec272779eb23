"""``consent-gate check`` warns about a consented wildcard the CSP would leave out for
overlapping a refused partner's host (csp.without_overlapping), through the real command."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.config import load_config, parse_config
from middleware.csp import CspBuilder, wildcard_overlaps
from tests.support.budget import examples

from .asgi_helpers import CONFIG
from .support.config_text import config_text, partner
from .support.servers import REPO_ROOT

TWO = {"ads": {"title": "Ads", "description": "Ads."},
       "social": {"title": "Social", "description": "Buttons."}}


def check(toml: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CONSENT_GATE_SECRET": "s" * 48}
    return subprocess.run([sys.executable, "-m", "middleware", "check", str(toml), *extra],
                          capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60, check=False)


def write(tmp_path: Path, partners: dict[str, dict[str, object]]) -> Path:
    toml = tmp_path / "partners.toml"
    toml.write_text(config_text(ledger=(tmp_path / "l.sqlite3").as_posix(), purposes=TWO,
                                partners=partners))
    return toml


def test_check_warns_which_partner_pattern_host_and_the_fix(tmp_path: Path) -> None:
    toml = write(tmp_path, {"adsense": partner(["ads"], ["pagead2.google.example", "*.google.example"]),
                            "maps": partner(["social"], ["maps.google.example"])})
    done = check(toml)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert ("CSP warnings:\n  partners.adsense.hosts[1]: '*.google.example' also matches "
            "'maps.google.example' of partner 'maps'\n") in out
    assert ("While adsense is consented and maps is not, the CSP leaves '*.google.example' out "
            "(it would let a script reach maps's 'maps.google.example'): only adsense's exact "
            "hosts and 'google.example' stay allowed") in out
    fix = ('Fix: list the subdomains adsense loads from as exact hosts: in [partners.adsense] '
           'hosts = ["pagead2.google.example", "*.google.example", "SUBDOMAIN.google.example"]; '
           "or, if 'maps.google.example' serves adsense, move it from partners.maps.hosts to "
           "partners.adsense.hosts.")
    assert fix in out
    assert out.index("CSP warnings:") > out.index("Partners:")
    assert out.rstrip().endswith("holds 1 signing key(s).")

    # The fix as written (a real subdomain for SUBDOMAIN) keeps that subdomain in the policy
    # of a visitor who consented to adsense only; the warning stays (the wildcard is still dropped).
    fixed = toml.read_text().replace('"*.google.example"]', '"*.google.example", "cdn.google.example"]')
    toml.write_text(fixed)
    config = load_config(toml)
    policy = CspBuilder(config).value({"adsense"}).decode()
    assert "cdn.google.example" in policy and "*.google.example" not in policy
    assert "maps.google.example" not in policy


def test_check_json_lists_the_warnings(tmp_path: Path) -> None:
    toml = write(tmp_path, {"adsense": partner(["ads"], ["*.google.example"]),
                            "maps": partner(["social"], ["*.maps.google.example", "google.example"])})
    done = check(toml, "--json")
    assert done.returncode == 0, done.stderr
    warnings = json.loads(done.stdout)["csp_warnings"]
    assert [(w["key"], w["partner"], w["pattern"], w["other_partner"], w["host"]) for w in warnings] == [
        ("partners.adsense.hosts[0]", "adsense", "*.google.example", "maps", "*.maps.google.example")]
    # google.example is maps's own (exact beats the wildcard): not promised to adsense.
    assert "only adsense's exact hosts stay allowed" in warnings[0]["effect"]


def test_check_without_overlap_prints_no_warning_section(tmp_path: Path) -> None:
    toml = write(tmp_path, {"adsense": partner(["ads"], ["*.google.example"]),
                            "maps": partner(["social"], ["google.example", "maps.other.example"])})
    done = check(toml)
    assert done.returncode == 0 and "CSP warnings" not in done.stdout, done.stdout
    assert json.loads(check(toml, "--json").stdout)["csp_warnings"] == []


def test_japan_talk_example_has_no_overlap() -> None:
    done = check(REPO_ROOT / "examples" / "japan_talk" / "partners.toml")
    assert done.returncode == 0 and "CSP warnings" not in done.stdout


_NAMES = st.lists(st.sampled_from(["a", "b", "x"]), min_size=1, max_size=3).map(".".join)
_PATTERNS = st.one_of(_NAMES, _NAMES.map(lambda name: "*." + name)).filter(lambda p: "." in p)


@settings(max_examples=examples(300), deadline=None)
@given(declared=st.lists(st.tuples(_PATTERNS, st.integers(0, 1)), min_size=1, max_size=6,
                         unique_by=lambda d: d[0]))
def test_warnings_name_exactly_the_wildcards_the_csp_drops(declared: list[tuple[str, int]]) -> None:
    """Differential against CspBuilder: with p0 consented and p1 refused, a p0 wildcard is
    missing from the policy exactly when wildcard_overlaps names it (and vice versa)."""
    data = copy.deepcopy(CONFIG)
    owned: dict[str, list[str]] = {}
    for pattern, owner in declared:
        owned.setdefault(f"p{owner}", []).append(pattern)
    data["partners"] = {pid: {"name": pid, "purposes": ["ads"], "hosts": hosts,
                              "receives": ["ip_address"], "privacy_url": "https://p.example/"}
                        for pid, hosts in owned.items()}
    config = parse_config(data, "p.toml")
    warned = {(w.partner, w.pattern) for w in wildcard_overlaps(config.partners)}
    for allowed in ("p0", "p1"):  # the other one refused
        if allowed not in config.partners:
            continue
        sources = set(CspBuilder(config).value({allowed}).decode().split(";")[0].split())
        for pattern in config.partners[allowed].hosts:
            if pattern.startswith("*."):
                dropped = pattern not in sources and not any(
                    s.startswith("*.") and pattern.endswith(s[1:]) for s in sources)  # covered
                assert dropped == ((allowed, pattern) in warned), (pattern, sources, warned)
