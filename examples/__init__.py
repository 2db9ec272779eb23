"""Example sites for consent-gate."""
