"""Retention: delete old records, leave a checkpoint so the chains still verify."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from middleware.ledger.chain import Checkpoint
from middleware.ledger.store import LedgerStore, PurgeCut


def purge(
    store: LedgerStore,
    older_than: timedelta,
    key: bytes | None = None,
    now: datetime | None = None,
) -> list[Checkpoint]:
    """Delete records older than ``older_than``; return one checkpoint per purged writer.

    Per writer only a prefix of its chain is deleted (up to the first record that is
    still young), and a checkpoint keeps the last deleted seq and hash, the count and
    the time, HMAC-signed when ``key`` is given. ``verify`` then starts that writer's
    chain from the checkpoint, so a purge passes and an unexplained gap does not.
    A writer whose boundary row is missing or doubled is left alone (purging it would
    hide the damage from ``verify``).
    """
    if older_than < timedelta(0):
        raise ValueError(f"older_than must not be negative, got {older_than}")
    at = (now or datetime.now(UTC)).astimezone(UTC)
    cutoff = at - older_than

    def make(cut: PurgeCut) -> Checkpoint:
        return Checkpoint(cut.writer_id, cut.last_seq, cut.last_hash, cut.count, at).signed(key)

    return store.purge(cutoff, make)
