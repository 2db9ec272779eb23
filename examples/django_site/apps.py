"""The example is also a Django app, so its templates, static files and template tags are found."""

from __future__ import annotations

from django.apps import AppConfig


class DjangoSiteConfig(AppConfig):
    name = "examples.django_site"
    label = "django_site"
    verbose_name = "consent-gate Django example"
