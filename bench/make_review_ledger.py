"""Fill a ledger with a month of realistic traffic for `consent-gate report` (screenshots, timing).

    .venv/bin/python bench/make_review_ledger.py /tmp/month.sqlite3 --page-views 20000
    .venv/bin/consent-gate report --ledger /tmp/month.sqlite3 \
        --config examples/japan_talk/partners.toml --since 2026-11-01 --until 2026-12-01

Records go through the real LedgerWriter (hash chains, so `verify` passes); banner proofs and
discovered hosts through the review tables, as the middleware writes them.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from middleware.config import load_config
from middleware.ledger import ConsentEvent, DisclosureRecord, LedgerWriter, SqliteStore
from middleware.review.db import Proof, ReviewDb, Sighting
from middleware.review.facts import outcome

ROOT = Path(__file__).resolve().parents[1]
PAGES = ("/", "/articles/kyoto-autumn", "/articles/tokyo-trains", "/articles/onsen-etiquette",
         "/articles/osaka-food", "/about")
BROWSERS = ("Chrome 131", "Firefox 133", "Safari 18", "Edge 131", "bot")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("ledger")
    ap.add_argument("--page-views", type=int, default=20_000)
    ap.add_argument("--config", default=str(ROOT / "examples" / "japan_talk" / "partners.toml"))
    ap.add_argument("--start", default="2026-11-01")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--seed", type=int, default=14)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    config = load_config(args.config)
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    optional = [p for p in config.purposes.values() if not p.necessary]
    necessary = config.necessary_purposes
    writer = LedgerWriter(SqliteStore(args.ledger, synchronous="normal"))
    db = ReviewDb(args.ledger)
    banners = {"banner": "b" * 64, "banner-v2": "c" * 64}
    visitors: list[tuple[str, frozenset[str]]] = []
    batch: list[DisclosureRecord | ConsentEvent] = []
    proofs: list[Proof] = []
    began = time.perf_counter()
    for i in range(args.page_views):
        # More traffic at the weekend, and a slow rise through the month.
        day = min(int(rng.triangular(0, args.days, args.days * 0.7)), args.days - 1)
        t = start + timedelta(days=day, seconds=rng.randrange(86400))
        if not visitors or rng.random() < 0.3:
            cid = f"v{i:07d}"
            gpc = rng.random() < 0.12
            jurisdiction = rng.choice(("EU-FR", "EU-DE", "JP", "US-CA"))
            r = rng.random()
            if gpc:
                granted = frozenset(p.id for p in optional if not p.sale_or_sharing and r < 0.5)
            elif r < 0.36:
                granted = frozenset(p.id for p in optional)
            elif r < 0.84:
                granted = frozenset()
            else:
                granted = frozenset(p.id for p in optional[:1])
            choices = {p: p in granted or p in necessary for p in config.purposes}
            banner = banners["banner" if day < 18 else "banner-v2"]
            batch.append(ConsentEvent(time=t, consent_id=cid, action="given", choices=choices,
                                      policy_version=config.policy.version, source="banner"))
            o = outcome("given", choices, necessary)
            proofs.append(Proof(t, cid, "given", o, "banner", banner, "p" * 64,
                                config.policy.version, gpc, jurisdiction))
            if rng.random() < 0.03:
                batch.append(ConsentEvent(time=t + timedelta(minutes=5), consent_id=cid,
                                          action="withdrawn", choices={p: p in necessary for p in
                                                                       config.purposes},
                                          policy_version=config.policy.version,
                                          source="preferences"))
                proofs.append(Proof(t + timedelta(minutes=5), cid, "withdrawn", "withdraw",
                                    "preferences", "d" * 64, "p" * 64, config.policy.version,
                                    gpc, jurisdiction))
                granted = frozenset()
            visitors.append((cid, granted))
        cid, granted = rng.choice(visitors[-200:])
        path = rng.choice(PAGES)
        for partner in config.partners.values():
            if all(p in granted or p in necessary for p in partner.purposes):
                batch.append(DisclosureRecord(
                    time=t, request_id=f"r{i}", consent_id=cid, path=path, partner=partner.id,
                    purposes=partner.purposes, legal_basis="consent",
                    data_categories=partner.receives, cookies=partner.cookies,
                    policy_version=config.policy.version, ip="203.0.113.0/24",
                    ua_family=rng.choice(BROWSERS)))
        if len(batch) >= 5000:
            batch.sort(key=lambda r: r.time)
            writer.write_sync(batch)
            batch = []
    if batch:
        writer.write_sync(batch)
    writer.close()
    for p in proofs:
        db.add_proof(p)
    db.add_sightings([
        Sighting("host", "cdn.widgets-unknown.example", "/articles/kyoto-autumn",
                 start + timedelta(days=3), 412),
        Sighting("csp", "pixel.adnet-unknown.example", "/articles/tokyo-trains",
                 start + timedelta(days=9), 87),
        Sighting("csp", "sync.adnet-unknown.example", "/", start + timedelta(days=21), 15),
        Sighting("cookie", "_uw_id", "/", start + timedelta(days=12), 230),
    ])
    db.close()
    print(f"{args.page_views:,} page views, {len(visitors):,} visitors in "
          f"{time.perf_counter() - began:.1f} s -> {args.ledger}")


if __name__ == "__main__":
    main()
