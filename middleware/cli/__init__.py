"""consent-gate: check a config, run a wrapped site, scan a page, review the partner logs.

The one entry point. Every subcommand is registered in :data:`COMMANDS` below and nowhere
else; each takes ``--json``, and those that read a config or the ledger take the shared
``--config`` / ``--ledger`` options (defined once, in :mod:`.common`). A command returns an
exit code: 0 ok, 1 a check found a problem, 2 bad input or no usable config/ledger.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence

from ..errors import ConsentGateError
from . import forward, log, review, site, tcf
from .common import (
    CONFIG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    LEDGER,
    Command,
    Group,
    error,
    shared_parents,
)

__all__ = ["COMMANDS", "build_parser", "main"]

#: Every subcommand, in the order ``consent-gate --help`` lists them.
COMMANDS: tuple[Command | Group, ...] = (
    Command("check", "validate a partners.toml and print the effective policy",
            site.check, site.check_arguments, CONFIG),
    Command("run", "serve an ASGI app wrapped by the middleware, with uvicorn",
            site.run, site.run_arguments, CONFIG),
    Command("scan", "list the third-party hosts a page loads, by partner",
            site.scan, site.scan_arguments, CONFIG),
    Group("log", "review what partners received (the ledger)", (
        Command("summary", "per partner: page views, consent ids, data, per day",
                log.run_summary, log.summary_arguments, LEDGER),
        Command("show", "disclosures, newest first", log.run_show, log.show_arguments, LEDGER),
        Command("subject", "one consent id: consent history and disclosures",
                log.run_subject, log.subject_arguments, LEDGER),
        Command("export", "stream records as JSON lines or CSV",
                log.run_export, log.export_arguments, LEDGER),
        Command("verify", "check the hash chains; exit 1 naming the first bad record",
                log.run_verify, log.verify_arguments, LEDGER),
        Command("purge", "delete records older than the retention period",
                log.run_purge, log.purge_arguments, LEDGER),
        Command("forward-status", "server-side forwarding: queue depth, failures, last error per partner",
                forward.run_forward_status, options=LEDGER),
        Command("banner", "the exact consent UI (HTML) of a hash from `log subject`",
                review.run_banner, review.banner_arguments, LEDGER),
        Command("keygen", "make the Ed25519 key pair that signs chain heads for witnesses",
                log.run_keygen, log.keygen_arguments, CONFIG),
    )),
    Group("tcf", "IAB TCF: the Global Vendor List", (
        Command("update-gvl", "fetch the Global Vendor List into the config's [tcf] gvl file",
                tcf.run_update_gvl, tcf.update_gvl_arguments, CONFIG),
    )),
    Command("report", "one self-contained HTML report of the ledger, with charts",
            review.run_report, review.report_arguments, LEDGER),
    Command("discover", "third parties and cookies seen that no partner declares",
            review.run_discover, review.discover_arguments, LEDGER),
)


def _register(sub: argparse._SubParsersAction[argparse.ArgumentParser],
              entry: Command | Group, parents: dict[str, list[argparse.ArgumentParser]],
              dest: str) -> None:
    if isinstance(entry, Group):
        group = sub.add_parser(entry.name, help=entry.help, description=entry.help)
        inner = group.add_subparsers(dest=f"{dest}_{entry.name}", required=True,
                                     metavar="COMMAND")
        for child in entry.commands:
            _register(inner, child, parents, f"{dest}_{entry.name}")
        return
    parser = sub.add_parser(entry.name, help=entry.help, description=entry.help,
                            parents=parents[entry.options])
    entry.arguments(parser)
    parser.set_defaults(func=entry.run)


def build_parser() -> argparse.ArgumentParser:
    doc = __doc__ or "consent-gate"
    parser = argparse.ArgumentParser(prog="consent-gate", description=doc.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parents = shared_parents()
    for entry in COMMANDS:
        _register(sub, entry, parents, "command")
    return parser


def _driver_error(exc: Exception) -> bool:
    """psycopg is optional: recognise its errors without importing it."""
    return type(exc).__module__.startswith("psycopg")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.func(args)
    except BrokenPipeError:
        # `consent-gate log export | head`: the reader has what it wanted; not an error.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (ConsentGateError, OSError, sqlite3.Error) as exc:
        error(args, str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        if _driver_error(exc):
            error(args, str(exc))
            return EXIT_USAGE
        raise
    return result


if __name__ == "__main__":
    raise SystemExit(main())
