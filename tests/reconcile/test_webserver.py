"""Force sync launched the way the UI does it: through the real Dagster webserver's GraphQL API,
with config, checked until the run succeeds. No daemon: the instance uses the
DefaultRunCoordinator, so the webserver launches the run itself."""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
from dagster_graphql import DagsterGraphQLClient

from mentor_pipeline.demo import processes
from mentor_pipeline.demo.instance import ensure_database, write_instance_yaml
from tests.support.db import drop_database
from tests.support.factories import queue_rows
from tests.support.ports import reserved_port
from tests.sync.helpers import hlf_mentors, listed_in_dynamics, seed_contacts, sent_writes

# gql (under dagster_graphql's client) deprecates its own call style; not a Dagster warning.
pytestmark = pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = ROOT / "workspace.yaml"  # the repository's code location, as production loads it
STARTUP_TIMEOUT = 150.0  # import Dagster, load the code location, serve: slow on a loaded 2-core box
RUN_TIMEOUT = 300.0


def test_force_sync_through_the_webserver_graphql_api(db, db_url, admin_url, emulator, tmp_path):
    mentors = hlf_mentors(db, 3)
    seed_contacts(emulator, mentors, listed=False)
    emulator.admin.clear_requests()

    storage_name = f"dagster_{uuid.uuid4().hex[:12]}"
    storage_url = ensure_database(admin_url, storage_name)
    home = tmp_path / "dagster_home"
    write_instance_yaml(home, storage_url, queued=False)
    env = {**os.environ, **emulator.env(), "DAGSTER_HOME": str(home), "DATABASE_URL": db_url}
    webserver = None
    try:
        # Held until the webserver listens: it binds only after importing Dagster and loading the code location.
        with reserved_port() as port:
            webserver = processes.start(
                [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port), "-w", str(WORKSPACE)],
                env=env, log_path=tmp_path / "webserver.log", cwd=ROOT)
            processes.wait_until(processes.http_ok(f"http://127.0.0.1:{port}/server_info"), timeout=STARTUP_TIMEOUT,
                                 what="dagster webserver", process=webserver)
        client = DagsterGraphQLClient("127.0.0.1", port_number=port)
        run_id = client.submit_job_execution(
            "force_sync_job",
            run_config={"ops": {"force_sync": {"config": {"mentor_ids": [str(mentors[0]), str(mentors[2])],
                                                          "dry_run": False}}}},
        )
        # A deadline for process coordination (the run's worker imports Dagster: 20-40 s when loaded).
        deadline = time.monotonic() + RUN_TIMEOUT
        status = client.get_run_status(run_id)
        while status not in (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE,
                             dg.DagsterRunStatus.CANCELED) and time.monotonic() < deadline:
            time.sleep(0.5)
            status = client.get_run_status(run_id)
        assert status == dg.DagsterRunStatus.SUCCESS, (tmp_path / "webserver.log").read_text()[-3000:]
    finally:
        if webserver is not None:
            processes.stop(webserver)
        drop_database(admin_url, storage_name)

    assert sorted(sent_writes(emulator)) == sorted([(str(mentors[0]), True), (str(mentors[2]), True)])
    assert listed_in_dynamics(emulator)[str(mentors[1])] is False  # not selected, not touched
    assert {(r["mentor_id"], r["triggered_by_event"], r["status"]) for r in queue_rows(db)} == {
        (mentors[0], "force_sync", "done"), (mentors[2], "force_sync", "done")}
