"""The Django site's ASGI entry point (bare, without consent-gate).

    consent-gate run examples.django_site.asgi:application --config examples/django_site/partners.toml
    uvicorn examples.django_site.asgi:application          # bare

With DEBUG on, static files are served by Django's ``ASGIStaticFilesHandler`` (what
``runserver`` does); in production serve them from the proxy or a CDN.
"""

from __future__ import annotations

import os

# Before any Django import: settings are read from this module.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_site.settings")

from django.conf import settings
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

django_application = get_asgi_application()
application = ASGIStaticFilesHandler(django_application) if settings.DEBUG else django_application
