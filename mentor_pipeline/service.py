"""What the image (Dockerfile) runs around each service: a preflight before it starts and a
health check while it runs.

`python -m mentor_pipeline.service preflight COMMAND...` (the entrypoint, deploy/entrypoint.sh)
checks that the variables the command needs are set and, for the code server, that the
definitions load; otherwise it prints one line saying what to set and exits 78 (EX_CONFIG).
`dagster code-server start` would keep serving, and pass its health check, with definitions that
failed to load.

`python -m mentor_pipeline.service migrate [--app-only]` (compose.yaml's one-off `migrate`
service; the Helm values' job, app only) upgrades Dagster's storage (`dagster instance migrate`),
then the app database (`mentor-pipeline db migrate`, on MENTOR_PIPELINE_MIGRATE_URL when set:
migrations belong on the direct or session-pooler connection, the services on the transaction
pooler). Both are no-ops when up to date.

`python -m mentor_pipeline.service health` (the image's HEALTHCHECK) checks whichever service is
the container's main process: the code server answers gRPC, the daemon's heartbeats are fresh,
the webserver answers /server_info. Anything else (a one-off command) is healthy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from mentor_pipeline import settings

EX_CONFIG = 78
DAGSTER_STORAGE = [settings.DAGSTER_PG_HOST, settings.DAGSTER_PG_PORT, settings.DAGSTER_PG_USER,
                   settings.DAGSTER_PG_PASSWORD, settings.DAGSTER_PG_DB]
# The code server and its run workers need every required variable.
EVERYTHING = [variable for variable in settings.ENVIRONMENT if variable.required]


def role(argv: list[str]) -> tuple[str, list[settings.Variable]] | None:
    """The service a command starts, and the variables it needs; None for anything else."""
    program = Path(argv[0]).name if argv else ""
    words = argv[1:3]
    if program == "dagster" and words in (["code-server", "start"], ["api", "grpc"]):
        return "code server", EVERYTHING
    if program == "dagster" and words == ["api", "execute_run"]:
        return "run worker", EVERYTHING
    if program == "dagster-daemon":
        return "daemon", DAGSTER_STORAGE
    if program == "dagster-webserver" or argv[:2] == ["-m", "dagster_webserver"]:
        return "webserver", DAGSTER_STORAGE
    if program == "dagster" and words == ["instance", "migrate"]:
        return "migrate", DAGSTER_STORAGE
    if program == "mentor-pipeline" and words == ["db", "migrate"]:
        return "migrate", [settings.DATABASE_URL]
    return None


def preflight(argv: list[str]) -> str | None:
    """The one line that says why `argv` cannot start, or None when it can."""
    found = role(argv)
    if found is None:
        return None
    name, needed = found
    missing = [variable.name for variable in needed if not os.environ.get(variable.name, "").strip()]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        return f"mentor-pipeline {name}: {', '.join(missing)} {verb} not set (required; see .env.example)"
    if name == "code server":
        try:
            import mentor_pipeline.definitions  # noqa: F401
        except Exception as exc:  # whatever stops the code location loading stops the service
            first_line = (str(exc).strip().splitlines() or [""])[0]
            return f"mentor-pipeline {name}: the definitions do not load: {type(exc).__name__}: {first_line}"
    return None


def _option(argv: list[str], names: tuple[str, ...], default: str) -> str:
    for index, word in enumerate(argv[:-1]):
        if word in names:
            return argv[index + 1]
    return default


def health(argv: list[str]) -> str | None:
    """Why the service running as `argv` is unhealthy, or None when it is healthy."""
    found = role(argv)
    name = found[0] if found else None
    if name == "code server":
        port = _option(argv, ("-p", "--port"), "4000")
        command = ["dagster", "api", "grpc-health-check", "-p", port]
    elif name == "daemon":
        command = ["dagster-daemon", "liveness-check"]
    elif name == "webserver":
        port = _option(argv, ("-p", "--port"), "3000")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=10) as response:
                return None if response.status == 200 else f"/server_info answered {response.status}"
        except OSError as exc:
            return f"/server_info: {exc}"
    else:
        return None
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    return None if result.returncode == 0 else (result.stdout + result.stderr).strip()[-500:]


def main_command(cmdline: Path = Path("/proc/1/cmdline")) -> list[str]:
    """The service the container runs: PID 1's command (the entrypoint execs the service), after
    an init's `... --` (compose's `init: true`) and the entrypoint's own name."""
    words = [word for word in cmdline.read_bytes().decode().split("\0") if word]
    if "--" in words:
        words = words[words.index("--") + 1:]
    while words and (Path(words[0]).name.startswith("python") or Path(words[0]).name == "mentor-pipeline-entrypoint"):
        words = words[1:]  # console scripts show as `python /opt/venv/bin/dagster ...`
    return words


MIGRATIONS = (["dagster", "instance", "migrate"], ["mentor-pipeline", "db", "migrate"])


def migrate(app_only: bool = False) -> int:
    """Both migrations in order; `app_only`: the app database's alone (Helm: the chart's own job
    migrates Dagster's storage)."""
    migrations = MIGRATIONS[1:] if app_only else MIGRATIONS
    problems = [problem for problem in map(preflight, migrations) if problem]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return EX_CONFIG
    env = dict(os.environ)
    if env.get(settings.MIGRATE_URL.name, "").strip():
        env[settings.DATABASE_URL.name] = env[settings.MIGRATE_URL.name]
    for command in migrations:
        print(f"$ {' '.join(command)}", flush=True)
        code = subprocess.run(command, env=env).returncode
        if code != 0:
            return code
    return 0


def main(args: list[str]) -> int:
    if args[:1] == ["preflight"]:
        problem = preflight(args[1:])
        if problem:
            print(problem, file=sys.stderr)
            return EX_CONFIG
        return 0
    if args[:1] == ["migrate"] and args[1:] in ([], ["--app-only"]):
        return migrate(app_only=args[1:] == ["--app-only"])
    if args == ["health"]:
        problem = health(main_command())
        if problem:
            print(problem, file=sys.stderr)
            return 1
        return 0
    print("usage: python -m mentor_pipeline.service preflight COMMAND... | migrate [--app-only] | health", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
