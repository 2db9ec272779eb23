"""The ledger writer process's ``host.Server`` driven in a test: real socketpairs (a worker's
end, as ``ProcessWriter`` holds it), a real store, the server stepped with ``poll(0)``."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import TypeVar

from middleware.ledger.host import Server
from middleware.ledger.records import Record
from middleware.ledger.store import LedgerStore
from middleware.ledger.wire import Encoder, frame, frames


class SocketWorker:
    """One worker's connection: records go out as one write frame each, and what the server
    sent back is read without blocking."""

    def __init__(self, server: Server) -> None:
        self.sock, theirs = socket.socketpair()
        server._add(theirs)
        self.sock.setblocking(False)
        self.enc = Encoder()
        self.buf = bytearray()
        self.next = 0

    def send(self, records: Sequence[Record]) -> int:
        """Write ``records`` as one frame (its partner lists first); the frame's id."""
        self.next += 1
        pre: list[bytes] = []
        items = self.enc.encode(list(records), pre)
        self.sock.sendall(b"".join([*pre, frame(("W", self.next, items))]))
        return self.next

    def received(self) -> list[tuple[object, ...]]:
        """The whole frames the server sent since the last call."""
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not data:
                break
            self.buf += data
        return list(frames(self.buf))


W = TypeVar("W", bound=SocketWorker)


class Host:
    """A ``Server`` on ``store`` and the workers connected to it; ``close`` closes every
    socket, then the store."""

    def __init__(self, server: Server, store: LedgerStore) -> None:
        self.server, self.store = server, store
        self.workers: list[SocketWorker] = []

    def worker(self, kind: type[W] = SocketWorker) -> W:  # type: ignore[assignment]
        """A new worker connection of ``kind`` (a SocketWorker with a test's helpers)."""
        w = kind(self.server)
        self.workers.append(w)
        return w

    def close(self) -> None:
        for w in self.workers:
            w.sock.close()
        for conn in list(self.server.conns.values()):
            conn.sock.close()
        self.server.sel.close()
        self.store.close()
