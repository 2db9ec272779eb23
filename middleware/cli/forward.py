"""``consent-gate log forward-status``: the outbox of server-side forwarding, per partner."""

from __future__ import annotations

import argparse
import time

from ..forward.status import format_status, read_status
from .common import EXIT_OK, emit, ledger_target


def run_forward_status(args: argparse.Namespace) -> int:
    rows = read_status(ledger_target(args))
    emit(args, format_status(rows, time.time()), [r.to_dict() for r in rows])
    return EXIT_OK
