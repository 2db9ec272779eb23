"""Reading the ledger: per-partner summary, filtered listing, a subject's history, export."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from middleware.ledger.chain import StoredRow
from middleware.ledger.store import CONSENT_EVENTS, Filters, LedgerStore


def open_store(target: str, *, synchronous: str = "full") -> LedgerStore:
    """A store for a SQLite path or a ``postgresql://`` / ``postgres://`` DSN (not opened).

    ``synchronous`` applies to SQLite only (PostgreSQL's durability is the server's setting).
    """
    if target.startswith(("postgresql://", "postgres://")):
        from middleware.ledger.postgres import PostgresStore  # psycopg is optional

        return PostgresStore(target)
    from middleware.ledger.sqlite import SqliteStore

    return SqliteStore(target, synchronous=synchronous)


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


def show(store: LedgerStore, filters: Filters) -> list[StoredRow]:
    """Matching disclosures, newest first, at most ``filters.limit`` (default 50)."""
    if filters.limit is None:
        filters = Filters(**{**filters.__dict__, "limit": 50})
    return list(store.disclosures(filters, newest_first=True))


@dataclass(frozen=True)
class SubjectReport:
    consent_id: str
    events: tuple[StoredRow, ...]  # oldest first
    disclosures: tuple[StoredRow, ...]  # oldest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "consent_id": self.consent_id,
            "consent_events": [r.to_dict() for r in self.events],
            "disclosures": [r.to_dict() for r in self.disclosures],
        }


def subject(store: LedgerStore, consent_id: str) -> SubjectReport:
    """Everything the ledger holds about one consent id (a data subject access request)."""
    events = tuple(store.consent_events(consent_id=consent_id))
    disc = tuple(store.disclosures(Filters(consent_id=consent_id), newest_first=False))
    return SubjectReport(consent_id, events, disc)


def export(store: LedgerStore, filters: Filters, kind: str = "disclosures") -> Iterator[StoredRow]:
    """Stream rows oldest first in constant memory. ``kind``: disclosures | consent-events."""
    if kind in ("consent-events", CONSENT_EVENTS):
        return store.consent_events(filters.consent_id, filters.since, filters.until)
    if kind != "disclosures":
        raise ValueError(f"unknown export kind {kind!r}; known: disclosures, consent-events")
    return store.disclosures(filters, newest_first=False)
