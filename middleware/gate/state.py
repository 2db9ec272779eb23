"""ConsentState: the request state handed to the site (``scope["state"]``)."""

from __future__ import annotations

from collections.abc import Iterator
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

    __slots__ = ("_gate", "_resolved", "_scope", "consent_read", "raw_language")
    _gate: ConsentMiddleware
    _scope: Scope
    _resolved: bool
    consent_read: bool
    #: The request's first raw Accept-Language (None: none), set with the consent (read it
    #: only after ``consent``): what the plan is looked up by.
    raw_language: bytes | None

    # No Python __init__ (one called through the type costs ~0.7 k instructions per
    # request): ConsentMiddleware.__call__ makes it with the dict's own constructor
    # (``ConsentState(base)``, the server's state copied) and sets the four slots itself:
    # ``_gate`` and ``_scope`` (to resolve the consent), ``_resolved`` and ``consent_read``
    # False.

    @property
    def consent(self) -> Consent:
        """The request's consent, for the middleware (not counted as the site's read)."""
        return self.resolved_consent()

    def resolved_consent(self) -> Consent:
        """``consent`` as a method: CPython 3.11 calls a property's getter through C (a new
        eval loop, ~1 k instructions), a method inline; the responder reads it so."""
        if not self._resolved:
            self._resolved = True
            consent = self._gate.consent_for(self._scope, self)
            dict.__setitem__(self, "consent", consent)
            return consent
        value: Consent = dict.__getitem__(self, "consent")
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

