"""The outbox survives kill -9 of a real worker process: every event delivered at least once,
always with the same event id, never lost; group commit; the CLI's forward-status."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from middleware.forward.outbox import Item, Outbox
from middleware.ledger import SqliteStore, verify
from tests.forward_helpers import ENV, ledger_rows, outbox_rows
from tests.support.partners import PartnerServer
from tests.support.servers import REPO_ROOT


def worker(mode: str, url: str, ledger: Path, n: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.forward_worker", mode, url, str(ledger), str(n)],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **ENV})


def kill(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def test_forward_outbox_survives_kill_9_mid_send(tmp_path: Path) -> None:
    ledger = tmp_path / "l.sqlite3"
    with PartnerServer("meta") as meta:
        meta.script(*[("slow", 20)] * 8)  # the first requests hang: the worker dies mid-send
        producer = worker("produce", meta.url, ledger, 20)
        try:
            assert producer.stdout is not None
            assert producer.stdout.readline().strip() == "queued"
            meta.wait_for(1, timeout=20)
            time.sleep(0.2)  # let more requests get under way
        finally:
            kill(producer)
        meta.clear_script()  # the partner is well again
        in_flight = {e["event_id"] for r in meta.requests for e in r.body["data"]}
        assert in_flight and outbox_rows(ledger) == 20  # nothing was lost with the process
        drainer = worker("drain", meta.url, ledger, 0)
        out, _ = drainer.communicate(timeout=60)
        assert drainer.returncode == 0 and "drained" in out, out
        ids = Counter(e["event_id"] for r in meta.requests for e in r.body["data"])
        assert set(ids) == {f"ev-{i}" for i in range(20)}  # each delivered
        assert all(ids[e] == 2 for e in in_flight)          # the in-flight ones again, same id
        assert sum(ids.values()) == 20 + len(in_flight)
        events: dict[str, set[str]] = {}
        for r in meta.requests:  # events travel in batches (data[]); each event is resent as it was
            for e in r.body["data"]:
                events.setdefault(e["event_id"], set()).add(json.dumps(e, sort_keys=True))
        assert all(len(e) == 1 for e in events.values())
    accepted = [r for r in ledger_rows(ledger) if r.get("delivery") == "accepted"]
    assert sorted(r["event_id"] for r in accepted) == sorted(f"ev-{i}" for i in range(20))
    store = SqliteStore(ledger)
    store.open()
    try:
        assert verify(store).ok
    finally:
        store.close()


def test_forward_outbox_kill_9_right_after_forward_returned(tmp_path: Path) -> None:
    """forward() returned: the event is on disk even though the partner never saw it."""
    ledger = tmp_path / "l.sqlite3"
    producer = worker("produce", "http://127.0.0.1:9", ledger, 5)  # partner down
    try:
        assert producer.stdout is not None and producer.stdout.readline().strip() == "queued"
    finally:
        kill(producer)
    assert outbox_rows(ledger) == 5
    with PartnerServer("meta") as meta:
        drainer = worker("drain", meta.url, ledger, 0)
        out, _ = drainer.communicate(timeout=60)
        assert "drained" in out, out
        assert sorted(e["event_id"] for r in meta.requests for e in r.body["data"]) == sorted(
            f"ev-{i}" for i in range(5))


def test_forward_outbox_group_commit_and_dedupe(tmp_path: Path) -> None:
    async def go() -> Outbox:
        box = Outbox(tmp_path / "o.sqlite3")
        items = [[Item("p", f"e-{i}", "purchase", time.time(), "{}")] for i in range(200)]
        await asyncio.gather(*(box.put(i) for i in items))
        await box.put([Item("p", "e-1", "purchase", time.time(), "{}")])  # same id again: kept once
        return box
    box = asyncio.run(go())
    try:
        assert box.commits < 200  # many puts shared one commit
        (st,) = box.status()
        assert st.pending == 200
    finally:
        box.close()


def test_forward_outbox_lease_keeps_two_senders_apart(tmp_path: Path) -> None:
    async def go() -> None:
        a, b = Outbox(tmp_path / "o.sqlite3"), Outbox(tmp_path / "o.sqlite3")
        await a.put([Item("p", f"e-{i}", "x", time.time(), "{}") for i in range(10)])
        got_a = await a.claim(6, lease_s=60)
        got_b = await b.claim(10, lease_s=60)
        assert len(got_a) == 6 and len(got_b) == 4
        assert not {i.event_id for i in got_a} & {i.event_id for i in got_b}
        a.close()
        b.close()
    asyncio.run(go())
