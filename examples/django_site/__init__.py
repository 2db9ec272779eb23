"""A minimal Django project (ASGI) behind consent-gate: templates, sessions, CSRF, static, streaming."""
