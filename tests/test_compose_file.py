"""compose.yaml read as Docker Compose v2 reads it (tests/deploy/compose.py, which tests/deploy
runs with podman): the services of each shape, and no secret written in the file."""

from __future__ import annotations

import re

import yaml

from mentor_pipeline.settings import ENVIRONMENT
from tests.deploy.compose import REPO, Compose

TEXT = (REPO / "compose.yaml").read_text()


def test_the_bundled_postgres_is_a_profile_and_the_stack_waits_for_it_only_there(tmp_path):
    env = {"DAGSTER_PG_USER": "dagster", "DAGSTER_PG_PASSWORD": "pw", "DAGSTER_PG_DB": "dagster"}
    default = Compose("p", env, tmp_path, {})
    assert set(default.services) == {"migrate", "codeserver", "daemon", "webserver"}
    bundled = Compose("p", env, tmp_path, {}, profiles=("bundled-postgres",))
    assert bundled.services["postgres"]["environment"]["POSTGRES_PASSWORD"] == "pw"
    assert bundled.services["postgres"]["healthcheck"]["test"][1] == 'pg_isready -U "$POSTGRES_USER" -d "$POSTGRES_DB"'
    assert bundled.order().index("postgres") < bundled.order().index("migrate") < bundled.order().index("codeserver")


def test_exactly_one_daemon_and_nothing_starts_before_migrate():
    services = yaml.safe_load(TEXT)["services"]
    assert [name for name, spec in services.items() if spec.get("command", [""])[0] == "dagster-daemon"] == ["daemon"]
    assert "deploy" not in services["daemon"]  # no replicas
    for name in ("codeserver", "daemon", "webserver"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["restart"] == "unless-stopped"


def test_no_value_of_a_variable_is_written_in_the_file():
    named = {variable.name for variable in ENVIRONMENT}
    for name, value in re.findall(r"^\s*([A-Z][A-Z0-9_]+):\s*(.*)$", TEXT, flags=re.M):
        if name in named:
            assert value == f"${{{name}}}", f"{name} in compose.yaml: take it from .env"
