"""A local Dagster instance (dagster.yaml) for the demo and the end-to-end tests.

Production uses the repository's dagster.yaml; this one keeps the same shape (PostgreSQL
storage, queued runs, threaded sensors) but points at a database on the local server.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from mentor_pipeline.db.connection import with_database


def ensure_database(server_url: str, name: str) -> str:
    """URL of database `name` on the server of `server_url`, created when missing."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'create database "{name}"')
    return with_database(server_url, name)


def psycopg2_url(url: str) -> str:
    """`url` with the psycopg2 driver named. SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3,
    and dagster-postgres' webserver sets statement_timeout inside `with dbapi_connection:`, which
    closes a psycopg 3 connection: every storage query of the webserver then fails with
    "the connection is closed". psycopg2-binary comes with dagster-postgres."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if sep and scheme in ("postgresql", "postgres") else url


def write_instance_yaml(dagster_home: Path, storage_url: str, *, queued: bool = True) -> Path:
    dagster_home.mkdir(parents=True, exist_ok=True)
    coordinator = (
        "run_coordinator:\n"
        "  module: dagster\n"  # the public export; dagster.yaml files often name a private module
        "  class: QueuedRunCoordinator\n"
        "  config:\n"
        "    dequeue_use_threads: true\n"
        "    dequeue_interval_seconds: 1\n"
        if queued
        # DefaultRunCoordinator (tests without a daemon) has no public export; this is the path Dagster documents.
        else "run_coordinator:\n  module: dagster._core.run_coordinator\n  class: DefaultRunCoordinator\n"
    )
    text = (
        "storage:\n"
        "  postgres:\n"
        f"    postgres_url: \"{psycopg2_url(storage_url)}\"\n"
        f"{coordinator}"
        "concurrency:\n"
        "  runs:\n"
        "    max_concurrent_runs: 4\n"
        "sensors:\n"
        "  use_threads: true\n"
        "  num_workers: 4\n"
        "schedules:\n"
        "  use_threads: true\n"
        "run_monitoring:\n"
        "  enabled: true\n"
        "  poll_interval_seconds: 30\n"
        "telemetry:\n"
        "  enabled: false\n"
        # No "Join the Dagster community" dialog over the first page a newcomer sees.
        "nux:\n"
        "  enabled: false\n"
    )
    path = dagster_home / "dagster.yaml"
    path.write_text(text)
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
