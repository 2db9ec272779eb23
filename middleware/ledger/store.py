"""The storage protocol that SqliteStore and PostgresStore implement."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Protocol, Self

from middleware.ledger.chain import BrokenRow, ChainedRecord, Checkpoint, StoredRow

PAGE_VIEWS = "page_views"
DISCLOSURES = "disclosures"
CONSENT_EVENTS = "consent_events"
CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class Filters:
    """Row filters shared by ``show`` and ``export``. ``path`` as a person writes it: the
    recorded form or the browser's (``records.path_forms``); ending in ``*``, a prefix."""

    partner: str | None = None
    purpose: str | None = None
    path: str | None = None
    consent_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None


@dataclass(frozen=True)
class PartnerAggregate:
    partner: str
    page_views: int
    consent_ids: int
    first_seen: datetime
    last_seen: datetime


@dataclass(frozen=True)
class SummaryData:
    partners: Sequence[PartnerAggregate]
    per_day: Sequence[tuple[str, date, int]]  # (partner, day, count)
    purposes: Sequence[tuple[str, str]]  # (partner, purpose)
    categories: Sequence[tuple[str, str]]  # (partner, data category)


@dataclass(frozen=True)
class PurgeCut:
    """What a purge removes from one writer's chain: rows with seq <= last_seq."""

    writer_id: str
    last_seq: int
    last_hash: str
    count: int


class LedgerStore(Protocol):
    """Durable, append-only storage of chained records.

    Every method may raise ``LedgerUnavailable`` or the driver's own error; the
    writer turns any failure of ``append`` into ``LedgerUnavailable``.
    """

    def open(self) -> None:
        """Connect and create or migrate the schema. Idempotent."""

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...

    def append(self, rows: Sequence[ChainedRecord]) -> None:
        """Insert the rows in one transaction; return only once it is durable."""

    def chain_rows(self) -> Iterator[StoredRow | BrokenRow]:
        """Every row of the chained tables, ordered by (writer_id, seq, table, rowid);
        streaming. A row that does not parse comes as a ``BrokenRow``."""

    def checkpoints(self) -> list[Checkpoint]: ...

    def purge(self, cutoff: datetime, make: PurgeCheckpointFactory) -> list[Checkpoint]:
        """In one transaction, per writer delete the longest chain prefix older than
        ``cutoff`` and insert the checkpoint ``make(cut)`` returns."""

    def disclosures(
        self, filters: Filters, newest_first: bool = True
    ) -> Iterator[StoredRow | BrokenRow]:
        """Matching page views and per-partner disclosures; streaming."""

    def consent_events(
        self, consent_id: str | None = None, since: datetime | None = None,
        until: datetime | None = None,
    ) -> Iterator[StoredRow | BrokenRow]:
        """Consent events, oldest first; streaming."""

    def summary(self, since: datetime | None, until: datetime | None) -> SummaryData: ...

    def partner_sets(self) -> list[str]: ...


class PurgeCheckpointFactory(Protocol):
    def __call__(self, cut: PurgeCut) -> Checkpoint: ...
