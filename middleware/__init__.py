"""consent-gate: consent-aware ad-serving middleware for ASGI sites.

    app = ConsentMiddleware(app, config="partners.toml")

The visitor's consent is at ``scope["state"]["consent"]`` (``request.state.consent``);
:func:`consent_of` finds it from any framework's request object.
"""

from __future__ import annotations

from typing import Any

from .asgi import ConsentMiddleware as ConsentMiddleware
from .config import Config as Config
from .config import load_config as load_config
from .consent import Consent as Consent
from .consent import ConsentCodec as ConsentCodec
from .consent import ConsentResolver as ConsentResolver
from .consent import StoredChoice as StoredChoice
from .errors import ConfigError as ConfigError
from .errors import ConsentGateError as ConsentGateError
from .errors import LedgerUnavailable as LedgerUnavailable
from .errors import SecretError as SecretError
from .forward.api import forward as forward

__all__ = [
    "Config",
    "ConfigError",
    "Consent",
    "ConsentCodec",
    "ConsentGateError",
    "ConsentMiddleware",
    "ConsentResolver",
    "LedgerUnavailable",
    "SecretError",
    "StoredChoice",
    "consent_of",
    "forward",
    "load_config",
]


def consent_of(request_or_scope: Any) -> Consent:
    """The consent of the current request, from a raw ASGI scope or any request object with a
    ``scope`` (Starlette, FastAPI, Litestar, Django's ASGIRequest).

    Raises LookupError when the request did not pass through ConsentMiddleware.
    """
    scope = request_or_scope if isinstance(request_or_scope, dict) else getattr(
        request_or_scope, "scope", None)
    consent = (scope or {}).get("state", {}).get("consent") if isinstance(scope, dict) else None
    if not isinstance(consent, Consent):
        raise LookupError("no consent on this request: is the app wrapped by ConsentMiddleware?")
    return consent
