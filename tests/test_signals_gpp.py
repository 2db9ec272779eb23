"""The GPP header + usnat codec against IAB's reference (@iabgpp/cmpapi, run by node)."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from middleware.signals import gpp
from tests.support import reference
from tests.support.budget import examples

_OPTS = st.integers(0, 2)


def _usnat_from(rng: random.Random, version: int = 2) -> gpp.UsNat:
    sensitive, child = (12, 2) if version == 1 else (16, 3)
    r = lambda: rng.randint(0, 2)  # noqa: E731
    return gpp.UsNat(
        version=version, sharing_notice=r(), sale_opt_out_notice=r(), sharing_opt_out_notice=r(),
        targeted_advertising_opt_out_notice=r(), sensitive_data_processing_opt_out_notice=r(),
        sensitive_data_limit_use_notice=r(), sale_opt_out=r(), sharing_opt_out=r(),
        targeted_advertising_opt_out=r(), sensitive_data_processing=tuple(r() for _ in range(sensitive)),
        known_child_sensitive_data_consents=tuple(r() for _ in range(child)), personal_data_consents=r(),
        mspa_covered_transaction=rng.randint(1, 2), mspa_opt_out_option_mode=r(),
        mspa_service_provider_mode=r(), gpc=rng.choice([None, True, False]))


def _reference_fields(section: gpp.UsNat) -> dict[str, Any]:
    """What the reference's getSection('usnat') returns for ``section``."""
    out = section.fields()
    del out["GpcSegmentIncluded"]
    return out


def _setters(section: gpp.UsNat) -> dict[str, Any]:
    """setFieldValue calls for the reference encoder (v2 only: it always writes the newest version)."""
    out = _reference_fields(section)
    del out["Version"], out["GpcSegmentType"]
    out["GpcSegmentIncluded"] = section.gpc is not None
    return out


def test_gpp_our_encoding_decodes_in_reference() -> None:
    rng = random.Random(1201)
    sections = [_usnat_from(rng, version=rng.choice([1, 2, 2])) for _ in range(300)]
    strings = [gpp.encode(s) for s in sections]
    decoded = reference.run("gpp_decode", strings)
    for section, theirs in zip(sections, decoded, strict=True):
        assert theirs["section_ids"] == [7]
        assert theirs["usnat"] == _reference_fields(section)


def test_gpp_reference_encoding_is_ours_byte_for_byte() -> None:
    rng = random.Random(99)
    sections = [_usnat_from(rng) for _ in range(300)]
    strings = reference.run("gpp_encode", [{"usnat": _setters(s)} for s in sections])
    for section, text in zip(sections, strings, strict=True):
        assert gpp.encode(section) == text
        assert gpp.decode(text).usnat == section


_usnat_st = st.builds(
    gpp.UsNat, version=st.just(2), sharing_notice=_OPTS, sale_opt_out_notice=_OPTS,
    sharing_opt_out_notice=_OPTS, targeted_advertising_opt_out_notice=_OPTS,
    sensitive_data_processing_opt_out_notice=_OPTS, sensitive_data_limit_use_notice=_OPTS,
    sale_opt_out=_OPTS, sharing_opt_out=_OPTS, targeted_advertising_opt_out=_OPTS,
    sensitive_data_processing=st.tuples(*[_OPTS] * 16), known_child_sensitive_data_consents=st.tuples(*[_OPTS] * 3),
    personal_data_consents=_OPTS, mspa_covered_transaction=st.integers(1, 2),
    mspa_opt_out_option_mode=_OPTS, mspa_service_provider_mode=_OPTS, gpc=st.none() | st.booleans())


@settings(max_examples=10, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_usnat_st, min_size=1, max_size=30))
def test_gpp_matches_reference_on_hypothesis_fields(batch: list[gpp.UsNat]) -> None:
    strings = reference.run("gpp_encode", [{"usnat": _setters(s)} for s in batch])
    assert strings == [gpp.encode(s) for s in batch]


def test_gpp_header_with_several_sections_matches_reference() -> None:
    items = [
        {"usnat": {"SaleOptOut": 1}, "uspv1": {"Notice": "Y"}, "usca": {"SaleOptOut": 1}, "tcfeuv2": {"CmpId": 5}},
        {"usnat": {"SaleOptOut": 2}, "usva": {"SaleOptOut": 1}, "usco": {"SaleOptOut": 1}, "usut": {"SaleOptOut": 1}},
        {"usct": {"SaleOptOut": 1}},
    ]
    strings = reference.run("gpp_encode", items)
    theirs = reference.run("gpp_decode", strings)
    for text, ref in zip(strings, theirs, strict=True):
        ours = gpp.decode(text)
        assert list(ours.section_ids) == sorted(ref["section_ids"])
        assert text.split("~")[0] == gpp.encode_header(ours.section_ids)
        assert (ours.usnat is None) == ("usnat" not in ref)
        if ours.usnat is not None:
            assert _reference_fields(ours.usnat) == ref["usnat"]


@pytest.mark.parametrize("text", [
    "", "DBABLA", "DBABLA~CAAQAAAAAABA~CAAQAAAAAABA", "DBABLA~CAAQ", "DBABLA~CAAQAAAAAABA.YA.YA",
    "CBABLA~CAAQAAAAAABA", "DBABLA~DAAQAAAAAABA", "DBABLA~CAAQAAAAAABA.gA", "DB*BLA~x", "D" * 9000,
])
def test_gpp_decode_rejects_malformed_strings(text: str) -> None:
    with pytest.raises(gpp.GppStringError):
        gpp.decode(text)
    assert gpp.read(text) is None


@settings(max_examples=examples(300), deadline=None)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~+ ", max_size=200))
def test_gpp_read_never_raises_on_arbitrary_text(text: str) -> None:
    result = gpp.read(text)
    assert result is None or isinstance(result, gpp.GppString)


def test_gpp_known_string_from_the_spec_examples() -> None:
    # usnat v1 with the three opt-out notices given and no opt-out, as IAB's examples show it.
    parsed = gpp.decode("DBABLA~BVQqAAAAAgA.QA")
    assert parsed.usnat is not None
    assert parsed.usnat.version == 1 and parsed.usnat.sale_opt_out == gpp.DID_NOT_OPT_OUT
    assert parsed.usnat.gpc is False


def test_gpp_stub_html_cannot_close_its_script_element() -> None:
    from middleware.signals import gpp_stub

    data = gpp_stub.stub_data(None, applicable=(), banner_visible=True)
    data["gppString"] = "</script><script>alert(1)</script>\u2028"
    out = gpp_stub.stub_html(data, nonce='n"x').decode()
    assert out.count("</script>") == 1 and out.endswith("</script>")
    assert out.startswith('<script nonce="n&quot;x">')
    assert '"applicableSections":[-1]' in out and '"cmpDisplayStatus":"visible"' in out
