"""Other consent tools' cookies: each format parsed, mapped to our purposes; junk is no consent."""

from __future__ import annotations

import json
import random
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.signals import foreign
from middleware.signals.foreign import ForeignSource, read_foreign
from tests.support import reference
from tests.support.budget import examples
from tests.test_signals_tcf import random_fields

ONETRUST = ("isGpcEnabled=0&datestamp=Tue+Dec+01+2026+21%3A40%3A00+GMT%2B0100&version=202409.1.0"
            "&browserGpcFlag=0&isIABGlobal=false&hosts=&consentId=0f1e2d3c&interactionCount=1"
            "&landingPath=NotLandingPage&groups=C0001%3A1%2CC0002%3A0%2CC0003%3A1%2CC0004%3A1&AwaitingReconsent=false")
COOKIEBOT = ("{stamp:%27a1B2c3D4e5F6g7H8i9J0kLmNoPqRsTuVwXyZ0123456789ab==%27%2Cnecessary:true%2C"
             "preferences:false%2Cstatistics:true%2Cmarketing:false%2Cmethod:%27explicit%27%2Cver:1%2C"
             "utc:1764621600000%2Cregion:%27de%27}")
KLARO = urllib.parse.quote(json.dumps({"google-analytics": True, "adsense": False, "matomo": True}))
CCV3 = json.dumps({"categories": ["necessary", "analytics"], "revision": 0, "data": None,
                   "consentTimestamp": "2026-12-01T21:40:00.000Z", "consentId": "5c1f7a0e",
                   "services": {"necessary": [], "analytics": ["ga"]},
                   "lastConsentTimestamp": "2026-12-01T21:40:00.000Z", "expirationTime": 1780000000000})


@pytest.mark.parametrize(("tool", "value", "categories"), [
    ("onetrust", ONETRUST, {"C0001", "C0003", "C0004"}),
    ("onetrust", "groups=C0001:1,C0004:0", {"C0001"}),
    ("cookiebot", COOKIEBOT, {"necessary", "statistics"}),
    ("cookiebot", urllib.parse.unquote(COOKIEBOT), {"necessary", "statistics"}),
    ("klaro", KLARO, {"google-analytics", "matomo"}),
    ("klaro", urllib.parse.unquote(KLARO), {"google-analytics", "matomo"}),
    ("cookieconsent", CCV3, {"necessary", "analytics"}),
    ("cookieconsent", urllib.parse.quote(CCV3), {"necessary", "analytics"}),
])
def test_foreign_parsers_read_each_tools_cookie(tool: foreign.Tool, value: str, categories: set[str]) -> None:
    assert foreign.PARSERS[tool](value) == categories


@pytest.mark.parametrize(("tool", "value"), [
    ("onetrust", "isGpcEnabled=0&datestamp=x"),        # no groups
    ("onetrust", "groups=C0001%3Ayes"),
    ("cookiebot", "-1"),                              # "no consent required": not a grant
    ("cookiebot", "{stamp:'x'}"),
    ("cookiebot", "marketing:true"),
    ("klaro", '{"ads": "yes"}'),
    ("klaro", "[true]"),
    ("cookieconsent", '{"categories": "analytics"}'),
    ("cookieconsent", "%7Bbroken"),
    ("tcf", "CPxyz"),
])
def test_foreign_unparsable_cookie_is_no_consent(tool: foreign.Tool, value: str) -> None:
    assert foreign.PARSERS[tool](value) is None
    source = ForeignSource(tool, foreign.DEFAULT_COOKIES[tool], {"ads": ("x",)})
    result = read_foreign(source, value)
    assert result is not None and result.granted == frozenset() and not result.parsed


def test_foreign_purposes_need_every_mapped_category() -> None:
    source = ForeignSource("onetrust", "OptanonConsent",
                           {"ads": ("C0004",), "analytics": ("C0002",), "social": ("C0003", "C0005"),
                            "functional": ("C0003",)})
    result = read_foreign(source, ONETRUST)
    assert result is not None and result.parsed
    assert result.granted == {"ads", "functional"}
    assert read_foreign(source, None) is None


def test_foreign_tcf_cookie_maps_tcf_purposes() -> None:
    f = random_fields(random.Random(11))
    f.update({"purpose_consents": [1, 2, 3, 4, 7], "disclosed_vendors": [1]})
    text = reference.run("tcf_encode", [f])[0]
    source = ForeignSource("tcf", "euconsent-v2", {"ads": ("1", "2", "3", "4"), "measurement": ("1", "8")})
    result = read_foreign(source, text)
    assert result is not None and result.granted == {"ads"}


@settings(max_examples=examples(400), deadline=None)
@given(tool=st.sampled_from(foreign.TOOLS),
       value=st.text(max_size=300) | st.from_regex(r"groups=[A-Z0-9:,%]{0,40}") |
       st.from_regex(r"\{[a-z:,'%0-9]{0,80}\}") | st.from_regex(r"\{\"categories\":.{0,40}\}"))
def test_foreign_parsers_never_raise(tool: foreign.Tool, value: str) -> None:
    result = foreign.PARSERS[tool](value)
    assert result is None or isinstance(result, frozenset)
    out = read_foreign(ForeignSource(tool, "c", {"ads": ("1",)}), value)
    assert out is not None
