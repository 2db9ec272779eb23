"""The one-partner configuration the browser fetch-vector tests serve (tracker.partner.example)."""

from __future__ import annotations

from .config_text import config_text, partner

PARTNER = "tracker.partner.example"


def tracker_config(ledger: str, *, csp: str | None = None) -> str:
    """A partners.toml with one ads partner on PARTNER; ``csp`` sets ``[csp] mode`` if given."""
    return config_text(ledger=ledger, csp=csp,
                       partners={"tracker": partner(["ads"], [PARTNER], name="Tracker")})
