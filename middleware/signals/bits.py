"""Bit fields packed in web-safe base64, as IAB's TCF and GPP strings carry them.

Both formats write integers most-significant bit first, six bits per base64url character,
no padding. GPP adds Fibonacci-coded integers (Zeckendorf code ending in ``11``).

References: IAB TCF v2 "Consent string and vendor list formats"; IAB GPP v1 "Consent string
specification" (base64url, fibonacci integer, fibonacci integer range).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}


class BitsError(ValueError):
    """A string is not validly packed (bad character, truncated field, bad code)."""


class BitReader:
    """Reads big-endian bit fields from a base64url string."""

    def __init__(self, text: str) -> None:
        value = 0
        for char in text:
            digit = _VALUE.get(char)
            if digit is None:
                raise BitsError(f"character {char!r} is not base64url")
            value = (value << 6) | digit
        self._value = value
        self.length = 6 * len(text)
        self.pos = 0

    def uint(self, width: int) -> int:
        end = self.pos + width
        if end > self.length:
            raise BitsError(f"truncated: {width} bits wanted at bit {self.pos} of {self.length}")
        out = (self._value >> (self.length - end)) & ((1 << width) - 1)
        self.pos = end
        return out

    def flag(self) -> bool:
        return self.uint(1) == 1

    def bitfield(self, width: int) -> frozenset[int]:
        """Ids 1..width whose bit is set."""
        bits = self.uint(width)
        return frozenset(i + 1 for i in range(width) if bits >> (width - 1 - i) & 1)

    def fibonacci(self) -> int:
        """One Fibonacci-coded positive integer (bits for 1, 2, 3, 5, 8, ... then a closing 1)."""
        total, a, b, previous = 0, 1, 2, False
        while True:
            bit = self.flag()
            if bit and previous:
                return total
            if bit:
                total += a
            previous = bit
            a, b = b, a + b
            if a > 1 << 40:
                raise BitsError("fibonacci integer too long")


class BitWriter:
    """Builds a bit string, then packs it into base64url."""

    def __init__(self) -> None:
        self._value = 0
        self.length = 0

    def uint(self, value: int, width: int) -> None:
        if not 0 <= value < 1 << width:
            raise ValueError(f"{value} does not fit in {width} bits")
        self._value = (self._value << width) | value
        self.length += width

    def flag(self, value: bool) -> None:
        self.uint(int(value), 1)

    def fibonacci(self, value: int) -> None:
        if value < 1:
            raise ValueError("fibonacci coding needs a positive integer")
        fibs = [1, 2]
        while fibs[-1] + fibs[-2] <= value:
            fibs.append(fibs[-1] + fibs[-2])
        bits = [0] * len(fibs)
        for i in range(len(fibs) - 1, -1, -1):
            if fibs[i] <= value:
                bits[i] = 1
                value -= fibs[i]
        while bits and bits[-1] == 0:
            bits.pop()
        for bit in [*bits, 1]:
            self.flag(bit == 1)

    def pack(self) -> str:
        """base64url of the bits, zero-filled to whole bytes then to whole characters (as GPP does)."""
        length, value = self.length, self._value
        pad = (-length) % 8
        length, value = length + pad, value << pad
        pad = (-length) % 6
        length, value = length + pad, value << pad
        return "".join(_ALPHABET[(value >> (length - 6 * (i + 1))) & 63] for i in range(length // 6))


@dataclass(frozen=True)
class IdRanges:
    """A set of positive ids kept as sorted, merged, inclusive ranges.

    A TC string's range encoding can name 65535 vendors in 33 bits; keeping ranges means a
    hostile cookie cannot make us build a set of millions of ids.
    """

    ranges: tuple[tuple[int, int], ...] = ()

    @classmethod
    def of(cls, pairs: Iterable[tuple[int, int]]) -> IdRanges:
        merged: list[tuple[int, int]] = []
        for start, end in sorted(pairs):
            if merged and start <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
            else:
                merged.append((start, end))
        return cls(tuple(merged))

    @classmethod
    def from_ids(cls, ids: Iterable[int]) -> IdRanges:
        return cls.of((i, i) for i in ids)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, int):
            return False
        lo, hi = 0, len(self.ranges)
        while lo < hi:
            mid = (lo + hi) // 2
            start, end = self.ranges[mid]
            if item < start:
                hi = mid
            elif item > end:
                lo = mid + 1
            else:
                return True
        return False

    def __iter__(self) -> Iterator[int]:
        for start, end in self.ranges:
            yield from range(start, end + 1)

    def __len__(self) -> int:
        return sum(end - start + 1 for start, end in self.ranges)

    def __bool__(self) -> bool:
        return bool(self.ranges)

    @property
    def max_id(self) -> int:
        return self.ranges[-1][1] if self.ranges else 0
