"""How old a consent decision may get before the visitor is asked again, per region.

``[policy.reprompt_after_days]`` maps region keys as ``[jurisdictions]`` writes them
("FR", "US-CA", "EEA", "*") to days. Without the table, the defaults below apply where a
regulator has said how long a choice stays valid; the cookie's ``max_age_days`` caps them all.

References: CNIL recommendation on cookies (2020-092): keep a choice, accept or refuse, for
6 months (so ask again after); IAB TCF v2.2 policy: a CMP re-establishes consent at least
every 13 months.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..config import Table

#: Region -> days. "TCF" is not a region: it applies wherever TCF vendors are configured and
#: the visitor's region is opt-in.
DEFAULTS: Mapping[str, int] = MappingProxyType({"FR": 183, "TCF": 395})


def read_reprompt(t: Table) -> Mapping[str, int]:
    from .jurisdiction import GROUPS

    if not t.present:
        return DEFAULTS
    out: dict[str, int] = {}
    for key in t.data:
        t.used.add(key)
        ok_key = key in ("*", "TCF") or key in GROUPS or (
            key[:2].isalpha() and key[:2].isupper() and (len(key) == 2 or key[2:3] == "-"))
        if not ok_key:
            t.error(key, "expected a region such as 'FR', 'US-CA', 'EEA', '*' or 'TCF'")
            continue
        value = t.data[key]
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 400:
            t.error(key, f"expected a number of days 1..400, got {value!r}")
            continue
        out[key] = value
    return MappingProxyType(out)


def max_age_days(rules: Mapping[str, int], region: str | None, tcf: bool) -> int | None:
    """The rule for one visitor: their region, its country, a group holding it, then "*";
    the TCF rule when TCF applies; the strictest (shortest) of what applies."""
    from .jurisdiction import GROUPS

    found: list[int] = []
    if region:
        country = region.split("-")[0]
        for key in (region, country):
            if key in rules:
                found.append(rules[key])
                break
        else:
            found += [days for group, days in rules.items()
                      if group in GROUPS and country in GROUPS[group]]
    if not found and "*" in rules:
        found.append(rules["*"])
    if tcf and "TCF" in rules:
        found.append(rules["TCF"])
    return min(found) if found else None
