"""The Litestar example behind consent-gate::

    uvicorn examples.litestar_app.wrapped:app

Wrap the whole Litestar application (recommended)::

    app = ConsentMiddleware(create_app(), config="partners.toml")

Litestar's own middleware list also accepts it, ``Litestar(..., middleware=[DefineMiddleware(
ConsentMiddleware, config="partners.toml")])`` (``app_with_define_middleware`` below), but
Litestar runs that middleware only for requests that match one of the app's routes. consent-gate's
own routes (``/.consent/choice``, ``/.consent/preferences``, ...) match none, so Litestar answers
them with 404 and the banner's buttons cannot work; pages and the consent reading do. Use it only
if you also mount those routes yourself; otherwise wrap the app from outside as ``app`` does.
"""

from __future__ import annotations

from pathlib import Path

from litestar.middleware import DefineMiddleware

from middleware import ConsentMiddleware

from .app import create_app

CONFIG = Path(__file__).resolve().with_name("partners.toml")

app = ConsentMiddleware(create_app(), config=str(CONFIG))


def app_with_define_middleware() -> object:
    """The alternative above, as a factory (``uvicorn --factory``): it builds a second
    ConsentMiddleware, so it is not created at import time."""
    return create_app(middleware=[DefineMiddleware(ConsentMiddleware, config=str(CONFIG))])
