"""Activity controls: one pure decision per partner and event, applied to a copy."""

from __future__ import annotations

import pytest

from middleware.forward.activity import Action, Signals, apply, decide, mask_ip

NEC = frozenset({"necessary"})
VALUES = {"email_sha256": "e" * 64, "phone_sha256": "p" * 64, "order_id": "o-1",
          "cookie._fbp": "fb.1.2.3", "ip": "203.0.113.0", "page_url": "https://s/x", "value": 3}


def sig(granted: set[str], **kw: object) -> Signals:
    return Signals(granted=frozenset(granted), **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("signals", "events", "basis", "send", "transforms", "ldu"), [
    # deny by default: no consent for every purpose of the partner -> drop
    (sig(set(), decided=True), frozenset(), "consent", False, set(), False),
    (sig({"ads"}, decided=True), frozenset(), "consent", False, set(), False),  # ads+analytics needed
    # an undecided visitor under an opt-out default still gets nothing with basis "consent"
    (sig({"ads", "analytics"}, decided=False, default="allow"), frozenset(), "consent", False, set(), False),
    (sig({"ads", "analytics"}, decided=False, default="allow"), frozenset(), "opt-out", True, set(), False),
    (sig({"ads", "analytics"}, decided=False, default="deny"), frozenset(), "opt-out", False, set(), False),
    (sig({"ads", "analytics"}, decided=True), frozenset(), "consent", True, set(), False),
    # an event not in the partner's list
    (sig({"ads", "analytics"}, decided=True), frozenset({"lead"}), "consent", False, set(), False),
    # GPC / sale opt-out: Prebid's US behaviour + the partner's limited-data-use flag
    (sig({"ads", "analytics"}, decided=True, opt_out_sale=True), frozenset(), "consent", True,
     {"strip_user_ids", "strip_extended_ids", "mask_ip"}, True),
    # TCF applies: purpose 1 missing drops; purpose 4 missing strips identifiers
    (sig({"ads", "analytics"}, decided=True, tcf_purposes=frozenset({2, 3})), frozenset(), "consent",
     False, set(), False),
    (sig({"ads", "analytics"}, decided=True, tcf_purposes=frozenset({1, 7})), frozenset(), "consent",
     True, {"strip_user_ids", "strip_extended_ids"}, False),
    (sig({"ads", "analytics"}, decided=True, tcf_purposes=frozenset({1, 4, 7})), frozenset(), "consent",
     True, set(), False),
])
def test_activity_decision_table(signals: Signals, events: frozenset[str], basis: str, send: bool,
                                 transforms: set[str], ldu: bool) -> None:
    action = decide(("ads", "analytics"), NEC, events, basis, "purchase", signals)
    assert action.send is send, action.reason
    assert set(action.transforms) == transforms
    assert action.limited_data_use is ldu


def test_activity_tcf_vendor_not_allowed_drops() -> None:
    s = sig({"ads", "analytics"}, decided=True, tcf_blocked=frozenset({"meta"}))
    assert not decide(("ads",), NEC, frozenset(), "consent", "x", s, "meta").send
    assert decide(("ads",), NEC, frozenset(), "consent", "x", s, "ga4").send


def test_activity_necessary_partner_needs_no_choice() -> None:
    action = decide(("necessary",), NEC, frozenset(), "consent", "purchase", sig(set(), decided=False))
    assert action.send and action.reason == "strictly necessary"


def test_activity_decide_is_pure() -> None:
    s = sig({"ads", "analytics"}, decided=True, opt_out_sale=True)
    assert decide(("ads",), NEC, frozenset(), "consent", "x", s) == decide(
        ("ads",), NEC, frozenset(), "consent", "x", s)


def test_activity_apply_strips_on_a_copy_and_names_removed_fields() -> None:
    action = Action(True, "gpc", frozenset({"strip_user_ids", "strip_extended_ids", "mask_ip"}), True, True)
    original = dict(VALUES)
    out, removed = apply(action, VALUES)
    assert original == VALUES  # a copy
    assert set(removed) == {"email_sha256", "phone_sha256", "order_id", "cookie._fbp"}
    assert out == {"ip": "203.0.0.0", "page_url": "https://s/x", "value": 3}
    assert action.name == "mask_ip+strip_extended_ids+strip_user_ids"


def test_activity_coarsen_geo_removes_the_address() -> None:
    out, removed = apply(Action(True, "x", frozenset({"coarsen_geo"})), VALUES)
    assert "ip" not in out and removed == ("ip",)


@pytest.mark.parametrize(("ip", "masked"), [("203.0.113.0", "203.0.0.0"), ("2001:db8:1::", "2001:db8::")])
def test_activity_mask_ip_keeps_network_only(ip: str, masked: str) -> None:
    assert mask_ip(ip) == masked
