"""``consent-gate log ...``: review, export, verify and purge the disclosure ledger.

The ``format_*`` functions build the text; ``run_log`` only prints it. Every
subcommand takes ``--json`` for machines. Exit codes: 0 ok, 1 ``verify`` found a
broken chain, 2 bad arguments or no usable ledger.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import re
import sqlite3
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from middleware.errors import ConsentGateError, LedgerUnavailable
from middleware.ledger.chain import Checkpoint, StoredRow, VerifyReport, verify
from middleware.ledger.query import (
    PartnerSummary,
    SubjectReport,
    export,
    open_store,
    show,
    subject,
    summary,
)
from middleware.ledger.records import ConsentEvent, DisclosureRecord
from middleware.ledger.retention import purge
from middleware.ledger.store import Filters, LedgerStore

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_USAGE = 2

KEY_ENV = "CONSENT_GATE_LEDGER_KEY"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_BLOCKS = " ▁▂▃▄▅▆▇█"


# -- argument parsing --------------------------------------------------------------------
def parse_duration(text: str) -> timedelta:
    """``7d``, ``12h``, ``30m``, ``2w``, ``395d`` -> timedelta."""
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(
            f"bad duration {text!r}: expected a number and a unit s, m, h, d or w (e.g. 7d)")
    return timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """A duration ago (``7d``), an ISO date (``2024-05-01``, UTC midnight) or datetime."""
    now = now or datetime.now(UTC)
    if _DURATION.match(text):
        return now - parse_duration(text)
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"bad time {text!r}: expected a duration ago (7d, 12h) or an ISO date "
            "(2024-05-01, 2024-05-01T12:00:00Z)") from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ledger", metavar="PATH|DSN",
                   help="SQLite file or postgresql:// DSN (default: [ledger] path of --config)")
    p.add_argument("--config", metavar="TOML", help="partners.toml to take [ledger] path from")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _filters(p: argparse.ArgumentParser, limit: bool) -> None:
    p.add_argument("--partner")
    p.add_argument("--purpose")
    p.add_argument("--path", help="exact path, or a prefix ending in * (/blog/*)")
    p.add_argument("--consent-id")
    p.add_argument("--since", type=parse_when, help="7d, 12h or an ISO date/time (inclusive)")
    p.add_argument("--until", type=parse_when, help="7d, 12h or an ISO date/time (exclusive)")
    if limit:
        p.add_argument("--limit", type=int, default=50, help="at most N rows (default 50)")


def add_log_parser(subparsers: Any) -> None:
    """Register ``log`` and its subcommands on the top-level CLI's subparsers."""
    log = subparsers.add_parser("log", help="review what partners received (the ledger)")
    log.set_defaults(func=run_log)
    sub = log.add_subparsers(dest="log_command", required=True, metavar="COMMAND")

    p = sub.add_parser("summary", help="per partner: page views, consent ids, data, per day")
    _common(p)
    p.add_argument("--since", type=parse_when, default=None,
                   help="7d, 12h or an ISO date/time (default: 7d)")
    p.add_argument("--until", type=parse_when, default=None, help="default: now")

    p = sub.add_parser("show", help="disclosures, newest first")
    _common(p)
    _filters(p, limit=True)

    p = sub.add_parser("subject", help="one consent id: consent history and disclosures")
    _common(p)
    p.add_argument("consent_id", metavar="CONSENT_ID")

    p = sub.add_parser("export", help="stream records as JSON lines or CSV")
    _common(p)
    _filters(p, limit=False)
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--kind", choices=("disclosures", "consent-events"), default="disclosures")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    p = sub.add_parser("verify", help="check the hash chains; exit 1 naming the first bad record")
    _common(p)
    p.add_argument("--key-env", default=KEY_ENV,
                   help=f"variable holding the checkpoint signing key (default {KEY_ENV})")

    p = sub.add_parser("purge", help="delete records older than the retention period")
    _common(p)
    p.add_argument("--older-than", type=parse_duration, required=True, metavar="DURATION",
                   help="e.g. 395d")
    p.add_argument("--key-env", default=KEY_ENV,
                   help=f"variable holding the checkpoint signing key (default {KEY_ENV})")


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


def format_rows(rows: Sequence[StoredRow]) -> str:
    if not rows:
        return "no matching disclosures"
    out = []
    for r in rows:
        rec = r.record
        if isinstance(rec, DisclosureRecord):
            out.append([_t(rec.time), rec.partner, rec.path, rec.consent_id or "-",
                        ",".join(rec.purposes), rec.legal_basis, rec.ip or "-", rec.ua_family])
    return _table(["time (UTC)", "partner", "path", "consent id", "purposes", "basis", "ip",
                   "browser"], out)


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
        lines.append(f"disclosures ({len(report.disclosures)}):")
        lines.append(format_rows(report.disclosures))
    else:
        lines.append("no disclosures")
    return "\n".join(lines)


def format_verify(report: VerifyReport) -> str:
    counts = (f"{report.rows:,} records, {report.writers} writers, "
              f"{report.checkpoints} purge checkpoints")
    lines = [f"ok: {counts}" if report.ok else f"BROKEN: {counts}"]
    first = report.first_problem
    if first is not None:
        lines.append(f"first bad record: {first}")
        if len(report.problems) > 1:
            lines.append(f"{len(report.problems) - 1} more problem(s):")
            lines += [f"  {p}" for p in report.problems[1:20]]
    lines += [f"warning: {w}" for w in report.warnings]
    return "\n".join(lines)


def format_purge(checkpoints: Sequence[Checkpoint], older_than: timedelta) -> str:
    total = sum(cp.purged for cp in checkpoints)
    head = (f"purged {total:,} records older than {older_than.days} days "
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


def write_export(rows: Iterable[StoredRow], fmt: str, kind: str, out: TextIO,
                 progress: TextIO | None = None) -> int:
    """Stream rows to ``out``; return the count. Progress to ``progress`` every 10,000."""
    n = 0
    writer = None
    if fmt == "csv":
        cols = _CSV_DISCLOSURE if kind == "disclosures" else _CSV_CONSENT
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(cols)
    for row in rows:
        d = row.to_dict()
        if writer is not None:
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
def resolve_target(args: argparse.Namespace) -> str:
    if getattr(args, "ledger", None):
        return str(args.ledger)
    config = getattr(args, "config", None)
    if config is None and Path("partners.toml").exists():
        config = "partners.toml"
    if config is None:
        raise LedgerUnavailable("no ledger given: use --ledger PATH|DSN or --config partners.toml")
    try:
        from middleware.config import load_config
    except ImportError:  # the config module ships with the package; tolerate partial trees
        raise LedgerUnavailable(
            "cannot read [ledger] path: middleware.config is missing; use --ledger") from None
    return str(load_config(config).ledger.path)


def _store(args: argparse.Namespace, must_exist: bool = True) -> LedgerStore:
    target = resolve_target(args)
    if must_exist and "://" not in target and not Path(target).exists():
        # Never create an empty ledger by looking in the wrong place.
        raise LedgerUnavailable(f"no ledger at {target} (check --ledger or [ledger] path)")
    store = open_store(target)
    store.open()
    return store


def _key(args: argparse.Namespace) -> bytes | None:
    value = os.environ.get(args.key_env, "")
    return value.encode() if value else None


def _print(text: str) -> None:
    sys.stdout.write(text + "\n")


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def run_log(args: argparse.Namespace) -> int:
    """Run one ``log`` subcommand; return the exit code."""
    cmd = args.log_command
    try:
        store = _store(args)
    except ConsentGateError as exc:
        sys.stderr.write(f"consent-gate log: error: {exc}\n")
        return EXIT_USAGE
    try:
        if cmd == "summary":
            now = datetime.now(UTC)
            since = args.since if args.since is not None else now - timedelta(days=7)
            until = args.until
            result = summary(store, since, until)
            if args.json:
                _print_json({"since": since.isoformat(),
                             "until": until.isoformat() if until else None,
                             "partners": [p.to_dict() for p in result]})
            else:
                _print(format_summary(result, since, until or now))
            return EXIT_OK
        if cmd == "show":
            rows = show(store, Filters(args.partner, args.purpose, args.path, args.consent_id,
                                       args.since, args.until, args.limit))
            if args.json:
                _print_json([r.to_dict() for r in rows])
            else:
                _print(format_rows(rows))
            return EXIT_OK
        if cmd == "subject":
            report = subject(store, args.consent_id)
            if args.json:
                _print_json(report.to_dict())
            else:
                _print(format_subject(report))
            return EXIT_OK
        if cmd == "export":
            flt = Filters(args.partner, args.purpose, args.path, args.consent_id, args.since,
                          args.until)
            progress = sys.stderr if sys.stderr.isatty() else None
            rows_it = export(store, flt, args.kind)
            if args.output:
                with open(args.output, "w", encoding="utf-8", newline="") as f:
                    n = write_export(rows_it, args.format, args.kind, f, progress)
            else:
                n = write_export(rows_it, args.format, args.kind, sys.stdout, progress)
            if args.json and args.output:
                _print_json({"exported": n, "output": args.output, "format": args.format})
            return EXIT_OK
        if cmd == "verify":
            vr = verify(store, _key(args))
            if args.json:
                _print_json(vr.to_dict())
            else:
                _print(format_verify(vr))
            return EXIT_OK if vr.ok else EXIT_BROKEN
        if cmd == "purge":
            cps = purge(store, args.older_than, _key(args))
            if args.json:
                _print_json({"purged": sum(c.purged for c in cps), "checkpoints": [
                    {"writer_id": c.writer_id, "last_seq": c.last_seq, "purged": c.purged,
                     "signed": c.signature is not None} for c in cps]})
            else:
                _print(format_purge(cps, args.older_than))
            return EXIT_OK
        sys.stderr.write(f"consent-gate log: unknown command {cmd!r}\n")
        return EXIT_USAGE
    except BrokenPipeError:
        # `consent-gate log export | head`: the reader has what it wanted; not an error.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (ConsentGateError, OSError, sqlite3.Error) as exc:
        sys.stderr.write(f"consent-gate log: error: {exc}\n")
        return EXIT_USAGE
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg"):
            sys.stderr.write(f"consent-gate log: error: {exc}\n")
            return EXIT_USAGE
        raise
    finally:
        store.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Standalone entry (``python -m middleware.ledger.cli log ...``)."""
    parser = argparse.ArgumentParser(prog="consent-gate")
    add_log_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return run_log(args)


if __name__ == "__main__":
    raise SystemExit(main())

