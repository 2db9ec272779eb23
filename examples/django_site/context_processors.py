"""``{{ consent }}`` in Django templates: the visitor's consent, or None without consent-gate."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from middleware import Consent, consent_of


def request_consent(request: HttpRequest) -> Consent | None:
    """The consent of ``request`` (an ``ASGIRequest``: it keeps the ASGI scope), or None when
    the site runs bare, without ConsentMiddleware in front of it."""
    try:
        return consent_of(request)
    except LookupError:
        return None


def consent(request: HttpRequest) -> dict[str, Any]:
    return {"consent": request_consent(request)}
