"""The writer process gathers workers' frames into one commit (``host.Server._gathering``).

A round whose frames came from one worker waits (at most ``gather`` seconds) while another
connected worker that sent a write within ``active`` seconds has sent none since the last
commit. Real sockets (two workers connected to a listening abstract Unix socket), a real
SQLite ledger, the writer's clock injected: ``poll(0)`` is one wake-up that never blocks,
and time passes only when the test moves it. Nothing waits on a real clock.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from middleware.ledger import PageView, PartnerShare, SqliteStore, open_store, verify
from middleware.ledger.chain import ChainCursor
from middleware.ledger.host import Server
from middleware.ledger.wire import Encoder, frame, frames
from tests.support.abstract_listener import abstract_listener

SHARES = (PartnerShare("adsense", ("ads",), "consent", ("ip_address",), ()),)
GATHER, ACTIVE = 0.001, 0.02


class Worker:
    """One worker's end of the connection: its own encoder, frames, acknowledgements."""

    def __init__(self, name: bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(name)
        self.sock.setblocking(False)
        self.enc = Encoder()
        self.buf = bytearray()
        self.next = 0
        self.n = 0

    def write(self, views: int = 1) -> int:
        self.next += 1
        shares: list[bytes] = []
        recs = [PageView(time=datetime.now(UTC), request_id=f"{id(self)}-{self.n + i}",
                         consent_id="c1", path="/a", partners=SHARES, policy_version="v1")
                for i in range(views)]
        self.n += views
        items = self.enc.encode(recs, shares)
        self.sock.sendall(b"".join([*shares, frame(("W", self.next, items))]))
        return self.next

    def acks(self) -> list[object]:
        """Every frame the writer has sent so far (never blocks)."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not data:
                break
            self.buf += data
        return [f for f in frames(self.buf) if f[0] == "A"]


@pytest.fixture
def host(tmp_path: Path):  # type: ignore[no-untyped-def]
    p = tmp_path / "l.sqlite3"
    open_store(str(p)).open()
    name, listener = abstract_listener("consent-gate-gather")
    now = [100.0]
    store = open_store(str(p), deferred_checkpoints=True)
    server = Server(store, ChainCursor(None), listener=listener, clock=lambda: now[0],
                    gather=GATHER, active=ACTIVE)
    a, b = Worker(name), Worker(name)
    server.poll(0)  # accepts both, sends each its hello
    assert len(server.conns) == 2
    yield server, a, b, now, p
    for w in (a, b):
        w.sock.close()
    for conn in list(server.conns.values()):
        conn.sock.close()
    server.sel.close()
    store.close()
    listener.close()


def _rows(p: Path) -> int:
    with SqliteStore(p) as store:
        report = verify(store)
    assert report.ok
    return report.rows


def _warm(server: Server, a: Worker, b: Worker) -> None:
    """Both workers write in one round: both are active peers from then on."""
    ia, ib = a.write(), b.write()
    server.poll(0)
    assert a.acks() == [("A", [ia], None)] and b.acks() == [("A", [ib], None)]


def test_a_frame_waits_for_the_active_peer_and_both_share_one_commit(host) -> None:  # type: ignore[no-untyped-def]
    server, a, b, now, p = host
    _warm(server, a, b)
    commits = server.commits
    now[0] += 0.005
    ia = a.write(3)
    server.poll(0)
    assert a.acks() == [] and server.commits == commits  # b sent within ACTIVE: wait for it
    now[0] += GATHER / 2
    server.poll(0)
    assert a.acks() == [] and server.commits == commits  # nothing new, inside the window
    ib = b.write(2)
    server.poll(0)  # b's frame arrives: the round is complete, committed at once
    assert server.commits == commits + 1
    assert a.acks() == [("A", [ia], None)] and b.acks() == [("A", [ib], None)]
    assert _rows(p) == 2 + 5


def test_the_wait_ends_at_the_window_when_the_peer_sends_nothing(host) -> None:  # type: ignore[no-untyped-def]
    server, a, b, now, p = host
    _warm(server, a, b)
    now[0] += 0.005
    ia = a.write()
    server.poll(0)
    assert a.acks() == []
    now[0] += GATHER  # the window is over: commit without b
    server.poll(0)
    assert a.acks() == [("A", [ia], None)]
    # a second frame of a's in the same wait joins the same commit
    now[0] += 0.001
    ia2 = a.write()
    server.poll(0)
    ia3 = a.write()
    server.poll(0)
    assert a.acks() == []
    now[0] += GATHER
    commits = server.commits
    server.poll(0)
    assert server.commits == commits + 1
    assert a.acks() == [("A", [ia2], None), ("A", [ia3], None)]
    assert _rows(p) == 2 + 3


def test_an_idle_peer_never_delays_a_commit(host) -> None:  # type: ignore[no-untyped-def]
    server, a, b, now, p = host
    ia = a.write()  # b has never written
    server.poll(0)
    assert a.acks() == [("A", [ia], None)]
    _warm(server, a, b)
    now[0] += ACTIVE + 0.001  # b's last write is older than ACTIVE
    ia = a.write()
    server.poll(0)
    assert a.acks() == [("A", [ia], None)]
    now[0] += 0.001
    ib = b.write()
    server.poll(0)
    assert b.acks() == []  # a wrote 1 ms ago: b waits for it
    now[0] += GATHER
    server.poll(0)
    assert b.acks() == [("A", [ib], None)]
    now[0] += ACTIVE + 0.001  # both idle now
    ib = b.write()
    server.poll(0)
    assert b.acks() == [("A", [ib], None)]
    assert _rows(p) == 1 + 2 + 3


def test_a_peer_that_dies_mid_wait_does_not_stall_the_round(host) -> None:  # type: ignore[no-untyped-def]
    server, a, b, now, p = host
    _warm(server, a, b)
    now[0] += 0.005
    ia = a.write(2)
    server.poll(0)
    assert a.acks() == []
    b.sock.close()  # killed: its end of the socket closes
    server.poll(0)  # EOF from b: no peer left to wait for, the clock has not moved
    assert a.acks() == [("A", [ia], None)]
    assert len(server.conns) == 1
    assert _rows(p) == 2 + 2


def test_a_writer_that_closes_after_writing_is_committed_at_once(host) -> None:  # type: ignore[no-untyped-def]
    server, a, b, now, p = host
    _warm(server, a, b)
    now[0] += 0.005
    a.write(4)
    server.poll(0)
    assert server.records  # waiting for b
    a.sock.shutdown(socket.SHUT_WR)  # a's process exits after its last write
    server.poll(0)
    assert not server.records and len(server.conns) == 1  # committed, then a dropped
    assert _rows(p) == 2 + 4


def test_gather_zero_commits_every_round(host) -> None:  # type: ignore[no-untyped-def]
    server, a, b, _now, p = host
    server.gather = 0.0
    _warm(server, a, b)
    ia = a.write()
    server.poll(0)
    assert a.acks() == [("A", [ia], None)]
    assert _rows(p) == 3
