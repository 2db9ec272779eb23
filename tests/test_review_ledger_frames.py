"""Any frame a worker's connection carries, whatever its shape, ends at most that connection,
never the writer process every worker of the host shares (review3 of d148d53 / 22070dc).

22070dc kept a partner list the writer cannot read from escaping ``Server._round``; the frame
itself was still indexed outside any guard: a frame that is not a sequence (``marshal`` loads
any object: an int, None), or a write frame too short for its id, raised out of ``_round`` and
the writer exited, failing every worker's pages closed. Such a frame is now treated as a
framing error (that connection dropped, its pages fail closed, the others go on).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from middleware.ledger.wire import frame
from tests.test_ledger_host_round import Worker, _rows, _until_closed, host

BAD = [5, None, (), ("W",), ["W"], ("S",), ("S", 1), "W", b"S", {"W": 1}, ("X", 1, []),
       ("W", 1, 5), ("W", 1, [("V",)]), ("W", [], [])]


@pytest.mark.parametrize("bad", BAD, ids=repr)
def test_a_frame_of_any_shape_drops_its_connection_at_most(tmp_path: Path, bad: object) -> None:
    p = tmp_path / "l.sqlite3"
    with host(p) as h:
        server = h.server
        a, b = h.worker(Worker), h.worker(Worker)
        a.sock.sendall(frame(bad))
        ib = b.write(2)
        server.poll(0)  # must not raise: the writer process goes on for b
        assert b.acks() == [("A", [ib], None)]
        if len(server.conns) == 1:  # a dropped: its end sees the close (pages fail closed)
            assert _until_closed(a.sock) == [("H", server.cursor.writer_id)]
        else:  # a kept: a write it sent that cannot be read was refused alone
            assert [f for f in a.received() if f[0] == "A"] != [("A", [1], None)]
        ic = b.write(1)
        server.poll(0)
        assert b.acks() == [("A", [ic], None)]
        assert _rows(p) == 3
