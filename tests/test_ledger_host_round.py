"""One wake-up of the writer process commits what every worker has sent (``host.Server``).

Real sockets (socketpairs, as a worker's ``ProcessWriter`` end), a real SQLite ledger, the
server stepped with ``poll(0)``: nothing waits on a clock.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from middleware.ledger import PageView, PartnerShare, SqliteStore, open_store, verify
from middleware.ledger.chain import ChainCursor
from middleware.ledger.host import Server
from middleware.ledger.wire import frame, frames
from tests.support.ledger_host import Host, SocketWorker

SHARES = (PartnerShare("adsense", ("ads",), "consent", ("ip_address",), ()),)


class Worker(SocketWorker):
    def write(self, views: int) -> int:
        """``views`` page views as one frame; its id."""
        return self.send([PageView(time=datetime.now(UTC),
                                   request_id=f"{id(self)}-{self.next + 1}-{i}",
                                   consent_id="c1", path="/a", partners=SHARES,
                                   policy_version="v1") for i in range(views)])

    def acks(self) -> list[object]:
        return [f for f in self.received() if f[0] == "A"]


@contextmanager
def host(path: Path, **store_options: Any) -> Iterator[Host]:
    store = open_store(str(path), deferred_checkpoints=True, **store_options)
    h = Host(Server(store, ChainCursor(None), idle_exit=0.0), store)
    try:
        yield h
    finally:
        h.close()


def _until_closed(sock: socket.socket) -> list[object]:
    """Every frame the writer sent on ``sock`` until it closed its end (it has, when called)."""
    sock.setblocking(True)
    sock.settimeout(5)
    buf = bytearray()
    while data := sock.recv(65536):
        buf += data
    return list(frames(buf))


def _rows(p: Path) -> int:
    with SqliteStore(p) as store:
        report = verify(store)
    assert report.ok
    return report.rows


def test_every_wakeup_commits_both_workers_frames_and_a_closed_writer_is_kept(
        tmp_path: Path) -> None:
    p = tmp_path / "l.sqlite3"
    with host(p) as h:
        server = h.server
        a, b = h.worker(Worker), h.worker(Worker)
        ia, ib = a.write(2), b.write(3)
        server.poll(0)
        assert server.commits == 1  # one transaction for both workers' frames
        assert a.acks() == [("A", [ia], None)] and b.acks() == [("A", [ib], None)]
        ia = a.write(4)
        server.poll(0)  # b sent nothing: a's frame is committed at once, not held for b
        assert server.commits == 2 and a.acks() == [("A", [ia], None)]
        ib = b.write(1)
        b.sock.shutdown(socket.SHUT_WR)  # b's process exits right after its last write
        server.poll(0)
        assert server.commits == 3 and b.acks() == [("A", [ib], None)]
        server.poll(0)  # the read stopped at the short read: the EOF comes next
        assert len(server.conns) == 1 and server.commits == 3  # b dropped, nothing lost
        assert _rows(p) == 2 + 3 + 4 + 1


def test_acks_a_worker_does_not_read_yet_wait_for_its_socket_and_all_arrive(
        tmp_path: Path) -> None:
    """The server registers a connection for writing only while an ack is stuck in its
    outbox (``_Conn.writing``), and back to reading once the socket took it all."""
    with host(tmp_path / "l.sqlite3", synchronous="normal") as h:
        server = h.server
        w = h.worker(Worker)
        (conn,) = server.conns.values()
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1)  # the kernel's minimum
        sent = 0
        while not conn.writing and sent < 5000:  # the worker reads nothing meanwhile
            w.write(1)
            sent += 1
            server.poll(0)
        assert conn.writing and conn.outbox and sent < 5000
        acked: list[object] = []
        for _ in range(10_000):
            acked += w.acks()  # the worker reads: the socket can take the rest
            server.poll(0)  # EVENT_WRITE: flush
            if not conn.outbox:
                break
        server.poll(0)
        assert not conn.writing and not conn.outbox
        acked += w.acks()
        assert [i for f in acked for i in f[1]] == list(range(1, sent + 1))  # type: ignore[index]
        assert server.commits == sent


def test_a_partner_list_the_writer_cannot_read_drops_its_connection_not_the_writer(
        tmp_path: Path) -> None:
    """A worker's partner-list frame ("S") that does not decode ends that connection (its
    pages fail closed, as after a framing error) and the round goes on for the others: the
    writer process, shared by every worker of the host, does not exit."""
    p = tmp_path / "l.sqlite3"
    with host(p) as h:
        server = h.server
        a, b = h.worker(Worker), h.worker(Worker)
        for bad in ([{"no such": "field"}], [{"partner": 5}], "not a list", [None]):
            a.sock.sendall(frame(("S", 1, bad)))
            ib = b.write(2)
            server.poll(0)
            assert b.acks() == [("A", [ib], None)]
            assert len(server.conns) == 1  # a is dropped, b kept
            assert _until_closed(a.sock) == [("H", server.cursor.writer_id)]  # then EOF:
            # a's end sees the close, so its pages fail closed
            a = h.worker(Worker)
        assert _rows(p) == 8 and server.commits == 4
