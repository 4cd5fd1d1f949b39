"""The demo a newcomer starts with `bin/demo`: embedded PostgreSQL with demo data, the Dynamics
emulator seeded with HLF's contacts, and Dagster (webserver + daemon, so sensors and schedules
really run). Ctrl-C stops everything, process group by process group."""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mentor_pipeline import processes
from mentor_pipeline.db import database_url, stop_embedded_server
from mentor_pipeline.db.connection import connect, embedded_data_dir, project_root
from mentor_pipeline.db.migrate import migrate
from mentor_pipeline.db.seed import seed
from mentor_pipeline.instance import ensure_database, write_instance_yaml

# Demo-only credentials for the emulator; a real org's secret comes from HLF IT.
DEMO_TENANT = "hlf-demo-tenant"
DEMO_CLIENT_ID = "mentor-pipeline-demo"
DEMO_CLIENT_SECRET = "demo-secret-not-for-production"


@dataclass
class DemoOptions:
    dagster_port: int = 3000
    emulator_port: int = 8765
    portal_delay_seconds: float = 10.0
    state_dir: Path = project_root() / ".demo"


def run_demo(options: DemoOptions) -> int:
    for port, what in ((options.dagster_port, "Dagster UI"), (options.emulator_port, "Dynamics emulator")):
        if not processes.port_is_free(port):
            raise RuntimeError(f"port {port} for the {what} is taken: stop what uses it or pass another port")
    options.state_dir.mkdir(parents=True, exist_ok=True)
    logs = options.state_dir / "logs"
    logs.mkdir(exist_ok=True)

    uses_embedded = not os.environ.get("DATABASE_URL")
    url = database_url()
    say(f"database: {url}")
    migrate(url, with_app_standin=True)
    created = seed(url)
    say(f"demo data loaded ({created} new mentors)")

    emulator_url = f"http://127.0.0.1:{options.emulator_port}"
    env = dict(os.environ)
    env.update(
        DATABASE_URL=url,
        DAGSTER_HOME=str(options.state_dir / "dagster_home"),
        DYNAMICS_URL=emulator_url,
        DYNAMICS_AUTHORITY=emulator_url,
        DYNAMICS_TENANT_ID=DEMO_TENANT,
        DYNAMICS_CLIENT_ID=DEMO_CLIENT_ID,
        DYNAMICS_CLIENT_SECRET=DEMO_CLIENT_SECRET,
        EMULATOR_CLIENT_SECRET=DEMO_CLIENT_SECRET,
    )
    write_instance_yaml(Path(env["DAGSTER_HOME"]), ensure_database(url, "dagster_demo"))

    started: list = []
    try:
        emulator = processes.start(
            [sys.executable, "-m", "mentor_pipeline.cli", "emulator", "--port", str(options.emulator_port),
             "--tenant-id", DEMO_TENANT, "--client-id", DEMO_CLIENT_ID, "--portal-delay", str(options.portal_delay_seconds)],
            env=env, log_path=logs / "emulator.log",
        )
        started.append(emulator)
        processes.wait_until(processes.http_ok(emulator_url + "/"), timeout=30, what="Dynamics emulator", process=emulator)
        listed = seed_emulator_from_database(emulator_url, url)
        say(f"Dynamics emulator: {emulator_url}  ({listed} HLF contacts)")

        workspace = str(project_root() / "workspace.yaml")
        webserver = processes.start(
            [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(options.dagster_port), "-w", workspace],
            env=env, log_path=logs / "dagster-webserver.log", cwd=project_root(),
        )
        started.append(webserver)
        daemon = processes.start(
            [sys.executable, "-m", "dagster._daemon", "run", "-w", workspace],
            env=env, log_path=logs / "dagster-daemon.log", cwd=project_root(),
        )
        started.append(daemon)
        dagster_url = f"http://127.0.0.1:{options.dagster_port}"
        processes.wait_until(processes.http_ok(dagster_url + "/server_info"), timeout=120, what="Dagster webserver", process=webserver)
        print_welcome(dagster_url, emulator_url, logs)
        _wait_for_ctrl_c(started)
    finally:
        say("stopping ...")
        for process in reversed(started):
            processes.stop(process)
        if uses_embedded:
            stop_embedded_server(embedded_data_dir())
        say("stopped")
    return 0


def seed_emulator_from_database(emulator_url: str, db_url: str) -> int:
    """Give the emulator one contact per HLF mentor, listed as the website should show them now."""
    from mentor_pipeline.emulator.admin import EmulatorAdmin

    with connect(db_url) as conn:
        rows = conn.execute(
            "select d.mentor_id::text, m.full_name, c.name, d.should_be_listed"
            " from mentor_website_desired_state d join mentors m on m.id = d.mentor_id"
            " left join chapters c on c.id = d.chapter_id where d.website_sync_enabled order by c.name, m.full_name"
        ).fetchall()
    contacts = [
        {"mentor_id": mentor_id, "full_name": name, "chapter": chapter, "listed": listed}
        for mentor_id, name, chapter, listed in rows
    ]
    EmulatorAdmin(emulator_url).seed_contacts(contacts)
    return len(contacts)


def print_welcome(dagster_url: str, emulator_url: str, logs: Path) -> None:
    say("")
    say(f"  Dagster UI (runs, schedules, force sync):  {dagster_url}")
    say(f"  Public chapter website (what visitors see): {emulator_url}/")
    say("")
    say("  Try it: pause a listed HLF mentor, then watch the sync run in the Dagster UI and the")
    say("  mentor leave the website (the portal view lags a few seconds, like Power Pages' cache):")
    say("    .venv/bin/mentor-pipeline mentor set-status 'Ingrid Hansen' paused")
    say("  List mentors:  .venv/bin/mentor-pipeline mentor list --org HLF")
    say(f"  Logs: {logs}")
    say("  Ctrl-C stops everything.")
    say("")


def _raise_keyboard_interrupt(*_):
    raise KeyboardInterrupt


def _wait_for_ctrl_c(started) -> None:
    # Explicit handlers: a shell that starts us in the background ignores SIGINT otherwise.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        while all(process.poll() is None for process in started):
            time.sleep(1)
        dead = [p.args[2] if len(p.args) > 2 else p.args for p in started if p.poll() is not None]
        say(f"a demo process exited unexpectedly ({dead}); see the logs")
    except KeyboardInterrupt:
        pass


def say(message: str) -> None:
    print(message, flush=True)
