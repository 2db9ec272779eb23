"""The signal sections of the TOML: the full example loads, and mistakes are reported with key paths."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from middleware.config import load_config, parse_config
from middleware.errors import ConfigError
from tests.test_signals_tcf_gate import GVL

EXAMPLE = Path(__file__).parent / "signals_data" / "signals.toml"


def _data() -> dict[str, Any]:
    return tomllib.loads(EXAMPLE.read_text())


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "s.toml")
    return [f"{k}: {m}" for k, m in info.value.problems]


def test_signals_settings_full_example_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.jurisdictions.regions["US-CA"] == "opt-out"
    assert config.jurisdictions.vary == ("cloudfront-viewer-country", "cloudfront-viewer-country-region")
    gpt = config.partners["gpt"].signals
    assert (gpt.tcf_vendor_id, gpt.tcf_purposes, gpt.google_tag) == (755, (1, 2, 3, 4, 7), True)
    assert config.tcf.cookie == "euconsent-v2" and config.gpp.enabled
    assert config.consent_mode.mode == "basic" and config.consent_mode.signals["ad_storage"] == ("ads",)
    (source,) = config.consent_sources
    assert (source.tool, source.cookie, dict(source.purposes)) == (
        "onetrust", "OptanonConsent", {"ads": ("C0004",), "analytics": ("C0002",)})


def test_signals_settings_without_sections_are_off() -> None:
    data = _data()
    for name in ("jurisdictions", "tcf", "gpp", "consent_mode", "consent_sources"):
        del data[name]
    for partner in data["partners"].values():
        for key in ("tcf_vendor_id", "tcf_purposes", "google_tag"):
            partner.pop(key, None)
    config = parse_config(data, "s.toml")
    assert not config.jurisdictions.enabled and not config.gpp.enabled
    assert config.consent_mode.mode == "off" and config.consent_sources == ()


def test_signals_settings_report_every_problem() -> None:
    data = _data()
    data["partners"]["gpt"]["tcf_vendor_id"] = 0
    data["partners"]["gpt"]["tcf_purposes"] = [1, 12]
    data["jurisdictions"]["regions"]["US-TX"] = "whatever"
    data["consent_mode"]["ad_storage"] = ["adz"]
    data["consent_sources"]["trustarc"] = {}
    data["consent_sources"]["onetrust"]["purposes"]["social"] = ["C0005"]
    data["tcf"]["cookie"] = "bad cookie"
    lines = _problems(data)
    assert "partners.gpt.tcf_vendor_id: expected a TCF vendor id (1..65535), got 0" in lines
    assert "partners.gpt.tcf_purposes: TCF purpose 12 does not exist; expected 1..11" in lines
    assert any(line.startswith("jurisdictions.regions.US-TX: expected one of") for line in lines)
    assert any(line.startswith("consent_mode.ad_storage[0]: unknown purpose 'adz'") for line in lines)
    assert any(line.startswith("consent_sources.trustarc: unknown consent tool") for line in lines)
    assert any(line.startswith("consent_sources.onetrust.purposes.social: unknown purpose") for line in lines)
    assert any(line.startswith("tcf.cookie: expected a cookie name") for line in lines)


def test_signals_settings_gvl_checks_partner_vendors(tmp_path: Path) -> None:
    gvl = tmp_path / "gvl.json"
    gvl.write_text(json.dumps(GVL))
    data = _data()
    data["tcf"]["gvl"] = str(gvl)
    data["partners"]["measure"]["tcf_vendor_id"] = 20
    del data["partners"]["measure"]["tcf_purposes"]  # taken from the GVL
    lines = _problems(copy.deepcopy(data))
    assert lines == [f"partners.gpt.tcf_vendor_id: vendor 755 is not in the Global Vendor List {gvl} (v321)"]
    data["partners"]["gpt"]["tcf_vendor_id"] = 10
    assert parse_config(data, "s.toml").tcf.gvl is not None


def test_signals_settings_tcf_purposes_needed_without_gvl() -> None:
    data = _data()
    del data["partners"]["measure"]["tcf_purposes"]
    assert _problems(data) == ["partners.measure.tcf_purposes: expected the TCF purposes this vendor needs "
                               "(or a [tcf] gvl file to take them from)"]


def test_signals_settings_consent_mode_needs_a_google_tag() -> None:
    data = _data()
    del data["partners"]["gpt"]["google_tag"]
    assert any(line.startswith("consent_mode.mode: no partner has google_tag") for line in _problems(data))


def test_signals_settings_check_prints_rules_and_tcf_vendors(capsys: pytest.CaptureFixture[str],
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from middleware.cli import main

    monkeypatch.setenv("CONSENT_GATE_SECRET", "s" * 40)
    assert main(["check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert "  US-CA            opt-out (partners run; Do Not Sell link; GPC opts out)" in out
    assert "  unknown region   opt-in (banner; nothing runs before consent) (the strictest configured)" in out
    assert "      TCF:      vendor 755, purposes 1, 2, 3, 4, 7" in out
    assert "Google Consent Mode v2: basic" in out and "Consent source onetrust" in out
    assert main(["check", str(EXAMPLE), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["jurisdictions"]["regions"]["EEA"] == "opt-in" and data["jurisdictions"]["unknown"] == "opt-in"
    assert data["partners"]["measure"]["tcf_vendor_id"] == 20 and data["partners"]["gpt"]["google_tag"]


def test_signals_settings_readme_example_is_the_tested_file() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    start = readme.index("```toml\n# A site with EEA/UK/Swiss opt-in") + len("```toml\n")
    assert readme[start:readme.index("```", start)] == EXAMPLE.read_text(encoding="utf-8")
