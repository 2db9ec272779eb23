"""How deep the hypothesis searches go: the deep search locally, a fixed fraction of it in CI.

Each property test pins the number of examples its deep search needs
(``@settings(max_examples=examples(3000))``). A pinned number beats any hypothesis profile,
so the scaling has to happen where the number is written: ``examples(n)`` is ``n`` under the
``deep`` profile and a fifth of it (at least ``FLOOR``) under ``ci``. The deep search found
the bugs these tests pin; the CI share still runs every strategy and every explicit example
on each change, derandomized (hypothesis' own ``ci`` profile), in a fraction of the time.

The profile: ``HYPOTHESIS_PROFILE`` (``deep`` or ``ci``) if set, else ``ci`` under
``CI=true`` (.ci/run), else ``deep``. tests/conftest.py loads the same profile into
hypothesis, so tests without a pinned number follow it too.
"""

from __future__ import annotations

import os

__all__ = ["CI_SCALE", "FLOOR", "PROFILE", "choose", "examples"]

PROFILES = ("deep", "ci")
PROFILE = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") == "true" else "deep")
if PROFILE not in PROFILES:
    raise RuntimeError(f"HYPOTHESIS_PROFILE={PROFILE!r}: expected one of {', '.join(PROFILES)}")

#: The CI share of each pinned deep search.
CI_SCALE = 0.2
#: No search in CI is cut below this many examples (nor raised above its pinned number).
FLOOR = 30


def examples(n: int) -> int:
    """``n`` (the deep search) under the ``deep`` profile; ``n * CI_SCALE`` under ``ci``,
    never below ``min(n, FLOOR)``."""
    if PROFILE == "deep":
        return n
    return max(min(n, FLOOR), round(n * CI_SCALE))


def choose(deep: int, *, ci: int) -> int:
    """A size (rows, cuts, a stride) for the ``deep`` profile, or the cheaper ``ci`` one: the
    test that uses it says why ``ci`` still tells the property apart (e.g. a buffered export
    of ``ci`` rows would still break the memory bound)."""
    return deep if PROFILE == "deep" else ci
