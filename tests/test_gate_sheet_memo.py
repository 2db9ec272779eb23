"""gate/sheet_memo.py: a one-message style sheet's reading is remembered per plan, and only
its bytes are reused: every request still records its allowed partners before the bytes
leave, and a visitor with another consent never gets another plan's reading."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware.gate.css import CssGate
from middleware.gate.sheet_memo import SheetMemo, SheetRead
from tests.asgi_helpers import cookie_for, html_app, http_scope, make_gate, run
from tests.support.budget import examples
from tests.test_disclosure import VIDEO_PARTNER, rows
from tests.test_rewrite import make_plan

SHEET = b'@import "//www.youtube.com/a.css";\nbody{background:url(/own.png)}'
INERT = b'@-consent-blocked-import "//www.youtube.com/a.css";\nbody{background:url(/own.png)}'
HEADERS = [(b"content-type", b"text/css"), (b"content-length", b"%d" % len(SHEET))]


def _gate(tmp_path: Path, body: bytes = SHEET) -> Any:
    headers = [(b"content-type", b"text/css"), (b"content-length", b"%d" % len(body))]
    return make_gate(html_app([body], headers=headers), tmp_path, partners=VIDEO_PARTNER)


def test_a_consented_sheet_is_read_once_and_recorded_on_every_request(tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    cookie = cookie_for(gate, {"social"})
    outs = [asyncio.run(run(gate, http_scope("/s.css", cookie=cookie))) for _ in range(3)]
    assert [o.body for o in outs] == [SHEET] * 3
    assert all(o.header(b"cache-control")[0].startswith(b"private") for o in outs)
    assert (gate.sheets.misses, gate.sheets.hits) == (1, 2)
    # log before disclose on the hits too: one record per request
    recorded = rows(tmp_path / "ledger.sqlite3")
    assert [(r["path"], r["partner"]) for r in recorded] == [("/s.css", "youtube")] * 3


def test_visitors_with_other_consents_never_share_a_reading(tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    consented = cookie_for(gate, {"social"})
    for _ in range(2):
        assert asyncio.run(run(gate, http_scope("/s.css", cookie=consented))).body == SHEET
        refused = asyncio.run(run(gate, http_scope("/s.css")))
        assert refused.body == INERT
        assert refused.header(b"content-length") == [b"%d" % len(INERT)]
    assert gate.sheets.hits == 2
    assert len(rows(tmp_path / "ledger.sqlite3")) == 2  # the consented requests only


def test_a_sheet_that_names_nobody_stays_as_sent_on_a_hit(tmp_path: Path) -> None:
    body = b"body{background:url(/own.png)}"
    gate = _gate(tmp_path, body)
    for _ in range(2):
        out = asyncio.run(run(gate, http_scope("/s.css")))
        assert out.body == body
        assert out.header(b"cache-control") == []  # untouched: cacheable as the app sent it
    assert gate.sheets.hits == 1


def test_another_body_is_another_entry(tmp_path: Path) -> None:
    gate = _gate(tmp_path)
    asyncio.run(run(gate, http_scope("/s.css")))
    plan = next(iter(gate.sheets._entries.values())).plan
    other = SHEET.replace(b"own.png", b"own.gif")
    assert gate.sheets.get(plan, None, False, other) is None
    assert gate.sheets.get(plan, None, True, SHEET) is None  # lenient reads are their own


@settings(max_examples=examples(100))
@given(sizes=st.lists(st.integers(0, 3000), min_size=1, max_size=40),
       bound=st.integers(1, 20000))
def test_the_memo_holds_at_most_its_bound(sizes: list[int], bound: int) -> None:
    memo = SheetMemo(max_bytes=bound, max_body=bound)
    plan = make_plan()
    for i, n in enumerate(sizes):
        body = bytes([65 + i % 26]) * n + b"%d" % i
        gate = CssGate(plan)
        out = gate.feed(body) + gate.finish()
        memo.put(None, False, body, SheetRead(plan, out, frozenset(), gate.named, frozenset()))
        assert memo._size <= bound
        assert memo._size == sum(len(k[3]) + len(v.output) for k, v in memo._entries.items())
        got = memo.get(plan, None, False, body)
        assert got is None or got.output == out
