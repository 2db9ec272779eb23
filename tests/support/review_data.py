"""A small real ledger for the review tests: written by the LedgerWriter (real hash chains)
plus banner proofs and discovered items in the review tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from middleware.ledger import ConsentEvent, DisclosureRecord, LedgerWriter, SqliteStore
from middleware.review.db import Proof, ReviewDb, Sighting

DAY0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
CHOICES = {
    "accept": {"ads": True, "necessary": True, "social": True},
    "reject": {"ads": False, "necessary": True, "social": False},
    "custom": {"ads": True, "necessary": True, "social": False},
}


def seed(path: Path) -> None:
    """3 days; adsense on 6 page views, facebook on 2; 4 decisions (2 reject, 1 accept, 1 custom)."""
    rows: list[DisclosureRecord | ConsentEvent] = []
    decisions = [("c1", "accept", 0, False, "EU-FR"), ("c2", "reject", 0, True, "EU-FR"),
                 ("c3", "reject", 1, False, "JP"), ("c4", "custom", 2, False, "JP")]
    for cid, kind, day, _gpc, _j in decisions:
        rows.append(ConsentEvent(time=DAY0 + timedelta(days=day), consent_id=cid, action="given",
                                 choices=CHOICES[kind], policy_version="2008-01-23",
                                 source="banner"))
    views = [("c1", 0, ("google-adsense", "facebook")), ("c1", 0, ("google-adsense", "facebook")),
             ("c4", 2, ("google-adsense",)), ("c4", 2, ("google-adsense",)),
             ("c4", 2, ("google-adsense",)), ("c1", 1, ("google-adsense",))]
    for i, (cid, day, partners) in enumerate(views):
        for partner in partners:
            rows.append(DisclosureRecord(
                time=DAY0 + timedelta(days=day, minutes=i + 1), request_id=f"r{i}", consent_id=cid,
                path="/articles/kyoto-autumn", partner=partner,
                purposes=("ads",) if partner == "google-adsense" else ("social",),
                legal_basis="consent",
                data_categories=("ip_address", "cookies") if partner == "google-adsense"
                else ("ip_address", "user_agent"),
                policy_version="2008-01-23"))
    rows.sort(key=lambda r: r.time)
    w = LedgerWriter(SqliteStore(path))
    w.write_sync(rows)
    w.close()
    db = ReviewDb(path)
    for cid, kind, day, gpc, jurisdiction in decisions:
        db.add_proof(Proof(DAY0 + timedelta(days=day), cid, "given", kind, "banner",
                           ("a" if day < 2 else "b") * 64, "p" * 64, "2008-01-23", gpc,
                           jurisdiction))
    db.add_sightings([Sighting("csp", "pixel.tracker-unknown.example", "/articles/kyoto-autumn",
                               DAY0, 3),
                      Sighting("cookie", "_uw_id", "/", DAY0 + timedelta(days=1))])
    db.close()
