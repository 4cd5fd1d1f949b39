"""Run the emulator with uvicorn: in a background thread (tests, bench) or in the foreground (CLI)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from mentor_pipeline.emulator.app import Emulator, create_app
from mentor_pipeline.emulator.options import EmulatorOptions


def _bind(host: str, port: int) -> socket.socket:
    # Bind before uvicorn starts, so port 0 gives a free port we know without racing for it.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    return sock


def _config(app, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(app, log_level=log_level, access_log=False, lifespan="on",
                          timeout_graceful_shutdown=1, timeout_keep_alive=30)


class EmulatorServer:
    """`with EmulatorServer(options) as server: server.url` -> http://127.0.0.1:<port>"""

    def __init__(self, options: EmulatorOptions | None = None, log_level: str = "warning"):
        self.options = options or EmulatorOptions()
        self.app = create_app(self.options)
        self.emulator: Emulator = self.app.state.emulator
        self._log_level = log_level
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 10.0) -> EmulatorServer:
        self._sock = _bind(self.options.host, self.options.port)
        self._server = uvicorn.Server(_config(self.app, self._log_level))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="dataverse-emulator", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("The Dataverse emulator did not start; see the log above.")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


def run(options: EmulatorOptions, announce=print) -> None:
    """Serve in the foreground until Ctrl-C (the `mentor-pipeline emulator` command)."""
    app = create_app(options)
    sock = _bind(options.host, options.port)
    host, port = sock.getsockname()[:2]
    url = f"http://{host}:{port}"
    announce(f"Dataverse emulator on {url}  (public page {url}/ , admin {url}/_admin/state)")
    announce(f"  DYNAMICS_URL={url} DYNAMICS_AUTHORITY={url} DYNAMICS_TENANT_ID={options.tenant_id} "
             f"DYNAMICS_CLIENT_ID={options.client_id}")
    announce(f"  contacts: {len(app.state.emulator.store.by_id)}, request limit {options.request_limit} per "
             f"{options.window_seconds:g} s, portal delay {options.portal_delay:g} s")
    uvicorn.Server(_config(app, "warning")).run(sockets=[sock])
