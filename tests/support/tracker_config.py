"""The one-partner configuration the browser fetch-vector tests serve (tracker.partner.example)."""

from __future__ import annotations

PARTNER = "tracker.partner.example"


def tracker_config(ledger: str, *, csp: str | None = None) -> str:
    """A partners.toml with one ads partner on PARTNER; ``csp`` sets ``[csp] mode`` if given."""
    csp_table = f'[csp]\nmode = "{csp}"\n\n' if csp else ""
    return f"""
[policy]
version = "v1"
effective = 2026-01-01

[purposes.ads]
title = "Ads"
description = "Ads."

[partners.tracker]
name = "Tracker"
purposes = ["ads"]
hosts = ["{PARTNER}"]
receives = ["ip_address"]
privacy_url = "https://partner.example/privacy"

{csp_table}[ledger]
path = "{ledger}"
"""
