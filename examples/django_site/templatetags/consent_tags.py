"""Template filters for consent checks.

Django templates call methods only without arguments, so ``consent.allows("social")`` cannot
be written in a template. These filters take the argument instead::

    {% load consent_tags %}
    {% if consent|allows:"social" %} ... share buttons ... {% endif %}
    {% if consent|allows_partner:"google-adsense" %} ... ad unit ... {% endif %}

Both are False when ``consent`` is None (the site runs without consent-gate).
"""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def allows(consent: Any, purpose: str) -> bool:
    return consent is not None and bool(consent.allows(purpose))


@register.filter
def allows_partner(consent: Any, partner_id: str) -> bool:
    return consent is not None and bool(consent.allows_partner(partner_id))
