"""Consent macros: every form filled, unknown vendors empty, and a macro split across chunks."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.signals.macros import MacroStream, MacroValues, fill, has_macros
from tests.support.budget import examples

TC = "CQabcdEFGH-_xyz.IAAA"
GPP = "DBABLA~CAAQAAAAAABA.YA"
VALUES = MacroValues(gdpr="1", tc_string=TC, gpp_string=GPP, gpp_sid="2,7", vendors=frozenset({755, 10}))


@pytest.mark.parametrize(("template", "expected"), [
    (b"gdpr=${GDPR}", b"gdpr=1"),
    (b"c=${GDPR_CONSENT_755}", b"c=" + TC.encode()),
    (b"c=${GDPR_CONSENT_756}", b"c="),                       # no partner declares vendor 756
    (b"g=${GPP_STRING_10}&s=${GPP_SID}", b"g=" + GPP.encode() + b"&s=2,7"),
    (b"g=${GPP_STRING}", b"g=" + GPP.encode()),
    (b"g=${GPP_STRING_11}", b"g="),
    (b"s=%24%7BGPP_SID%7D", b"s=2%2C7"),                    # URL-encoded form, URL-encoded value
    (b"g=%24%7bGPP_STRING_10%7d", b"g=DBABLA~CAAQAAAAAABA.YA"),
    (b"c=%24%7BGDPR_CONSENT_755%7D&gdpr=%24%7BGDPR%7D", b"c=" + TC.encode() + b"&gdpr=1"),
    (b"${gdpr} ${GDPR_CONSENT_} ${OTHER} $GDPR {GDPR}", b"${gdpr} ${GDPR_CONSENT_} ${OTHER} $GDPR {GDPR}"),
])
def test_macros_fill(template: bytes, expected: bytes) -> None:
    assert fill(template, VALUES) == expected
    assert has_macros(template) == (template != expected)


def test_macros_empty_values_without_signals() -> None:
    assert fill(b"${GDPR}|${GDPR_CONSENT_755}|${GPP_SID}", MacroValues()) == b"0||"


PAGE = (b'<img src="https://ads.example/px?gdpr=${GDPR}&gdpr_consent=${GDPR_CONSENT_755}">'
        b'<script src="https://x.example/t.js?gpp=%24%7BGPP_STRING_10%7D&gpp_sid=%24%7BGPP_SID%7D"></script>'
        b"<p>price: $5 or 100% {literal}</p>$")


def test_macros_split_at_every_offset() -> None:
    want = fill(PAGE, VALUES)
    for cut in range(len(PAGE) + 1):
        stream = MacroStream(VALUES)
        assert stream.feed(PAGE[:cut]) + stream.feed(PAGE[cut:]) + stream.finish() == want, cut


@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.integers(0, len(PAGE)), max_size=8))
def test_macros_any_chunking_gives_the_whole_body_result(cuts: list[int]) -> None:
    points = sorted(set(cuts))
    chunks = [PAGE[a:b] for a, b in zip([0, *points], [*points, len(PAGE)], strict=True)]
    stream = MacroStream(VALUES)
    out = b"".join(stream.feed(c) for c in chunks) + stream.finish()
    assert out == fill(PAGE, VALUES)


def test_macros_stream_holds_back_little() -> None:
    stream = MacroStream(VALUES)
    assert stream.feed(b"a" * 1000 + b"${GDPR_CONS") == b"a" * 1000
    assert stream.feed(b"ENT_755}") == TC.encode()
    assert stream.feed(b"no macro here") == b"no macro here"


@settings(max_examples=examples(300), deadline=None)
@given(st.binary(max_size=200), st.integers(0, 200))
def test_macros_stream_equals_fill_on_random_bytes(data: bytes, cut: int) -> None:
    data = re.sub(rb"Q", b"${GDPR}", data)
    stream = MacroStream(VALUES)
    assert stream.feed(data[:cut]) + stream.feed(data[cut:]) + stream.finish() == fill(data, VALUES)
