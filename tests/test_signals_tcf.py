"""The TC string decoder against IAB's reference (@iabtcf/core, run by node): every field."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from middleware.signals import tcf
from middleware.signals.bits import IdRanges
from tests.support import reference
from tests.support.budget import examples

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _deciseconds(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(milliseconds=100)


def _ids(rng: random.Random, max_id: int, density: float) -> list[int]:
    """Sparse sets come out range-encoded, dense ones as bitfields: both paths get exercised."""
    if rng.random() < 0.3:  # long runs: the range encoding
        out: set[int] = set()
        for _ in range(rng.randint(0, 6)):
            start = rng.randint(1, max_id)
            out.update(range(start, min(max_id, start + rng.randint(0, 300)) + 1))
        return sorted(out)
    return sorted(i for i in range(1, max_id + 1) if rng.random() < density)


def _letters(rng: random.Random) -> str:
    return "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(2))


def random_fields(rng: random.Random) -> dict[str, Any]:
    max_id = rng.choice([1, 5, 40, 300, 1200, 3000])
    restrictions = []
    used: set[tuple[int, int]] = set()
    for _ in range(rng.randint(0, 4)):
        key = (rng.randint(1, 11), rng.randint(0, 2))
        vendors = _ids(rng, max_id, 0.2) or [1]
        if key not in used:
            used.add(key)
            restrictions.append({"purpose": key[0], "type": key[1], "vendors": vendors})
    custom = rng.randint(0, 20)
    created = rng.randint(0, 2**36 - 1)
    return {
        "created_ds": created,
        "last_updated_ds": rng.randint(created, 2**36 - 1),
        "cmp_id": rng.randint(2, 4095),
        "cmp_version": rng.randint(0, 4095),
        "consent_screen": rng.randint(0, 63),
        "consent_language": _letters(rng),
        "vendor_list_version": rng.randint(0, 4095),
        "policy_version": rng.randint(4, 63),
        "is_service_specific": rng.random() < 0.5,
        "use_non_standard_stacks": rng.random() < 0.5,
        "purpose_one_treatment": rng.random() < 0.5,
        "publisher_country_code": _letters(rng),
        "special_feature_optins": sorted(rng.sample(range(1, 13), rng.randint(0, 12))),
        "purpose_consents": sorted(rng.sample(range(1, 25), rng.randint(0, 24))),
        "purpose_legitimate_interests": sorted(rng.sample(range(1, 25), rng.randint(0, 24))),
        "vendor_consents": _ids(rng, max_id, rng.random()),
        "vendor_legitimate_interests": _ids(rng, max_id, rng.random()),
        "publisher_restrictions": restrictions,
        "disclosed_vendors": _ids(rng, max_id, rng.random()),
        "allowed_vendors": _ids(rng, max_id, 0.5) if rng.random() < 0.2 else None,
        "publisher": None if rng.random() < 0.5 else {
            "consents": sorted(rng.sample(range(1, 25), rng.randint(0, 24))),
            "legitimate_interests": sorted(rng.sample(range(1, 25), rng.randint(0, 24))),
            "num_custom_purposes": custom,
            "custom_consents": sorted(rng.sample(range(1, custom + 1), rng.randint(0, custom))),
            "custom_legitimate_interests": sorted(rng.sample(range(1, custom + 1), rng.randint(0, custom))),
        },
    }


def assert_fields(decoded: tcf.TCString, f: dict[str, Any]) -> None:
    """Every field of ``decoded`` equals what the reference was asked to encode."""
    assert decoded.version == 2
    assert _deciseconds(decoded.created) == f["created_ds"]
    assert _deciseconds(decoded.last_updated) == f["last_updated_ds"]
    for name in ("cmp_id", "cmp_version", "consent_screen", "consent_language", "vendor_list_version",
                 "policy_version", "is_service_specific", "use_non_standard_stacks",
                 "purpose_one_treatment", "publisher_country_code"):
        assert getattr(decoded, name) == f[name], name
    for name in ("special_feature_optins", "purpose_consents", "purpose_legitimate_interests"):
        assert getattr(decoded, name) == frozenset(f[name]), name
    assert list(decoded.vendor_consents) == f["vendor_consents"]
    assert list(decoded.vendor_legitimate_interests) == f["vendor_legitimate_interests"]
    assert list(decoded.disclosed_vendors) == f["disclosed_vendors"]
    if f["allowed_vendors"] is None:
        assert decoded.allowed_vendors is None
    else:
        assert decoded.allowed_vendors is not None
        assert list(decoded.allowed_vendors) == f["allowed_vendors"]
    got = sorted((r.purpose, int(r.restriction), list(r.vendors)) for r in decoded.publisher_restrictions)
    want = sorted((r["purpose"], r["type"], r["vendors"]) for r in f["publisher_restrictions"])
    assert got == want
    if f["publisher"] is None:
        assert decoded.publisher is None
    else:
        p = f["publisher"]
        assert decoded.publisher == tcf.PublisherTC(
            consents=frozenset(p["consents"]), legitimate_interests=frozenset(p["legitimate_interests"]),
            num_custom_purposes=p["num_custom_purposes"], custom_consents=frozenset(p["custom_consents"]),
            custom_legitimate_interests=frozenset(p["custom_legitimate_interests"]))


GENERATED = 400


def test_tcf_decode_matches_reference_encoder_on_generated_strings() -> None:
    rng = random.Random(20261201)
    fields = [random_fields(rng) for _ in range(GENERATED)]
    strings = reference.run("tcf_encode", fields)
    assert len(set(strings)) == GENERATED
    for text, f in zip(strings, fields, strict=True):
        decoded = tcf.decode(text)
        assert_fields(decoded, f)
        assert decoded.raw == text


def test_tcf_decode_agrees_with_reference_decoder() -> None:
    """The reference decodes the same strings to the same values (no drift in the harness itself)."""
    rng = random.Random(7)
    fields = [random_fields(rng) for _ in range(60)]
    strings = reference.run("tcf_encode", fields)
    theirs = reference.run("tcf_decode", strings)
    for text, ref in zip(strings, theirs, strict=True):
        ours = tcf.decode(text)
        assert ours.cmp_id == ref["cmp_id"] and ours.policy_version == ref["policy_version"]
        assert list(ours.vendor_consents) == ref["vendor_consents"]
        assert list(ours.disclosed_vendors) == ref["disclosed_vendors"]
        assert _deciseconds(ours.created) == ref["created_ds"]


_small_ids = st.lists(st.integers(1, 400), max_size=40, unique=True).map(sorted)
_bits24 = st.lists(st.integers(1, 24), unique=True).map(sorted)
_letters_st = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2)
_restriction = st.fixed_dictionaries({
    "purpose": st.integers(1, 24), "type": st.integers(0, 2),
    "vendors": st.lists(st.integers(1, 400), min_size=1, max_size=20, unique=True).map(sorted)})
_fields_st = st.fixed_dictionaries({
    "created_ds": st.integers(0, 2**36 - 1), "last_updated_ds": st.integers(0, 2**36 - 1),
    "cmp_id": st.integers(2, 4095), "cmp_version": st.integers(0, 4095),  # the reference refuses CMP ids 0, 1
    "consent_screen": st.integers(0, 63), "consent_language": _letters_st,
    "vendor_list_version": st.integers(0, 4095), "policy_version": st.integers(4, 63),
    "is_service_specific": st.booleans(), "use_non_standard_stacks": st.booleans(),
    "purpose_one_treatment": st.booleans(), "publisher_country_code": _letters_st,
    "special_feature_optins": st.lists(st.integers(1, 12), unique=True).map(sorted),
    "purpose_consents": _bits24, "purpose_legitimate_interests": _bits24,
    "vendor_consents": _small_ids, "vendor_legitimate_interests": _small_ids,
    "publisher_restrictions": st.lists(_restriction, max_size=3, unique_by=lambda r: (r["purpose"], r["type"])),
    "disclosed_vendors": _small_ids,
    "allowed_vendors": st.none() | _small_ids,
    "publisher": st.none() | st.integers(0, 10).flatmap(lambda n: st.fixed_dictionaries({
        "consents": _bits24, "legitimate_interests": _bits24, "num_custom_purposes": st.just(n),
        "custom_consents": st.lists(st.integers(1, max(n, 1)), unique=True).map(lambda x, n=n: sorted(i for i in x if i <= n)),
        "custom_legitimate_interests": st.lists(st.integers(1, max(n, 1)), unique=True).map(lambda x, n=n: sorted(i for i in x if i <= n)),
    })),
})


# No shrinking: each example is a node run, and a failure prints its whole batch anyway.
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_fields_st, min_size=1, max_size=25))
def test_tcf_decode_matches_reference_on_hypothesis_fields(batch: list[dict[str, Any]]) -> None:
    strings = reference.run("tcf_encode", batch)
    for text, f in zip(strings, batch, strict=True):
        assert_fields(tcf.decode(text), f)


def _one(**changes: Any) -> str:
    f = random_fields(random.Random(3))
    f.update(changes)
    result: str = reference.run("tcf_encode", [f])[0]
    return result


@pytest.mark.parametrize("policy_version", [0, 2, 3])
def test_tcf_decode_rejects_policy_version_below_4(policy_version: int) -> None:
    text = _one(policy_version=policy_version)
    with pytest.raises(tcf.TCStringError, match="policy version"):
        tcf.decode(text)
    assert tcf.read(text) is None


def test_tcf_decode_rejects_string_without_disclosed_vendors() -> None:
    text = _one(disclosed_vendors=None, publisher=None, allowed_vendors=None)
    assert "." not in text
    with pytest.raises(tcf.TCStringError, match="disclosed-vendors"):
        tcf.decode(text)


def test_tcf_decode_accepts_segments_in_any_order() -> None:
    text = _one(allowed_vendors=[1, 2], publisher={"consents": [1], "legitimate_interests": [], "num_custom_purposes": 0,
                                                   "custom_consents": [], "custom_legitimate_interests": []})
    core, *rest = text.split(".")
    assert len(rest) == 3
    assert tcf.decode(".".join([core, *reversed(rest)])).disclosed_vendors == tcf.decode(text).disclosed_vendors


@pytest.mark.parametrize("mangle", [
    lambda s: s[:10],                           # truncated core
    lambda s: s.replace(".", ".."),             # empty segment
    lambda s: s + "." + s.split(".")[1],        # a second disclosed-vendors segment
    lambda s: "B" + s[1:],                      # version 1
    lambda s: s[:5] + "+" + s[6:],              # not base64url
    lambda s: "",
    lambda s: "C" * 9000,
])
def test_tcf_decode_rejects_malformed_strings(mangle: Any) -> None:
    text = mangle(_one())
    with pytest.raises(tcf.TCStringError):
        tcf.decode(text)
    assert tcf.read(text) is None


@settings(max_examples=examples(300), deadline=None)
@given(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.+/= ", max_size=300))
def test_tcf_read_never_raises_on_arbitrary_text(text: str) -> None:
    result = tcf.read(text)
    assert result is None or isinstance(result, tcf.TCString)


def test_tcf_range_encoding_keeps_huge_vendor_ranges_compact() -> None:
    ranges = IdRanges.of([(1, 65535)])
    assert 65535 in ranges and 0 not in ranges and len(ranges) == 65535 and len(ranges.ranges) == 1
