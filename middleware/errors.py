"""The exception tree: every error consent-gate raises on purpose derives from ConsentGateError.

Messages say what is wrong and how to fix it; they are built before raising so that
the CLI can print them as they are.
"""

from __future__ import annotations

from collections.abc import Sequence


class ConsentGateError(Exception):
    """Base class of consent-gate's own errors."""


class ConfigError(ConsentGateError):
    """The TOML configuration is invalid; start-up stops.

    ``source`` is the file, ``key_path`` the dotted path of the first bad key (``""`` for
    the whole file) and ``expected`` what would have been valid. ``problems`` holds every
    ``(key_path, message)`` found in the file, the first one included, so that one run
    shows them all; the message has one ``FILE: key.path: ...`` line per problem.
    """

    def __init__(self, source: str, key_path: str, expected: str, *,
                 more: Sequence[tuple[str, str]] = ()) -> None:
        self.source = source
        self.key_path = key_path
        self.expected = expected
        self.problems: tuple[tuple[str, str], ...] = ((key_path, expected), *more)
        super().__init__("\n".join(_line(source, k, e) for k, e in self.problems))


def _line(source: str, key_path: str, expected: str) -> str:
    where = f"{source}: {key_path}" if key_path else source
    return f"{where}: {expected}"


class SecretError(ConsentGateError):
    """No usable signing key; start-up stops (unless dev mode is explicitly on)."""


class LedgerUnavailable(ConsentGateError):
    """The ledger could not make records durable; partners stay disabled (fail closed)."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(f"ledger unavailable: {cause}")
