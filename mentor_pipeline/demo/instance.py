"""The Dagster instance for the demo, the tests and the benchmarks: the repository's own
`dagster.yaml` (the one production runs), with its storage pointed at a local database.

`install_instance` copies the file unchanged and returns the `DAGSTER_PG_*` variables its storage
block reads, so the end-to-end suite runs exactly the deployed configuration (queued runs, the
Dynamics concurrency limit, run monitoring). `write_instance_yaml` writes a copy with the storage
URL filled in, for processes started without those variables (the demo, the webserver test).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import psycopg
import yaml

from mentor_pipeline.db.connection import project_root, with_database


def repository_instance() -> Path:
    path = project_root() / "dagster.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no dagster.yaml in {path.parent}: run from a checkout of the repository")
    return path


def ensure_database(server_url: str, name: str) -> str:
    """URL of database `name` on the server of `server_url`, created when missing."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'create database "{name}"')
    return with_database(server_url, name)


def install_instance(dagster_home: Path, storage_url: str) -> dict[str, str]:
    """Copy the repository's dagster.yaml into `dagster_home`; returns the environment its storage reads."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(repository_instance(), dagster_home / "dagster.yaml")
    return storage_env(storage_url)


def storage_env(url: str) -> dict[str, str]:
    """`DAGSTER_PG_*` for the database at `url`.

    dagster-postgres puts the host into a URL, where a Unix socket folder (the embedded server's
    URLs: `postgresql://postgres:@/db?host=/tmp/...`) cannot go: the host stays empty and libpq
    finds the socket through PGHOST.
    """
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    socket_dir = (query.get("host") or [""])[0]
    env = {
        "DAGSTER_PG_HOST": parts.hostname or "",
        "DAGSTER_PG_PORT": str(parts.port or (query.get("port") or ["5432"])[0]),
        "DAGSTER_PG_USER": unquote(parts.username or (query.get("user") or ["postgres"])[0]),
        "DAGSTER_PG_PASSWORD": unquote(parts.password or ""),
        "DAGSTER_PG_DB": parts.path.lstrip("/"),
    }
    if socket_dir.startswith("/"):
        env["DAGSTER_PG_HOST"] = ""
        env["PGHOST"] = socket_dir
    return env


def psycopg2_url(url: str) -> str:
    """`url` with the psycopg2 driver named. SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3,
    and dagster-postgres' webserver sets statement_timeout inside `with dbapi_connection:`, which
    closes a psycopg 3 connection: every storage query of the webserver then fails with
    "the connection is closed". psycopg2-binary comes with dagster-postgres."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if sep and scheme in ("postgresql", "postgres") else url


def write_instance_yaml(dagster_home: Path, storage_url: str, *, queued: bool = True) -> Path:
    """The repository's dagster.yaml with the storage URL written in. `queued=False`: runs start at
    once, without the daemon's queue (for a webserver started without a daemon)."""
    config = yaml.safe_load(repository_instance().read_text())
    config["storage"] = {"postgres": {"postgres_url": psycopg2_url(storage_url)}}
    if not queued:
        config["run_coordinator"] = {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def write_workspace_yaml(path: Path, *, host: str, port: int, location_name: str = "mentor_pipeline") -> Path:
    """A workspace that points at a running code server (`dagster code-server start`).

    The webserver and daemon then share that one server. With a python_module workspace each
    starts its own, and the daemon replaces its own every 60 s, logging "No heartbeat received"
    each time the old one times out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "load_from:\n"
        "  - grpc_server:\n"
        f"      host: {host}\n"
        f"      port: {port}\n"
        f"      location_name: {location_name}\n"
    )
    return path
