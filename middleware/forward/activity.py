"""Activity controls: per partner and event, what may be sent, decided as a value.

After Prebid Server's privacy enforcement: one pure function of the consent, the browser's
opt-out signal, the jurisdiction and the TCF signal returns an :class:`Action`. It is applied
to a copy of the fields (``apply``), and the action and the fields it removed go into the
ledger record. Deny by default: without consent to every purpose of the partner nothing is
sent and nothing is queued.

References: Prebid Server activity controls and privacy modules,
https://docs.prebid.org/prebid-server/features/pbs-activitycontrols.html ;
Global Privacy Control, https://privacycg.github.io/gpc-spec/ .
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

Transform: TypeAlias = Literal["strip_user_ids", "strip_extended_ids", "mask_ip", "coarsen_geo"]

#: Which fields each transform removes or changes.
USER_IDS = ("email_sha256", "phone_sha256", "order_id")
EXTENDED_ID_PREFIX = "cookie."


@dataclass(frozen=True)
class Signals:
    """The inputs of a decision, read once from the request's Consent."""

    granted: frozenset[str]
    decided: bool
    #: Sale/sharing opt-out: Sec-GPC honoured (or a US-state GPP opt-out).
    opt_out_sale: bool = False
    #: The policy's stance for visitors who have not chosen ("deny": opt-in, "allow": opt-out).
    default: Literal["deny", "allow"] = "deny"
    jurisdiction: str | None = None
    #: TCF purposes consented (None where the TCF does not apply).
    tcf_purposes: frozenset[int] | None = None
    #: Partners whose TCF vendor the TC string does not allow.
    tcf_blocked: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Action:
    send: bool
    reason: str
    transforms: frozenset[Transform] = frozenset()
    #: Ask the partner to limit its use (Meta data_processing_options LDU, TikTok limited_data_use).
    limited_data_use: bool = False
    gpc: bool = False

    @property
    def name(self) -> str:
        if not self.send:
            return "drop"
        return "+".join(sorted(self.transforms)) or "send"


def decide(purposes: tuple[str, ...], necessary: frozenset[str], events: frozenset[str],
           basis: str, event: str, s: Signals, partner: str = "") -> Action:
    """The action for one partner (its id and ``purposes``) and one event; pure, never raises."""
    if events and event not in events:
        return Action(False, f"event {event!r} is not forwarded to this partner")
    if not purposes:
        return Action(False, "the partner has no purpose")
    if all(p in necessary for p in purposes):
        return Action(True, "strictly necessary")
    missing = [p for p in purposes if p not in s.granted]
    if missing:
        return Action(False, f"no consent for {', '.join(missing)}")
    if not s.decided and not (basis == "opt-out" and s.default == "allow"):
        return Action(False, "the visitor has not chosen (server-side forwarding needs a choice)")
    transforms: set[Transform] = set()
    if partner and partner in s.tcf_blocked:
        return Action(False, "the TC string does not allow this partner's TCF vendor")
    if s.tcf_purposes is not None:
        if 1 not in s.tcf_purposes:
            return Action(False, "TCF purpose 1 (store/access information) not consented")
        if 4 not in s.tcf_purposes:  # no personalised advertising
            transforms |= {"strip_user_ids", "strip_extended_ids"}
    if s.opt_out_sale:
        # What Prebid does under a US opt-out: no first-party user data, no extended ids,
        # no precise location.
        transforms |= {"strip_user_ids", "strip_extended_ids", "mask_ip"}
    return Action(True, "consent" if s.decided else "opt-out not exercised",
                  frozenset(transforms), limited_data_use=s.opt_out_sale, gpc=s.opt_out_sale)


def apply(action: Action, values: Mapping[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    """A copy of ``values`` with the action applied, and the names of the fields removed."""
    out = dict(values)
    removed: list[str] = []

    def drop(name: str) -> None:
        if name in out:
            del out[name]
            removed.append(name)

    t = action.transforms
    if "strip_user_ids" in t:
        for name in USER_IDS:
            drop(name)
    if "strip_extended_ids" in t:
        for name in [n for n in out if n.startswith(EXTENDED_ID_PREFIX)]:
            drop(name)
    if "coarsen_geo" in t:
        drop("ip")
    elif "mask_ip" in t and "ip" in out:
        out["ip"] = mask_ip(out["ip"])
    return out, tuple(removed)


def mask_ip(ip: str) -> str:
    """The address with only its network kept: IPv4 /16, IPv6 /32 (coarser than the /24 and
    /48 every forwarded address already is)."""
    if ":" in ip:
        groups = ([*ip.split("::")[0].split(":"), "0", "0"])[:2]
        return ":".join(groups) + "::"
    a, b, *_ = [*ip.split("."), "0", "0"]
    return f"{a}.{b}.0.0"
