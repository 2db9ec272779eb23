"""The IAB Global Vendor List, as far as enforcement needs it: each vendor's declared legal bases.

The file is the owner's (a path in the TOML; ``consent-gate tcf update-gvl`` fetches it).
Loaded once at start-up; a file that does not parse stops start-up like any config error.

References: IAB TCF v2.3 "Global Vendor List format" (vendor-list.json v3: vendors.N.purposes,
legIntPurposes, flexiblePurposes, specialFeatures, deletedDate).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import ConfigError

#: Where IAB Europe publishes the current list (v3 format).
GVL_URL = "https://vendor-list.consensu.org/v3/vendor-list.json"


@dataclass(frozen=True)
class Vendor:
    id: int
    name: str
    purposes: frozenset[int]
    leg_int_purposes: frozenset[int]
    flexible_purposes: frozenset[int]
    special_features: frozenset[int]
    deleted: bool = False


@dataclass(frozen=True)
class GlobalVendorList:
    version: int
    policy_version: int
    vendors: Mapping[int, Vendor]


def parse_gvl(data: Any, source: str = "<gvl>") -> GlobalVendorList:
    def bad(key: str, expected: str) -> ConfigError:
        return ConfigError(source, key, expected)

    if not isinstance(data, dict) or not isinstance(data.get("vendors"), dict):
        raise bad("vendors", "expected a Global Vendor List (a JSON object with a 'vendors' object)")
    version, policy = data.get("vendorListVersion"), data.get("tcfPolicyVersion")
    if not isinstance(version, int) or not isinstance(policy, int):
        raise bad("vendorListVersion", "expected integer vendorListVersion and tcfPolicyVersion")
    vendors: dict[int, Vendor] = {}
    for key, raw in data["vendors"].items():
        if not isinstance(raw, dict) or not str(key).isdigit():
            raise bad(f"vendors.{key}", "expected a vendor object under its numeric id")

        def ids(name: str, raw: dict[str, Any] = raw, key: str = key) -> frozenset[int]:
            value = raw.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool)
                                                      for v in value):
                raise bad(f"vendors.{key}.{name}", "expected a list of integer ids")
            return frozenset(value)

        vendor_id = int(key)
        vendors[vendor_id] = Vendor(
            id=vendor_id, name=str(raw.get("name", "")), purposes=ids("purposes"),
            leg_int_purposes=ids("legIntPurposes"), flexible_purposes=ids("flexiblePurposes"),
            special_features=ids("specialFeatures"), deleted=raw.get("deletedDate") is not None)
    return GlobalVendorList(version=version, policy_version=policy, vendors=MappingProxyType(vendors))


def load_gvl(path: str | Path) -> GlobalVendorList:
    source = str(path)
    try:
        data = json.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read the Global Vendor List ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ConfigError(source, "", f"the Global Vendor List is not JSON ({exc})") from None
    return parse_gvl(data, source)
