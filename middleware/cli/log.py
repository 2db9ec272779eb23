"""``consent-gate log ...``: review, export, verify and purge the disclosure ledger.

Each command reads the ledger, builds a value, and hands a ``format_*`` text and a
JSON-able form of that value to :func:`common.emit`.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from ..config import LedgerConfig, load_config
from ..env import LEDGER_KEY_ENV
from ..errors import ConsentGateError
from ..ledger.chain import BrokenRow, Checkpoint, StoredRow, VerifyReport, verify
from ..ledger.heads import (
    ChainHead,
    HeadError,
    HeadFinding,
    check_heads,
    generate_keypair,
    load_public_key,
    read_heads,
)
from ..ledger.query import (
    PartnerSummary,
    SubjectReport,
    disclosure_items,
    export,
    show,
    subject,
    summary,
)
from ..ledger.records import ConsentEvent, PageView
from ..ledger.retention import purge
from ..ledger.store import Filters, LedgerStore
from .common import (
    EXIT_FOUND,
    EXIT_OK,
    emit,
    find_config_path,
    ledger_target,
    open_ledger,
    parse_when,
)

KEY_ENV = LEDGER_KEY_ENV
_BLOCKS = " ▁▂▃▄▅▆▇█"


# -- arguments -----------------------------------------------------------------------------
def _filters(p: argparse.ArgumentParser, limit: bool) -> None:
    p.add_argument("--partner")
    p.add_argument("--purpose")
    p.add_argument("--path", help="exact path, or a prefix ending in * (/blog/*); as the "
                   "browser shows it (/caf%%C3%%A9, /a%%3Fb) or as recorded (/café); a ?query "
                   "matches only where the ledger keeps queries (keep_query)")
    p.add_argument("--consent-id")
    p.add_argument("--since", type=parse_when, help="7d, 12h or an ISO date/time (inclusive)")
    p.add_argument("--until", type=parse_when, help="7d, 12h or an ISO date/time (exclusive)")
    if limit:
        p.add_argument("--limit", type=int, default=50, help="at most N rows (default 50)")


def _key_env(p: argparse.ArgumentParser) -> None:
    p.add_argument("--key-env", default=KEY_ENV,
                   help=f"variable holding the checkpoint signing key (default {KEY_ENV})")


def summary_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", type=parse_when, default=None,
                   help="7d, 12h or an ISO date/time (default: 7d)")
    p.add_argument("--until", type=parse_when, default=None, help="default: now")


def show_arguments(p: argparse.ArgumentParser) -> None:
    _filters(p, limit=True)


def subject_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("consent_id", metavar="CONSENT_ID")


def export_arguments(p: argparse.ArgumentParser) -> None:
    _filters(p, limit=False)
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--kind", choices=("disclosures", "consent-events"), default="disclosures")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def verify_arguments(p: argparse.ArgumentParser) -> None:
    _key_env(p)
    p.add_argument("--heads", action="append", metavar="FILE|URL", default=[],
                   help="signed chain heads from a witness file or URL (repeatable): find "
                        "rows deleted after the last head, a replaced chain, forged heads")
    p.add_argument("--public-key", metavar="FILE",
                   help="the heads' Ed25519 public key (PEM, from consent-gate log keygen)")


def keygen_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--private", default="ledger-heads.key", metavar="FILE",
                   help="where to write the private key (mode 0600; default ledger-heads.key)")
    p.add_argument("--public", default="ledger-heads.pub", metavar="FILE",
                   help="where to write the public key (default ledger-heads.pub)")


def purge_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--older-than", type=parse_age, required=True, metavar="AGE",
                   help="days, hours or weeks: 395d, 12h, 8w (no 'm': minutes or months?)")
    p.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    p.add_argument("--force", action="store_true",
                   help="purge records younger than the configured retention_days too")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask on a terminal")
    _key_env(p)


_AGE_UNITS = {"h": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400,
              "w": 7 * 86400, "week": 7 * 86400, "weeks": 7 * 86400}
_AGE = re.compile(r"^\s*(\d+)\s*([a-z]+)\s*$")


def parse_age(text: str) -> timedelta:
    """A purge age: ``395d``, ``12h``, ``8w``. ``m``, ``min``, ``mo`` and bare numbers are
    refused: ``1m`` once deleted a whole ledger meant to be kept a month."""
    m = _AGE.match(text.lower())
    if m is None or m.group(2) not in _AGE_UNITS:
        unit = m.group(2) if m else ""
        why = ("'m' could mean minutes or months" if unit.startswith("m")
               else "expected a number and a unit")
        raise argparse.ArgumentTypeError(
            f"bad age {text!r}: {why}; use days (30d), hours (12h) or weeks (8w)")
    return timedelta(seconds=int(m.group(1)) * _AGE_UNITS[m.group(2)])


# -- formatting (pure) ---------------------------------------------------------------------
def _t(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    rows = [list(r) for r in rows]
    widths = [len(h) for h in headers]
    for r in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, r, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


def format_sparkline(values: Sequence[int]) -> str:
    """One unicode block per value, scaled to the largest; zero is a space-like dot."""
    top = max(values, default=0)
    if top <= 0:
        return "·" * len(values)
    out = []
    for v in values:
        if v <= 0:
            out.append("·")
        else:
            out.append(_BLOCKS[max(1, round(v / top * 8))])
    return "".join(out)


def _days(since: date, until: date) -> list[date]:
    n = (until - since).days + 1
    return [since + timedelta(days=i) for i in range(max(n, 0))]


def format_summary(
    partners: Sequence[PartnerSummary], since: datetime | None, until: datetime | None
) -> str:
    if not partners:
        return "no disclosures in this period"
    first = min(p.first_seen for p in partners).date()
    last = max(p.last_seen for p in partners).date()
    start = since.date() if since else first
    end = (until - timedelta(microseconds=1)).date() if until else last
    days = _days(start, end)
    if len(days) > 120:  # keep the chart on one line: the last 120 days
        days = days[-120:]
    head = f"disclosures {start.isoformat()} .. {end.isoformat()} (UTC)"
    table = _table(
        ["partner", "views", "consent ids", "purposes", "data", "first seen", "last seen"],
        [[p.partner, f"{p.page_views:,}", f"{p.consent_ids:,}", ", ".join(p.purposes),
          ", ".join(p.data_categories), _t(p.first_seen), _t(p.last_seen)] for p in partners],
    )
    width = max(len(p.partner) for p in partners)
    lines = [head, "", table, "", f"per day, {days[0]} .. {days[-1]}:" if days else ""]
    totals = dict.fromkeys(days, 0)
    for p in partners:
        counts = dict(p.per_day)
        values = [counts.get(d, 0) for d in days]
        for d, v in zip(days, values, strict=True):
            totals[d] += v
        lines.append(f"  {p.partner.ljust(width)}  {format_sparkline(values)}  "
                     f"max {max(values, default=0):,}/day")
    if 1 < len(days) <= 31:
        lines += ["", "all partners:"]
        top = max(totals.values(), default=0) or 1
        for d, v in totals.items():
            bar = "█" * round(v / top * 40) if v else ""
            lines.append(f"  {d.isoformat()}  {bar} {v:,}")
    return "\n".join(lines)


def format_rows(rows: Sequence[StoredRow], partner: str | None = None,
                broken: Sequence[BrokenRow] = ()) -> str:
    """One line per (record, partner); a page view record shows each of its partners."""
    lines = [str(b) for b in broken]
    if not rows:
        return "\n".join(["no matching disclosures", *lines])
    out = []
    server = False
    for r in rows:
        for rec in disclosure_items(r, partner):
            note = _server_side(rec.fields)
            server = server or bool(note)
            out.append([_t(rec.time), rec.partner, rec.path, rec.consent_id or "-",
                        ",".join(rec.purposes), rec.legal_basis, rec.ip or "-", rec.ua_family, note])
    headers = ["time (UTC)", "partner", "path", "consent id", "purposes", "basis", "ip", "browser"]
    if server:  # server-side forwarding (forward/): the event, what was sent, how it ended
        headers.append("server-side event")
    else:
        out = [row[:-1] for row in out]
    return "\n".join([_table(headers, out), *lines])


def _server_side(fields: Any) -> str:
    """``purchase queued: 7 fields (send)`` / ``purchase accepted, 2 attempts`` or ``""``."""
    if not isinstance(fields, Mapping) or fields.get("channel") != "server":
        return ""
    event, delivery = fields.get("event", "?"), fields.get("delivery", "?")
    if delivery == "queued":
        sent = fields.get("sent") or {}
        removed = fields.get("removed") or []
        extra = f", {len(removed)} removed" if removed else ""
        return f"{event} queued: {len(sent)} fields ({fields.get('action', '?')}{extra})"
    attempts = fields.get("attempts", 0)
    return f"{event} {delivery}, {attempts} attempt{'s' if attempts != 1 else ''}"


def format_subject(report: SubjectReport) -> str:
    lines = [f"consent id {report.consent_id}", ""]
    if report.events:
        lines.append("consent history:")
        for r in report.events:
            e = r.record
            if isinstance(e, ConsentEvent):
                choices = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in e.choices.items())
                lines.append(f"  {_t(e.time)}  {e.action:<9} via {e.source:<11} policy "
                             f"{e.policy_version}: {choices}")
    else:
        lines.append("no consent events")
    lines.append("")
    if report.disclosures:
        lines.append(f"disclosures ({len(report.disclosures)} records):")
        lines.append(format_rows(report.disclosures))
    else:
        lines.append("no disclosures")
    lines += [str(b) for b in report.broken]
    return "\n".join(lines)


def format_verify(report: VerifyReport, findings: Sequence[HeadFinding] = (),
                  heads: int | None = None) -> str:
    counts = (f"{report.rows:,} records, {report.writers} writers, "
              f"{report.checkpoints} purge checkpoints")
    if heads is not None:
        counts += f", {heads:,} witnessed heads"
    ok = report.ok and not any(f.fatal for f in findings)
    lines = [f"ok: {counts}" if ok else f"BROKEN: {counts}"]
    lines += [f"{'witness: ' if f.fatal else 'warning: '}{f}" for f in findings]
    first = report.first_problem
    if first is not None:
        lines.append(f"first bad record: {first}")
        if len(report.problems) > 1:
            lines.append(f"{len(report.problems) - 1} more problem(s):")
            lines += [f"  {p}" for p in report.problems[1:20]]
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def _age(delta: timedelta) -> str:
    hours = int(delta.total_seconds()) // 3600
    return f"{hours // 24} days" if hours % 24 == 0 else f"{hours} hours"


def format_purge_preview(counts: dict[str, int], older_than: timedelta, cutoff: datetime) -> str:
    total = sum(counts.values())
    lines = [f"would purge {total:,} records older than {_age(older_than)} "
             f"(before {_t(cutoff)} UTC) from {len(counts)} writer chain(s)"]
    lines += [f"  writer {w}: {n:,} records" for w, n in sorted(counts.items())]
    return "\n".join(lines)


def format_purge(checkpoints: Sequence[Checkpoint], older_than: timedelta) -> str:
    total = sum(cp.purged for cp in checkpoints)
    head = (f"purged {total:,} records older than {_age(older_than)} "
            f"from {len(checkpoints)} writer chain(s)")
    signed = any(cp.signature for cp in checkpoints)
    lines = [head]
    lines += [f"  writer {cp.writer_id}: {cp.purged:,} records, up to seq {cp.last_seq}"
              for cp in checkpoints]
    if checkpoints:
        lines.append("checkpoints signed" if signed else
                     f"checkpoints NOT signed (set {KEY_ENV} to sign them)")
    return "\n".join(lines)


_CSV_DISCLOSURE = ["kind", "rowid", "time", "request_id", "consent_id", "path", "partner",
                   "purposes", "legal_basis", "data_categories", "cookies", "policy_version",
                   "ip", "ua_family", "fields", "writer_id", "seq", "prev_hash", "hash"]
_CSV_CONSENT = ["kind", "rowid", "time", "consent_id", "action", "choices", "policy_version",
                "source", "ip", "ua_family", "writer_id", "seq", "prev_hash", "hash"]


def _csv_value(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, list):
        return ";".join(str(x) for x in v)
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    return str(v)


def write_export(rows: Iterable[StoredRow | BrokenRow], fmt: str, kind: str, out: TextIO,
                 progress: TextIO | None = None) -> int:
    """Stream rows to ``out``; return the count of records. Progress to ``progress`` every
    10,000. JSON lines: one line per record as stored (a page view holds its partners);
    CSV: one line per (record, partner), each carrying its record's chain fields."""
    n = 0
    writer = None
    if fmt == "csv":
        cols = _CSV_DISCLOSURE if kind == "disclosures" else _CSV_CONSENT
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(cols)
    for row in rows:
        d = row.to_dict()
        if writer is not None:
            if isinstance(row, StoredRow) and isinstance(row.record, PageView):
                for share in row.record.partners:
                    one = {**d, "kind": "disclosure", **share.to_dict()}
                    writer.writerow([_csv_value(one.get(c)) for c in cols])
            else:
                writer.writerow([_csv_value(d.get(c)) for c in cols])
        else:
            out.write(json.dumps(d, ensure_ascii=False, separators=(",", ":")))
            out.write("\n")
        n += 1
        if progress is not None and n % 10_000 == 0:
            progress.write(f"\rexported {n:,} records")
            progress.flush()
    if progress is not None:
        progress.write(f"\rexported {n:,} records\n")
    return n


# -- running -------------------------------------------------------------------------------
def _key(args: argparse.Namespace) -> bytes | None:
    value = os.environ.get(args.key_env, "")
    return value.encode() if value else None


def run_summary(args: argparse.Namespace) -> int:
    now = datetime.now(UTC)
    since = args.since if args.since is not None else now - timedelta(days=7)
    with open_ledger(args) as store:
        result = summary(store, since, args.until)
    emit(args, format_summary(result, since, args.until or now),
         {"since": since.isoformat(), "until": args.until.isoformat() if args.until else None,
          "partners": [p.to_dict() for p in result]})
    return EXIT_OK


def run_show(args: argparse.Namespace) -> int:
    broken: list[BrokenRow] = []
    with open_ledger(args) as store:
        rows = show(store, Filters(args.partner, args.purpose, args.path, args.consent_id,
                                   args.since, args.until, args.limit), broken)
    emit(args, format_rows(rows, args.partner, broken),
         [r.to_dict() for r in rows] + [b.to_dict() for b in broken])
    return EXIT_OK


def run_subject(args: argparse.Namespace) -> int:
    from .review import format_proofs, proofs_for

    with open_ledger(args) as store:
        report = subject(store, args.consent_id)
    proofs = proofs_for(args, args.consent_id)
    text = format_subject(report) + ("\n\n" + format_proofs(proofs) if proofs else "")
    emit(args, text, {**report.to_dict(), "banners_shown": [p.to_dict() for p in proofs]})
    return EXIT_OK


def run_export(args: argparse.Namespace) -> int:
    flt = Filters(args.partner, args.purpose, args.path, args.consent_id, args.since, args.until)
    progress = sys.stderr if sys.stderr.isatty() else None
    with open_ledger(args) as store:
        rows = export(store, flt, args.kind)
        if args.output:
            with open(args.output, "w", encoding="utf-8", newline="") as f:
                n = write_export(rows, args.format, args.kind, f, progress)
        else:
            n = write_export(rows, args.format, args.kind, sys.stdout, progress)
    if args.output and (args.json or progress is None):  # a terminal saw the progress line
        emit(args, f"exported {n:,} records to {args.output}",
             {"exported": n, "output": args.output, "format": args.format})
    return EXIT_OK


def run_verify(args: argparse.Namespace) -> int:
    if args.heads and not args.public_key:
        raise HeadError("--heads needs --public-key (the witness heads' Ed25519 public key)")
    heads: list[ChainHead] = []
    unreadable: list[str] = []
    public = load_public_key(args.public_key) if args.public_key else None
    for source in args.heads:
        got, bad = read_heads(source)
        heads += got
        unreadable += bad
    want: dict[str, set[int]] = {}
    for h in heads:
        want.setdefault(h.writer_id, set()).add(h.seq)
    with open_ledger(args) as store:
        report = verify(store, _key(args), want=want)
        checkpoints = store.checkpoints() if public is not None else []
    findings = (check_heads(heads, public, report.tips, checkpoints)
                if public is not None else [])
    findings += [HeadFinding("?", w, False) for w in unreadable]
    ok = report.ok and not any(f.fatal for f in findings)
    data = report.to_dict()
    if public is not None:
        data["ok"] = ok
        data["heads"] = len(heads)
        data["witness"] = [{"writer_id": f.writer_id, "what": f.what, "fatal": f.fatal}
                           for f in findings]
    emit(args, format_verify(report, findings, len(heads) if public is not None else None),
         data)
    return EXIT_OK if ok else EXIT_FOUND


def run_keygen(args: argparse.Namespace) -> int:
    priv, pub = Path(args.private), Path(args.public)
    kid = generate_keypair(priv, pub)
    emit(args, f"key {kid}: private key {priv} (mode 0600: give it to the site's servers "
         f"only, as [ledger] heads_key), public key {pub} (give it to whoever checks: "
         f"consent-gate log verify --heads ... --public-key {pub})",
         {"key_id": kid, "private": str(priv), "public": str(pub)})
    return EXIT_OK


def purge_preview(store: LedgerStore, cutoff: datetime) -> dict[str, int]:
    """Per writer, how many records ``purge`` would delete: like the store, only the prefix
    of each chain before its first record younger than ``cutoff``, after its checkpoint."""
    done: dict[str, int] = {}
    for cp in store.checkpoints():
        done[cp.writer_id] = max(cp.last_seq, done.get(cp.writer_id, 0))
    seqs: dict[str, list[int]] = {}
    first_young: dict[str, int] = {}
    for row in store.chain_rows():
        if not isinstance(row, StoredRow):
            continue
        if row.record.time < cutoff:
            seqs.setdefault(row.writer_id, []).append(row.seq)
        elif row.seq < first_young.get(row.writer_id, row.seq + 1):
            first_young[row.writer_id] = row.seq
    out: dict[str, int] = {}
    for writer, old in seqs.items():
        last = first_young.get(writer, max(old) + 1) - 1
        n = sum(1 for q in old if done.get(writer, 0) < q <= last)
        if n:
            out[writer] = n
    return out


def _retention(args: argparse.Namespace) -> tuple[int, str]:
    """retention_days and where it comes from (the config, else the built-in default)."""
    path = find_config_path(args)
    if path is not None:
        return load_config(path).ledger.retention_days, f"{path} [ledger] retention_days"
    return LedgerConfig().retention_days, "the default: no config found"


def run_purge(args: argparse.Namespace) -> int:
    days, source = _retention(args)
    if args.older_than < timedelta(days=days) and not args.force:
        raise ConsentGateError(
            f"refusing to purge records younger than the retention period ({days} days, from "
            f"{source}); use --older-than {days}d or more, or add --force")
    cutoff = datetime.now(UTC) - args.older_than
    with open_ledger(args) as store:
        counts = purge_preview(store, cutoff)
        if args.dry_run:
            emit(args, format_purge_preview(counts, args.older_than, cutoff),
                 {"dry_run": True, "would_purge": sum(counts.values()), "writers": counts})
            return EXIT_OK
        if counts and not args.yes and not args.json and sys.stdin.isatty():
            sys.stderr.write(format_purge_preview(counts, args.older_than, cutoff)
                             + f"\nledger: {ledger_target(args)}\nType 'purge' to delete them: ")
            sys.stderr.flush()
            if sys.stdin.readline().strip() != "purge":
                sys.stderr.write("nothing deleted\n")
                return EXIT_FOUND
        cps = purge(store, args.older_than, _key(args), now=cutoff + args.older_than)
    emit(args, format_purge(cps, args.older_than),
         {"purged": sum(c.purged for c in cps), "checkpoints": [
             {"writer_id": c.writer_id, "last_seq": c.last_seq, "purged": c.purged,
              "signed": c.signature is not None} for c in cps]})
    return EXIT_OK
