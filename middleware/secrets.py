"""Signing keys for the consent cookie, read from the environment at start-up.

The variable named by ``[policy] secret_env`` holds one key or several separated by
commas or whitespace, newest first: the newest signs, all of them verify, so a key can
be rotated without logging every visitor out.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

from .env import DEV_ENV
from .errors import SecretError

logger = logging.getLogger("consent_gate")

MIN_KEY_LENGTH = 32
#: Fixed so that dev cookies survive a restart; never accepted unless dev mode is on.
DEV_KEY = "consent-gate-DEVELOPMENT-ONLY-key-do-not-use-in-production"


def dev_mode_requested(environ: Mapping[str, str] | None = None) -> bool:
    value = (os.environ if environ is None else environ).get(DEV_ENV, "")
    return value.strip().lower() in {"1", "true", "yes", "on"}


def signing_keys(secret_env: str, *, dev: bool = False,
                 environ: Mapping[str, str] | None = None, warn: bool = True) -> tuple[str, ...]:
    """Return the keys, newest first; raise SecretError when none is usable."""
    env = os.environ if environ is None else environ
    raw = env.get(secret_env, "")
    keys = tuple(k for k in re.split(r"[\s,]+", raw) if k)
    short = [i for i, k in enumerate(keys) if len(k) < MIN_KEY_LENGTH]
    if keys and not short:
        return keys
    if dev:
        if not warn:
            return (DEV_KEY,)
        logger.warning(
            "\n" + "!" * 78 + "\n"
            "!! consent-gate DEV MODE: consent cookies are signed with a PUBLIC development key.\n"
            "!! Anyone can forge consent. Never use this in production: set %s to a random\n"
            "!! secret of at least %d characters, e.g. python -c 'import secrets; "
            "print(secrets.token_urlsafe(48))'\n" + "!" * 78,
            secret_env, MIN_KEY_LENGTH,
        )
        return (DEV_KEY,)
    if not keys:
        raise SecretError(
            f"environment variable {secret_env} is not set: it must hold the key that signs consent "
            f"cookies (at least {MIN_KEY_LENGTH} characters; generate one with "
            "python -c 'import secrets; print(secrets.token_urlsafe(48))'). "
            f"For local development only, set {DEV_ENV}=1 to use an insecure development key."
        )
    raise SecretError(
        f"environment variable {secret_env}: key number {short[0] + 1} is {len(keys[short[0]])} "
        f"characters long; every key must have at least {MIN_KEY_LENGTH}"
    )
