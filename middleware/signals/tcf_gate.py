"""May this TCF vendor run? The TC string's answer for a partner's vendor id and TCF purposes.

A vendor runs only if it was disclosed to the visitor (v2.3), is not deleted from the GVL, and
has, for every purpose it needs, the legal basis its GVL entry declares, as changed by the
publisher's restrictions: consent (purpose consent + vendor consent) or legitimate interest
(purpose LI + vendor LI: the visitor did not object), LI only where the policy allows it.
Without a GVL only consent counts (we cannot know the vendor declared LI).

References: IAB TCF v2.3 Policies, Appendix A (purposes 1, 3, 4, 5, 6 are consent-only);
"TC string format", publisher restrictions (0 not allowed, 1 require consent, 2 require LI).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .gvl import GlobalVendorList
from .tcf import RestrictionType, TCString

#: Purposes for which TCF v2.2+ allows no legitimate interest.
CONSENT_ONLY_PURPOSES = frozenset({1, 3, 4, 5, 6})


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str


def vendor_verdict(tc: TCString | None, vendor_id: int, purposes: Iterable[int],
                   gvl: GlobalVendorList | None = None, special_features: Iterable[int] = ()) -> Verdict:
    if tc is None:
        return Verdict(False, "no valid TC string")
    if vendor_id not in tc.disclosed_vendors:
        return Verdict(False, f"vendor {vendor_id} was not disclosed to the visitor")
    vendor = gvl.vendors.get(vendor_id) if gvl is not None else None
    if gvl is not None and (vendor is None or vendor.deleted):
        return Verdict(False, f"vendor {vendor_id} is not in Global Vendor List v{gvl.version}")
    for feature in special_features:
        if feature not in tc.special_feature_optins:
            return Verdict(False, f"no opt-in to special feature {feature}")
    for purpose in purposes:
        restrictions = tc.restrictions_for(vendor_id, purpose)
        if RestrictionType.NOT_ALLOWED in restrictions or RestrictionType.UNDEFINED in restrictions:
            return Verdict(False, f"the publisher does not allow purpose {purpose} for vendor {vendor_id}")
        basis = "consent"
        if vendor is not None and purpose in vendor.leg_int_purposes and purpose not in vendor.purposes:
            basis = "li"
        if vendor is not None and purpose in vendor.flexible_purposes:
            if RestrictionType.REQUIRE_CONSENT in restrictions:
                basis = "consent"
            elif RestrictionType.REQUIRE_LEGITIMATE_INTEREST in restrictions:
                basis = "li"
        elif RestrictionType.REQUIRE_LEGITIMATE_INTEREST in restrictions and basis == "consent":
            # A vendor that cannot switch to LI for this purpose: the restriction leaves no basis.
            return Verdict(False, f"purpose {purpose}: publisher requires LI, vendor {vendor_id} "
                           "uses consent")
        if basis == "li" and purpose in CONSENT_ONLY_PURPOSES:
            basis = "consent"
        if basis == "consent":
            if purpose not in tc.purpose_consents or vendor_id not in tc.vendor_consents:
                return Verdict(False, f"no consent for purpose {purpose} and vendor {vendor_id}")
        elif (purpose not in tc.purpose_legitimate_interests
              or vendor_id not in tc.vendor_legitimate_interests):
            return Verdict(False, f"objection to legitimate interest for purpose {purpose}, "
                           f"vendor {vendor_id}")
    return Verdict(True, "allowed")
