"""The ledger writer process: one per host and ledger, shared by every worker.

Workers connect over a Unix socket (``service.ProcessWriter``) and send frames
(``wire.py``); this process reads whatever every connection has sent, commits it all in
one transaction (group commit across workers: no SQLite write lock to fight over, one
fsync for all of them), then acknowledges each write. It shares no GIL with any event
loop. Every wake-up commits what has arrived (holding a round back for the other
worker's frame was measured and removed: docs/ledger.md, "Gathering workers' frames").
It keeps one hash chain (its writer id) and publishes its signed heads.

It ignores SIGINT and SIGTERM (a server's stop signal reaches its whole process group):
it stops once its last worker has disconnected, after committing what they sent, and
publishes a last head on the way out. Only connections from its own user are served.
"""

from __future__ import annotations

import argparse
import errno
import os
import selectors
import signal
import socket
import struct
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any, cast

from middleware.ledger.chain import ChainCursor
from middleware.ledger.records import Record
from middleware.ledger.store import LedgerStore
from middleware.ledger.viewrows import ViewBatch, ViewRow, link_views, page_view
from middleware.ledger.wire import Decoder, FrameError, frame, frames

_UCRED = struct.Struct("3i")
#: Stop reading one connection past this many buffered bytes in one round (fairness).
_READ_CAP = 16 << 20
#: One receive buffer for every connection (the process is single-threaded): a
#: ``recv(1 << 20)`` allocated and shrank a 1 MB bytes object per call.
_RECV_BUF = bytearray(256 << 10)
_RECV_VIEW = memoryview(_RECV_BUF)


def _peer_uid(sock: socket.socket) -> int | None:
    try:
        _, uid, _ = _UCRED.unpack(sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                                  _UCRED.size))
    except (OSError, AttributeError):  # no SO_PEERCRED: a socketpair from our own parent
        return None
    return int(uid)


class _Conn:
    """One worker: what it sent and not yet framed, acks it has not read yet."""

    __slots__ = ("decoder", "eof", "inbox", "outbox", "sock", "writing")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.decoder = Decoder()
        self.eof = False
        #: Registered for EVENT_WRITE too (an ack the socket did not take at once).
        self.writing = False

    def read(self) -> None:
        """Take what the socket holds. A short read means it was drained (the selector is
        level-triggered: anything that arrives later is reported again), so no extra
        ``recv`` just to see EAGAIN."""
        while len(self.inbox) < _READ_CAP:
            try:
                n = self.sock.recv_into(_RECV_BUF)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                n = 0
            if not n:
                self.eof = True
                return
            self.inbox += _RECV_VIEW[:n]
            if n < len(_RECV_BUF):
                return

    def ack(self, ids: list[int], error: str | None) -> None:
        self.outbox += frame(("A", ids, error))

    def flush(self) -> None:
        while self.outbox:
            try:
                sent = self.sock.send(self.outbox)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # the worker is gone: nobody to tell
                self.outbox.clear()
                self.eof = True
                return
            del self.outbox[:sent]


class Server:
    """The commit loop. ``listener`` accepts workers; ``first`` is an already connected one
    (a socketpair where there is no abstract socket namespace). Stops when no worker has
    been connected for ``idle_exit`` seconds (at once without a listener)."""

    def __init__(self, store: LedgerStore, cursor: ChainCursor, *, heads: Any = None,
                 listener: socket.socket | None = None, first: socket.socket | None = None,
                 idle_exit: float = 2.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.cursor = cursor
        self.heads = heads
        self.listener = listener
        self.idle_exit = idle_exit
        self.clock = clock
        self.sel = selectors.DefaultSelector()
        self.conns: dict[int, _Conn] = {}
        self.uid = _own_uid()
        self.commits = 0
        #: The store's deferred WAL checkpoint (SQLite), run after acknowledging a commit.
        self.checkpoint: Callable[[], bool] | None = getattr(store, "checkpoint_if_due", None)
        #: The store's insert of page view rows (``SqliteStore.append_views``), if it has one.
        self.append_views: Callable[[ViewBatch], None] | None = getattr(
            store, "append_views", None)
        if listener is not None:
            listener.setblocking(False)
            self.sel.register(listener, selectors.EVENT_READ, None)
        if first is not None:
            self._add(first)
        self.idle_since = clock()

    def _add(self, sock: socket.socket) -> None:
        conn = _Conn(sock)
        self.conns[sock.fileno()] = conn
        conn.outbox += frame(("H", self.cursor.writer_id))  # whose chain the worker writes to
        conn.flush()
        self.sel.register(sock, selectors.EVENT_READ, conn)

    def _accept(self) -> int:
        n = 0
        while self.listener is not None:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    break
                raise
            uid = _peer_uid(sock)
            if uid is not None and uid != self.uid:
                sock.close()  # another user may not write into this ledger
                continue
            self._add(sock)
            n += 1
        return n

    def _drop(self, conn: _Conn) -> None:
        with suppress(KeyError, ValueError):
            self.sel.unregister(conn.sock)
        fd = conn.sock.fileno()
        if self.conns.keys() <= {fd}:
            # The last one: idle from now, set before the pop, so that whoever sees no
            # connections (another thread: a test moving the clock) sees this time too.
            self.idle_since = self.clock()
        self.conns.pop(fd, None)
        conn.sock.close()

    def _stopping(self) -> bool:
        if self.conns:
            return False
        if self.listener is None:
            return True
        if self.clock() - self.idle_since < self.idle_exit:
            return False
        # Idle long enough. Take in whoever connected meanwhile; otherwise release the name.
        # (A worker connecting between this accept and the close gets EOF: its one write
        # fails closed and its next write starts a new writer process.)
        if self._accept():
            return False
        self.sel.unregister(self.listener)
        self.listener.close()
        self.listener = None
        return True

    def run(self) -> None:
        try:
            while not self._stopping():
                timeout = None
                if not self.conns:
                    timeout = max(0.0, self.idle_since + self.idle_exit - self.clock())
                self.poll(timeout)
        finally:
            self.store.close()
            if self.heads is not None:
                self.heads.close()

    def poll(self, timeout: float | None) -> None:
        """One wake-up: wait for the sockets (at most ``timeout`` seconds), read, ``_round``."""
        for key, mask in self.sel.select(timeout):
            if key.data is None:
                self._accept()
                continue
            conn: _Conn = key.data
            if mask & selectors.EVENT_READ:
                conn.read()
            if mask & selectors.EVENT_WRITE:
                conn.flush()
        self._round()

    def _round(self) -> None:
        """Commit everything every connection has sent, then acknowledge it."""
        owners: list[tuple[_Conn, list[int]]] = []
        records: list[ViewRow | Record] = []
        for conn in list(self.conns.values()):
            try:
                got = frames(conn.inbox)
            except FrameError:
                conn.eof = True
                conn.inbox.clear()
                got = []
            ids: list[int] = []
            for f in got:
                # A worker sends ("S", list id, shares) and ("W", frame id, items) only: any
                # other object (marshal loads any) is a broken stream, as a framing error,
                # not an exception out of the round for every worker
                # (tests/test_review_ledger_frames.py).
                if type(f) is not tuple or len(f) != 3 or (f[0] != "S" and f[0] != "W"):
                    conn.eof = True
                    break
                if f[0] == "S":
                    try:
                        conn.decoder.share_list(f[1], f[2])
                    except Exception:  # nor could the views that name it be read
                        conn.eof = True  # its pages fail closed; the other workers go on
                        break
                    continue
                try:
                    decoded = [conn.decoder.read(item) for item in f[2]]
                except Exception as exc:  # a write we cannot read fails alone
                    conn.ack([f[1]], f"bad ledger frame: {exc}")
                    continue
                records += decoded
                ids.append(f[1])
            if ids:
                owners.append((conn, ids))
        if records:
            error = self._commit(records)
            for conn, ids in owners:
                conn.ack(ids, error)
        for conn in list(self.conns.values()):
            if conn.outbox:
                conn.flush()
        if records and self.checkpoint is not None:
            self.checkpoint()  # after the acknowledgements: no page waits for it
        for conn in list(self.conns.values()):
            if conn.eof:  # what it sent is committed; a partial frame is of no use
                self._drop(conn)
            elif bool(conn.outbox) is not conn.writing:
                # Only on a change: the selector's modify is Python code (a key look-up and
                # compare per connection per wake-up, ~1.5 k instructions, callgrind).
                conn.writing = not conn.writing
                with suppress(KeyError, ValueError):
                    self.sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE
                                    if conn.writing else selectors.EVENT_READ, conn)

    def _commit(self, records: list[ViewRow | Record]) -> str | None:
        """Chain and store the round. Page views only (the steady state) go as rows
        (``viewrows``) to a store that takes them; otherwise every record as a record."""
        append_views = self.append_views
        if append_views is not None:
            for r in records:
                if type(r) is not tuple:
                    break
            else:
                return self._commit_views(append_views, cast("list[ViewRow]", records))
        return self._commit_records(
            [page_view(r) if isinstance(r, tuple) else r for r in records])

    def _commit_views(self, append_views: Callable[[ViewBatch], None],
                      views: list[ViewRow]) -> str | None:
        try:
            batch = link_views(self.cursor, views)
            append_views(batch)
        except Exception as exc:  # any driver error means "not durable"
            return f"{type(exc).__name__}: {exc}"
        self._committed(batch.last_seq, batch.hashes[-1], len(views))
        return None

    def _commit_records(self, records: list[Record]) -> str | None:
        try:
            rows = self.cursor.link(records)
            self.store.append(rows)
        except Exception as exc:  # any driver error means "not durable"
            return f"{type(exc).__name__}: {exc}"
        self._committed(rows[-1].seq, rows[-1].hash, len(rows))
        return None

    def _committed(self, seq: int, hash_: str, count: int) -> None:
        cursor = self.cursor
        cursor.seq, cursor.tip = seq, hash_
        self.commits += 1
        if self.heads is not None:
            self.heads.committed(cursor.writer_id, seq, hash_, count)


def _own_uid() -> int:

    return os.getuid()


def main(argv: Sequence[str] | None = None) -> int:
    from middleware.ledger.heads import (
        FileWitness,
        HeadPublisher,
        HttpWitness,
        Witness,
        load_private_key,
    )
    from middleware.ledger.query import open_store

    ap = argparse.ArgumentParser(prog="python -m middleware.ledger._child")
    ap.add_argument("--listen-fd", type=int, default=-1, help="a listening Unix socket")
    ap.add_argument("--fd", type=int, default=-1, help="one connected Unix socket")
    ap.add_argument("--ledger", required=True)
    ap.add_argument("--synchronous", default="full")
    ap.add_argument("--writer-id", required=True)
    ap.add_argument("--idle-exit", type=float, default=2.0)
    ap.add_argument("--heads-key", default="")
    ap.add_argument("--witness-file", default="")
    ap.add_argument("--witness-url", default="")
    ap.add_argument("--heads-every", type=int, default=1000)
    ap.add_argument("--heads-seconds", type=float, default=60.0)
    ap.add_argument("--nice", type=int, default=0,
                    help="ask for this scheduling priority (needs CAP_SYS_NICE below 0)")
    args = ap.parse_args(argv)
    # The server's stop signal goes to its process group; this process stops when its
    # workers have gone, after committing what they sent.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if args.nice:
        # Every page of every worker waits for this process's commits, and it needs ~10 % of
        # a core: ahead of the workers in the run queue, its commit halves (docs/ledger.md).
        # Without the privilege it runs at the workers' priority, as before.
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
    listener = socket.socket(fileno=args.listen_fd) if args.listen_fd >= 0 else None
    first = socket.socket(fileno=args.fd) if args.fd >= 0 else None
    heads = None
    if args.heads_key:
        witnesses: list[Witness] = []
        if args.witness_file:
            witnesses.append(FileWitness(args.witness_file))
        if args.witness_url:
            witnesses.append(HttpWitness(args.witness_url))
        heads = HeadPublisher(load_private_key(args.heads_key), witnesses,
                              every_records=args.heads_every, every_seconds=args.heads_seconds)
    store = open_store(args.ledger, synchronous=args.synchronous, deferred_checkpoints=True)
    Server(store, ChainCursor(args.writer_id),
           heads=heads, listener=listener, first=first, idle_exit=args.idle_exit).run()
    return 0
