"""Which database: `DATABASE_URL` when set (Supabase in production), else an embedded PostgreSQL.

The embedded server comes from the `pgserver` wheel (the `demo` extra), lives in a local data folder
(`MENTOR_PIPELINE_PGDATA`, default `.pgdata/` in the project) and keeps running after the
process that started it exits, so the CLI, the Dagster webserver, the daemon and run workers
all share one server. Everything else asks `connect()` for a connection.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg

from mentor_pipeline.redaction import redact, redact_url
from mentor_pipeline.settings import DATABASE_URL, PGDATA

_QUOTED = re.compile(r'"[^"]*"')


class DatabaseError(RuntimeError):
    """A database problem an operator can act on; the message is one line."""


class SchemaMissing(DatabaseError):
    """A table or function of the pipeline is not there: the database was not migrated."""


class _MigrateHintCursor(psycopg.Cursor):
    """Adds the next step to "relation/function ... does not exist": a database without the
    pipeline's migrations otherwise fails deep inside a sensor with no hint at all."""

    def execute(self, *args, **kwargs):
        try:
            return super().execute(*args, **kwargs)
        except (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction) as exc:
            raise SchemaMissing(
                f"{first_line(exc)} in database {self.connection.info.dbname!r}: is it migrated?"
                " Run `mentor-pipeline db migrate` (or `supabase db push`)"
            ) from exc


def project_root() -> Path:
    package_parent = Path(__file__).resolve().parents[2]
    if (package_parent / "pyproject.toml").exists():
        return package_parent
    return Path.cwd()


def embedded_data_dir() -> Path:
    configured = os.environ.get(PGDATA.name)
    return Path(configured) if configured else project_root() / ".pgdata"


def database_url() -> str:
    """The URL in use; starts the embedded server first when no DATABASE_URL is set."""
    url = os.environ.get(DATABASE_URL.name, "").strip()
    if url:
        return url
    return _start_embedded_server(embedded_data_dir())


def _ensure_runtime_dir() -> None:
    """Give pgserver the per-user runtime folder a login session would give it.

    pgserver keeps its cross-process start/stop lock in `$XDG_RUNTIME_DIR` and looks it up on
    import. Shells without a login session (containers, `sudo`, cron, CI) have no such variable:
    platformdirs then warns "XDG_RUNTIME_DIR is not set" on every command and falls back to
    <tmp>/runtime-<uid>. We create that same folder the way the XDG spec wants it (ours, mode
    0700) and name it, so every process of this user, old or new, shares one lock.
    """
    if os.environ.get("XDG_RUNTIME_DIR"):
        return
    path = Path(tempfile.gettempdir()) / f"runtime-{os.geteuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = path.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            return  # someone else's or a symlink: leave it to platformdirs' own checks
        if stat.S_IMODE(info.st_mode) != 0o700:
            path.chmod(0o700)  # an older pgserver lock may have created it 0755
    except OSError:
        return
    os.environ["XDG_RUNTIME_DIR"] = str(path)


def _pgserver():
    """The embedded server's package: only the demo and the tests have it, production sets DATABASE_URL."""
    _ensure_runtime_dir()
    try:
        import pgserver
    except ImportError as exc:
        raise DatabaseError(
            "DATABASE_URL is not set and embedded PostgreSQL is not installed: "
            "set DATABASE_URL, or install mentor_pipeline[demo]"
        ) from exc
    return pgserver


def _start_embedded_server(data_dir: Path) -> str:
    pgserver = _pgserver()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        # cleanup_mode=None: leave the server running for the other processes that share it.
        server = pgserver.get_server(data_dir, cleanup_mode=None)
    except Exception as exc:
        raise DatabaseError(f"could not start embedded PostgreSQL in {data_dir}: {exc}") from exc
    return server.get_uri()


def stop_embedded_server(data_dir: Path | None = None) -> None:
    """Stop the embedded server in `data_dir` if it runs (the demo and the tests call this)."""
    import getpass

    target = data_dir or embedded_data_dir()
    if not (target / "postmaster.pid").exists():
        return
    pg_ctl = _pgserver()._commands.pg_ctl
    # pgserver runs postgres as the 'pgserver' user when we are root.
    user = "pgserver" if os.geteuid() == 0 else getpass.getuser()
    try:
        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=target, user=user, timeout=30)
    except Exception as exc:
        raise DatabaseError(f"could not stop embedded PostgreSQL in {target}: {first_line(exc)}") from exc


def connect(url: str | None = None, *, autocommit: bool = False, **kwargs) -> psycopg.Connection:
    """A new connection that keeps no state on the server between transactions.

    Production reaches Supabase through its transaction pooler (Supavisor, port 6543), where each
    transaction may run on another server connection. psycopg prepares a statement after its 5th
    execution ("_pg3_0", "_pg3_1", ... per client connection): the next client handed that server
    connection fails with DuplicatePreparedStatement, and a prepared statement may be missing on
    the next transaction's server. So nothing is prepared (`prepare_threshold=None`): the queries
    are short and planned in microseconds, and on a direct connection nothing measurable is lost
    (bench/bench_sync.py, README)."""
    target = url or database_url()
    try:
        kwargs.setdefault("cursor_factory", _MigrateHintCursor)
        kwargs.setdefault("prepare_threshold", None)
        return psycopg.connect(target, autocommit=autocommit, **kwargs)
    except psycopg.OperationalError as exc:
        raise DatabaseError(f"cannot connect to {redact_url(target)}: {redact(first_line(exc))}") from exc
    except psycopg.ProgrammingError as exc:
        # libpq could not parse the URL, and its message quotes pieces of it (the password too).
        reason = _QUOTED.sub('"…"', redact(first_line(exc)))
        raise DatabaseError(
            f"the database URL {redact_url(target)} is malformed ({reason}): expected"
            " postgresql://USER:PASSWORD@HOST:PORT/DBNAME with special characters in the password"
            " percent-encoded; check DATABASE_URL"
        ) from exc


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database (works for socket URLs too)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def commit_unless_autocommit(conn: psycopg.Connection) -> None:
    """End the transaction now on a connection that is not in autocommit (on one that is, every
    statement already did): what a query just wrote, or the locks it took, must not wait for the
    caller's next statement (a claim's row locks, before the caller goes anywhere near HTTP)."""
    if not conn.autocommit:
        conn.commit()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
