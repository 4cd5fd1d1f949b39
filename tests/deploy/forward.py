"""A TCP forwarder from the containers' side of the host to a server that listens on loopback only.

The host's PostgreSQL listens on 127.0.0.1; containers reach the host as host.containers.internal,
the gateway address of their network. Forwarding in the test process leaves the server's
configuration alone (other sessions share it) and publishes nothing beyond that network.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:  # either side ending ends the connection
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextlib.contextmanager
def forwarding(listen_host: str, target: tuple[str, int]) -> Iterator[int]:
    """Forward connections to `listen_host`:<port> to `target`; yields the port."""
    server = socket.create_server((listen_host, 0))

    def accept() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:  # closed: the forwarder stops
                return
            try:
                upstream = socket.create_connection(target, timeout=10)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for pair in ((client, upstream), (upstream, client)):
                threading.Thread(target=_pump, args=pair, daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        server.close()
        thread.join(timeout=5)
