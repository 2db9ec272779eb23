"""Settings for the Django example. Kept small: no database, signed-cookie sessions.

``DJANGO_DEBUG=0`` turns DEBUG off (static files are then not served by ``asgi.py``);
``DJANGO_SECRET_KEY`` replaces the example key, which must never be used in production.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "django-insecure-consent-gate-example-key-do-not-use-in-production"
)
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "[::1]", "testserver"]

INSTALLED_APPS = [
    "django.contrib.staticfiles",
    "examples.django_site.apps.DjangoSiteConfig",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "examples.django_site.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                # {{ consent }} in every template rendered with a request (None when bare).
                "examples.django_site.context_processors.consent",
            ],
        },
    },
]

# No database: sessions live in a signed cookie (no migrations, nothing on disk).
DATABASES: dict[str, dict[str, str]] = {}
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
SESSION_COOKIE_HTTPONLY = True

STATIC_URL = "static/"

USE_TZ = True
LANGUAGE_CODE = "en"
