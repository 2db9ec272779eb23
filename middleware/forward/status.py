"""``consent-gate log forward-status``: per partner, what waits, what failed, the last error."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from middleware.errors import LedgerUnavailable
from middleware.forward.outbox import PartnerStatus, status_of


def read_status(path: str) -> list[PartnerStatus]:
    """Read-only: never creates the outbox or the file."""
    if path.startswith(("postgresql://", "postgres://")):
        raise LedgerUnavailable("server-side forwarding keeps its outbox in a SQLite ledger file")
    if not Path(path).exists():
        raise LedgerUnavailable(f"no ledger at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return status_of(conn)
    finally:
        conn.close()


def _when(t: float | None, now: float) -> str:
    if t is None:
        return "-"
    age = max(0.0, now - t)
    ago = f"{age:.0f}s" if age < 120 else f"{age / 60:.0f}m" if age < 7200 else f"{age / 3600:.0f}h"
    stamp = dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    return f"{stamp} ({ago} ago)"


def format_status(rows: Sequence[PartnerStatus], now: float) -> str:
    if not rows:
        return "no server-side forwarding recorded in this ledger"
    head = ("partner", "queued", "retrying", "oldest waiting", "delivered", "failed", "dropped",
            "retries")
    table = [head] + [(r.partner, str(r.pending), str(r.retrying), _when(r.oldest_event_time, now),
                       str(r.delivered), str(r.failed), str(r.dropped), str(r.retries))
                      for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    errors = [r for r in rows if r.last_error]
    if errors:
        lines += ["", "last error per partner:"]
        lines += [f"  {r.partner}: {r.last_error} at {_when(r.last_error_at, now)}" for r in errors]
    return "\n".join(lines)
