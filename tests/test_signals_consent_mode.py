"""Consent Mode v2 calls: default from the jurisdiction, update from the choice, advanced extras."""

from __future__ import annotations

import json
import re
from types import MappingProxyType
from typing import Any

from middleware.signals.consent_mode import ConsentModeConfig, script, state

SIGNALS = MappingProxyType({"ad_storage": ("ads",), "ad_user_data": ("ads",),
                            "ad_personalization": ("ads", "personalisation"), "analytics_storage": ("analytics",)})
BASIC = ConsentModeConfig(mode="basic", signals=SIGNALS)
ADVANCED = ConsentModeConfig(mode="advanced", signals=SIGNALS, wait_for_update_ms=300)


def _calls(html: bytes) -> list[tuple[str, str, Any]]:
    body = html.decode()
    return [(m.group(1), m.group(2), json.loads(m.group(3)) if m.group(3).startswith("{") else m.group(3))
            for m in re.finditer(r"gtag\('(consent|set)','(\w+)',(\{[^}]*\}|true)\)", body)]


def test_consent_mode_state_needs_every_mapped_purpose() -> None:
    assert state(BASIC, frozenset({"ads"})) == {"ad_storage": "granted", "ad_user_data": "granted",
                                               "ad_personalization": "denied", "analytics_storage": "denied"}
    assert set(state(ConsentModeConfig(mode="basic"), frozenset({"ads"})).values()) == {"denied"}


def test_consent_mode_undecided_opt_in_visitor_gets_denied_default_only() -> None:
    out = script(BASIC, before_choice=frozenset(), granted=frozenset(), decided=False, banner_visible=True,
                 nonce="abc")
    assert out.startswith(b'<script nonce="abc">window.dataLayer=window.dataLayer||[];')
    assert _calls(out) == [("consent", "default", dict.fromkeys(SIGNALS, "denied"))]


def test_consent_mode_decided_visitor_gets_update_after_default() -> None:
    out = script(BASIC, before_choice=frozenset(), granted=frozenset({"ads", "analytics", "personalisation"}),
                 decided=True, banner_visible=False)
    assert _calls(out) == [("consent", "default", dict.fromkeys(SIGNALS, "denied")),
                           ("consent", "update", dict.fromkeys(SIGNALS, "granted"))]


def test_consent_mode_opt_out_region_defaults_to_granted() -> None:
    out = script(BASIC, before_choice=frozenset({"ads", "analytics", "personalisation"}),
                 granted=frozenset(), decided=False, banner_visible=False)
    assert _calls(out) == [("consent", "default", dict.fromkeys(SIGNALS, "granted"))]


def test_consent_mode_advanced_waits_only_while_the_banner_is_open() -> None:
    open_banner = script(ADVANCED, before_choice=frozenset(), granted=frozenset(), decided=False,
                         banner_visible=True)
    calls = _calls(open_banner)
    assert calls[0][2]["wait_for_update"] == 300
    assert ("set", "ads_data_redaction", "true") in calls
    decided = script(ADVANCED, before_choice=frozenset(), granted=frozenset({"ads"}), decided=True,
                     banner_visible=False)
    assert "wait_for_update" not in decided.decode()
    assert b"ads_data_redaction" not in decided  # ad_storage granted
    basic = script(BASIC, before_choice=frozenset(), granted=frozenset(), decided=False, banner_visible=True)
    assert b"wait_for_update" not in basic and b"ads_data_redaction" not in basic
