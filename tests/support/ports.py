"""A TCP port for a server a test starts in another process, held until that server has it.

`processes.free_port()` closes its socket at once, and a `dagster_webserver` binds the port only
after importing Dagster and loading the code location (seconds, tens of seconds when loaded):
meanwhile any bind to port 0 on the machine (an emulator, a webhook receiver, another session)
may be handed the same port, and the webserver then exits with "address already in use".
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator


@contextlib.contextmanager
def reserved_port(port: int = 0, host: str = "127.0.0.1") -> Iterator[int]:
    """Keep `port` (0 or taken: any free one) bound, not listening, until the block ends. No bind
    to port 0 is given it meanwhile, yet a server that sets SO_REUSEADDR (uvicorn does, as
    asyncio does on Unix) binds and listens on it: Linux lets SO_REUSEADDR sockets share a
    port while none of them listens but that server."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:  # someone listens there now: any free port will do
        sock.bind((host, 0))
    with sock:
        yield sock.getsockname()[1]
