"""Serve an ASGI app factory with uvicorn on a listening TCP socket from the parent process.

    python bench/serve_socket.py MODULE:FACTORY FD

uvicorn's own ``--fd`` option wraps the descriptor as a Unix socket, so its connections do
not get TCP_NODELAY. A response written in two parts (headers, then body) then waits for
the client's delayed ACK: every request to such a server took about 45 ms on the benchmark
machine. Wrapping the descriptor here keeps its real address family, so each connection is
set up the way ``frontdesk serve`` sets up one on its own host and port.
"""

from __future__ import annotations

import socket
import sys

import uvicorn


def main() -> None:
    factory, fd = sys.argv[1], int(sys.argv[2])
    listener = socket.socket(fileno=fd)
    config = uvicorn.Config(factory, factory=True, access_log=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    main()
