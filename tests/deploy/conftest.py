"""The deploy suite: the repository's image, built with podman, and compose.yaml's stack run from
it against the host's PostgreSQL and the Dataverse emulator.

The containers need a PostgreSQL they reach over TCP: the machine's PostgreSQL 15 on
127.0.0.1:5432 (trust auth, user postgres), forwarded to the containers' network (forward.py).
The stack tests skip when it is not there. Each run makes its own databases (the app's, with the
app stand-in tables, and Dagster's storage) and drops them at the end, with the containers, the
network and the volumes.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from mentor_pipeline.db.connection import with_database
from mentor_pipeline.db.migrate import migrate
from tests.deploy.compose import Compose
from tests.deploy.forward import forwarding
from tests.deploy.podman import BASE_IMAGE, IMAGE, ULIMITS, build_image, ensure_tools, podman
from tests.support.db import create_database, drop_database
from tests.support.emulator import EmulatorHandle, running_emulator

HOST_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
FROM_CONTAINERS = "host.containers.internal"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/deploy/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.deploy)


@pytest.fixture(scope="session")
def image() -> str:
    ensure_tools()
    return build_image()


@dataclass
class Deployment:
    compose: Compose
    app_url: str  # the app database, from this process
    emulator: EmulatorHandle
    env: dict[str, str]
    folder: Path

    def with_env(self, project: str, **changes: str | None) -> Compose:
        """The same compose.yaml with another .env: `None` leaves a variable out."""
        env = {name: value for name, value in {**self.env, **changes}.items() if value is not None}
        return Compose(project, env, self.folder, {"mentor-pipeline:latest": IMAGE})


def host_postgres_reachable() -> bool:
    try:
        with psycopg.connect(HOST_POSTGRES, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


# Package scope: the containers stop as soon as this suite ends, not idle through the rest of the run.
@pytest.fixture(scope="package")
def deployment(image) -> Deployment:
    if not host_postgres_reachable():
        pytest.skip("the stack tests need the machine's PostgreSQL on 127.0.0.1:5432 (trust auth, user "
                    "postgres), which the containers reach over TCP: `pg_ctlcluster 15 main start`")
    project = f"mpdeploy{uuid.uuid4().hex[:8]}"
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="mp-deploy-") as folder:
        compose = Compose(project, {}, Path(folder), {})  # the network first: it gives the addresses
        compose.create_network()
        stack.callback(compose.down)
        gateway = _bring_up_network(compose)

        port = stack.enter_context(forwarding(gateway, ("127.0.0.1", 5432)))
        client_secret = secrets.token_urlsafe(24)
        emulator = stack.enter_context(running_emulator(host=gateway, client_secret=client_secret))
        emulator_url = emulator.url.replace(gateway, FROM_CONTAINERS)

        app_db = create_database(HOST_POSTGRES)
        stack.callback(drop_database, HOST_POSTGRES, app_db)
        storage_db = create_database(HOST_POSTGRES)
        stack.callback(drop_database, HOST_POSTGRES, storage_db)
        app_url = with_database(HOST_POSTGRES, app_db)
        # The app's own tables exist before the pipeline's migrations, as on Supabase.
        empty = Path(folder) / "no-migrations"
        empty.mkdir()
        migrate(app_url, empty, with_app_standin=True)

        from_containers = f"postgresql://postgres@{FROM_CONTAINERS}:{port}"
        env = {
            "DATABASE_URL": f"{from_containers}/{app_db}",
            "MENTOR_PIPELINE_MIGRATE_URL": f"{from_containers}/{app_db}",
            "DYNAMICS_URL": emulator_url,
            "DYNAMICS_AUTHORITY": emulator_url,
            "DYNAMICS_TENANT_ID": emulator.options.tenant_id,
            "DYNAMICS_CLIENT_ID": emulator.options.client_id,
            "DYNAMICS_CLIENT_SECRET": client_secret,
            "MENTOR_PIPELINE_FIRST_NIGHT": "2026-01-01",
            "DAGSTER_PG_HOST": FROM_CONTAINERS,
            "DAGSTER_PG_PORT": str(port),
            "DAGSTER_PG_USER": "postgres",
            "DAGSTER_PG_PASSWORD": secrets.token_urlsafe(12),  # trust auth: required, not checked
            "DAGSTER_PG_DB": storage_db,
        }
        deployment = Deployment(compose, app_url, emulator, env, Path(folder))
        deployment.compose = deployment.with_env(project)
        stack.callback(deployment.compose.down)  # first: nothing may hold the databases or the emulator
        yield deployment


def _bring_up_network(compose: Compose) -> str:
    """The network's gateway address (host.containers.internal), which exists on the host only
    while a container is attached: a placeholder keeps it up for the forwarder and the emulator."""
    podman("run", "--detach", "--name", f"{compose.project}-gateway-1", "--network", compose.network, *ULIMITS,
           BASE_IMAGE, "sleep", "infinity")  # removed with the network (Compose.down)
    network = json.loads(podman("network", "inspect", compose.network).stdout)[0]
    return network["subnets"][0]["gateway"]
