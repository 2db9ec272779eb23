"""Config validation: every error names the file, the key path and what was expected."""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path
from typing import Any

import pytest

from middleware.config import load_config, parse_config
from middleware.errors import ConfigError

BASE: dict[str, Any] = {
    "policy": {"version": "2008-01-23", "effective": dt.date(2008, 1, 23)},
    "purposes": {
        "necessary": {"title": "Necessary", "description": "Needed.", "necessary": True},
        "ads": {"title": "Ads", "description": "Ads.", "sale_or_sharing": True},
        "social": {"title": "Social", "description": "Buttons."},
    },
    "partners": {
        "google-adsense": {
            "name": "Google AdSense",
            "purposes": ["ads"],
            "hosts": ["pagead2.googlesyndication.com", "*.doubleclick.net"],
            "receives": ["ip_address", "cookies"],
            "privacy_url": "https://policies.google.com/privacy",
            "inject": [{"at": "head-end", "html": "<script src='https://pagead2.googlesyndication.com/a.js'></script>"}],
        }
    },
}


def with_change(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return data


_DELETE = object()


def test_config_valid_base_loads_frozen_values() -> None:
    config = parse_config(BASE, "p.toml")
    assert config.policy.default == "deny"
    assert config.policy.cookie.name == "consent"
    assert config.partners["google-adsense"].hosts == ("pagead2.googlesyndication.com", "*.doubleclick.net")
    assert config.partners["google-adsense"].inject[0].at == "head-end"
    assert config.necessary_purposes == frozenset({"necessary"})
    with pytest.raises(AttributeError):
        config.policy.version = "x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("partners.google-adsense.purposes", ["ads", "adz"],
         "p.toml: partners.google-adsense.purposes[1]: unknown purpose 'adz'; known: ads, necessary, social"),
        ("partners.google-adsense.colour", "red", "p.toml: partners.google-adsense.colour: unknown key"),
        ("policy.versoin", "x", "p.toml: policy.versoin: unknown key"),
        ("policy.default", "maybe", "p.toml: policy.default: expected one of 'deny', 'allow', got 'maybe'"),
        ("policy.effective", "2008-01-23", "p.toml: policy.effective: expected a date"),
        ("policy.version", _DELETE, "p.toml: policy.version: missing; expected a string"),
        ("policy.prefix", "consent", "p.toml: policy.prefix: expected a path like '/.consent/'"),
        ("policy.honor_gpc", "yes", "p.toml: policy.honor_gpc: expected true or false"),
        ("partners.google-adsense.hosts", ["https://x.com/"], "p.toml: partners.google-adsense.hosts[0]: expected a lowercase host"),
        ("partners.google-adsense.receives", ["ip_address", "soul"], "p.toml: partners.google-adsense.receives[1]: unknown data category 'soul'"),
        ("partners.google-adsense.privacy_url", "http://x", "p.toml: partners.google-adsense.privacy_url: expected an https:// URL"),
        ("partners.google-adsense.inject", [{"at": "footer", "html": "<b>"}], "p.toml: partners.google-adsense.inject[0].at: expected one of 'head-end', 'body-start', 'body-end', got 'footer'"),
        ("partners.google-adsense.inject", [{"at": "head-end", "html": "<b>", "when": 1}], "p.toml: partners.google-adsense.inject[0].when: unknown key"),
        ("partners.Bad_Id", {}, "p.toml: partners.Bad_Id: expected a partner id"),
        ("csp.mode", "maybe", "p.toml: csp.mode: expected one of 'enforce', 'report-only', 'off'"),
        ("ledger.fail", "sometimes", "p.toml: ledger.fail: expected one of 'closed', 'open'"),
        ("ledger.synchronous", "off", "p.toml: ledger.synchronous: expected one of 'full', 'normal', got 'off'"),
        ("ui", {"texts": {"ja": {"banner_titel": "x"}}}, "p.toml: ui.texts.ja.banner_titel: unknown text key"),
        ("ui", {"default_language": "ja"}, "p.toml: ui.default_language: no [ui.texts.ja] table"),
        ("policy.cookie", {"max_age_days": 1000}, "p.toml: policy.cookie.max_age_days: expected 1..400, got 1000"),
        ("policy.cookie", {"max_age_days": True}, "p.toml: policy.cookie.max_age_days: expected an integer, got bool"),
        ("purposes", {}, "p.toml: purposes: expected at least one"),
        ("surprise", 1, "p.toml: surprise: unknown key"),
    ],
)
def test_config_error_names_file_key_path_and_expectation(path: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(with_change(path, value), "p.toml")
    assert str(info.value).startswith(message), str(info.value)


def test_config_load_reports_toml_syntax_error_with_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[policy\nversion = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: invalid TOML")


def test_config_load_missing_file_is_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path / "nope.toml")


def test_config_example_files_are_valid() -> None:
    root = Path(__file__).resolve().parent.parent / "examples"
    files = sorted(root.glob("*/partners.toml"))
    assert files, "the examples ship their partners.toml"
    for path in files:
        config = load_config(path)
        assert config.partners, path


def test_config_readme_annotated_example_is_valid() -> None:
    """The README's full annotated example must stay a file users can copy."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("```toml\n[policy]") + len("```toml\n")
    example = readme[start:readme.index("```", start)]
    import tomllib

    config = parse_config(tomllib.loads(example), "README.md")
    assert config.partners["google-adsense"].inject[0].at == "head-end"
    assert config.ui.texts["ja"]["banner_title"]


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "p.toml")
    lines = str(info.value).split("\n")
    assert len(lines) == len(info.value.problems)
    return lines


def test_config_typo_of_required_key_says_did_you_mean_not_missing() -> None:
    data = copy.deepcopy(BASE)
    partner = data["partners"]["google-adsense"]
    partner["privacy_ulr"] = partner.pop("privacy_url")
    assert _problems(data) == [
        "p.toml: partners.google-adsense.privacy_ulr: unknown key 'privacy_ulr'; did you mean 'privacy_url'?"
    ]


def test_config_unknown_key_without_close_match_lists_known_keys() -> None:
    (line,) = _problems(with_change("policy.zzz", 1))
    assert line.startswith("p.toml: policy.zzz: unknown key 'zzz'; known keys here: cookie, default,")


def test_config_reports_every_error_of_the_file_at_once() -> None:
    data = copy.deepcopy(BASE)
    data["policy"]["default"] = "maybe"
    data["policy"]["cookie"] = {"max_age_days": 1000, "nmae": "c"}
    data["purposes"]["ads"].pop("title")
    partner = data["partners"]["google-adsense"]
    partner["purposes"] = ["adz", "social"]
    partner["receives"] = ["ip_adress"]
    partner["inject"] = [{"at": "footer", "html": " "}]
    data["ledger"] = {"retention_days": 0, "fial": "open"}
    data["surprise"] = 1
    lines = _problems(data)
    assert sorted(lines) == sorted([
        "p.toml: policy.default: expected one of 'deny', 'allow', got 'maybe'",
        "p.toml: policy.cookie.max_age_days: expected 1..400, got 1000",
        "p.toml: policy.cookie.nmae: unknown key 'nmae'; did you mean 'name'?",
        "p.toml: purposes.ads.title: missing; expected a string",
        "p.toml: partners.google-adsense.purposes[0]: unknown purpose 'adz'; known: ads, necessary, social;"
        " did you mean 'ads'?",
        "p.toml: partners.google-adsense.receives[0]: unknown data category 'ip_adress'; known: "
        "ip_address, user_agent, page_url, referrer, cookies, device_info, approximate_location, "
        "browsing_activity, identifiers; did you mean 'ip_address'?",
        "p.toml: partners.google-adsense.inject[0].at: expected one of 'head-end', 'body-start', "
        "'body-end', got 'footer'",
        "p.toml: partners.google-adsense.inject[0].html: expected non-empty HTML",
        "p.toml: ledger.retention_days: expected a positive number of days, got 0",
        "p.toml: ledger.fial: unknown key 'fial'; did you mean 'fail'?",
        "p.toml: surprise: unknown key 'surprise'; known keys here: consent_mode, consent_sources, csp, gpp, "
        "jurisdictions, ledger, partners, policy, purposes, site, tcf, ui",
    ])
    assert all(line.startswith("p.toml: ") for line in lines)


def test_config_missing_policy_table_is_one_problem() -> None:
    data = copy.deepcopy(BASE)
    del data["policy"]
    assert _problems(data) == [
        "p.toml: policy: missing; expected a [policy] table with at least version and effective"
    ]


def test_config_host_declared_by_two_partners_is_an_error() -> None:
    data = copy.deepcopy(BASE)
    data["partners"]["youtube"] = {
        "name": "YouTube", "purposes": ["social"], "receives": ["ip_address"],
        "hosts": ["www.youtube.com", "*.doubleclick.net"],
        "privacy_url": "https://policies.google.com/privacy",
    }
    assert _problems(data) == [
        "p.toml: partners.youtube.hosts[1]: host '*.doubleclick.net' is already declared by partner "
        "'google-adsense'; a host belongs to one partner (declare it once, in a partner whose purposes "
        "list everything it serves: it loads only when all of them are granted)"
    ]


def test_config_more_specific_host_in_another_partner_is_allowed() -> None:
    data = copy.deepcopy(BASE)
    data["partners"]["dc-video"] = {
        "name": "DC video", "purposes": ["social"], "receives": ["ip_address"],
        "hosts": ["video.doubleclick.net"], "privacy_url": "https://example.com/privacy",
    }
    config = parse_config(data, "p.toml")
    assert config.partners["dc-video"].hosts == ("video.doubleclick.net",)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(_DELETE, ("'self'",)), (["'none'"], ("'none'",)), (["'self'", "https://partner.example"],
                                                        ("'self'", "https://partner.example"))],
)
def test_config_csp_frame_ancestors_default_self(value: Any, expected: tuple[str, ...]) -> None:
    data = with_change("csp.frame_ancestors", value) if value is not _DELETE else copy.deepcopy(BASE)
    assert parse_config(data, "p.toml").csp.frame_ancestors == expected


@pytest.mark.parametrize("value", [["'none'", "'self'"], [], ["*"], ["a b"]])
def test_config_csp_frame_ancestors_invalid(value: Any) -> None:
    (line,) = _problems(with_change("csp.frame_ancestors", value))
    assert line.startswith("p.toml: csp.frame_ancestors")


def test_config_sections_are_registered_in_one_place() -> None:
    from middleware import config as module

    assert list(module._SECTIONS) == ["policy", "purposes", "partners", "csp", "ledger", "ui",
                                      "jurisdictions", "tcf", "gpp", "consent_mode", "consent_sources", "site"]
    with pytest.raises(RuntimeError, match="two readers"):
        module.section("policy")(lambda t, done: None)
