"""What the report says, gathered with aggregate SQL: a handful of GROUP BY queries, so a
million page views cost seconds, not a Python loop over a million parsed records.

Reads the ledger's tables (per-partner ``disclosures`` rows and, when present, one-row-per-
page-view ``page_views``) and the review tables. Pure data out: :class:`ReportData`.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from ..config import Config
from ..ledger.records import format_time
from .db import Discovered, ReviewDb

OUTCOMES = ("accept", "reject", "custom", "withdraw")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PartnerFacts:
    partner: str
    name: str
    page_views: int
    purposes: tuple[str, ...]
    data_categories: tuple[str, ...]
    privacy_url: str
    per_day: Mapping[str, int]


@dataclass(frozen=True)
class Rates:
    """Decisions by outcome, and their shares of the decisions."""

    counts: Mapping[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def share(self, outcome: str) -> float:
        return self.counts.get(outcome, 0) / self.total if self.total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"decisions": self.total, **{o: self.counts.get(o, 0) for o in OUTCOMES},
                **{f"{o}_rate": round(self.share(o), 4) for o in OUTCOMES}}


@dataclass(frozen=True)
class Health:
    ok: bool | None  # None: not verified (--no-verify)
    rows: int
    writers: int
    checkpoints: int
    first_problem: str | None
    problems: int
    last_head: str | None  # the last signed head, when the ledger keeps them


@dataclass(frozen=True)
class ReportData:
    since: datetime | None
    until: datetime
    first_day: date | None
    last_day: date | None
    page_views: int
    visitors: int  # distinct consent ids among the page views that disclosed
    partners: tuple[PartnerFacts, ...]
    decisions_per_day: Mapping[str, Rates]
    decisions_per_version: Mapping[str, Rates]
    decisions_per_banner: Mapping[str, Rates]
    decisions_per_jurisdiction: Mapping[str, Rates]
    gpc: Mapping[str, Rates]  # "gpc" / "no-gpc"
    refusals: Mapping[str, float]  # purpose id -> share of visitors whose latest choice refused it
    visitors_decided: int
    purpose_titles: Mapping[str, str]
    health: Health
    discovered: tuple[Discovered, ...]
    config_source: str | None = None
    notes: tuple[str, ...] = field(default=())

    def days(self) -> list[str]:
        """Every day of the period: the one asked for, else first record .. ``until``."""
        start = self.since.date() if self.since else self.first_day
        if start is None:
            return []
        end = (self.until - timedelta(microseconds=1)).date()
        if self.last_day is not None and self.since is None:
            end = max(end, self.last_day)
        n = (end - start).days + 1
        return [(start + timedelta(days=i)).isoformat() for i in range(max(n, 0))]

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat(),
            "page_views": self.page_views,
            "visitors": self.visitors,
            "partners": [{**asdict(p), "per_day": dict(p.per_day),
                          "purposes": list(p.purposes),
                          "data_categories": list(p.data_categories)} for p in self.partners],
            "decisions_per_day": {k: v.to_dict() for k, v in self.decisions_per_day.items()},
            "decisions_per_policy_version": {k: v.to_dict()
                                             for k, v in self.decisions_per_version.items()},
            "decisions_per_banner": {k: v.to_dict() for k, v in self.decisions_per_banner.items()},
            "decisions_per_jurisdiction": {k: v.to_dict()
                                           for k, v in self.decisions_per_jurisdiction.items()},
            "gpc": {k: v.to_dict() for k, v in self.gpc.items()},
            "refusals": {k: round(v, 4) for k, v in self.refusals.items()},
            "visitors_decided": self.visitors_decided,
            "ledger_health": asdict(self.health),
            "discovered": [d.to_dict() for d in self.discovered],
            "config": self.config_source,
            "notes": list(self.notes),
        }


def outcome(action: str, choices: Mapping[str, bool], necessary: frozenset[str]) -> str:
    """accept (every optional purpose), reject (none), custom (some), withdraw."""
    if action == "withdrawn":
        return "withdraw"
    optional = [v for k, v in choices.items() if k not in necessary]
    if optional and all(optional):
        return "accept"
    if not any(optional):
        return "reject"
    return "custom"


@lru_cache(maxsize=4096)
def _json(text: str) -> Any:
    return json.loads(text)


def _where(since: datetime | None, until: datetime, col: str = "time") -> tuple[str, list[str]]:
    clauses, params = [f"{col} < ?"], [format_time(until)]
    if since is not None:
        clauses.insert(0, f"{col} >= ?")
        params.insert(0, format_time(since))
    return " WHERE " + " AND ".join(clauses), params


def _scan_where(db: ReviewDb, table: str, since: datetime | None, until: datetime) -> str:
    """The WHERE clause, written so SQLite scans the table when the period covers most of it.

    Through the time index each row costs a random lookup: for a report over (nearly) the
    whole ledger a plain scan is several times faster; for a month of a long ledger the index
    wins. Counting the rows in the period uses the index alone, so asking is cheap.
    """
    where, params = _where(since, until)
    ((total,),) = db.read(f"SELECT COALESCE(MAX(id), 0) - COALESCE(MIN(id), 0) + 1 FROM {table}")
    ((inside,),) = db.read(f"SELECT COUNT(*) FROM {table}{where}", params)
    if total and inside / total < 0.2:
        return where
    return where.replace("time", "+time")


def collect(db: ReviewDb, config: Config | None, since: datetime | None, until: datetime,
            health: Health, progress: Progress = lambda _step: None) -> ReportData:
    """The report's facts, all read from one snapshot of the ledger."""
    with db.snapshot():
        return _collect(db, config, since, until, health, progress)


def _collect(db: ReviewDb, config: Config | None, since: datetime | None, until: datetime,
             health: Health, progress: Progress) -> ReportData:
    tables = db.tables()
    where, params = _where(since, until)
    necessary = config.necessary_purposes if config else frozenset({"necessary"})

    progress("page views per partner and day")
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    categories: dict[str, set[str]] = defaultdict(set)
    purposes: dict[str, set[str]] = defaultdict(set)
    page_views = 0
    consent_ids: list[str] = []
    if "disclosures" in tables:
        w = _scan_where(db, "disclosures", since, until)
        # A forwarded event's delivery outcome is a second row about one disclosure.
        sent = f"{w} AND COALESCE(json_extract(fields, '$.delivery'), 'queued') = 'queued'"
        for day, partner, cats, purps, n in db.read(
                "SELECT substr(time, 1, 10), partner, data_categories, purposes, COUNT(*) "
                f"FROM disclosures{sent} GROUP BY 1, 2, 3, 4", params):
            per_day[partner][day] += n
            categories[partner].update(_json(cats))
            purposes[partner].update(_json(purps))
        ((count,),) = db.read(f"SELECT COUNT(DISTINCT request_id) FROM disclosures{w}", params)
        page_views += count
        consent_ids.append(f"SELECT consent_id FROM disclosures{w}")
    if "page_views" in tables:
        w = _scan_where(db, "page_views", since, until)
        # Since ledger schema v4 a view refers to its partner list (list_id; partners '');
        # older rows hold the text. Group by both, resolve the few lists afterwards.
        by_ref = "list_id" in {r[1] for r in db.read("PRAGMA table_info(page_views)")}
        lists: dict[int, str] = ({int(i): str(t) for i, t in
                                  db.read("SELECT id, partners FROM partner_lists")}
                                 if by_ref else {})
        list_id = "list_id" if by_ref else "NULL"
        for day, text, ref, n in db.read(
                f"SELECT substr(time, 1, 10), partners, {list_id}, COUNT(*) FROM page_views{w} "
                "GROUP BY 1, 2, 3", params):
            shares = text or lists.get(ref)
            if shares is None:
                continue  # a view whose list is gone: counted below, named by verify
            for share in _json(shares):
                per_day[share["partner"]][day] += n
                categories[share["partner"]].update(share.get("data_categories", ()))
                purposes[share["partner"]].update(share.get("purposes", ()))
        ((count,),) = db.read(f"SELECT COUNT(*) FROM page_views{w}", params)
        page_views += count
        consent_ids.append(f"SELECT consent_id FROM page_views{w}")
    visitors = 0
    if consent_ids:
        union = " UNION ".join(consent_ids)
        ((visitors,),) = db.read(f"SELECT COUNT(DISTINCT consent_id) FROM ({union})",
                                 params * len(consent_ids))

    partners = []
    for pid, days in per_day.items():
        partner = config.partners.get(pid) if config else None
        partners.append(PartnerFacts(
            partner=pid, name=partner.name if partner else pid,
            page_views=sum(days.values()), purposes=tuple(sorted(purposes[pid])),
            data_categories=tuple(sorted(categories[pid])),
            privacy_url=partner.privacy_url if partner else "",
            per_day=dict(sorted(days.items()))))
    partners.sort(key=lambda p: (-p.page_views, p.partner))

    progress("consent decisions")
    by_day: dict[str, Counter[str]] = defaultdict(Counter)
    by_version: dict[str, Counter[str]] = defaultdict(Counter)
    all_days = {d for p in partners for d in p.per_day}
    if "consent_events" in tables:
        for day, action, choices, version, n in db.read(
                f"SELECT substr(time, 1, 10), action, choices, policy_version, COUNT(*) "
                f"FROM consent_events{where} GROUP BY 1, 2, 3, 4", params):
            o = outcome(action, _json(choices), necessary)
            by_day[day][o] += n
            by_version[version][o] += n
            all_days.add(day)

    progress("visitors' latest choices")
    refused: Counter[str] = Counter()
    decided = 0
    if "consent_events" in tables:
        for choices, n in db.read(
                "SELECT choices, COUNT(*) FROM consent_events WHERE id IN (SELECT MAX(id) FROM "
                f"consent_events{where} GROUP BY consent_id) GROUP BY 1", params):
            decided += n
            for purpose, granted in _json(choices).items():
                if purpose not in necessary and not granted:
                    refused[purpose] += n
    refusals = {p: refused[p] / decided for p in sorted(refused)} if decided else {}

    progress("banner versions, jurisdictions and GPC")
    by_banner: dict[str, Counter[str]] = defaultdict(Counter)
    by_jurisdiction: dict[str, Counter[str]] = defaultdict(Counter)
    by_gpc: dict[str, Counter[str]] = defaultdict(Counter)
    proofs = db.read(
        "SELECT banner_hash, jurisdiction, gpc, outcome, COUNT(*) FROM review_proofs"
        f"{where} GROUP BY 1, 2, 3, 4", params) if "review_proofs" in tables else []
    for banner, jurisdiction, gpc, o, n in proofs:
        by_banner[banner[:12]][o] += n
        if jurisdiction:
            by_jurisdiction[jurisdiction][o] += n
        by_gpc["gpc" if gpc else "no-gpc"][o] += n

    progress("discovered hosts and cookies")
    discovered = tuple(db.discovered(since))

    first = min(all_days) if all_days else None
    last = max(all_days) if all_days else None

    def rates(table: Mapping[str, Counter[str]]) -> dict[str, Rates]:
        return {k: Rates(dict(v)) for k, v in sorted(table.items())}

    titles = {p.id: p.title for p in config.purposes.values()} if config else {}
    return ReportData(
        since=since, until=until,
        first_day=date.fromisoformat(first) if first else None,
        last_day=date.fromisoformat(last) if last else None,
        page_views=page_views, visitors=visitors, partners=tuple(partners),
        decisions_per_day=rates(by_day), decisions_per_version=rates(by_version),
        decisions_per_banner=rates(by_banner), decisions_per_jurisdiction=rates(by_jurisdiction),
        gpc=rates(by_gpc), refusals=refusals, visitors_decided=decided,
        purpose_titles=titles, health=health, discovered=discovered,
        config_source=config.source if config else None,
    )


def headline_purpose(data: ReportData, config: Config | None) -> str | None:
    """The purpose the summary sentence speaks of: the optional one with most partners."""
    if not data.refusals:
        return None
    if config is not None:
        ranked = sorted(data.refusals, key=lambda p: (-len(config.partners_for_purpose(p)), p))
        return ranked[0]
    return sorted(data.refusals)[0]


def sorted_days(values: Sequence[str]) -> list[str]:
    return sorted(set(values))
