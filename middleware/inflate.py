"""gzip / deflate bodies decoded in bounded steps, with a cap on the expansion ratio.

An app's compressed HTML must be decoded to be rewritten, but a small body can expand to
hundreds of megabytes (a "zip bomb"). The decoder hands out at most ``step`` bytes at a time
(the caller rewrites and sends each piece before asking for the next) and stops with
``InflateError`` once the decoded size passes ``floor + ratio * compressed size``: the caller
then ends the response, it never passes the rest raw.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

__all__ = ["DECODABLE", "InflateError", "Inflater"]

#: Content-Encoding values we decode (``x-gzip`` is an alias browsers accept).
DECODABLE = frozenset({"gzip", "x-gzip", "deflate"})
STEP = 64 * 1024
RATIO = 100
FLOOR = 1024 * 1024


class InflateError(Exception):
    """The body is corrupt or expands past the cap; carries what happened for the log."""


class Inflater:
    """Incremental decoder of one response body."""

    def __init__(self, encoding: str, *, step: int = STEP, ratio: int = RATIO,
                 floor: int = FLOOR) -> None:
        # wbits 47 = gzip or zlib header (auto-detected); deflate is zlib-wrapped per RFC 9110,
        # but some servers send raw deflate: 15 covers the wrapped form, the raw one fails closed.
        self._z = zlib.decompressobj(15 if encoding == "deflate" else 47)
        self.step = step
        self.ratio = ratio
        self.floor = floor
        self.compressed = 0
        self.decoded = 0

    def pieces(self, data: bytes, *, final: bool) -> Iterator[bytes]:
        """Decoded pieces of ``data`` (each at most ``step`` bytes), lazily: the caller sends
        one before the next is decoded, so memory stays at one step."""
        self.compressed += len(data)
        pending = data
        while True:
            try:
                piece = self._z.decompress(pending, self.step)
            except zlib.error as exc:
                raise InflateError(f"corrupt compressed body ({exc})") from None
            pending = self._z.unconsumed_tail
            if piece:
                self.decoded += len(piece)
                if self.decoded > self.floor + self.ratio * self.compressed:
                    raise InflateError(
                        f"compressed body expands more than {self.ratio}:1 "
                        f"({self.compressed} bytes in, over {self.decoded} out)")
                yield piece
            if not pending and len(piece) < self.step:
                break
        if final:
            try:
                rest = self._z.flush()
            except zlib.error as exc:  # pragma: no cover - flush after a full decompress
                raise InflateError(f"corrupt compressed body ({exc})") from None
            if rest:
                self.decoded += len(rest)
                yield rest
