"""Vendor verdicts from real TC strings (encoded by @iabtcf/core) and a small GVL we build."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from middleware.errors import ConfigError
from middleware.signals import tcf
from middleware.signals.gvl import load_gvl, parse_gvl
from middleware.signals.tcf_gate import vendor_verdict
from tests.support import reference
from tests.test_signals_tcf import random_fields

GVL = {
    "vendorListVersion": 321, "tcfPolicyVersion": 5,
    "vendors": {
        "10": {"id": 10, "name": "Consent Ads", "purposes": [1, 2, 3, 4, 7], "legIntPurposes": [],
               "flexiblePurposes": [], "specialFeatures": []},
        "20": {"id": 20, "name": "LI Measure", "purposes": [1], "legIntPurposes": [7, 8],
               "flexiblePurposes": [7], "specialFeatures": [1]},
        "30": {"id": 30, "name": "Gone", "purposes": [1], "legIntPurposes": [], "flexiblePurposes": [],
               "deletedDate": "2025-01-01T00:00:00Z"},
        "40": {"id": 40, "name": "Bad LI claim", "purposes": [], "legIntPurposes": [3], "flexiblePurposes": []},
    },
}


def _fields(changes: dict[str, Any]) -> dict[str, Any]:
    f = random_fields(random.Random(5))
    f.update({"purpose_consents": [1, 2, 3, 4, 7], "purpose_legitimate_interests": [7, 8],
              "vendor_consents": [10], "vendor_legitimate_interests": [20], "publisher_restrictions": [],
              "disclosed_vendors": [10, 20, 30, 40], "special_feature_optins": [1]})
    f.update(changes)
    return f


_encoded: dict[str, str] = {}


def _tc(**changes: Any) -> tcf.TCString:
    """The reference's TC string for these fields (every case encoded in one node run)."""
    if not _encoded:
        wanted = [c[1] for c in CASES] + [{}, {"special_feature_optins": []}]
        keys = [json.dumps(w, sort_keys=True) for w in wanted]
        _encoded.update(zip(keys, reference.run("tcf_encode", [_fields(w) for w in wanted]), strict=True))
    return tcf.decode(_encoded[json.dumps(changes, sort_keys=True)])


CASES: list[tuple[str, dict[str, Any], int, list[int], bool, str]] = [
    ("consent given", {}, 10, [1, 2, 3, 4, 7], True, "allowed"),
    ("one purpose without consent", {"purpose_consents": [1, 2, 3, 4]}, 10, [1, 2, 7], False, "purpose 7"),
    ("vendor without consent", {"vendor_consents": []}, 10, [1], False, "vendor 10"),
    ("not disclosed", {"disclosed_vendors": [20]}, 10, [1], False, "not disclosed"),
    ("LI vendor, no objection", {}, 20, [7, 8], True, "allowed"),
    ("LI vendor, objected", {"vendor_legitimate_interests": []}, 20, [8], False, "objection"),
    ("LI purpose not established", {"purpose_legitimate_interests": [7]}, 20, [8], False, "objection"),
    ("flexible purpose forced to consent", {"publisher_restrictions": [{"purpose": 7, "type": 1, "vendors": [20]}]},
     20, [7], False, "no consent"),
    ("forced to consent, and consent given",
     {"publisher_restrictions": [{"purpose": 7, "type": 1, "vendors": [20]}], "vendor_consents": [10, 20]},
     20, [7], True, "allowed"),
    ("publisher forbids the purpose", {"publisher_restrictions": [{"purpose": 2, "type": 0, "vendors": [5, 10, 11]}]},
     10, [1, 2], False, "does not allow purpose 2"),
    ("restriction for another vendor", {"publisher_restrictions": [{"purpose": 2, "type": 0, "vendors": [11]}]},
     10, [1, 2], True, "allowed"),
    ("LI required of a consent-only vendor", {"publisher_restrictions": [{"purpose": 2, "type": 2, "vendors": [10]}]},
     10, [2], False, "requires LI"),
    ("deleted vendor", {"vendor_consents": [30]}, 30, [1], False, "not in Global Vendor List"),
    ("vendor unknown to the GVL", {"vendor_consents": [99], "disclosed_vendors": [99]}, 99, [1], False, "not in"),
    ("LI claimed for consent-only purpose 3", {"vendor_legitimate_interests": [40]}, 40, [3], False, "no consent"),
]


@pytest.mark.parametrize(("changes", "vendor", "purposes", "allowed", "reason"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_tcf_gate_verdicts(changes: dict[str, Any], vendor: int, purposes: list[int], allowed: bool,
                           reason: str) -> None:
    verdict = vendor_verdict(_tc(**changes), vendor, purposes, parse_gvl(GVL))
    assert verdict.allowed is allowed
    assert reason in verdict.reason


def test_tcf_gate_special_feature_needs_opt_in() -> None:
    gvl = parse_gvl(GVL)
    assert vendor_verdict(_tc(), 20, [8], gvl, special_features=[1]).allowed
    assert not vendor_verdict(_tc(special_feature_optins=[]), 20, [8], gvl, special_features=[1]).allowed


def test_tcf_gate_without_gvl_counts_consent_only() -> None:
    tc = _tc()
    assert vendor_verdict(tc, 10, [1, 7], None).allowed
    assert not vendor_verdict(tc, 20, [8], None).allowed  # LI unknowable without the GVL


def test_tcf_gate_no_string_means_no() -> None:
    assert not vendor_verdict(None, 10, [1]).allowed


def test_gvl_load_errors_name_the_file(tmp_path: Path) -> None:
    good = tmp_path / "gvl.json"
    good.write_text(json.dumps(GVL))
    assert load_gvl(good).vendors[20].flexible_purposes == {7}
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ConfigError, match=r"bad\.json: the Global Vendor List is not JSON"):
        load_gvl(bad)
    bad.write_text(json.dumps({"vendorListVersion": 1, "tcfPolicyVersion": 5,
                               "vendors": {"7": {"purposes": ["x"]}}}))
    with pytest.raises(ConfigError, match=r"vendors\.7\.purposes"):
        load_gvl(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_gvl(tmp_path / "missing.json")
