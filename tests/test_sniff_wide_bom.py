"""sniff.wide_bom as one prefix test: the same verdict as the slice tests it replaced, for
bytes, bytearray and memoryview bodies."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.sniff import wide_bom
from tests.support.budget import examples

PREFIXES = [b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff", b"\xff\xfe\x00\x00",
            b"<\x00?\x00x\x00", b"\x00<\x00?\x00x", b"<\x00?\x00", b"\x00\x00\xfe", b"\xff", b""]


def old_wide_bom(head: bytes) -> bool:
    """The slice tests wide_bom made before (the reference)."""
    return (head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[:4] == b"\x00\x00\xfe\xff"
            or head[:6] in (b"<\x00?\x00x\x00", b"\x00<\x00?\x00x"))


@settings(max_examples=examples(2000), deadline=None)
@given(st.sampled_from(PREFIXES), st.binary(max_size=10))
def test_wide_bom_same_as_slice_tests(prefix: bytes, rest: bytes) -> None:
    head = prefix + rest
    want = old_wide_bom(head)
    assert wide_bom(head) is want
    assert wide_bom(bytearray(head)) is want
    assert wide_bom(memoryview(head)) is want  # type: ignore[arg-type]
