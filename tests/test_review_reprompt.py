"""Re-prompt after a maximum decision age: per region (6 months in France), 13 months where
TCF applies, or the owner's own table; the consent id survives so the history stays linked."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from middleware.consent import ConsentCodec, ConsentResolver, StoredChoice
from middleware.errors import ConfigError
from middleware.signals.jurisdiction import Jurisdiction
from middleware.signals.reader import RequestSignals
from middleware.signals.reprompt import DEFAULTS, max_age_days

from .asgi_helpers import make_config

KEY = "k" * 40


def _resolve(tmp_path: Path, age_days: int, region: str | None, **policy: object):  # type: ignore[no-untyped-def]
    config = make_config(tmp_path, policy={"cookie": {"max_age_days": 400}, **policy})
    codec = ConsentCodec([KEY], max_age_seconds=400 * 86400)
    resolver = ConsentResolver(config, codec)
    given = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=age_days)
    # The cookie's signing time is the decision's time: sign it in the past.
    signer = codec._serializer.make_signer()
    real = type(signer).get_timestamp
    type(signer).get_timestamp = lambda self: int(given.timestamp())  # type: ignore[method-assign]
    try:
        cookie = codec.dumps(StoredChoice("cid-abcdef12", frozenset({"ads"}), config.policy.version,
                                          "banner", given))
    finally:
        type(signer).get_timestamp = real  # type: ignore[method-assign]
    where = Jurisdiction(region, "opt-in", region or "*") if region else None
    return resolver.resolve(cookie, False, RequestSignals(jurisdiction=where) if where else None)


def test_reprompt_rules_by_region() -> None:
    assert max_age_days(DEFAULTS, "FR", tcf=False) == 183
    assert max_age_days(DEFAULTS, "DE", tcf=False) is None
    assert max_age_days(DEFAULTS, "DE", tcf=True) == 395
    assert max_age_days(DEFAULTS, "FR", tcf=True) == 183  # the strictest applies
    rules = {"EEA": 365, "*": 500, "US-CA": 90}
    assert max_age_days(rules, "IT", tcf=False) == 365
    assert max_age_days(rules, "US-CA", tcf=False) == 90
    assert max_age_days(rules, "JP", tcf=False) == 500


def test_reprompt_after_six_months_in_france(tmp_path: Path) -> None:
    old = _resolve(tmp_path, 190, "FR")
    assert not old.decided and old.needs_banner
    assert old.consent_id == "cid-abcdef12" and old.stale_version is None
    assert _resolve(tmp_path, 170, "FR").decided
    assert _resolve(tmp_path, 190, "DE").decided, "no rule for Germany without TCF"


def test_reprompt_owner_table_applies_everywhere(tmp_path: Path) -> None:
    table = {"reprompt_after_days": {"*": 30}}
    assert not _resolve(tmp_path, 31, None, **table).decided
    assert _resolve(tmp_path, 29, None, **table).decided


@pytest.mark.parametrize("rules, message", [
    ({"France": 183}, "expected a region"),
    ({"FR": 0}, "expected a number of days 1..400"),
])
def test_reprompt_table_errors(tmp_path: Path, rules: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make_config(tmp_path, policy={"reprompt_after_days": rules})
