"""What the image runs around each service (mentor_pipeline/service.py), without containers:
which variables each of compose.yaml's commands needs, and the one line when one is missing.
tests/deploy runs the same in the image."""

from __future__ import annotations

import yaml

from mentor_pipeline import service
from mentor_pipeline.settings import ENVIRONMENT
from tests.test_settings import REPO

COMPOSE = yaml.safe_load((REPO / "compose.yaml").read_text())["services"]


def test_every_service_of_compose_yaml_is_known_to_the_preflight():
    roles = {name: service.role(spec["command"]) for name, spec in COMPOSE.items() if "command" in spec}
    assert {name: found[0] if found else None for name, found in roles.items()} == {
        "migrate": None,  # `service migrate` checks each of its two commands itself
        "codeserver": "code server", "daemon": "daemon", "webserver": "webserver",
    }
    assert roles["codeserver"][1] == [variable for variable in ENVIRONMENT if variable.required]
    assert {variable.name for variable in roles["daemon"][1]} == {
        "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB"}


def test_a_missing_variable_is_one_line_naming_it(monkeypatch):
    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_DB"):
        monkeypatch.setenv(name, "x")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", " ")
    assert service.preflight(["dagster-daemon", "run"]) == (
        "mentor-pipeline daemon: DAGSTER_PG_PASSWORD is not set (required; see .env.example)")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "x")
    assert service.preflight(["dagster-daemon", "run"]) is None
    assert service.preflight(["bash"]) is None  # anything else runs unchecked


def test_the_health_check_finds_the_service_behind_an_init_and_the_entrypoint(tmp_path):
    cmdline = tmp_path / "cmdline"  # what /proc/1/cmdline holds with compose's `init: true`
    words = ["/run/podman-init", "--", "mentor-pipeline-entrypoint", "dagster-webserver", "-p", "3000"]
    cmdline.write_bytes("\0".join(words).encode() + b"\0")
    assert service.main_command(cmdline) == ["dagster-webserver", "-p", "3000"]
    cmdline.write_bytes(b"/opt/venv/bin/python3\0/opt/venv/bin/dagster-daemon\0run\0")  # no init
    assert service.role(service.main_command(cmdline))[0] == "daemon"
