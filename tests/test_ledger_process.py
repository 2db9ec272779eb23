"""The ledger writer process: one per host and ledger, shared by the workers, group commit,
acknowledged after the commit, failures fail the waiting writes, never a lost record."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import struct
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from middleware.errors import LedgerUnavailable
from middleware.ledger import (
    ConsentEvent,
    PageView,
    PartnerShare,
    SqliteStore,
    open_store,
    verify,
)
from middleware.ledger.chain import ChainCursor
from middleware.ledger.host import Server
from middleware.ledger.service import ProcessWriter
from middleware.ledger.wire import Decoder, Encoder, frame, frames
from tests.support.abstract_listener import abstract_listener

SHARES = (
    PartnerShare("adsense", ("ads",), "consent", ("ip_address", "cookies"), ("__gads",)),
    PartnerShare("pinterest", ("social",), "consent", ("ip_address",), ()),
)


def view(i: int) -> PageView:
    return PageView(time=datetime.now(UTC), request_id=f"r{i}", consent_id="c1", path="/a",
                    partners=SHARES, policy_version="v1", ip="203.0.113.0", ua_family="Firefox",
                    fields={"tcf": {"vendors": [1, 2]}} if i % 2 else {})


def count(p: Path) -> int:
    with sqlite3.connect(p) as c:
        return int(c.execute("SELECT count(*) FROM page_views").fetchone()[0])


def writer(p: Path, **kw: object) -> ProcessWriter:
    store = open_store(str(p))
    store.open()  # migrations in this process, as Discloser.startup does
    return ProcessWriter(store, str(p), **kw)  # type: ignore[arg-type]


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_wire_page_view_round_trip_is_the_same_record() -> None:
    enc, dec = Encoder(), Decoder()
    out: list[bytes] = []
    records = [view(i) for i in range(4)]
    items = enc.encode(records, out)
    out.append(frame(("W", 1, items)))
    buf = bytearray(b"".join(out))
    got = frames(buf)
    assert not buf and [f[0] for f in got] == ["S", "W"]  # the partner list goes once
    dec.share_list(got[0][1], got[0][2])
    back = [dec.decode(item) for item in got[1][2]]
    assert back == records
    assert [r.to_dict() for r in back] == [r.to_dict() for r in records]
    with pytest.raises(ValueError, match="wrong shape"):
        dec.decode(("V", "not a time", "r", None, "/", 1, "v1", None, "x", None))


def test_process_writer_coalesces_one_loop_iteration_into_one_commit(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite3"
    w = writer(p)

    async def main() -> None:
        await w.write([view(0)])  # starts the writer process
        await asyncio.gather(*(w.write([view(i)]) for i in range(1, 101)))
        assert count(p) == 101  # every await returned: all committed
        await w.aclose()

    asyncio.run(main())
    assert w.stats.transactions == 2 and list(w.stats.batch_sizes) == [1, 100]
    with SqliteStore(p) as store:
        report = verify(store)
    assert report.ok and report.rows == 101


def test_process_writer_workers_share_one_writer_process_and_one_chain(tmp_path: Path) -> None:
    """Two workers' writers (two connections): one process, one chain, every record once."""
    p = tmp_path / "l.sqlite3"
    a, b = writer(p), writer(p)

    async def main() -> None:
        await a.write([view(0)])
        await asyncio.gather(*(w.write([view(i)]) for i in range(1, 201)
                               for w in ((a,) if i % 2 else (b,))))
        assert a.writer_id == b.writer_id
        assert a._proc is not None and b._proc is None  # b connected to the process a started
        await a.aclose()
        await b.aclose()

    asyncio.run(main())
    assert count(p) == 201
    with SqliteStore(p) as store:
        report = verify(store)
    assert report.ok and report.rows == 201 and report.writers == 1


def test_process_writer_acknowledges_after_commit_and_times_out_while_locked(
    tmp_path: Path,
) -> None:
    p = tmp_path / "l.sqlite3"
    w = writer(p)
    lock = sqlite3.connect(p, isolation_level=None)

    async def main() -> None:
        await w.write([view(0)])
        lock.execute("BEGIN IMMEDIATE")  # another process holds SQLite's write lock
        with pytest.raises(LedgerUnavailable, match="no commit within"):
            await w.write([view(1)], timeout=0.3)
        lock.execute("COMMIT")
        await w.write([view(2)], timeout=10)  # the held-up record went first, in its batch
        await w.aclose()

    asyncio.run(main())
    lock.close()
    assert count(p) == 3  # a write that timed out may still be committed: never lost
    with SqliteStore(p) as store:
        assert verify(store).ok


def test_process_writer_killed_writer_process_fails_waiting_writes_then_restarts(
    tmp_path: Path,
) -> None:
    p = tmp_path / "l.sqlite3"
    w = writer(p)

    async def main() -> None:
        await w.write([view(0)])
        assert w._proc is not None
        first_id, pid = w.writer_id, w._proc.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not gone(pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        # The dead process's socket has closed: a write now fails or goes to a new process.
        try:
            await w.write([view(1)], timeout=10)
        except LedgerUnavailable as exc:
            assert "stopped" in exc.cause or "gone" in exc.cause
            await w.write([view(1)], timeout=10)
        assert w.writer_id != first_id  # a new process continues in a new chain
        await w.aclose()

    asyncio.run(main())
    assert count(p) == 2
    with SqliteStore(p) as store:
        report = verify(store)
    assert report.ok and report.writers == 2


def test_process_writer_process_ignores_the_servers_stop_signal(tmp_path: Path) -> None:
    """SIGTERM reaches the whole process group: the writer keeps serving its workers and
    stops only once they have gone."""
    p = tmp_path / "l.sqlite3"
    w = writer(p, idle_exit=0.1)

    async def main() -> int:
        await w.write([view(0)])
        assert w._proc is not None
        w._proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        await w.write([view(1)], timeout=10)
        pid = w._proc.pid
        await w.aclose()
        return pid

    pid = asyncio.run(main())
    deadline = time.monotonic() + 20
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(pid), "the writer process did not stop after its last worker left"
    assert count(p) == 2


def test_process_writer_private_process_without_a_shared_name(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite3"
    w = writer(p, shared=False)

    async def main() -> None:
        await asyncio.gather(*(w.write([view(i)]) for i in range(20)))
        assert w._proc is not None and w._name is None
        await w.aclose()  # waits for its private process

    asyncio.run(main())
    assert count(p) == 20


def _serve_in_thread(p: Path, listener: socket.socket,
                     clock: list[float]) -> tuple[Server, threading.Thread]:
    store = open_store(str(p))
    server = Server(store, ChainCursor(None), listener=listener, idle_exit=1.0,
                    clock=lambda: clock[0])
    t = threading.Thread(target=server.run, daemon=True)
    t.start()
    return server, t


def _client(name: bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    try:
        s.connect(name)
    except OSError:
        s.close()
        raise
    return s


def _read_frames(s: socket.socket, want: int) -> list[object]:
    buf, got = bytearray(), []
    while len(got) < want:
        data = s.recv(65536)
        assert data, "the writer closed the connection"
        buf += data
        got += frames(buf)
    return got


def test_host_writer_drops_a_broken_stream_and_keeps_serving_the_others(tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite3"
    open_store(str(p)).open()
    name, listener = abstract_listener("consent-gate-test")
    now = [0.0]  # the writer's clock: idle time passes only when the test says so
    server, t = _serve_in_thread(p, listener, now)
    bad, good = _client(name), _client(name)
    assert _read_frames(bad, 1)[0] == ("H", server.cursor.writer_id)
    assert _read_frames(good, 1)[0] == ("H", server.cursor.writer_id)
    bad.sendall(struct.pack("!I", 1 << 30) + b"garbage")  # a length no worker sends
    assert bad.recv(100) == b""  # dropped
    ev = ConsentEvent(time=datetime.now(UTC), consent_id="c1", action="given",
                      choices={"ads": True}, policy_version="v1", source="banner")
    good.sendall(frame(("W", 7, [("R", ev.kind, ev.to_dict())])))
    assert _read_frames(good, 1) == [("A", [7], None)]  # acknowledged after the commit
    good.sendall(frame(("W", 8, [("V", "bad", "r", None, "/", 99, "v1", None, "x", None)])))
    ack = _read_frames(good, 1)[0]
    assert ack[:2] == ("A", [8]) and "bad ledger frame" in str(ack[2])  # that write alone fails
    good.close()
    bad.close()
    deadline = time.monotonic() + 10
    while server.conns and time.monotonic() < deadline:
        time.sleep(0.01)
    assert t.is_alive() and not server.conns  # both gone; not idle long enough yet
    now[0] += 5.0
    t.join(10)
    assert not t.is_alive(), "the writer did not stop once idle"
    with pytest.raises(ConnectionRefusedError):  # and it released its name
        _client(name)
    with SqliteStore(p) as store:
        report = verify(store)
    assert report.ok and report.rows == 1


class _OrderStore:
    """A store that records what the writer process did, in order."""

    def __init__(self, events: list[str], peer: socket.socket) -> None:
        self.events = events
        self.peer = peer

    def append(self, rows: object) -> None:
        self.events.append("append")

    def checkpoint_if_due(self) -> bool:
        try:  # is the acknowledgement already waiting at the worker's end?
            self.peer.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            self.events.append("ack sent")
        except BlockingIOError:
            pass
        self.events.append("checkpoint")
        return True

    def close(self) -> None:
        pass


def test_host_writer_checkpoints_after_it_has_acknowledged_the_commit() -> None:
    """The WAL checkpoint (deferred out of SQLite's commit) runs once the acknowledgement is
    on its way: no page waits for a checkpoint of records already durable."""
    events: list[str] = []
    ours, theirs = socket.socketpair()
    ours.settimeout(10)
    server = Server(_OrderStore(events, ours), ChainCursor(None),  # type: ignore[arg-type]
                    first=theirs)
    assert _read_frames(ours, 1)[0][0] == "H"
    conn = next(iter(server.conns.values()))
    ev = ConsentEvent(time=datetime.now(UTC), consent_id="c1", action="given",
                      choices={"ads": True}, policy_version="v1", source="banner")
    ours.sendall(frame(("W", 3, [("R", ev.kind, ev.to_dict())])))
    conn.read()
    server._round()
    assert events == ["append", "ack sent", "checkpoint"]
    assert _read_frames(ours, 1) == [("A", [3], None)]
    server._round()  # nothing new: no commit, no checkpoint
    assert events == ["append", "ack sent", "checkpoint"]
    ours.close()
    theirs.close()


def test_process_writer_reads_acknowledgements_when_the_next_page_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An acknowledgement that arrived while the loop was busy settles its page at the next
    write (one non-blocking recv), before the loop polls its sockets again."""
    ours, theirs = socket.socketpair()
    w = writer(tmp_path / "l.sqlite3", shared=False)
    monkeypatch.setattr(w, "_start_private", lambda: theirs)

    async def main() -> None:
        first = asyncio.ensure_future(w.write([view(0)]))
        await asyncio.sleep(0)  # the write is framed; its flush runs in the next iteration
        await asyncio.sleep(0)
        got = _read_frames(ours, 1)
        assert got[-1][0] == "W"
        ours.sendall(frame(("A", [got[-1][1]], None)))
        # No await between here and the second write: the loop has not polled the socket.
        second = asyncio.ensure_future(w.write([view(1)]))
        assert not first.done() and w.stats.transactions == 0
        await asyncio.sleep(0)  # the second write's coroutine runs: it reads the ack
        assert w.stats.transactions == 1
        await first
        got = _read_frames(ours, 1)
        ours.sendall(frame(("A", [got[-1][1]], None)))
        await second
        await w.aclose()

    asyncio.run(main())
    ours.close()


def test_process_writer_process_asks_for_a_higher_priority(tmp_path: Path) -> None:
    """Every page waits for the writer process: it runs at nice WRITER_NICE where the
    privilege allows (root, CAP_SYS_NICE), at the workers' priority otherwise."""
    from middleware.ledger.service import WRITER_NICE

    w = writer(tmp_path / "l.sqlite3", shared=False)

    async def main() -> None:
        await w.write([view(0)])
        assert w._proc is not None
        stat = Path(f"/proc/{w._proc.pid}/stat").read_text()
        nice = int(stat[stat.rindex(")") + 2:].split()[16])
        mine = os.getpriority(os.PRIO_PROCESS, 0)
        assert nice == (WRITER_NICE if os.geteuid() == 0 else mine)
        await w.aclose()

    asyncio.run(main())


def test_process_writer_dropped_in_a_garbage_cycle_closes_its_socket_without_a_warning(
        tmp_path: Path) -> None:
    """A writer dropped without aclose(), inside a reference cycle (a middleware of a test):
    the cyclic collector finalizes the writer and its socket in any order; the socket is
    closed by the writer's finalizer, never left to warn of itself (filterwarnings=error made
    that an error in whichever later test ran the collector), and the child commits and goes."""
    import gc
    import sys

    p = tmp_path / "l.sqlite3"

    async def first_write(w: ProcessWriter) -> int:
        await w.write([view(0)])
        assert w._proc is not None
        return w._proc.pid

    holder: dict[str, object] = {"w": writer(p, shared=False, idle_exit=0.2)}
    pid = asyncio.run(first_write(holder["w"]))  # type: ignore[arg-type]
    holder["self"] = holder  # the writer is reachable only from a cycle
    unraisable: list[object] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        del holder
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert unraisable == []
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert gone(pid), "the child saw EOF and exited"
    assert count(p) == 1
