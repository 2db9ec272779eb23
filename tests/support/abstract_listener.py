"""A listening Unix socket on a fresh name in Linux's abstract namespace, for tests that run
the ledger's writer (``middleware.ledger.host.Server``) in process and connect workers to it
by name, as ``ProcessWriter`` does.

A random name per call: tests running in parallel (two pytest sessions, or the real writer
process of another test) never share one, and an abstract name needs no file to clean up;
it is released when the socket is closed.
"""

from __future__ import annotations

import os
import socket

__all__ = ["abstract_listener"]


def abstract_listener(prefix: str, backlog: int = 8) -> tuple[bytes, socket.socket]:
    """``(name, listener)``: a stream socket bound to ``\\0<prefix>-<16 hex>`` and listening
    with ``backlog``; the caller closes it (or hands it to a ``Server``, which does)."""
    name = b"\0" + prefix.encode() + b"-" + os.urandom(8).hex().encode()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(name)
        listener.listen(backlog)
    except BaseException:
        listener.close()
        raise
    return name, listener
