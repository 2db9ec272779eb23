"""Suite-wide set-up: the hypothesis profile (tests/support/budget.py says which and why)."""

from __future__ import annotations

from hypothesis import settings

from tests.support import budget

# "ci" is hypothesis' own (derandomized, no example database, no too_slow health check);
# "deep" is its default: random, with the local example database.
settings.register_profile("deep", settings.get_profile("default"))
settings.load_profile(budget.PROFILE)
