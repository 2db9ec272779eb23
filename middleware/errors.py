"""The exception tree: every error consent-gate raises on purpose derives from ConsentGateError.

Messages say what is wrong and how to fix it; they are built before raising so that
the CLI can print them as they are.
"""

from __future__ import annotations


class ConsentGateError(Exception):
    """Base class of consent-gate's own errors."""


class ConfigError(ConsentGateError):
    """The TOML configuration is invalid; start-up stops.

    ``source`` is the file, ``key_path`` the dotted path of the bad key (``""`` for the
    whole file) and ``expected`` what would have been valid.
    """

    def __init__(self, source: str, key_path: str, expected: str) -> None:
        self.source = source
        self.key_path = key_path
        self.expected = expected
        where = f"{source}: {key_path}" if key_path else source
        super().__init__(f"{where}: {expected}")


class SecretError(ConsentGateError):
    """No usable signing key; start-up stops (unless dev mode is explicitly on)."""


class LedgerUnavailable(ConsentGateError):
    """The ledger could not make records durable; partners stay disabled (fail closed)."""

    def __init__(self, cause: str) -> None:
        self.cause = cause
        super().__init__(f"ledger unavailable: {cause}")
