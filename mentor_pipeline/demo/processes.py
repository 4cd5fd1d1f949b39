"""Starting and stopping helper processes (emulator, Dagster webserver and daemon).

Each child gets its own process group, and stopping kills the whole group: `dagster dev`
style children (code servers, run workers) outlive their parent otherwise.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from mentor_pipeline import polling


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when a server could listen on `port` now. SO_REUSEADDR, as servers set it (uvicorn
    does): connections of a server that just stopped linger in TIME_WAIT for a minute, and they
    block a plain bind but not a server's; a listening socket still counts as taken."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def start(args: list[str], *, env: dict[str, str] | None = None, log_path: Path | None = None, cwd: Path | None = None) -> subprocess.Popen:
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        args,
        env=env,
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so stop() reaches its children too
    )


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `timeout`."""
    try:
        pgid = os.getpgid(process.pid)
    except ProcessLookupError:
        return
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(wait)
        except subprocess.TimeoutExpired:
            continue
        if not _group_alive(pgid):
            return
        deadline = time.monotonic() + wait
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _group_alive(pgid):
            return


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_until(check: Callable[[], bool], *, timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    """Until a starting process answers: a check that fails means not yet."""
    polling.wait_until(check, timeout=timeout, what=what, interval=0.3, errors_mean_not_yet=True, process=process)


def http_ok(url: str) -> Callable[[], bool]:
    return lambda: httpx.get(url, timeout=2).status_code < 500


def accepts_connections(port: int, host: str = "127.0.0.1") -> Callable[[], bool]:
    def check() -> bool:
        with socket.create_connection((host, port), timeout=2):
            return True
    return check
