"""One running stack for the end-to-end and browser tests, shared by the whole session.

What runs (nothing is mocked):
- a fresh database copied from the migrated template, loaded with the demo seed, which the
  Dagster processes reach through PgBouncer in transaction mode, as production reaches Supabase
  through its transaction pooler (docs/operations.md, *Connecting to Supabase*); the tests' own
  reads and writes go to it directly, as the app's would;
- a second database on the same server for Dagster's own storage (runs, event log, cursors),
  reached directly: dagster-postgres keeps session settings, which a transaction pooler loses;
- the Dataverse emulator over real HTTP (in this process, on a free port), seeded with one
  contact per HLF mentor, exactly as `bin/demo` seeds it;
- a real webhook receiver standing in for the operators' Slack/Teams channel;
- `python -m dagster_webserver` and `dagster-daemon run`, each in its own process
  group, with a temporary DAGSTER_HOME holding the repository's own dagster.yaml, unchanged
  (queued runs, the Dynamics concurrency limit, run monitoring), its storage pointed at the
  second database through the DAGSTER_PG_* variables, as in production.

The tests drive it through the database, as the app does, and read the outcome from the
emulator (contact state, request log, public page), the webhook receiver and Dagster's GraphQL API.

Both `tests/e2e` and `tests/browser` need the stack: the `stack` session fixture that starts it
is defined once, in tests/e2e/plugin.py (a plugin of tests/conftest.py), so pytest starts it once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import httpx
import psycopg

from mentor_pipeline.db.connection import project_root, with_database
from mentor_pipeline.db.seed import seed
from mentor_pipeline.demo import processes
from mentor_pipeline.polling import Hopeless, wait_until
from mentor_pipeline.demo.instance import ensure_database, install_instance
from mentor_pipeline.demo.stack import seed_emulator_from_database
from tests.support.db import create_database, drop_database
from tests.support.emulator import EmulatorHandle, running_emulator
from tests.support.ports import reserved_port
from tests.support.webhook import WebhookReceiver, webhook_receiver

T = TypeVar("T")

TENANT_ID = "hlf-e2e-tenant"
CLIENT_ID = "mentor-pipeline-e2e"
# Unique per session: the secret-leak checks search every log and Dagster's storage for it.
FIRST_SECRET = f"e2e-secret-{uuid.uuid4().hex}"

REMINDER_MINUTES = "0.5,1"
STARTUP_TIMEOUT = 150.0  # webserver/daemon import dagster and load the code location: slow on 2 cores
# Submit -> finished. A Dynamics run may queue behind a drain that lingers 30 s (tag limit 1),
# then its launch takes 3 s on a quiet box and 20-40 s on a loaded one: a deadline, not a speed.
RUN_TIMEOUT = 300.0
LOCATION = "mentor_pipeline"  # workspace.yaml's location_name


class CodeLocationError(Hopeless):
    """The code location failed to load (an import error in the definitions)."""


def wait_for(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; a poll that errors has not succeeded yet."""
    return wait_until(check, timeout=timeout, what=what, interval=interval, errors_mean_not_yet=True)


@dataclass
class DagsterProcesses:
    webserver: object
    daemon: object


@dataclass
class Stack:
    admin_url: str
    db_url: str
    pooled_db_url: str  # the same database through the transaction pooler: what Dagster's processes use
    storage_url: str
    emulator: EmulatorHandle
    webhook: WebhookReceiver
    home: Path
    logs: Path
    dagster_port: int
    storage_env: dict[str, str]  # DAGSTER_PG_* for dagster.yaml's storage block
    secret: str = FIRST_SECRET
    dagster: DagsterProcesses | None = None
    restarts: int = 0
    # Runs a test made fail on purpose (the credential rotation); every other finished run must succeed.
    expected_failed_runs: set[str] = field(default_factory=set)

    # -- environment ------------------------------------------------------------------------

    @property
    def dagster_url(self) -> str:
        return f"http://127.0.0.1:{self.dagster_port}"

    @property
    def admin(self):
        return self.emulator.admin

    def env(self) -> dict[str, str]:
        """What the Dagster processes (and so their code servers and run workers) see."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DYNAMICS_", "DAGSTER_"))}
        env.update(
            DATABASE_URL=self.pooled_db_url,
            DAGSTER_HOME=str(self.home),
            DYNAMICS_URL=self.emulator.url,
            DYNAMICS_AUTHORITY=self.emulator.url,
            DYNAMICS_TENANT_ID=TENANT_ID,
            DYNAMICS_CLIENT_ID=CLIENT_ID,
            DYNAMICS_CLIENT_SECRET=self.secret,
            ALERT_WEBHOOK_URL=self.webhook.url,
            # Alerting intervals of seconds instead of hours, so the incident tests are quick
            # (README, Configuration): reminders after 30 s then every minute, a credential
            # re-check every 15 s while sign-in is broken, an outage incident after 6 s.
            ALERT_REMINDER_MINUTES=REMINDER_MINUTES,
            MENTOR_PIPELINE_CREDENTIAL_CHECK_MINUTES="0.25",
            MENTOR_PIPELINE_STALL_ALERT_MINUTES="0.1",
            # One drift look when the daemon starts, then none of its own during the suite: its
            # test launches the looks it needs, and no look holds the Dynamics slot meanwhile.
            MENTOR_PIPELINE_DRIFT_WATCH_MINUTES="600",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.storage_env)
        return env

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.db_url, autocommit=True)

    # -- Dagster processes ------------------------------------------------------------------

    def start_dagster(self) -> None:
        workspace = str(project_root() / "workspace.yaml")
        env = self.env()
        tag = f"-{self.restarts}" if self.restarts else ""
        try:
            # The port stays held until the webserver listens on it (a restart keeps it if it can).
            with reserved_port(self.dagster_port) as port:
                self.dagster_port = port
                webserver = processes.start(
                    [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port), "-w", workspace],
                    env=env, log_path=self.logs / f"dagster-webserver{tag}.log", cwd=project_root(),
                )
                daemon = processes.start(
                    [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", workspace],
                    env=env, log_path=self.logs / f"dagster-daemon{tag}.log", cwd=project_root(),
                )
                self.dagster = DagsterProcesses(webserver=webserver, daemon=daemon)
                processes.wait_until(processes.http_ok(self.dagster_url + "/server_info"), timeout=STARTUP_TIMEOUT,
                                     what="Dagster webserver", process=webserver)
            wait_for(self.code_location_loaded, timeout=STARTUP_TIMEOUT, what="the code location to load")
            wait_for(self.daemons_healthy, timeout=STARTUP_TIMEOUT, what="the Dagster daemon's heartbeats")
        except BaseException:
            self.stop_dagster()
            raise

    def stop_dagster(self) -> None:
        if self.dagster is None:
            return
        # Daemon first, so it launches nothing new while the webserver goes away.
        processes.stop(self.dagster.daemon)
        processes.stop(self.dagster.webserver)
        self.dagster = None

    def kill_daemon(self) -> None:
        """SIGKILL the daemon's whole process group, as a host crash or an OOM kill would: its code
        server and the run workers that launched from it die with it, and nothing cleans up."""
        daemon = self.dagster.daemon
        with contextlib.suppress(ProcessLookupError):
            os.killpg(os.getpgid(daemon.pid), signal.SIGKILL)
        daemon.wait(timeout=15)

    def start_daemon(self) -> None:
        """A new daemon beside the running webserver (after kill_daemon)."""
        self.restarts += 1
        daemon = processes.start(
            [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", str(project_root() / "workspace.yaml")],
            env=self.env(), log_path=self.logs / f"dagster-daemon-{self.restarts}.log", cwd=project_root(),
        )
        self.dagster = DagsterProcesses(webserver=self.dagster.webserver, daemon=daemon)

    def restart_dagster(self, *, secret: str | None = None) -> None:
        """How a changed environment variable (a rotated secret) reaches Dagster: the webserver
        and the daemon, and with them the code servers they spawn and the run workers those
        launch, read the environment at start, so they are restarted with the new value."""
        if secret is not None:
            self.secret = secret
        self.stop_dagster()
        self.restarts += 1
        self.start_dagster()

    # -- GraphQL ----------------------------------------------------------------------------

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = httpx.post(self.dagster_url + "/graphql", json={"query": query, "variables": variables or {}},
                              timeout=30)
        response.raise_for_status()
        body = response.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def code_location_loaded(self) -> bool:
        data = self.graphql(
            "{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus"
            " locationOrLoadError { __typename ... on PythonError { message } } } } } }"
        )
        entries = data["workspaceOrError"].get("locationEntries", [])
        for entry in entries:
            error = entry.get("locationOrLoadError") or {}
            if error.get("__typename") == "PythonError":
                raise CodeLocationError(f"code location {entry['name']} failed to load: {error['message']}")
        return bool(entries) and all(e["loadStatus"] == "LOADED" for e in entries)

    def daemons_healthy(self) -> bool:
        data = self.graphql("{ instance { daemonHealth { allDaemonStatuses { daemonType healthy required } } } }")
        statuses = data["instance"]["daemonHealth"]["allDaemonStatuses"]
        needed = {"SENSOR", "SCHEDULER", "QUEUED_RUN_COORDINATOR", "MONITORING"}
        healthy = {s["daemonType"] for s in statuses if s["healthy"]}
        return needed <= healthy

    def job_names(self) -> set[str]:
        data = self.graphql(
            "{ repositoriesOrError { ... on RepositoryConnection { nodes { jobs { name } } } } }"
        )
        return {job["name"] for node in data["repositoriesOrError"]["nodes"] for job in node["jobs"]}

    def sensor_selector(self, name: str) -> dict:
        return {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "sensorName": name}

    def sensor_status(self, name: str) -> str:
        data = self.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { __typename"
            " ... on Sensor { sensorState { id status } } } }",
            {"s": self.sensor_selector(name)},
        )
        return data["sensorOrError"]["sensorState"]["status"]

    def stop_sensor(self, name: str) -> None:
        data = self.graphql(
            "query($s: SensorSelector!) { sensorOrError(sensorSelector: $s) { ... on Sensor { sensorState { id } } } }",
            {"s": self.sensor_selector(name)},
        )
        state_id = data["sensorOrError"]["sensorState"]["id"]
        self.graphql("mutation($id: String) { stopSensor(id: $id) { __typename } }", {"id": state_id})

    def start_sensor(self, name: str) -> None:
        self.graphql("mutation($s: SensorSelector!) { startSensor(sensorSelector: $s) { __typename } }",
                     {"s": self.sensor_selector(name)})

    def active_runs(self, job_name: str) -> list[dict]:
        return [r for r in self.runs(job_name) if r["status"] in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING")]

    def graphql_client(self):
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient("127.0.0.1", port_number=self.dagster_port)

    def submit_job(self, job_name: str, run_config: dict | None = None, tags: dict | None = None) -> str:
        return self.graphql_client().submit_job_execution(job_name, run_config=run_config or {}, tags=tags)

    def run_status(self, run_id: str) -> str:
        return self.graphql_client().get_run_status(run_id).value

    def wait_for_run(self, run_id: str, *, timeout: float = RUN_TIMEOUT) -> str:
        finished = {"SUCCESS", "FAILURE", "CANCELED"}
        status = wait_for(lambda: (s := self.run_status(run_id)) in finished and s, timeout=timeout,
                          what=f"run {run_id} to finish")
        return status

    def run_times(self, run_id: str) -> tuple[float, float]:
        """When the run's worker started executing and when it finished (Unix seconds)."""
        data = self.graphql("query($runId: ID!) { runOrError(runId: $runId) { ... on Run { startTime endTime } } }",
                            {"runId": run_id})
        return data["runOrError"]["startTime"], data["runOrError"]["endTime"]

    def runs(self, job_name: str, *, limit: int = 50) -> list[dict]:
        data = self.graphql(
            "query($filter: RunsFilter, $limit: Int) { runsOrError(filter: $filter, limit: $limit) {"
            " ... on Runs { results { runId status jobName tags { key value } } } } }",
            {"filter": {"pipelineName": job_name}, "limit": limit},
        )
        return data["runsOrError"]["results"]

    def run_failure_message(self, run_id: str) -> str:
        data = self.graphql(
            "query($runId: ID!) { logsForRun(runId: $runId) { ... on EventConnection { events {"
            " __typename ... on MessageEvent { message level } } } } }",
            {"runId": run_id},
        )
        events = data["logsForRun"].get("events", [])
        return "\n".join(e["message"] for e in events if e.get("level") in ("ERROR", "CRITICAL"))

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            text = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(out)


def run_stack_tests_last(items: list) -> None:
    """Move the tests that use the stack to the end of the session (end-to-end, browser, then the
    checks over everything they left behind in test_suite_end), so the stack starts once, after everything else, and stops when they are done instead of
    ticking through the rest of the suite."""
    def rank(item) -> int:
        if "stack" not in getattr(item, "fixturenames", ()):
            return 0
        if item.get_closest_marker("browser"):
            return 2
        return 3 if item.module.__name__.endswith("test_suite_end") else 1

    items.sort(key=rank)  # stable: the order within each group is kept


@contextlib.contextmanager
def running_stack(admin_url: str, migrated_template: str, pooler_url: str, scratch: Path) -> Iterator[Stack]:
    """The stack, started on entry and stopped (processes, emulator, receiver, databases) on exit."""
    with contextlib.ExitStack() as exit_stack:
        yield _start(admin_url, migrated_template, pooler_url, scratch, exit_stack)


def _start(admin_url: str, migrated_template: str, pooler_url: str, scratch: Path,
           exit_stack: contextlib.ExitStack) -> Stack:
    # Everything registered on exit_stack is undone in reverse order, even when a later step fails.
    app_db = create_database(admin_url, migrated_template)
    exit_stack.callback(drop_database, admin_url, app_db)
    db_url = with_database(admin_url, app_db)
    seed(db_url)

    storage_name = f"dagster_e2e_{uuid.uuid4().hex[:10]}"
    storage_url = ensure_database(admin_url, storage_name)
    exit_stack.callback(drop_database, admin_url, storage_name)

    emulator = exit_stack.enter_context(
        running_emulator(tenant_id=TENANT_ID, client_id=CLIENT_ID, client_secret=FIRST_SECRET, portal_delay=0.0)
    )
    seed_emulator_from_database(emulator.url, db_url)
    webhook = exit_stack.enter_context(webhook_receiver())

    home = scratch / "dagster_home"
    logs = scratch / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    storage_env = install_instance(home, storage_url)

    stack = Stack(admin_url=admin_url, db_url=db_url, pooled_db_url=with_database(pooler_url, app_db),
                  storage_url=storage_url, emulator=emulator, webhook=webhook,
                  home=home, logs=logs, dagster_port=0, storage_env=storage_env)  # start_dagster picks it
    exit_stack.callback(stack.stop_dagster)
    try:
        stack.start_dagster()
    except BaseException as exc:
        raise RuntimeError(f"the Dagster stack did not start: {exc}\n{stack.log_tails()}") from exc
    return stack
