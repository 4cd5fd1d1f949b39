"""A real PgBouncer in transaction mode in front of the test server, as Supabase's pooler
(Supavisor, port 6543) stands in front of production.

Debian's `pgbouncer` 1.18 tracks no prepared statements, so a client that relies on any session
state (a prepared statement, a session advisory lock, a session `SET`) fails or leaks through it,
as it would through Supavisor. Installed with apt when missing and running as root, as the
browser test installs Chromium; otherwise the tests that need it skip with instructions.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pytest

from mentor_pipeline.demo import processes
from tests.support.ports import reserved_port

PGBOUNCER = "/usr/sbin/pgbouncer"
# Small pools so that clients share server connections, as they do on Supabase; wide enough that
# the tests holding transactions open on purpose never wait for a connection.
POOL_SIZE = 12


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or (PGBOUNCER if Path(PGBOUNCER).exists() else None)
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("PgBouncer is not installed: `sudo apt-get install -y pgbouncer` (Debian's package) "
                    "runs the transaction-pooler tests")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "pgbouncer"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:  # a stale package index: refresh it once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"apt-get install pgbouncer failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    # Debian's package starts its own service on 6432; the tests start their own instance.
    subprocess.run(["service", "pgbouncer", "stop"], capture_output=True, timeout=60)
    return PGBOUNCER


@contextlib.contextmanager
def running_pgbouncer(server_url: str) -> Iterator[str]:
    """Start PgBouncer in transaction mode in front of `server_url`; yields the same URL through
    the pooler (any database name of that server works). Stopped by process group at the end."""
    binary = pgbouncer_binary()
    server = urlsplit(server_url)
    host = parse_qs(server.query).get("host", [server.hostname or "127.0.0.1"])[0]  # a socket folder too
    user = server.username or "postgres"
    run_as = _unprivileged_user(host)
    # A folder of its own in the system's temporary folder: pytest's are root's alone (0700).
    with tempfile.TemporaryDirectory(prefix="mp-pgbouncer-") as folder:
        yield from _serve(binary, Path(folder), host, server, user, run_as)


def _serve(binary: str, scratch: Path, host: str, server, user: str, run_as) -> Iterator[str]:
    with reserved_port() as port:
        config = scratch / "pgbouncer.ini"
        config.write_text(f"""\
[databases]
* = host={host} port={server.port or 5432} user={user}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {POOL_SIZE}
max_client_conn = 1000
server_lifetime = 3600
logfile = {scratch / "pgbouncer.log"}
pidfile = {scratch / "pgbouncer.pid"}
""")
        args = [binary, str(config)]
        if run_as is not None:  # PgBouncer refuses to run as root
            os.chown(scratch, run_as.pw_uid, run_as.pw_gid)
            args[1:1] = ["-u", run_as.pw_name]
        process = processes.start(args, log_path=scratch / "pgbouncer.out")
        try:
            processes.wait_until(processes.accepts_connections(port), timeout=30, what="PgBouncer", process=process)
        except BaseException:
            processes.stop(process)
            raise
    try:
        yield urlunsplit(("postgresql", f"{user}@127.0.0.1:{port}", server.path or "/postgres", "", ""))
    finally:
        processes.stop(process)


def _unprivileged_user(host: str) -> pwd.struct_passwd | None:
    """Who PgBouncer runs as when we are root: the owner of the server's socket folder (the
    embedded server runs as its own user, and its socket lives in its data folder), else postgres."""
    if os.geteuid() != 0:
        return None
    if host.startswith("/"):
        return pwd.getpwuid(os.stat(host).st_uid)
    return pwd.getpwnam("postgres")
