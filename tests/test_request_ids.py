"""Request ids: the random part is read from the OS in blocks (disclosure._RandomHex), unique
within a process and across forked workers."""

from __future__ import annotations

import os
import re

from middleware.consent import Consent
from middleware.disclosure import RequestInfo, _random_hex

from .asgi_helpers import http_scope


def test_request_ids_are_unique_and_shaped_as_before_across_buffer_refills() -> None:
    ids = [RequestInfo.from_scope(http_scope(), Consent(None, frozenset(), "v1")).request_id
           for _ in range(3 * 512 + 7)]  # three refills and a bit
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]+-[0-9a-f]{12}", i) for i in ids)


def test_a_forked_child_draws_its_own_randomness_not_its_parents_buffer() -> None:
    _random_hex.take()  # the buffer holds the next 511 ids of this process
    ahead = _random_hex.parts[-8:][::-1]  # handed out from the end
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what a uvicorn worker forked after import would hand out
        try:
            os.write(write, ",".join(_random_hex.take() for _ in range(8)).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        child = f.read().split(",")
    os.waitpid(pid, 0)
    assert len(child) == 8 and all(len(c) == 12 for c in child)
    assert not set(child) & set(ahead)
    assert [_random_hex.take() for _ in range(8)] == ahead  # the parent goes on as it was
