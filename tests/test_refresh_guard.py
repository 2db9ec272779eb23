"""RefreshRespeller: every http-equiv respelled whatever the case and the chunking, and
nothing else changed (differential against one re.sub over the whole body)."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.html.refresh_guard import RefreshRespeller
from tests.support.budget import examples

PIECES = [b"http-equiv", b"HTTP-EQUIV", b"Http-Equiv", b"http-eq", b"uiv", b"h", b"http",
          b"-equiv", b"<meta ", b'="refresh" content="0;url=http://x.example/">', b"\xe3\x81\x82",
          b"data-consent-", b"httphttp-equiv", b"v", b" "]


def _respelled(data: bytes) -> bytes:
    return re.sub(rb"(?i)http-equiv|speculationrules", lambda m: b"data-consent-" + m.group(0).lower(),
                  data)


def _stream(data: bytes, cuts: list[int]) -> bytes:
    r = RefreshRespeller()
    out, last = [], 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        out.append(r.feed(data[last:cut]))
        last = cut
    out.append(r.feed(data[last:]))
    out.append(r.finish())
    return b"".join(out)


@settings(max_examples=examples(400), deadline=None)
@given(st.lists(st.sampled_from(PIECES) | st.binary(max_size=6), max_size=30),
       st.lists(st.integers(min_value=0, max_value=400), max_size=8))
def test_refresh_guard_any_chunking_equals_one_substitution(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    out = _stream(data, cuts)
    assert out == _respelled(data)
    assert re.search(rb"(?i)(?<!data-consent-)http-equiv", out) is None


def test_refresh_guard_every_byte_split_of_a_meta_refresh() -> None:
    page = b'<meta HTTP-Equiv="refresh" content="0;url=http://tracker.partner.example/r">'
    for i in range(len(page) + 1):
        r = RefreshRespeller()
        out = r.feed(page[:i]) + r.feed(page[i:]) + r.finish()
        assert out == page.replace(b"HTTP-Equiv", b"data-consent-http-equiv"), i
