"""A ledger writer in its own process, so commits never share the GIL with the event loop.

Measured (bench/bench_load.py, same run): with the writer on a thread of the worker, every
batch takes the GIL back after each SQLite call and after each wake-up; on a busy CPU each
take waits for the event loop's 5 ms switch interval, so a commit that costs the disk
0.1 ms kept pages waiting for 20-30 ms and ledger-on served 0.63 of ledger-off. Here the
worker only writes a short frame to a Unix socket and reads one acknowledgement per batch;
the child process (``python -m middleware.ledger._child``) hashes, commits (group commit:
everything queued in one transaction) and acknowledges after the commit is durable.

One child per worker process, one chain per child (a new writer id when a child is
replaced). If the child dies, pending and new writes fail with ``LedgerUnavailable`` (the
middleware then serves pages with partners off) and the next write starts a new child.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import marshal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from middleware.errors import LedgerUnavailable
from middleware.ledger.chain import ChainCursor, new_writer_id
from middleware.ledger.records import (
    PageView,
    PartnerShare,
    Record,
    record_from_dict,
)
from middleware.ledger.store import LedgerStore
from middleware.ledger.writer import WriterStats

_LEN = struct.Struct("!I")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_US = dt.timedelta(microseconds=1)


# -- the wire format -----------------------------------------------------------------------
# A frame is a 4-byte length and a marshal'd tuple (C-speed, no code objects):
#   ("S", share_list_id, [share dicts])            a page view's partner list, sent once
#   ("W", write_id, [record tuples])                records to commit
#   ("A", [write_ids], error or None)               child -> parent, after the commit
# A page view travels as ("V", time_us, request_id, consent_id, path, share_list_id,
# policy_version, ip, ua_family, fields); any other record as ("R", kind, to_dict()).


def _frame(obj: Any) -> bytes:
    body = marshal.dumps(obj)
    return _LEN.pack(len(body)) + body


def _frames(buf: bytearray) -> list[Any]:
    """Complete frames at the start of ``buf`` (consumed); a partial one stays."""
    out = []
    pos = 0
    while len(buf) - pos >= 4:
        (n,) = _LEN.unpack_from(buf, pos)
        if len(buf) - pos - 4 < n:
            break
        out.append(marshal.loads(bytes(buf[pos + 4:pos + 4 + n])))
        pos += 4 + n
    del buf[:pos]
    return out


class _Encoder:
    """Parent side: records to wire tuples, each distinct partner list registered once."""

    def __init__(self) -> None:
        self._lists: dict[int, tuple[tuple[PartnerShare, ...], int]] = {}

    def encode(self, records: Sequence[Record], out: list[bytes]) -> list[Any]:
        items: list[Any] = []
        for rec in records:
            if type(rec) is PageView:
                shares = rec.partners
                known = self._lists.get(id(shares))
                if known is None or known[0] is not shares:
                    known = (shares, len(self._lists) + 1)
                    self._lists[id(shares)] = known
                    out.append(_frame(("S", known[1], [s.to_dict() for s in shares])))
                items.append(("V", (rec.time - _EPOCH) // _US, rec.request_id, rec.consent_id,
                              rec.path, known[1], rec.policy_version, rec.ip, rec.ua_family,
                              dict(rec.fields) if rec.fields else None))
            else:
                items.append(("R", rec.kind, rec.to_dict()))
        return items


class _Decoder:
    """Child side: wire tuples back to the very records the parent built."""

    def __init__(self) -> None:
        self.lists: dict[int, tuple[PartnerShare, ...]] = {}

    def share_list(self, list_id: int, dicts: Sequence[Mapping[str, Any]]) -> None:
        self.lists[list_id] = tuple(PartnerShare.from_dict(d) for d in dicts)

    def decode(self, item: Sequence[Any]) -> Record:
        if item[0] == "V":
            _, us, rid, cid, path, list_id, pv, ip, ua, fields = item
            return PageView(time=_EPOCH + us * _US, request_id=rid, consent_id=cid, path=path,
                            partners=self.lists[list_id], policy_version=pv, ip=ip,
                            ua_family=ua, fields=fields or {})
        return record_from_dict(item[1], item[2])


# -- the child -----------------------------------------------------------------------------
def serve(sock: socket.socket, store: LedgerStore, cursor: ChainCursor, heads: Any = None,
          max_batch: int = 4096) -> None:
    """Commit what arrives, one transaction per read, until the parent closes the socket."""
    buf = bytearray()
    decoder = _Decoder()
    eof = False
    while not eof:
        data = sock.recv(1 << 20)
        if not data:
            break
        buf += data
        sock.setblocking(False)
        try:  # group commit: take everything already queued
            while len(buf) < (1 << 24):
                more = sock.recv(1 << 20)
                if not more:
                    eof = True
                    break
                buf += more
        except BlockingIOError:
            pass
        finally:
            sock.setblocking(True)
        ids: list[int] = []
        records: list[Record] = []
        for frame in _frames(buf):
            if frame[0] == "S":
                decoder.share_list(frame[1], frame[2])
                continue
            ids.append(frame[1])
            try:
                records += [decoder.decode(item) for item in frame[2]]
            except Exception as exc:  # a frame we cannot read: fail it alone
                ids.pop()
                sock.sendall(_frame(("A", [frame[1]], f"bad ledger frame: {exc}")))
        error: str | None = None
        if records:
            rows = cursor.link(records)
            try:
                store.append(rows)
            except Exception as exc:  # any driver error means "not durable"
                error = f"{type(exc).__name__}: {exc}"
            else:
                cursor.advance(rows)
                if heads is not None:
                    heads.committed(cursor.writer_id, rows[-1].seq, rows[-1].hash, len(rows))
        if ids:
            sock.sendall(_frame(("A", ids, error)))
    store.close()
    if heads is not None:
        heads.close()


def main(argv: Sequence[str] | None = None) -> int:
    from middleware.ledger.heads import (
        FileWitness,
        HeadPublisher,
        HttpWitness,
        Witness,
        load_private_key,
    )
    from middleware.ledger.query import open_store

    ap = argparse.ArgumentParser(prog="python -m middleware.ledger.service")
    ap.add_argument("--fd", type=int, required=True)
    ap.add_argument("--ledger", required=True)
    ap.add_argument("--synchronous", default="full")
    ap.add_argument("--writer-id", required=True)
    ap.add_argument("--heads-key", default="")
    ap.add_argument("--witness-file", default="")
    ap.add_argument("--witness-url", default="")
    ap.add_argument("--heads-every", type=int, default=1000)
    ap.add_argument("--heads-seconds", type=float, default=60.0)
    args = ap.parse_args(argv)
    sock = socket.socket(fileno=args.fd)
    heads = None
    if args.heads_key:
        witnesses: list[Witness] = []
        if args.witness_file:
            witnesses.append(FileWitness(args.witness_file))
        if args.witness_url:
            witnesses.append(HttpWitness(args.witness_url))
        heads = HeadPublisher(load_private_key(args.heads_key), witnesses,
                              every_records=args.heads_every, every_seconds=args.heads_seconds)
    serve(sock, open_store(args.ledger, synchronous=args.synchronous),
          ChainCursor(args.writer_id), heads)
    return 0


# -- the parent ----------------------------------------------------------------------------
class _Batch:
    """Records written during one event-loop iteration: one frame, one commit, one ack."""

    __slots__ = ("futs", "items", "timers")

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.futs: list[tuple[asyncio.Future[None], float | None]] = []
        self.timers: dict[float, asyncio.TimerHandle] = {}

    def settle(self, error: BaseException | None) -> None:
        for timer in self.timers.values():
            timer.cancel()
        for fut, _ in self.futs:
            if not fut.done():  # done: its awaiting coroutine was cancelled, or it timed out
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)

    def expire(self, timeout: float) -> None:
        error = LedgerUnavailable(f"no commit within {timeout:g} s")
        for fut, t in self.futs:
            if t == timeout and not fut.done():
                fut.set_exception(error)


class ProcessWriter:
    """``await writer.write(records)`` like :class:`LedgerWriter`, committed by a child
    process. ``store`` is this process's own handle for start-up work (migrations, purge).

    Writes are coalesced on the event loop: what the loop's callbacks write during one
    iteration goes out as one frame, and while a frame awaits its commit the next one
    collects, so a busy loop sends one frame and reads one acknowledgement per commit
    instead of one per page view (measured: 1.3 page views per commit and ~190 us of
    loop CPU per view when every write went out at once; see docs/ledger.md).

    The socket is driven with ``loop.add_reader`` and non-blocking sends, no transport:
    an event loop that ends (``asyncio.run`` in tests) leaves nothing behind, and the next
    loop gets a new child.
    """

    def __init__(self, store: LedgerStore, target: str, *, synchronous: str = "full",
                 heads_args: Sequence[str] = (), writer_id: str | None = None) -> None:
        self.store = store
        self.target = target
        self.synchronous = synchronous
        self.heads_args = list(heads_args)
        self.stats = WriterStats()
        self._writer_id = writer_id or new_writer_id()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next = 0
        self._encoder = _Encoder()
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._frames: list[bytes] = []  # share-list frames that must precede the next batch
        self._pending = _Batch()
        self._flights: dict[int, _Batch] = {}
        self._flush_at: asyncio.Handle | None = None
        self._closed = False
        self._spawned = 0

    @property
    def writer_id(self) -> str:
        return self._writer_id

    def start(self) -> None:
        """Nothing to do before the event loop runs: the child starts with the first write."""

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        self._detach()
        if self._spawned:  # a new child continues in a new chain
            self._writer_id = new_writer_id()
        self._spawned += 1
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "middleware.ledger._child", "--fd", str(child.fileno()),
                 "--ledger", self.target, "--synchronous", self.synchronous, "--writer-id",
                 self._writer_id, *self.heads_args],
                pass_fds=[child.fileno()], stdin=subprocess.DEVNULL)
        except OSError as exc:
            parent.close()
            raise LedgerUnavailable(f"cannot start the ledger writer process: {exc}") from exc
        finally:
            child.close()
        _watch(self._proc)
        parent.setblocking(False)
        loop.add_reader(parent.fileno(), self._readable)
        self._sock, self._loop = parent, loop
        return parent

    def _detach(self, why: str = "the ledger writer process was replaced") -> None:
        """Drop the current child (it sees EOF, commits what it has and exits)."""
        sock, loop = self._sock, self._loop
        self._sock = self._loop = None
        if sock is not None:
            if loop is not None and not loop.is_closed():
                with suppress(Exception):
                    loop.remove_reader(sock.fileno())
                with suppress(Exception):
                    loop.remove_writer(sock.fileno())
            sock.close()
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        # Everything sent or collected belonged to that child and loop: fail it.
        self._fail_pending(why)
        self._encoder = _Encoder()
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._frames = []

    def _fail_pending(self, why: str) -> None:
        error = LedgerUnavailable(why)
        batches = [*self._flights.values(), self._pending]
        self._flights = {}
        self._pending = _Batch()
        for batch in batches:
            with suppress(RuntimeError):  # a future of a closed loop: nobody waits for it
                batch.settle(error)

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(1 << 16)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            data, why = b"", str(exc)
        else:
            why = "exited"
        if not data:
            self._detach(f"the ledger writer process stopped ({why})")
            return
        self._inbox += data
        for frame in _frames(self._inbox):
            if frame[0] == "A":
                self._acknowledged(frame[1], frame[2])
        if not self._flights and self._pending.futs:
            self._flush()  # the next batch collected while this one committed

    def _writable(self) -> None:
        sock, loop = self._sock, self._loop
        if sock is None or loop is None:
            return
        try:
            sent = sock.send(self._outbox)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._detach(f"the ledger writer process is gone: {exc}")
            return
        del self._outbox[:sent]
        if not self._outbox:
            loop.remove_writer(sock.fileno())

    def _flush(self) -> None:
        """Send the collected batch as one frame, unless one still awaits its commit."""
        self._flush_at = None
        sock, loop = self._sock, self._loop
        batch = self._pending
        if sock is None or loop is None or self._flights or not batch.futs:
            return
        self._pending = _Batch()
        self._next += 1
        self._flights[self._next] = batch
        frames, self._frames = self._frames, []
        frames.append(_frame(("W", self._next, batch.items)))
        data = b"".join(frames)
        if self._outbox:  # an earlier frame is still partly unsent
            self._outbox += data
            return
        try:
            sent = sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._detach(f"the ledger writer process is gone: {exc}")
            return
        if sent < len(data):  # the socket buffer is full: rare, send the rest when writable
            self._outbox += data[sent:]
            loop.add_writer(sock.fileno(), self._writable)

    async def write(self, records: Sequence[Record], timeout: float | None = None) -> None:
        """Return once ``records`` are committed by the child; raise ``LedgerUnavailable``
        if they cannot be (or not within ``timeout`` seconds: they may still be written)."""
        if not records:
            return
        if self._closed:
            raise LedgerUnavailable("the ledger writer is closed")
        loop = asyncio.get_running_loop()
        if self._sock is None or self._loop is not loop:
            self._spawn(loop)
        fut: asyncio.Future[None] = loop.create_future()
        batch = self._pending
        batch.items += self._encoder.encode(records, self._frames)
        batch.futs.append((fut, timeout))
        if timeout is not None and timeout not in batch.timers:
            # One timer per batch and timeout, not one per write.
            batch.timers[timeout] = loop.call_later(timeout, batch.expire, timeout)
        if self._flush_at is None and not self._flights:
            # After the callbacks of this iteration: they may write too.
            self._flush_at = loop.call_soon(self._flush)
        await fut

    def _acknowledged(self, ids: Sequence[int], error: str | None) -> None:
        if error is None:
            self.stats.transactions += 1
        else:
            self.stats.failures += 1
            self.stats.last_error = error
        exc = None if error is None else LedgerUnavailable(error)
        for wid in ids:
            batch = self._flights.pop(wid, None)
            if batch is not None:
                if error is None:
                    self.stats.records += len(batch.items)
                    self.stats.batch_sizes.append(len(batch.items))
                batch.settle(exc)

    async def aclose(self) -> None:
        """Let the child commit what it has, publish its last head and exit."""
        if self._closed:
            return
        self._closed = True
        waiting = [f for b in (*self._flights.values(), self._pending) for f, _ in b.futs]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        self._detach()
        proc, self._proc = self._proc, None
        if proc is not None:
            await asyncio.to_thread(_reap, proc)
        await asyncio.to_thread(self.store.close)

    def __del__(self) -> None:
        # Dropped without aclose() (a test's middleware, a failed start-up): close our end so
        # the child commits what it has and exits (its reaper thread collects it).
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def close(self, timeout: float | None = 30.0) -> None:
        self._closed = True
        self._detach()
        proc, self._proc = self._proc, None
        if proc is not None:
            _reap(proc, timeout or 30.0)
        self.store.close()


#: Every child until it has exited: a reaper thread waits for each, so none is left a zombie
#: and no Popen is collected while its process runs, however its writer was dropped.
_CHILDREN: set[subprocess.Popen[bytes]] = set()


def _watch(proc: subprocess.Popen[bytes]) -> None:
    _CHILDREN.add(proc)

    def wait() -> None:
        with suppress(Exception):
            proc.wait()
        _CHILDREN.discard(proc)

    threading.Thread(target=wait, name=f"ledger-writer-reaper-{proc.pid}", daemon=True).start()


def _reap(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def heads_arguments(ledger: Any) -> list[str]:
    """The child's command-line options for a ``LedgerConfig``'s signed heads."""
    if not getattr(ledger, "heads_key", ""):
        return []
    return ["--heads-key", ledger.heads_key, "--witness-file", ledger.witness_file,
            "--witness-url", ledger.witness_url, "--heads-every", str(ledger.heads_every),
            "--heads-seconds", str(ledger.heads_seconds)]


