"""headers.consent_inputs: what the consent and the plan read of the request headers (first
Cookie, several Cookies, first Sec-GPC, DNT, Accept-Language) in one pass. The C twin
(_speedups.consent_inputs) answers exactly what the Python reference answers, on random
header lists and on odd ones (list pairs, str names, a bytes subclass, a generator)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.accel import speedups
from middleware.headers import CONSENT_INPUT_NAMES, consent_inputs, consent_inputs_py
from tests.support.budget import examples

needs_c = pytest.mark.skipif(speedups is None, reason="the C extension is not in use")

NAMES = st.sampled_from([*CONSENT_INPUT_NAMES, b"Cookie", b"cookies", b"cooki", b"dnt ",
                         b"host", b"accept-encoding", b"", b"accept-languages"])
VALUES = st.one_of(st.binary(max_size=12), st.sampled_from([b"1", b" 1 ", b"0", b"consent=x"]))


class Name(bytes):
    """A bytes subclass (the C hands such lists to the Python)."""


def test_consent_inputs_reads_the_first_of_each_and_several_cookies() -> None:
    headers = [(b"host", b"x"), (b"cookie", b"a=1"), (b"sec-gpc", b"1"), (b"cookie", b"b=2"),
               (b"accept-language", b"ja"), (b"sec-gpc", b"0"), (b"dnt", b"1"),
               (b"accept-language", b"en")]
    assert consent_inputs(headers) == (b"a=1", True, b"1", b"1", b"ja")
    assert consent_inputs([(b"cookie", b"a")]) == (b"a", False, None, None, None)
    assert consent_inputs(()) == (None, False, None, None, None)


@settings(max_examples=examples(1000), deadline=None)
@given(st.lists(st.tuples(NAMES, VALUES), max_size=12), st.booleans())
def test_consent_inputs_c_same_as_python(headers: list[tuple[bytes, bytes]], as_tuple: bool) -> None:
    given_headers: Any = tuple(headers) if as_tuple else headers
    assert consent_inputs(given_headers) == consent_inputs_py(list(headers))


@needs_c
@pytest.mark.parametrize("headers", [
    [[b"cookie", b"a=1"], (b"dnt", b"1")],
    [("cookie", b"a=1"), (b"cookie", b"b")],
    [(Name(b"cookie"), b"a=1")],
    [(b"cookie", "text value"), (b"accept-language", 5)],
    # Not bytes, and first: the first header's value is the answer (C and Python alike).
    [(b"cookie", None), (b"cookie", b"a=1"), (b"dnt", None), (b"dnt", b"1"),
     (b"sec-gpc", None), (b"sec-gpc", b"1"), (b"accept-language", None), (b"accept-language", b"ja")],
    [(b"cookie", None), (b"cookie", None)],
])
def test_consent_inputs_odd_lists_answer_as_python(headers: list[Any]) -> None:
    assert speedups is not None
    assert speedups.consent_inputs(headers) == consent_inputs_py(headers)
    assert speedups.consent_inputs(iter(headers)) == consent_inputs_py(iter(headers))


@needs_c
def test_consent_inputs_bad_pairs_raise_as_python() -> None:
    assert speedups is not None
    for bad in ([(b"cookie",)], [b"cookie"], [(b"a", b"b", b"c")]):
        with pytest.raises((TypeError, ValueError)) as python:
            consent_inputs_py(bad)
        with pytest.raises(python.type):
            speedups.consent_inputs(bad)
