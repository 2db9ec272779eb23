"""The Django example behind consent-gate, wrapped in code::

    uvicorn examples.django_site.wrapped:application

ConsentMiddleware goes *outside* Django's ASGI application (not in ``settings.MIDDLEWARE``):
it is ASGI middleware, and it must see every response, including static files and 404s.
"""

from __future__ import annotations

from pathlib import Path

from middleware import ConsentMiddleware

from .asgi import application as django_application

CONFIG = Path(__file__).resolve().with_name("partners.toml")

application = ConsentMiddleware(django_application, config=str(CONFIG))
app = application  # the name the other examples use
