"""The demo a newcomer starts with `bin/demo`: embedded PostgreSQL with demo data, the Dynamics
emulator seeded with HLF's contacts, and Dagster (one code server, the webserver and the daemon,
so sensors and schedules really run), with one nightly expiry and reconciliation behind it.
Ctrl-C stops everything, process group by process group."""

from __future__ import annotations

import os
import secrets
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from mentor_pipeline.db import database_url, stop_embedded_server
from mentor_pipeline.db.connection import connect, embedded_data_dir, project_root
from mentor_pipeline.db.migrate import migrate
from mentor_pipeline.db.seed import seed
from mentor_pipeline.demo import processes
from mentor_pipeline.demo.instance import ensure_database, write_instance_yaml, write_workspace_yaml
from mentor_pipeline.expiry.dates import today_in_oslo
from mentor_pipeline.redaction import redact_url
from mentor_pipeline.settings import DATABASE_URL, FIRST_NIGHT

# Demo-only identity for the emulator; a real org's ids and secret come from HLF IT.
DEMO_TENANT = "hlf-demo-tenant"
DEMO_CLIENT_ID = "mentor-pipeline-demo"
SECRET_FILE = "dynamics-client-secret"
CODE_LOCATION = "mentor_pipeline"


@dataclass
class DemoOptions:
    dagster_port: int = 3000
    emulator_port: int = 8765
    portal_delay_seconds: float = 10.0
    state_dir: Path = project_root() / ".demo"


def run_demo(options: DemoOptions) -> int:
    # Explicit handlers, set before anything starts: a SIGTERM during start-up still stops what
    # already runs, and a shell that starts us in the background ignores SIGINT otherwise.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    for port, what in ((options.dagster_port, "Dagster UI"), (options.emulator_port, "Dynamics emulator")):
        if not processes.port_is_free(port):
            raise RuntimeError(f"port {port} for the {what} is taken: stop what uses it or pass another port")
    options.state_dir.mkdir(parents=True, exist_ok=True)
    logs = options.state_dir / "logs"
    logs.mkdir(exist_ok=True)
    secret_file = options.state_dir / SECRET_FILE
    client_secret = demo_client_secret(secret_file)

    uses_embedded = not os.environ.get(DATABASE_URL.name)
    url = database_url()
    say(f"database: {redact_url(url)}")
    migrate(url, with_app_standin=True)
    created = seed(url)
    say(f"demo data loaded ({created} new mentors)")

    emulator_url = f"http://127.0.0.1:{options.emulator_port}"
    # This process runs the first night too (demo/nightly.py), so it needs the go-live date as well.
    os.environ.setdefault(FIRST_NIGHT.name, demo_first_night(options.state_dir))
    env = dict(os.environ)
    env[DATABASE_URL.name] = url
    env.update(
        DAGSTER_HOME=str(options.state_dir / "dagster_home"),
        DYNAMICS_URL=emulator_url,
        DYNAMICS_AUTHORITY=emulator_url,
        DYNAMICS_TENANT_ID=DEMO_TENANT,
        DYNAMICS_CLIENT_ID=DEMO_CLIENT_ID,
        DYNAMICS_CLIENT_SECRET=client_secret,
        EMULATOR_CLIENT_SECRET=client_secret,  # the environment, not argv: `ps` shows arguments
    )
    write_instance_yaml(Path(env["DAGSTER_HOME"]), ensure_database(url, "dagster_demo"))
    code_server_port = processes.free_port()
    workspace = str(write_workspace_yaml(options.state_dir / "workspace.yaml", host="127.0.0.1", port=code_server_port,
                                         location_name=CODE_LOCATION))

    started: dict[str, subprocess.Popen] = {}
    try:
        emulator = started["emulator"] = processes.start(
            [sys.executable, "-m", "mentor_pipeline.cli", "emulator", "--port", str(options.emulator_port),
             "--tenant-id", DEMO_TENANT, "--client-id", DEMO_CLIENT_ID, "--portal-delay", str(options.portal_delay_seconds)],
            env=env, log_path=logs / "emulator.log",
        )
        processes.wait_until(processes.http_ok(emulator_url + "/"), timeout=30, what="Dynamics emulator", process=emulator)
        listed = seed_emulator_from_database(emulator_url, url)
        say(f"Dynamics emulator: {emulator_url}  ({listed} HLF contacts)")

        # One code server that the webserver and the daemon share (see write_workspace_yaml).
        code_server = started["code server"] = processes.start(
            [sys.executable, "-m", "dagster", "code-server", "start", "-m", "mentor_pipeline.definitions", "-a", "defs",
             "--location-name", CODE_LOCATION, "-h", "127.0.0.1", "-p", str(code_server_port),
             "--use-python-environment-entry-point"],
            env=env, log_path=logs / "dagster-code-server.log", cwd=project_root(),
        )
        processes.wait_until(processes.accepts_connections(code_server_port), timeout=120, what="Dagster code server",
                             process=code_server)
        webserver = started["webserver"] = processes.start(
            [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(options.dagster_port), "-w", workspace],
            env=env, log_path=logs / "dagster-webserver.log", cwd=project_root(),
        )
        started["daemon"] = processes.start(
            [_console_script("dagster-daemon"), "run", "-w", workspace],
            env=env, log_path=logs / "dagster-daemon.log", cwd=project_root(),
        )
        dagster_url = f"http://127.0.0.1:{options.dagster_port}"
        processes.wait_until(processes.http_ok(dagster_url + "/server_info"), timeout=120, what="Dagster webserver", process=webserver)
        print_welcome(dagster_url, emulator_url, logs)
        print_break_glass(env, secret_file, uses_embedded)
        from mentor_pipeline.demo.nightly import start_first_night  # dagster_graphql: only the demo needs it

        say("  First night, so the UI has run history, asset checks and plots:")
        start_first_night(dagster_url, options.dagster_port, say)
        _wait_for_ctrl_c(started)
    finally:
        # Stopping takes seconds; a second Ctrl-C must not cut it short and leave processes behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        say("stopping ...")
        for process in reversed(started.values()):
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


def demo_client_secret(path: Path) -> str:
    """The emulator's client secret for this demo folder: made once, kept in a file only its owner
    reads, and never printed (the break-glass lines read it from the file)."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def _console_script(name: str) -> str:
    # Installed next to this interpreter; found even when .venv/bin is not on PATH.
    return str(Path(sys.executable).with_name(name))


def print_welcome(dagster_url: str, emulator_url: str, logs: Path) -> None:
    say("")
    say(f"  Dagster UI (runs, schedules, force sync):  {dagster_url}")
    say(f"  Public chapter website (what visitors see): {emulator_url}/")
    say("")
    say("  Try it: pause a listed HLF mentor, then watch the sync run in the Dagster UI and the")
    say("  mentor leave the website (the portal view lags a few seconds, like Power Pages' cache):")
    say("    .venv/bin/mentor-pipeline mentor set-status 'Ingrid Hansen' paused")
    say("  List mentors:  .venv/bin/mentor-pipeline mentor list --org HLF")
    say(f"  Logs: {logs}   Ctrl-C stops everything.")
    say("")


def demo_first_night(state_dir: Path, nights_back: int = 3) -> str:
    """The demo's go-live: a few nights back on its first start, then kept (in the demo's state
    folder, beside its Dagster storage), so the UI opens on a few nights, not a year of missing ones."""
    path = state_dir / "first-night"
    if path.is_file():
        return path.read_text().strip()
    night = (today_in_oslo() - timedelta(days=nights_back)).isoformat()
    state_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(night + "\n")
    return night


def print_break_glass(env: dict[str, str], secret_file: Path, uses_embedded: bool) -> None:
    """How to run the break-glass commands (docs/operations.md) against this demo's emulator."""
    say("  Break-glass commands against this demo, from another shell in this folder:")
    if uses_embedded:
        say(f"    export {DATABASE_URL.name}={shlex.quote(env[DATABASE_URL.name])}")
    else:
        say("    (DATABASE_URL: the one already set in your shell)")
    for name in ("DYNAMICS_URL", "DYNAMICS_AUTHORITY", "DYNAMICS_TENANT_ID", "DYNAMICS_CLIENT_ID"):
        say(f"    export {name}={shlex.quote(env[name])}")
    say(f'    export DYNAMICS_CLIENT_SECRET="$(cat {shlex.quote(str(secret_file))})"')
    say("    .venv/bin/mentor-pipeline reconcile --dry-run")
    say("")


def _raise_keyboard_interrupt(*_):
    raise KeyboardInterrupt


def _wait_for_ctrl_c(started: dict[str, subprocess.Popen]) -> None:
    try:
        while all(process.poll() is None for process in started.values()):
            time.sleep(1)
        dead = ", ".join(name for name, process in started.items() if process.poll() is not None)
        say(f"the demo's {dead} exited unexpectedly; see the logs")
    except KeyboardInterrupt:
        pass


def say(message: str) -> None:
    print(message, flush=True)
