"""Reading the ledger: per-partner summary, filtered listing, a subject's history, export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from middleware.ledger.chain import BrokenRow, StoredRow
from middleware.ledger.records import DisclosureRecord, PageView
from middleware.ledger.store import CONSENT_EVENTS, Filters, LedgerStore


def open_store(target: str, *, synchronous: str = "full",
               deferred_checkpoints: bool = False) -> LedgerStore:
    """A store for a SQLite path or a ``postgresql://`` / ``postgres://`` DSN (not opened).

    ``synchronous`` and ``deferred_checkpoints`` (WAL checkpoints when the writer calls
    ``checkpoint_if_due``, not inside a commit) apply to SQLite only (PostgreSQL's
    durability is the server's setting).
    """
    if target.startswith(("postgresql://", "postgres://")):
        from middleware.ledger.postgres import PostgresStore  # psycopg is optional

        return PostgresStore(target)
    from middleware.ledger.sqlite import SqliteStore

    return SqliteStore(target, synchronous=synchronous,
                       deferred_checkpoints=deferred_checkpoints)


@dataclass(frozen=True)
class PartnerSummary:
    partner: str
    page_views: int
    consent_ids: int
    purposes: tuple[str, ...]
    data_categories: tuple[str, ...]
    first_seen: datetime
    last_seen: datetime
    per_day: tuple[tuple[date, int], ...]  # only days with records, oldest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "partner": self.partner,
            "page_views": self.page_views,
            "consent_ids": self.consent_ids,
            "purposes": list(self.purposes),
            "data_categories": list(self.data_categories),
            "first_seen": self.first_seen.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "per_day": {d.isoformat(): n for d, n in self.per_day},
        }


def summary(
    store: LedgerStore, since: datetime | None = None, until: datetime | None = None
) -> list[PartnerSummary]:
    """One line per partner, most disclosed first. ``since`` inclusive, ``until`` exclusive."""
    data = store.summary(since, until)
    out: list[PartnerSummary] = []
    for agg in data.partners:
        p = agg.partner
        out.append(PartnerSummary(
            partner=p,
            page_views=agg.page_views,
            consent_ids=agg.consent_ids,
            purposes=tuple(v for q, v in data.purposes if q == p),
            data_categories=tuple(v for q, v in data.categories if q == p),
            first_seen=agg.first_seen,
            last_seen=agg.last_seen,
            per_day=tuple((d, n) for q, d, n in data.per_day if q == p),
        ))
    return out


def _split(rows: Iterator[StoredRow | BrokenRow],
           broken: list[BrokenRow] | None) -> list[StoredRow]:
    out: list[StoredRow] = []
    for r in rows:
        if isinstance(r, BrokenRow):
            if broken is not None:
                broken.append(r)
        else:
            out.append(r)
    return out


def show(store: LedgerStore, filters: Filters,
         broken: list[BrokenRow] | None = None) -> list[StoredRow]:
    """Matching records (page views, and per-partner rows of older ledgers), newest first,
    at most ``filters.limit`` (default 50). Rows that do not parse go to ``broken``."""
    if filters.limit is None:
        filters = Filters(**{**filters.__dict__, "limit": 50})
    return _split(store.disclosures(filters, newest_first=True), broken)


def disclosure_items(row: StoredRow, partner: str | None = None) -> list[DisclosureRecord]:
    """A stored record as one ``DisclosureRecord`` per partner (only ``partner``'s if given):
    the same shape for page view records and the per-partner rows of older ledgers."""
    rec = row.record
    if isinstance(rec, PageView):
        return [d for d in rec.disclosures() if partner is None or d.partner == partner]
    if isinstance(rec, DisclosureRecord):
        return [rec] if partner is None or rec.partner == partner else []
    return []


@dataclass(frozen=True)
class SubjectReport:
    consent_id: str
    events: tuple[StoredRow, ...]  # oldest first
    disclosures: tuple[StoredRow, ...]  # oldest first
    broken: tuple[BrokenRow, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "consent_id": self.consent_id,
            "consent_events": [r.to_dict() for r in self.events],
            "disclosures": [r.to_dict() for r in self.disclosures],
            "broken_rows": [r.to_dict() for r in self.broken],
        }


def subject(store: LedgerStore, consent_id: str) -> SubjectReport:
    """Everything the ledger holds about one consent id (a data subject access request)."""
    broken: list[BrokenRow] = []
    events = tuple(_split(store.consent_events(consent_id=consent_id), broken))
    disc = tuple(_split(store.disclosures(Filters(consent_id=consent_id), newest_first=False),
                        broken))
    return SubjectReport(consent_id, events, disc, tuple(broken))


def export(store: LedgerStore, filters: Filters,
           kind: str = "disclosures") -> Iterator[StoredRow | BrokenRow]:
    """Stream rows oldest first in constant memory. ``kind``: disclosures | consent-events.
    A row that does not parse comes as a ``BrokenRow`` (exported as such, never dropped)."""
    if kind in ("consent-events", CONSENT_EVENTS):
        return store.consent_events(filters.consent_id, filters.since, filters.until)
    if kind != "disclosures":
        raise ValueError(f"unknown export kind {kind!r}; known: disclosures, consent-events")
    return store.disclosures(filters, newest_first=False)
