"""``_speedups.page_decision`` holds the charset it read from ``content_types`` while it looks
``body`` and ``more_body`` up in the first body message: a key of that dict with the same hash
runs its ``__eq__`` there (Python code, in the middle of the C), and one that drops the
remembered reading freed the charset the C then looked ``_WHOLE`` up with (a use after free:
every call answered wrongly, found by review). The answer must be the table's, as if nothing
had been dropped."""

from __future__ import annotations

from typing import Any

import pytest

from middleware.sniff import WIDE_STARTS

try:
    from middleware import _speedups
except ImportError:  # pragma: no cover - a pure-Python install
    _speedups = None  # type: ignore[assignment]

CT = b"text/html; charset=zz"


class Dropper:
    """A dict key that hashes as ``name`` and, compared, empties ``types`` and allocates."""

    def __init__(self, name: str, types: dict[bytes, Any]) -> None:
        self.name, self.types, self.junk, self.armed = name, types, [""], False

    def __hash__(self) -> int:
        return hash(self.name)

    def __eq__(self, other: object) -> bool:
        if not self.armed:  # (building the dict compares it too)
            return False
        self.types.clear()
        self.junk = ["q" * 7 + str(i) for i in range(1000)]  # reuse the freed memory
        return False


@pytest.mark.skipif(_speedups is None, reason="middleware._speedups not built")
@pytest.mark.parametrize("name", ["body", "more_body"])
def test_a_dropped_reading_does_not_free_the_charset_in_use(name: str) -> None:
    wrong = 0
    for i in range(500):
        charset = "".join(["x-cs", str(i)])  # only the tuple in types holds it
        types: dict[bytes, Any] = {CT: (charset, False, True)}
        whole = {f"x-cs{i}": ("whole", i)}
        del charset
        start = {"status": 200, "headers": [(b"content-type", CT)]}
        dropper = Dropper(name, types)
        first = {dropper: 1, "body": b"<p>x"}  # (probed before "body": inserted first)
        dropper.armed = True
        got = _speedups.page_decision("GET", start, first, types, whole, {}, WIDE_STARTS)
        wrong += got != ("whole", i)
        assert not types  # (the key did drop the reading)
    assert wrong == 0
