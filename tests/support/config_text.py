"""partners.toml text for tests that need a file (the CLI, servers in a subprocess): one
builder instead of a hand-written TOML string per test module.

    config_text(ledger=path, partners={"tracker": partner(["ads"], ["t.example"])},
                ledger_options={"retention_days": 30})
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

ADS = {"ads": {"title": "Ads", "description": "Ads."}}


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, str):
        return json.dumps(v)  # a valid TOML basic string (escapes included)
    if isinstance(v, Sequence):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"no TOML form for {v!r}")


def table(name: str, values: Mapping[str, Any]) -> str:
    """``[name]`` and its ``key = value`` lines (values: str, bool, int, date, lists)."""
    return f"[{name}]\n" + "".join(f"{k} = {_value(v)}\n" for k, v in values.items()) + "\n"


def partner(purposes: Sequence[str], hosts: Sequence[str], *, name: str | None = None,
            receives: Sequence[str] = ("ip_address",),
            privacy_url: str = "https://partner.example/privacy", **more: Any) -> dict[str, Any]:
    """The values of one ``[partners.ID]`` table (``name`` defaults to the id)."""
    values: dict[str, Any] = {"purposes": list(purposes), "hosts": list(hosts),
                              "receives": list(receives), "privacy_url": privacy_url, **more}
    if name is not None:
        values = {"name": name, **values}
    return values


def config_text(*, ledger: str | None = None, version: str = "v1",
                effective: dt.date = dt.date(2026, 1, 1),
                purposes: Mapping[str, Mapping[str, Any]] = ADS,
                partners: Mapping[str, Mapping[str, Any]] | None = None,
                csp: str | None = None, ledger_options: Mapping[str, Any] | None = None,
                after_partner: Mapping[str, str] | None = None) -> str:
    """A whole partners.toml. ``after_partner``: raw TOML put after a partner's table (its
    ``[partners.ID.forward]``, say), by partner id."""
    out = table("policy", {"version": version, "effective": effective})
    for pid, values in purposes.items():
        out += table(f"purposes.{pid}", values)
    for pid, values in (partners or {}).items():
        out += table(f"partners.{pid}", {"name": pid, **values} if "name" not in values else values)
        if after_partner and pid in after_partner:
            out += after_partner[pid].rstrip("\n") + "\n\n"
    if csp is not None:
        out += table("csp", {"mode": csp})
    if ledger is not None or ledger_options:
        out += table("ledger", {**({"path": ledger} if ledger is not None else {}),
                                **(ledger_options or {})})
    return out
