"""Every respeller of html/refresh_guard.py also respells ``speculationrules`` (red-team
round 4): an XHTML, SVG or UTF-16 document the gate cannot rewrite goes out behind the
enforced no-partner CSP, and Chromium 156 still prefetched the partner URL its inline rule
set listed (no CSP directive governs a prefetch; tests/browser/test_redteam_round4.py).
Differential against one substitution over the whole body, any chunking; the word begins
and ends with ``s``, which the held-tail logic of the first version lost at a chunk end."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.html.refresh_guard import AnyRespeller, Iso2022Respeller, RefreshRespeller, WideRespeller
from tests.support.budget import examples

PIECES = ["speculationrules", "SpeculationRules", "SPECULATIONRULES", "speculation", "rules", "s",
          "sp", "speculationrule", "http-equiv", "HTTP-equiv", "http-eq", "<script type=\"", '">',
          '{"prefetch":[{"source":"list","urls":["https://partner.example/x"]}]}', "</script>",
          "x", " ", "\u3042", "speculationrulesspeculationrules"]
_WORDS = re.compile(r"(?i)http-equiv|speculationrules")


def _reference(text: str) -> str:
    return _WORDS.sub(lambda m: "data-consent-" + m.group(0).lower(), text)


def _stream(respeller: RefreshRespeller | Iso2022Respeller | WideRespeller | AnyRespeller,
            data: bytes, cuts: list[int]) -> bytes:
    out, last = [], 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}):
        out.append(respeller.feed(data[last:cut]))
        last = cut
    out.append(respeller.feed(data[last:]))
    out.append(respeller.finish())
    return b"".join(out)


#: (make a respeller, the body's codec)
RESPELLERS: dict[str, tuple[Callable[[], RefreshRespeller | Iso2022Respeller | WideRespeller
                                         | AnyRespeller], str]] = {
    "refresh": (RefreshRespeller, "utf-8"),
    "iso2022": (Iso2022Respeller, "utf-8"),
    "wide": (lambda: WideRespeller("utf-16-le"), "utf-16-le"),
    "any": (AnyRespeller, "utf-8"),
    "any-wide": (AnyRespeller, "utf-16-le"),
}


@pytest.mark.parametrize("which", list(RESPELLERS))
@settings(max_examples=examples(200), deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=20),
       st.lists(st.integers(min_value=0, max_value=600), max_size=8))
def test_any_chunking_respells_every_speculationrules(which: str, parts: list[str],
                                                      cuts: list[int]) -> None:
    make, codec = RESPELLERS[which]
    text = "".join(parts)
    out = _stream(make(), text.encode(codec), cuts).decode(codec)
    assert out == _reference(text)


@pytest.mark.parametrize("which", list(RESPELLERS))
def test_every_byte_split_of_a_rule_set(which: str) -> None:
    make, codec = RESPELLERS[which]
    page = '<script type="speculationrules">{"prefetch":[]}</script>'.encode(codec)
    want = page.decode(codec).replace("speculationrules", "data-consent-speculationrules")
    for i in range(len(page) + 1):
        r = make()
        assert (r.feed(page[:i]) + r.feed(page[i:]) + r.finish()).decode(codec) == want, i


def test_a_type_spelled_with_letter_references_is_respelled_in_a_document() -> None:
    """AnyRespeller (XML documents) decodes references to letters first (the XML parser
    expands them in attribute values): ``&#115;peculationrules`` is the word."""
    r = AnyRespeller()
    out = r.feed(b'<script type="&#115;peculation&#x72;ules">{}</script>') + r.finish()
    assert out == b'<script type="data-consent-speculationrules">{}</script>'
