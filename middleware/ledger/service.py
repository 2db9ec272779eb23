"""ProcessWriter: the worker's side of the ledger writer process (``host.py``).

Measured (bench/bench_load.py, same run): with the writer on a thread of the worker, every
batch takes the GIL back after each SQLite call and after each wake-up; on a busy CPU each
take waits for the event loop's switch interval. Here the event loop only encodes records
(``wire.py``), sends one frame per loop iteration over a Unix socket and reads one
acknowledgement per commit; the writer process hashes, commits and acknowledges after the
commit is durable.

One writer process per host and ledger: the first worker that writes binds the socket's
name (Linux abstract namespace, derived from the user, the ledger and its settings) and
starts the process with the listening socket; every other worker, and every later event
loop, connects to it. Several workers thus share one transaction per commit instead of
taking turns at SQLite's write lock. Where there is no abstract namespace each worker gets
a private writer process over a socketpair. If the writer process dies, pending writes
fail with ``LedgerUnavailable`` (the middleware then serves pages with partners off) and
the next write starts a new one (a new chain: a new writer id).
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from middleware.errors import LedgerUnavailable
from middleware.ledger.chain import new_writer_id
from middleware.ledger.records import Record
from middleware.ledger.store import LedgerStore
from middleware.ledger.wire import Encoder, FrameError, frame, frames
from middleware.ledger.writer import WriterStats

#: The writer process's scheduling priority, where it may raise it (root, CAP_SYS_NICE).
WRITER_NICE = -10
#: Where abstract Unix socket names exist (Linux); elsewhere a private child per worker.
ABSTRACT_SOCKETS = sys.platform.startswith("linux")

# The writer process imports only the ledger's own modules: ``python -m`` would first run
# the package's __init__ (the whole middleware, ~0.9 s here; this way ~0.15 s), and the
# first page view of a worker waits for that start.
_PACKAGE, _LEDGER_PACKAGE = __name__.rsplit(".", 2)[0], __name__.rsplit(".", 1)[0]
_LEDGER_DIR = os.path.dirname(os.path.abspath(__file__))
_BOOT = (
    "import sys, types\n"
    "for name, path in ((sys.argv[1], sys.argv[2]), (sys.argv[3], sys.argv[4])):\n"
    "    m = types.ModuleType(name); m.__path__ = [path]; sys.modules[name] = m\n"
    "from importlib import import_module\n"
    "sys.exit(import_module(sys.argv[3] + '.host').main(sys.argv[5:]))\n"
)
_BOOT_ARGS = [_PACKAGE, os.path.dirname(_LEDGER_DIR), _LEDGER_PACKAGE, _LEDGER_DIR]


def host_socket_name(target: str, synchronous: str, heads_args: Sequence[str]) -> bytes:
    """The abstract socket name of the writer process for this user, ledger and settings
    (two settings for one ledger get two writers: both correct, each its own chain)."""
    where = target if "://" in target else os.path.realpath(target)
    key = "\0".join([str(os.getuid()), where, synchronous, *heads_args])
    return b"\0consent-gate-ledger-" + hashlib.sha256(key.encode()).hexdigest()[:32].encode()


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
    iteration goes out as one frame at its end (measured: 1.3 page views per commit and
    ~190 us of loop CPU per view when every write went out at once), and the writer
    process commits every frame that has arrived, from every worker, in one transaction
    and answers each connection once per commit. Holding the next frame back until the
    previous one was acknowledged was slower (0.55 against 0.84 of ledger off, same run,
    2 workers; docs/ledger.md): the writer then idled while the loop got round to the
    acknowledgement.

    The socket is driven with ``loop.add_reader`` and non-blocking sends, no transport:
    an event loop that ends (``asyncio.run`` in tests) leaves nothing behind, and the next
    loop connects again. ``shared=False`` gives this worker a private writer process.
    """

    def __init__(self, store: LedgerStore, target: str, *, synchronous: str = "full",
                 heads_args: Sequence[str] = (), writer_id: str | None = None,
                 shared: bool = True, idle_exit: float = 2.0) -> None:
        self.store = store
        self.target = target
        self.synchronous = synchronous
        self.heads_args = list(heads_args)
        self.stats = WriterStats()
        self._writer_id = writer_id or new_writer_id()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self._close_sock: Callable[[], object] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next = 0
        self._encoder = Encoder()
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._frames: list[bytes] = []  # share-list frames that must precede the next batch
        self._pending = _Batch()
        self._flights: dict[int, _Batch] = {}
        self._flush_at: asyncio.Handle | None = None
        self._closed = False
        #: The writer process's socket name (None: a private writer process per worker).
        self._name = (host_socket_name(target, synchronous, self.heads_args)
                      if shared and ABSTRACT_SOCKETS else None)
        self.idle_exit = idle_exit

    @property
    def writer_id(self) -> str:
        return self._writer_id

    def start(self) -> None:
        """Nothing to do before the event loop runs: the child starts with the first write."""

    def _spawn(self, loop: asyncio.AbstractEventLoop) -> socket.socket:
        """Connect this event loop to the host's writer process, starting it if needed."""
        self._detach()
        try:
            sock = self._connect_host() if self._name is not None else self._start_private()
        except OSError as exc:  # out of file descriptors, say: this page goes without partners
            raise LedgerUnavailable(f"cannot reach the ledger writer process: {exc}") from exc
        try:
            sock.setblocking(False)
            loop.add_reader(sock.fileno(), self._readable)
        except BaseException:  # a closed loop, say: nothing may keep this socket open
            sock.close()
            raise
        self._sock, self._loop = sock, loop
        # Dropped without aclose() (a test's middleware, a failed start-up): the socket is
        # closed when this writer is collected, so the child sees EOF, commits what it has and
        # exits. A finalizer, not __del__: in a garbage cycle the socket's own finalizer could
        # run first and warn of an unclosed socket (seen as an error in an unrelated test).
        self._close_sock = weakref.finalize(self, sock.close)
        return sock

    def _connect_host(self) -> socket.socket:
        assert self._name is not None
        deadline = time.monotonic() + 0.25
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.setblocking(False)  # a full backlog answers EAGAIN instead of blocking
            try:
                sock.connect(self._name)
                return sock
            except (ConnectionRefusedError, FileNotFoundError):
                sock.close()
                if self._start_host():
                    continue  # listening already: the connect is queued until it accepts
            except (BlockingIOError, InterruptedError):
                sock.close()
            except OSError as exc:
                sock.close()
                raise LedgerUnavailable(f"cannot reach the ledger writer process: {exc}") from exc
            if time.monotonic() > deadline:
                raise LedgerUnavailable("cannot reach the ledger writer process (busy)")
            # Another worker is starting it (bound, not yet listening): a few microseconds.
            time.sleep(0.0005)

    def _start_host(self) -> bool:
        """Bind the name and start the writer process on it; False if another process holds
        the name (it is starting one)."""
        assert self._name is not None
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(self._name)
        except OSError as exc:
            listener.close()
            if exc.errno == errno.EADDRINUSE:
                return False
            raise LedgerUnavailable(f"cannot start the ledger writer process: {exc}") from exc
        try:
            listener.listen(socket.SOMAXCONN)
            self._popen(["--listen-fd", str(listener.fileno()), "--idle-exit",
                         f"{self.idle_exit:g}"], listener.fileno())
        finally:
            listener.close()  # the writer process holds it now
        return True

    def _start_private(self) -> socket.socket:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._popen(["--fd", str(child.fileno())], child.fileno())
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        return parent

    def _popen(self, args: list[str], fd: int) -> None:
        self._writer_id = new_writer_id()  # a new process, a new chain
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, *_BOOT_ARGS, *args, "--ledger",
                 self.target, "--synchronous", self.synchronous, "--writer-id",
                 self._writer_id, "--nice", str(WRITER_NICE), *self.heads_args],
                pass_fds=[fd], stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise LedgerUnavailable(f"cannot start the ledger writer process: {exc}") from exc
        self._proc = proc
        _watch(proc)

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
            if self._close_sock is not None:
                self._close_sock()
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        # Everything sent or collected belonged to that child and loop: fail it.
        self._fail_pending(why)
        self._encoder = Encoder()
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
        try:
            got = frames(self._inbox)
        except FrameError as exc:
            self._detach(f"the ledger writer process sent garbage ({exc})")
            return
        for f in got:
            if f[0] == "A":
                self._acknowledged(f[1], f[2])
            elif f[0] == "H":  # the writer process's chain, when another worker started it
                self._writer_id = f[1]

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
        """Send what this loop iteration wrote as one frame."""
        self._flush_at = None
        sock, loop = self._sock, self._loop
        batch = self._pending
        if sock is None or loop is None or not batch.futs:
            return
        self._pending = _Batch()
        self._next += 1
        self._flights[self._next] = batch
        out, self._frames = self._frames, []
        out.append(frame(("W", self._next, batch.items)))
        data = b"".join(out)
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
        if self._flights and self._loop is loop:
            # Acknowledgements that arrived while this iteration's callbacks ran (one recv,
            # never blocks): their pages resume in the next iteration instead of one later.
            self._readable()
        if self._sock is None or self._loop is not loop:
            self._spawn(loop)
        fut: asyncio.Future[None] = loop.create_future()
        batch = self._pending
        batch.items += self._encoder.encode(records, self._frames)
        batch.futs.append((fut, timeout))
        if timeout is not None and timeout not in batch.timers:
            # One timer per batch and timeout, not one per write.
            batch.timers[timeout] = loop.call_later(timeout, batch.expire, timeout)
        if self._flush_at is None:
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
        """Wait for this worker's writes, then disconnect. A private writer process is
        waited for (it commits, publishes its last head and exits); the host's writer
        process serves other workers and stops by itself once none is left."""
        if self._closed:
            return
        self._closed = True
        waiting = [f for b in (*self._flights.values(), self._pending) for f, _ in b.futs]
        if waiting:
            await asyncio.gather(*waiting, return_exceptions=True)
        self._detach()
        proc, self._proc = self._proc, None
        if proc is not None and self._name is None:
            await asyncio.to_thread(_reap, proc)
        await asyncio.to_thread(self.store.close)

    def close(self, timeout: float | None = 30.0) -> None:
        self._closed = True
        self._detach()
        proc, self._proc = self._proc, None
        if proc is not None and self._name is None:
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


