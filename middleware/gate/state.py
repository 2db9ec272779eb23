"""ConsentState: the request state handed to the site (``scope["state"]``)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from starlette.types import Scope

from ..consent import Consent

if TYPE_CHECKING:
    from ..asgi import ConsentMiddleware


class ConsentState(dict[str, Any]):
    """The request state handed to the site. It notices when the site reads the consent, so
    that any response that may depend on it (JSON, a 404 page) is kept out of shared caches.

    The consent itself is resolved on first use (by the site or by the responder): a view that
    never reads it and returns JSON or a file does not pay for cookie and signal parsing.
    Every way of reading the mapping (``[]``, ``get``, ``in``, ``len``/truthiness, iteration,
    ``copy``, ``dict()``) resolves it first, so no reader sees the state without it.
    """

    __slots__ = ("_gate", "_resolved", "_scope", "consent_read")

    def __init__(self, base: Mapping[str, Any] | None, gate: ConsentMiddleware,
                 scope: Scope) -> None:
        if base:
            dict.update(self, base)
        self._gate = gate
        self._scope = scope
        self._resolved = False
        self.consent_read = False

    @property
    def consent(self) -> Consent:
        """The request's consent, for the middleware (not counted as the site's read)."""
        if not self._resolved:
            self._resolved = True
            super().__setitem__("consent", self._gate.consent_for(self._scope))
        value: Consent = super().__getitem__("consent")
        return value

    def _site_reads(self, key: object) -> None:
        if key == "consent":
            self.consent_read = True
        if not self._resolved:
            self.consent  # noqa: B018 - resolves it

    def __getitem__(self, key: str) -> Any:
        self._site_reads(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self._site_reads(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        self._site_reads(None)
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._site_reads(None)
        return super().__iter__()

    def __len__(self) -> int:  # also truthiness: ``scope.get("state") or {}`` keeps this one
        self._site_reads(None)
        return super().__len__()

    def keys(self) -> Any:
        self._site_reads(None)
        return super().keys()

    def items(self) -> Any:
        self._site_reads(None)
        return super().items()

    def values(self) -> Any:
        self._site_reads(None)
        return super().values()

    def copy(self) -> dict[str, Any]:
        self._site_reads(None)
        return dict(super().items())

