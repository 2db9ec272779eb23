"""LedgerWriter: one background thread, a queue, group commit.

``await writer.write(records)`` puts the records on the queue and waits on an asyncio
future; the thread takes everything queued (lingering up to ``max_wait_s`` for more
while there is concurrency), writes it all in one transaction and then resolves every
waiter with ``loop.call_soon_threadsafe``. The event loop never touches the database.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Protocol

from middleware.errors import LedgerUnavailable
from middleware.ledger.chain import ChainCursor
from middleware.ledger.heads import HeadPublisher
from middleware.ledger.records import Record
from middleware.ledger.store import LedgerStore

log = logging.getLogger("consent_gate.ledger")


@dataclass
class WriterStats:
    transactions: int = 0
    records: int = 0
    failures: int = 0
    last_error: str | None = None
    #: Sizes of the most recent batches (bounded: the writer runs for weeks).
    batch_sizes: deque[int] = field(default_factory=lambda: deque(maxlen=4096))


class _Waiter:
    __slots__ = ("cfut", "fut", "loop", "records")

    def __init__(
        self,
        records: Sequence[Record],
        loop: asyncio.AbstractEventLoop | None = None,
        fut: asyncio.Future[None] | None = None,
        cfut: concurrent.futures.Future[None] | None = None,
    ) -> None:
        self.records = records
        self.loop = loop
        self.fut = fut
        self.cfut = cfut

    def resolve(self, error: BaseException | None) -> None:
        if self.cfut is not None:
            if error is None:
                self.cfut.set_result(None)
            else:
                self.cfut.set_exception(error)
        if self.loop is not None and self.fut is not None:
            # A closed loop raises RuntimeError: nobody is waiting any more.
            with suppress(RuntimeError):
                self.loop.call_soon_threadsafe(_settle, self.fut, error)


def _settle(fut: asyncio.Future[None], error: BaseException | None) -> None:
    if fut.done():  # the awaiting coroutine was cancelled
        return
    if error is None:
        fut.set_result(None)
    else:
        fut.set_exception(error)


def _settle_all(futs: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futs:
        _settle(fut, error)


def _resolve_all(batch: Sequence[_Waiter], error: BaseException | None) -> None:
    """Wake every waiter of a batch: one ``call_soon_threadsafe`` per event loop, not per
    waiter (each one writes to the loop's self-pipe, and takes the GIL back after it)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
    for w in batch:
        if w.loop is not None and w.fut is not None and w.cfut is None:
            by_loop.setdefault(w.loop, []).append(w.fut)
        else:
            w.resolve(error)
    for loop, futs in by_loop.items():
        # A closed loop raises RuntimeError: nobody is waiting any more.
        with suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle_all, futs, error)


_STOP = object()

#: The interpreter's GIL switch interval while a ledger writer thread runs (default 5 ms).
SWITCH_INTERVAL_S = 0.0002


class RecordWriter(Protocol):
    """What the middleware and the forwarder write records through: ``LedgerWriter`` (a
    thread) or ``ProcessWriter`` (a child process). The public API for new record kinds:
    ``await writer.write(records)`` returns once they are durable, else raises
    ``LedgerUnavailable``."""

    store: LedgerStore

    @property
    def writer_id(self) -> str: ...

    def start(self) -> None: ...

    async def write(self, records: Sequence[Record], timeout: float | None = None) -> None: ...

    async def aclose(self) -> None: ...

    def close(self, timeout: float | None = 30.0) -> None: ...


def _timed_get(q: queue.SimpleQueue[Any], timeout: float) -> object:
    return q.get(timeout=timeout)


class LedgerWriter:
    """Durable, batched writes to a LedgerStore from any thread or event loop.

    ``max_batch`` records at most per transaction. Group commit needs no delay: what
    arrives while a transaction is in flight goes into the next one. ``max_wait_s`` lets
    a batch linger for more records, only while writes arrive concurrently (a lone
    write is committed at once); measured here it costs more latency than it saves
    (32 writers: 17k rec/s, p50 1.7 ms at 0 ms; 8.4k rec/s, p50 3.7 ms at 2 ms), so
    it is off by default; try it where an fsync takes many milliseconds. A failed
    transaction fails only its own waiters with ``LedgerUnavailable``; the next batch
    tries again (the store reconnects).
    """

    def __init__(
        self,
        store: LedgerStore,
        *,
        max_batch: int = 512,
        max_wait_s: float = 0.0,
        writer_id: str | None = None,
        heads: HeadPublisher | None = None,
        clock: Callable[[], float] = time.monotonic,
        wait: Callable[[queue.SimpleQueue[Any], float], object] | None = None,
    ) -> None:
        self.store = store
        #: The linger's clock and its timed wait for the next queued item (raises
        #: ``queue.Empty`` when the time runs out): injectable so tests of the linger
        #: follow events, not a real 50 ms on a busy host.
        self._clock = clock
        self._wait = wait if wait is not None else _timed_get
        #: Signs this writer's chain tip every N records / T seconds for the witnesses.
        self.heads = heads
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.cursor = ChainCursor(writer_id)
        self.stats = WriterStats()
        self._queue: queue.SimpleQueue[_Waiter | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    @property
    def writer_id(self) -> str:
        return self.cursor.writer_id

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the thread (cheap, never blocks on I/O). ``write`` also starts it lazily."""
        with self._start_lock:
            if self._closed:
                raise LedgerUnavailable("the ledger writer is closed")
            if self._thread is None:
                # Each batch takes the GIL back several times (after a wake-up, after each
                # SQLite call); with the default 5 ms switch interval a busy event loop kept
                # it that long each time, and pages waited 20-30 ms for a 0.1 ms commit
                # (bench_load.py, same run: 0.63 of ledger-off at 5 ms, 0.86 at 0.2 ms).
                if sys.getswitchinterval() > SWITCH_INTERVAL_S:
                    sys.setswitchinterval(SWITCH_INTERVAL_S)
                self._thread = threading.Thread(
                    target=self._run, name=f"ledger-writer-{self.writer_id}", daemon=True)
                self._thread.start()

    def close(self, timeout: float | None = 30.0) -> None:
        """Flush what is queued, stop the thread, close the store. Blocking: from async
        code use ``await writer.aclose()``."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(_STOP)
            thread.join(timeout)
        if self.heads is not None:
            self.heads.close()  # the final tip, so a clean stop leaves nothing unwitnessed
        # A write that raced with close() must not wait forever.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Waiter):
                item.resolve(LedgerUnavailable("the ledger writer is closed"))
        self.store.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # -- writing -----------------------------------------------------------------------
    async def write(self, records: Sequence[Record], timeout: float | None = None) -> None:
        """Return once ``records`` are committed; raise ``LedgerUnavailable`` if they
        cannot be (or not within ``timeout`` seconds: they may still be written later)."""
        if not records:
            return
        if self._thread is None:
            self.start()
        elif self._closed:
            raise LedgerUnavailable("the ledger writer is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Waiter(tuple(records), loop=loop, fut=fut))
        if timeout is None:
            await fut
            return
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            raise LedgerUnavailable(f"no commit within {timeout:g} s") from None

    def write_sync(self, records: Sequence[Record], timeout: float | None = None) -> None:
        """Blocking ``write`` for the CLI, tests and non-async code."""
        if not records:
            return
        if self._thread is None:
            self.start()
        elif self._closed:
            raise LedgerUnavailable("the ledger writer is closed")
        cfut: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._queue.put(_Waiter(tuple(records), cfut=cfut))
        try:
            cfut.result(timeout)
        except concurrent.futures.TimeoutError:
            raise LedgerUnavailable(f"no commit within {timeout:g} s") from None

    # -- the thread --------------------------------------------------------------------
    def _collect(self, first: _Waiter) -> tuple[list[_Waiter], bool]:
        batch = [first]
        n = len(first.records)
        stop = False
        deadline: float | None = None
        while n < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                # Linger only when writes are arriving together: a lone write goes now.
                if len(batch) == 1 or self.max_wait_s <= 0:
                    break
                if deadline is None:
                    deadline = self._clock() + self.max_wait_s
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                try:
                    item = self._wait(self._queue, remaining)
                except queue.Empty:
                    break
            if not isinstance(item, _Waiter):  # the stop marker
                stop = True
                break
            batch.append(item)
            n += len(item.records)
        return batch, stop

    def _commit(self, batch: list[_Waiter]) -> None:
        records = [r for w in batch for r in w.records]
        rows = self.cursor.link(records)
        error: BaseException | None = None
        try:
            self.store.append(rows)
        except LedgerUnavailable as exc:
            error = exc
        except Exception as exc:  # any driver error means "not durable"
            error = LedgerUnavailable(f"{type(exc).__name__}: {exc}")
        if error is None:
            self.cursor.advance(rows)
            if self.heads is not None and rows:
                self.heads.committed(self.writer_id, rows[-1].seq, rows[-1].hash, len(rows))
            self.stats.transactions += 1
            self.stats.records += len(records)
            self.stats.batch_sizes.append(len(records))
        else:
            self.stats.failures += 1
            self.stats.last_error = str(error)
            # Callers decide what to tell the operator (the middleware: once a minute); here it is
            # detail for debugging, not an alarm per page view.
            log.debug("ledger write failed (%d records): %s", len(records), error)
        _resolve_all(batch, error)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if not isinstance(item, _Waiter):  # the stop marker
                return
            batch, stop = self._collect(item)
            self._commit(batch)
            if stop:
                # Flush whatever was queued behind the stop marker too.
                rest: list[_Waiter] = []
                while True:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(more, _Waiter):
                        rest.append(more)
                if rest:
                    self._commit(rest)
                return
