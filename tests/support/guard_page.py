"""Buffers that end right before an inaccessible page: a C read past their end segfaults."""

from __future__ import annotations

import contextlib
import ctypes
import mmap
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def guarded_windows() -> Iterator[Callable[[bytes], memoryview]]:
    """Yields ``place(piece)``: a memoryview holding ``piece`` whose last byte is the last
    readable one (Linux: mprotect through libc). Release each view before the next test ends."""
    page = mmap.PAGESIZE
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    mm = mmap.mmap(-1, 2 * page)
    anchor = ctypes.c_char.from_buffer(mm)
    base = ctypes.addressof(anchor)
    assert libc.mprotect(base + page, page, 0) == 0  # PROT_NONE
    view = memoryview(mm)

    def place(piece: bytes) -> memoryview:
        view[page - len(piece) : page] = piece
        return view[page - len(piece) : page]

    try:
        yield place
    finally:
        assert libc.mprotect(base + page, page, 3) == 0  # PROT_READ | PROT_WRITE
        view.release()
        del anchor
        mm.close()
