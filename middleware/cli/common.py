"""What every subcommand shares: exit codes, the shared options, finding the config and the
ledger, and printing a result as text or JSON.

Where the config comes from, in order: ``--config``, ``$CONSENT_GATE_CONFIG``,
``./partners.toml``. The ledger: ``--ledger``, ``$CONSENT_GATE_LEDGER``, the config's
``[ledger] path``, then the embedded default ``./consent-ledger.sqlite3`` when it exists.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import LedgerConfig, load_config
from ..env import CONFIG_ENV, LEDGER_ENV
from ..errors import ConsentGateError, LedgerUnavailable
from ..ledger.query import open_store
from ..ledger.store import LedgerStore

EXIT_OK = 0
EXIT_FOUND = 1  # a check found a problem (verify: a broken chain)
EXIT_USAGE = 2  # bad arguments, configuration or no usable ledger
EXIT_INTERRUPTED = 130

DEFAULT_CONFIG = "partners.toml"

# -- the registry's vocabulary ------------------------------------------------------------
#: Which shared options a command takes; ``--json`` is on every command.
CONFIG = "config"
LEDGER = "ledger"  # --ledger and --config (the config names the ledger)


def _no_arguments(_parser: argparse.ArgumentParser) -> None:
    return None


@dataclass(frozen=True)
class Command:
    """One subcommand: its arguments and the function that runs it."""

    name: str
    help: str
    run: Callable[[argparse.Namespace], int]
    arguments: Callable[[argparse.ArgumentParser], None] = _no_arguments
    options: str = CONFIG


@dataclass(frozen=True)
class Group:
    """A subcommand with subcommands of its own (``log summary``)."""

    name: str
    help: str
    commands: tuple[Command | Group, ...] = field(default=())


def shared_parents() -> dict[str, list[argparse.ArgumentParser]]:
    """The shared options, defined once, as argparse parent parsers per option set."""
    json_opt = argparse.ArgumentParser(add_help=False)
    json_opt.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
    config_opt = argparse.ArgumentParser(add_help=False)
    config_opt.add_argument(
        "--config", metavar="TOML",
        help=f"the partners.toml (default: ${CONFIG_ENV}, else ./{DEFAULT_CONFIG})")
    ledger_opt = argparse.ArgumentParser(add_help=False)
    ledger_opt.add_argument(
        "--ledger", metavar="PATH|DSN",
        help=f"SQLite file or postgresql:// DSN (default: ${LEDGER_ENV}, else the config's "
             f"[ledger] path, else ./{LedgerConfig().path})")
    return {CONFIG: [json_opt, config_opt], LEDGER: [json_opt, config_opt, ledger_opt]}


# -- durations and times -------------------------------------------------------------------
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")


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


def add_period(p: argparse.ArgumentParser, default_since: str = "the first record") -> None:
    p.add_argument("--since", type=parse_when, default=None,
                   help=f"7d, 12h or an ISO date/time, inclusive (default: {default_since})")
    p.add_argument("--until", type=parse_when, default=None,
                   help="7d, 12h or an ISO date/time, exclusive (default: now)")


# -- finding the config and the ledger -----------------------------------------------------
def find_config_path(args: argparse.Namespace) -> Path | None:
    """The config file this command uses (see the module docstring for the order), if any."""
    given = getattr(args, "config", None) or os.environ.get(CONFIG_ENV)
    if given:
        return Path(given)
    if Path(DEFAULT_CONFIG).exists():
        return Path(DEFAULT_CONFIG)
    return None


def config_path(args: argparse.Namespace) -> Path:
    """Like :func:`find_config_path`, for commands that cannot do without a config."""
    path = find_config_path(args)
    if path is None:
        raise ConsentGateError(
            f"no configuration: give --config partners.toml or set {CONFIG_ENV} "
            f"(there is no ./{DEFAULT_CONFIG} in {os.getcwd()})")
    return path


def ledger_target(args: argparse.Namespace) -> str:
    """The ledger this command reads: a SQLite path or a postgresql:// DSN."""
    given = getattr(args, "ledger", None) or os.environ.get(LEDGER_ENV)
    if given:
        return str(given)
    path = find_config_path(args)
    if path is not None:
        return load_config(path).ledger.path
    default = LedgerConfig().path
    if Path(default).exists():
        return default
    raise LedgerUnavailable(
        f"no ledger: give --ledger PATH|DSN or --config partners.toml, or set {LEDGER_ENV} "
        f"or {CONFIG_ENV} (there is neither ./{DEFAULT_CONFIG} nor ./{default} in {os.getcwd()})")


@contextlib.contextmanager
def open_ledger(args: argparse.Namespace, *, must_exist: bool = True) -> Iterator[LedgerStore]:
    target = ledger_target(args)
    if must_exist and "://" not in target and not Path(target).exists():
        # Never create an empty ledger by looking in the wrong place.
        raise LedgerUnavailable(f"no ledger at {target} (check --ledger or [ledger] path)")
    store = open_store(target)
    store.open()
    try:
        yield store
    finally:
        store.close()


# -- output --------------------------------------------------------------------------------
def emit(args: argparse.Namespace, text: str, data: Any) -> None:
    """Print ``data`` as JSON with ``--json``, else ``text`` (built by a ``format_*``)."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    else:
        sys.stdout.write(text + "\n")


def error(args: argparse.Namespace | None, message: str) -> None:
    if args is not None and getattr(args, "json", False):
        sys.stderr.write(json.dumps({"error": message}, ensure_ascii=False) + "\n")
    else:
        sys.stderr.write(f"consent-gate: error: {message}\n")
