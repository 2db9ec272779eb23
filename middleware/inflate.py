"""The limits of decoding a compressed body, and the error that ends its response.

An app's compressed HTML must be decoded to be rewritten, but a small body can expand to
hundreds of megabytes (a "zip bomb"). ``gate/encodings.py`` hands out at most ``STEP`` bytes at
a time (the caller rewrites and sends each piece before asking for the next) and raises
``InflateError`` once a layer's decoded size passes ``FLOOR + RATIO * its input``: the caller
then ends the response, it never passes the rest raw.
"""

from __future__ import annotations

__all__ = ["FLOOR", "RATIO", "STEP", "InflateError"]

STEP = 64 * 1024
RATIO = 100
FLOOR = 1024 * 1024


class InflateError(Exception):
    """The body is corrupt or expands past the cap; carries what happened for the log."""
