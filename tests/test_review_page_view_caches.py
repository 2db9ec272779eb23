"""The page view caches (browser family, minimised address, recorded path: 0d7debd) hold a
bounded amount of memory, not only a bounded number of entries (review3).

Each cache is emptied at 4096 (addresses 8192) entries, but was keyed by the request's whole
User-Agent, path and X-Forwarded-For value: a visitor who gave consent (anyone can) and sent
4,000 page views with 8 KB values (130 MB measured; 3 KB in the test) (uvicorn's h11 takes a 16 KB head) kept ~100 MB per worker
alive, for as long as it went on. A browser family reads the first 512 characters only (the
key is cut there: the same answer), and a longer address or path is worked out each time, not
kept. The answers stay those of the functions themselves (differential below).
"""

from __future__ import annotations

import dataclasses
import gc
import tracemalloc
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.config import load_config
from middleware.consent import Consent
from middleware.disclosure import Discloser
from middleware.ledger import minimise_ip, page_path, ua_family
from tests.support.budget import examples

ROOT = Path(__file__).resolve().parent.parent
BASE = load_config(ROOT / "examples/japan_talk/partners.toml")
PARTNER = frozenset({sorted(BASE.partners)[0]})
CONSENT = Consent(consent_id="c", granted=frozenset({"ads"}), policy_version="v", decided=True)
CHROME = b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/124.0.0.0 Safari/537.36 "


def _discloser(trust_proxy: bool = True) -> Discloser:
    config = dataclasses.replace(BASE, policy=dataclasses.replace(BASE.policy,
                                                                  trust_proxy=trust_proxy))
    return Discloser(config, None, None)


def test_long_values_do_not_stay_in_the_caches() -> None:
    disc = _discloser()
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for i in range(4000):  # under every cache's count bound: nothing is emptied
            pad = b"%d" % i + b"x" * 3000
            scope: dict[str, Any] = {
                "type": "http", "path": "/%" + pad.decode() + "/", "client": ("10.0.0.1", 1),
                "headers": [(b"user-agent", CHROME + pad),
                            (b"x-forwarded-for", b"fe80::1%" + pad)]}
            view = disc.page_view(PARTNER, scope, CONSENT)
            assert view.ua_family == "Chrome 124" and view.ip == "fe80::/48"
            del scope, view, pad
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert kept < 6_000_000, f"{kept / 1e6:.1f} MB kept by 4,000 page views"


_LONG = st.integers(0, 1500).map(lambda n: "y" * n)


@settings(max_examples=examples(200), deadline=None)
@given(head=st.binary(max_size=600), tail=st.binary(max_size=40), fill=st.integers(0, 700),
       address=st.sampled_from(["203.0.113.9", "fe80::1%", "2001:db8::2%eth0", "x"]),
       pad=_LONG, path=st.sampled_from(["/a", "/%", "/a?b", "/\x00"]), again=st.booleans())
def test_cached_answers_are_the_functions_answers(head: bytes, tail: bytes, fill: int,
                                                  address: str, pad: str, path: str,
                                                  again: bool) -> None:
    agent = head + b"Firefox/125.0 " * (fill // 14) + tail
    raw_path = path + pad
    forwarded = (address + pad if address.endswith("%") else address).encode()
    scope: dict[str, Any] = {"type": "http", "path": raw_path, "client": ("10.0.0.1", 1),
                             "headers": [(b"user-agent", agent), (b"x-forwarded-for", forwarded)]}
    disc = _discloser()
    if again:
        disc.page_view(PARTNER, scope, CONSENT)
    view = disc.page_view(PARTNER, scope, CONSENT)
    assert view.ua_family == ua_family(agent.decode("latin-1"))
    assert view.ip == minimise_ip(forwarded.decode("latin-1"), "truncate", None)
    assert view.path == page_path(raw_path)
