"""The page view built on the event loop (``PageView.on_loop``, ``RequestInfo.from_scope``)
is the record the full constructor builds: same fields, same checks, same hash.

The fast path fills a frozen dataclass's fields directly when ``__post_init__`` would change
nothing; a differential test against ``PageView(...)`` over arbitrary inputs keeps it so.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.consent import Consent
from middleware.disclosure import RequestInfo
from middleware.ledger import PageView, PartnerShare
from middleware.ledger.chain import hash_record
from tests.support.budget import examples

SHARES = (
    PartnerShare("a-partner", ("ads",), "consent", ("ip_address",), ("_a",)),
    PartnerShare("b-partner", ("social",), "consent"),
    PartnerShare("c-partner", ("ads", "measurement"), "opt-out-not-exercised"),
)
CHECKED = SHARES[:2]
PageView(time=datetime(2024, 1, 1, tzinfo=UTC), request_id="r", consent_id=None, path="/",
         partners=CHECKED)  # CHECKED is now a list PageView has checked

_text = st.text(max_size=12)
_times = st.one_of(
    st.datetimes(timezones=st.just(UTC)),
    st.datetimes(timezones=st.just(timezone(timedelta(hours=9)))),
)
_partner_lists = st.one_of(
    st.just(CHECKED),
    st.permutations(SHARES).map(tuple),  # fresh tuples: not checked yet, maybe unsorted
    st.lists(st.sampled_from(SHARES), min_size=1, max_size=3).map(tuple),
)
_fields = st.one_of(st.just({}), st.dictionaries(st.sampled_from(["tcf", "gpp"]), _text,
                                                  min_size=1))


def _both(**kw: Any) -> tuple[Any, Any]:
    """(PageView(...), PageView.on_loop(...)) or the exception each raised."""
    out = []
    for make in (lambda: PageView(**kw), lambda: PageView.on_loop(**kw)):
        try:
            out.append(make())
        except ValueError as exc:
            out.append((type(exc), str(exc)))
    return out[0], out[1]


@settings(max_examples=examples(150), deadline=None)
@given(t=_times, rid=_text, cid=st.one_of(st.none(), _text), path=_text,
       partners=_partner_lists, pv=_text, ip=st.one_of(st.none(), _text), ua=_text,
       fields=_fields)
def test_page_view_on_loop_equals_the_full_constructor(
        t: datetime, rid: str, cid: str | None, path: str, partners: tuple[PartnerShare, ...],
        pv: str, ip: str | None, ua: str, fields: dict[str, Any]) -> None:
    full, fast = _both(time=t, request_id=rid, consent_id=cid, path=path, partners=partners,
                       policy_version=pv, ip=ip, ua_family=ua, fields=fields)
    assert type(fast) is type(full)
    if isinstance(full, tuple):  # a duplicate partner: the same error either way
        assert fast == full
        return
    assert fast == full
    for f in dataclasses.fields(PageView):
        assert getattr(fast, f.name) == getattr(full, f.name), f.name
        assert type(getattr(fast, f.name)) is type(getattr(full, f.name)), f.name
    assert fast.time.tzinfo is UTC and fast.to_dict() == full.to_dict()
    assert hash_record(fast, "w", 1, "0" * 64) == hash_record(full, "w", 1, "0" * 64)


def test_page_view_on_loop_stays_frozen_and_checked() -> None:
    now = datetime.now(UTC)
    view = PageView.on_loop(time=now, request_id="r", consent_id="c", path="/p",
                            partners=CHECKED, policy_version="v", ip=None,
                            ua_family="chrome", fields={})
    assert view.partners is CHECKED and view.time is now
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.path = "/other"  # type: ignore[misc]
    # A list PageView never checked goes through the checks (an empty one is refused).
    with pytest.raises(ValueError, match="at least one partner"):
        PageView.on_loop(time=now, request_id="r", consent_id="c", path="/p", partners=(),
                         policy_version="v", ip=None, ua_family="chrome", fields={})
    # A naive time is refused as by the constructor.
    with pytest.raises(ValueError):
        PageView.on_loop(time=datetime(2024, 1, 1), request_id="r", consent_id="c",
                         path="/p", partners=CHECKED, policy_version="v", ip=None,
                         ua_family="chrome", fields={})


def test_request_info_from_scope_is_the_frozen_value_it_was() -> None:
    consent = Consent(consent_id="c-1", granted=frozenset({"ads"}), policy_version="v",
                      decided=True)
    scope = {"type": "http", "path": "/a/b", "query_string": b"x=1",
             "headers": [(b"user-agent", b"UA/1"), (b"x-forwarded-for", b"198.51.100.7, 10.0.0.1")],
             "client": ("203.0.113.5", 1234)}
    info = RequestInfo.from_scope(scope, consent)
    assert info == RequestInfo(request_id=info.request_id, path="/a/b", query="x=1",
                               client_ip="203.0.113.5", user_agent="UA/1", consent=consent)
    assert RequestInfo.from_scope(scope, consent, trust_proxy=True).client_ip == "198.51.100.7"
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.path = "/"  # type: ignore[misc]
    stamp, _, rand = info.request_id.partition("-")
    assert int(stamp, 16) > 0 and len(rand) == 12
    assert RequestInfo.from_scope(scope, consent).request_id != info.request_id
    bare = RequestInfo.from_scope({"type": "http"}, consent)
    assert (bare.path, bare.query, bare.client_ip, bare.user_agent) == ("/", "", None, "")
