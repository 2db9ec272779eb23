"""How ``consent-gate check`` shows the signal settings: pure text and JSON-able values."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .jurisdiction import GROUPS

if TYPE_CHECKING:
    from ..config import Config, Partner

_STANCE_TEXT = {"opt-in": "opt-in (banner; nothing runs before consent)",
                "opt-out": "opt-out (partners run; Do Not Sell link; GPC opts out)",
                "notice-only": "notice-only (partners run)"}


def signal_lines(config: Config) -> list[str]:
    j = config.jurisdictions
    lines: list[str] = []
    if j.enabled:
        source = ", ".join(filter(None, [
            f"header {j.country_header}" if j.country_header else "",
            f"region header {j.region_header}" if j.region_header else "",
            f"MaxMind database {j.geoip_db}" if j.geoip_db else ""]))
        lines += ["", f"Jurisdictions (region from {source}; they replace the stance above):"]
        for region, stance in j.regions.items():
            group = f"  ({len(GROUPS[region])} countries)" if region in GROUPS else ""
            label = "everywhere else" if region == "*" else region
            lines.append(f"  {label:<16} {_STANCE_TEXT[stance]}{group}")
        lines.append(f"  {'unknown region':<16} {_STANCE_TEXT[j.strictest]} (the strictest configured)")
    tcf_partners = [p for p in config.partners.values() if p.signals.tcf_vendor_id is not None]
    if tcf_partners or config.tcf.gvl_path:
        gvl = config.tcf.gvl
        lines += ["", f"IAB TCF v2.3: TC string from cookie {config.tcf.cookie!r} (read only); GVL: "
                  + (f"{config.tcf.gvl_path} (v{gvl.version}, {len(gvl.vendors)} vendors)"
                     if gvl is not None else "none (only consent counts, no legitimate interest)")]
    if config.gpp.enabled:
        other = f"; another tool's string from cookie {config.gpp.cookie!r}" if config.gpp.cookie else ""
        lines.append("GPP: usnat string built for opt-out and notice-only regions; __gpp stub served"
                     + other)
    if config.consent_mode.enabled:
        cm = config.consent_mode
        mapping = "; ".join(f"{s} <- {' + '.join(p) or 'never'}" for s, p in cm.signals.items())
        lines.append(f"Google Consent Mode v2: {cm.mode} ({mapping})")
    for tool in config.consent_sources:
        mapping = "; ".join(f"{p} <- {' + '.join(c)}" for p, c in tool.purposes.items())
        lines.append(f"Consent source {tool.tool} (cookie {tool.cookie!r}): {mapping}; ours wins")
    return lines


def partner_lines(partner: Partner) -> list[str]:
    s = partner.signals
    out = []
    if s.tcf_vendor_id is not None:
        purposes = ", ".join(map(str, s.tcf_purposes)) or "from the GVL"
        features = f"; special features {', '.join(map(str, s.tcf_special_features))}" \
            if s.tcf_special_features else ""
        out.append(f"      TCF:      vendor {s.tcf_vendor_id}, purposes {purposes}{features}")
    if s.google_tag:
        out.append("      Google tag: Consent Mode calls go before it")
    return out


def signals_dict(config: Config) -> dict[str, Any]:
    j = config.jurisdictions
    return {
        "jurisdictions": {"regions": dict(j.regions), "unknown": j.strictest if j.enabled else None,
                          "country_header": j.country_header, "region_header": j.region_header,
                          "geoip_db": j.geoip_db},
        "tcf": {"cookie": config.tcf.cookie, "gvl": config.tcf.gvl_path},
        "gpp": {"enabled": config.gpp.enabled, "cookie": config.gpp.cookie},
        "consent_mode": {"mode": config.consent_mode.mode,
                         "signals": {k: list(v) for k, v in config.consent_mode.signals.items()}},
        "consent_sources": [{"tool": s.tool, "cookie": s.cookie,
                             "purposes": {k: list(v) for k, v in s.purposes.items()}}
                            for s in config.consent_sources],
    }


def partner_dict(partner: Partner) -> dict[str, Any]:
    s = partner.signals
    return {"tcf_vendor_id": s.tcf_vendor_id, "tcf_purposes": list(s.tcf_purposes),
            "tcf_special_features": list(s.tcf_special_features), "google_tag": s.google_tag}
