"""A wrong or missing required variable stops the service that needs it with one line saying
which (the image's entrypoint, mentor_pipeline/service.py), instead of a code server that serves
definitions that failed to load."""

from __future__ import annotations

import pytest

from mentor_pipeline.service import EX_CONFIG


def service_lines(result) -> list[str]:
    """What the service printed (podman adds lines of its own about systemd timers)."""
    return [line for line in (result.stdout + result.stderr).splitlines() if line and not line.startswith("time=")]


@pytest.mark.parametrize(("service", "changes", "line"), [
    ("codeserver", {"DYNAMICS_CLIENT_SECRET": None},
     "mentor-pipeline code server: DYNAMICS_CLIENT_SECRET is not set (required; see .env.example)"),
    ("daemon", {"DAGSTER_PG_PASSWORD": None},
     "mentor-pipeline daemon: DAGSTER_PG_PASSWORD is not set (required; see .env.example)"),
    ("migrate", {"DATABASE_URL": ""},
     "mentor-pipeline migrate: DATABASE_URL is not set (required; see .env.example)"),
    ("codeserver", {"MENTOR_PIPELINE_FIRST_NIGHT": "next week"},
     "mentor-pipeline code server: the definitions do not load: ValueError: MENTOR_PIPELINE_FIRST_NIGHT must be"),
])
def test_a_missing_or_wrong_variable_stops_the_service_with_one_line(deployment, service, changes, line):
    compose = deployment.with_env(deployment.compose.project, **changes)
    result = compose.run(service)
    assert result.returncode == EX_CONFIG
    printed = service_lines(result)
    assert len(printed) == 1 and printed[0].startswith(line), printed
