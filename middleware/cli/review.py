"""``consent-gate report`` and ``consent-gate discover``: the ledger for people who review it."""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from ..config import Config, load_config
from ..env import LEDGER_KEY_ENV
from ..errors import ConsentGateError
from ..review.db import Discovered, Proof, ReviewDb, is_sqlite_target
from ..review.facts import Health, ReportData, collect
from .common import EXIT_OK, add_period, emit, find_config_path, ledger_target

#: review_meta key: the config file the middleware last ran with (absolute path).
CONFIG_META = "config_path"


class ProgressBar:
    """``[#####.....] 3/7 consent decisions`` on a terminal's stderr; silent elsewhere."""

    def __init__(self, steps: int, out: TextIO | None) -> None:
        self.steps, self.out, self.done = steps, out, 0
        self.started = time.perf_counter()

    def __call__(self, step: str) -> None:
        self.done += 1
        if self.out is None:
            return
        width = 24
        filled = round(width * min(self.done, self.steps) / self.steps)
        self.out.write(f"\r\x1b[2K[{'#' * filled}{'.' * (width - filled)}] "
                       f"{min(self.done, self.steps)}/{self.steps} {step}")
        self.out.flush()

    def finish(self, message: str) -> None:
        if self.out is not None:
            self.out.write(f"\r\x1b[2K{message} ({time.perf_counter() - self.started:.1f} s)\n")
            self.out.flush()


def _terminal() -> TextIO | None:
    return sys.stderr if sys.stderr.isatty() else None


def review_config(args: argparse.Namespace, db: ReviewDb) -> Config | None:
    """The config given (``--config``, env, ./partners.toml), else the one the ledger recorded."""
    path = find_config_path(args)
    if path is None:
        recorded = db.meta(CONFIG_META)
        if recorded and Path(recorded).exists():
            path = Path(recorded)
    return load_config(path) if path is not None else None


def verify_health(target: str, key: bytes | None) -> tuple[bool, int, int, int, str | None, int]:
    """Re-hash every record (run in a worker process, beside the aggregate queries)."""
    from ..ledger.chain import verify
    from ..ledger.query import open_store

    store = open_store(target)
    store.open()
    try:
        report = verify(store, key)
    finally:
        store.close()
    first = report.first_problem
    return (report.ok, report.rows, report.writers, report.checkpoints,
            str(first) if first else None, len(report.problems))


def last_head(config: Config | None) -> str | None:
    """The newest signed chain head at the config's witness, in words (None: no witness)."""
    if config is None:
        return None
    source = config.ledger.witness_file or config.ledger.witness_url
    if not source:
        return None
    from ..ledger.heads import HeadError, load_private_key, read_heads

    try:
        heads, _bad = read_heads(source)
    except HeadError as exc:
        return f"cannot read the witness: {exc}"
    if not heads:
        return f"none yet at {source}"
    head = max(heads, key=lambda h: h.time)
    verdict = "signature not checked"
    if config.ledger.heads_key:
        try:
            public = load_private_key(config.ledger.heads_key).public_key()
            verdict = "signature valid" if head.signature_ok(public) else "signature INVALID"
        except Exception:  # an unreadable key file: say so, the report still comes out
            verdict = "signature not checked (key unreadable)"
    return (f"writer {head.writer_id} seq {head.seq:,} at "
            f"{head.time.strftime('%Y-%m-%d %H:%M:%S')} UTC, {verdict} ({source})")


# -- report --------------------------------------------------------------------------------
def report_arguments(p: argparse.ArgumentParser) -> None:
    add_period(p)
    p.add_argument("-o", "--output", metavar="FILE", default="report.html",
                   help="the HTML file to write (default report.html)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip re-hashing every record (the health section then says so)")


def build_report(args: argparse.Namespace, progress: ProgressBar) -> tuple[ReportData, Config | None]:
    target = ledger_target(args)
    if "://" not in target and not Path(target).exists():
        raise ConsentGateError(f"no ledger at {target} (check --ledger or [ledger] path)")
    until = args.until or datetime.now(UTC)
    key = os.environ.get(LEDGER_KEY_ENV, "").encode() or None
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding connections
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        # Verifying re-hashes every record: the slowest part, so it runs in its own process
        # while this one runs the aggregate queries.
        pending = None if args.no_verify else pool.submit(verify_health, target, key)
        db = ReviewDb(target, create=False)
        try:
            config = review_config(args, db)
            placeholder = Health(None, 0, 0, 0, None, 0, None)
            data = collect(db, config, args.since, until, placeholder, progress)
        finally:
            db.close()
        if pending is not None:
            progress("verifying the hash chains")
            health = Health(*pending.result(), last_head=last_head(config))
        else:
            health = Health(None, 0, 0, 0, None, 0, last_head(config))
    return dataclasses.replace(data, health=health), config


def run_report(args: argparse.Namespace) -> int:
    from ..review.report import render

    progress = ProgressBar(7 if not args.no_verify else 6, _terminal())
    data, config = build_report(args, progress)
    progress("drawing the charts")
    command = "consent-gate report " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["report"] \
        else "consent-gate report"
    html = render(data, config, command=command)
    Path(args.output).write_text(html, encoding="utf-8")
    progress.finish(f"wrote {args.output}")
    emit(args, f"wrote {args.output}: {data.page_views:,} page views, "
               f"{len(data.partners)} partners, {len(data.discovered)} undeclared items",
         {**data.to_dict(), "output": args.output})
    return EXIT_OK


# -- discover ------------------------------------------------------------------------------
def discover_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", type=_since, default=None,
                   help="only items seen since (7d, 12h or an ISO date)")


def _since(text: str) -> datetime:
    from .common import parse_when

    return parse_when(text)


def format_discover(found: list[Discovered], blocks: list[tuple[str, str]]) -> str:
    if not found:
        return "nothing undeclared seen: every third party the pages loaded is declared"
    width = max(len(d.name) for d in found)
    lines = [f"{'kind':<7} {'name':<{width}}  {'seen':>7}  first seen (UTC)  last seen (UTC)   "
             "example pages"]
    for d in found:
        lines.append(f"{d.kind:<7} {d.name:<{width}}  {d.count:>7,}  "
                     f"{d.first_seen[:16].replace('T', ' ')}  "
                     f"{d.last_seen[:16].replace('T', ' ')}  {', '.join(d.examples)}")
    lines += ["", "Suggested partners.toml entries (check each before pasting):", ""]
    lines += ["\n".join(("# " + site, block)) + "\n" for site, block in blocks]
    return "\n".join(lines).rstrip()


def run_discover(args: argparse.Namespace) -> int:
    from ..review.suggest import suggestions

    target = ledger_target(args)
    if "://" not in target and not Path(target).exists():
        raise ConsentGateError(f"no ledger at {target} (check --ledger or [ledger] path)")
    db = ReviewDb(target, create=False)
    try:
        config = review_config(args, db)
        found = db.discovered(args.since)
    finally:
        db.close()
    blocks = suggestions(found, config)
    emit(args, format_discover(found, blocks),
         {"discovered": [d.to_dict() for d in found],
          "suggestions": [{"site": s, "toml": b} for s, b in blocks]})
    return EXIT_OK


# -- proof of consent: which banner a decision was made on ---------------------------------
def proofs_for(args: argparse.Namespace, consent_id: str) -> list[Proof]:
    """The banner proofs of one consent id; [] when the ledger has none (or is not SQLite)."""
    target = ledger_target(args)
    if not is_sqlite_target(target) or not Path(target).exists():
        return []
    db = ReviewDb(target, create=False)
    try:
        return db.proofs(consent_id)
    finally:
        db.close()


def format_proofs(proofs: list[Proof]) -> str:
    lines = ["consent UI shown at each decision (`consent-gate log banner HASH` prints it):"]
    for p in proofs:
        extra = "".join(f", {k}" for k, on in (("GPC", p.gpc),) if on)
        where = f", {p.jurisdiction}" if p.jurisdiction else ""
        lines.append(f"  {p.time.strftime('%Y-%m-%d %H:%M:%S')}  {p.action:<9} {p.outcome:<8} "
                     f"{p.source:<11} banner {p.banner_hash[:16]}  policy "
                     f"{p.policy_hash[:16]}{extra}{where}")
    return "\n".join(lines)


def banner_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("hash", metavar="HASH", help="a banner hash (or its first 8+ characters)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the HTML here")


def run_banner(args: argparse.Namespace) -> int:
    target = ledger_target(args)
    if not is_sqlite_target(target) or not Path(target).exists():
        raise ConsentGateError(f"no SQLite ledger at {target}")
    if len(args.hash) < 8:
        raise ConsentGateError("give at least 8 characters of the hash")
    db = ReviewDb(target, create=False)
    try:
        found = db.banner_by_prefix(args.hash.lower())
    finally:
        db.close()
    if found is None:
        raise ConsentGateError(f"no consent UI version {args.hash} in this ledger")
    if args.output:
        Path(args.output).write_text(found.html, encoding="utf-8")
    text = found.html if not args.output else f"wrote {args.output}"
    emit(args, text, {"hash": found.hash, "kind": found.kind, "lang": found.lang,
                      "policy_hash": found.policy_hash, "policy": json.loads(found.policy),
                      "html": found.html, "first_seen": found.first_seen})
    return EXIT_OK
