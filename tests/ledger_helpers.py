"""Ledger test helpers shared by the SQLite and PostgreSQL tests."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from middleware.ledger import PageView
from middleware.ledger.chain import ChainCursor, canonical_text, partner_set_text, shares_text

_V3_COLUMNS = ("time, request_id, consent_id, path, partners, partner_set, policy_version, ip, "
               "ua_family, fields, writer_id, seq, prev_hash, hash")


def append_v3_rows(execute: Callable[[str, Sequence[Any]], object], mark: str,
                   cursor: ChainCursor, records: list[PageView],
                   time: Callable[[datetime], object]) -> None:
    """Rows as schema v3's append wrote them (the partner list's text in every row), on
    ``cursor``'s chain, through a DB-API ``execute`` whose placeholder is ``mark`` ("?" for
    sqlite3, "%s" for psycopg); ``time`` is how the driver's column takes a time."""
    rows = cursor.link(records)
    marks = ", ".join([mark] * 14)
    for r in rows:
        rec = r.record
        assert isinstance(rec, PageView)
        text, ps = shares_text(rec.partners), partner_set_text(rec.partners)
        execute(f"INSERT INTO page_views ({_V3_COLUMNS}) VALUES ({marks})",
                [time(rec.time), rec.request_id, rec.consent_id, rec.path, text, ps,
                 rec.policy_version, rec.ip, rec.ua_family, canonical_text(dict(rec.fields)),
                 r.writer_id, r.seq, r.prev_hash, r.hash])
        execute(f"INSERT INTO partner_sets VALUES ({mark}) ON CONFLICT DO NOTHING", [ps])
        execute(f"INSERT INTO partner_lists VALUES ({mark}, {mark}) ON CONFLICT DO NOTHING",
                [text, ps])
    cursor.advance(rows)
