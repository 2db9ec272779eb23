"""``python -m tests.support.uvicorn_on_socket FD UVICORN-ARGS...``: uvicorn's own command
line, serving on the TCP socket inherited as file descriptor FD.

The test process binds that socket (port 0: the kernel's pick) and does not listen on it, so
the port is ours from the start (no free-port-then-bind race with another server) and a
connection is refused until uvicorn listens, after its start-up (asyncio calls ``listen``
when the server starts serving). ``--host``/``--port`` still given are only for uvicorn's
log line. Unlike ``uvicorn --fd``, the socket keeps its real family (``--fd`` reads it as
AF_UNIX, which turns off TCP_NODELAY on every accepted connection).
"""

from __future__ import annotations

import socket
import sys
from typing import Any

import uvicorn.main
import uvicorn.server


def main(argv: list[str]) -> None:
    sock = socket.socket(fileno=int(argv[0]))  # family and type read from the descriptor
    real_run = uvicorn.server.Server.run

    def run(self: uvicorn.server.Server, sockets: list[socket.socket] | None = None) -> Any:
        return real_run(self, sockets=[sock])

    uvicorn.server.Server.run = run  # type: ignore[method-assign]
    sys.argv = ["uvicorn", *argv[1:]]
    uvicorn.main.main()


if __name__ == "__main__":
    main(sys.argv[1:])
