"""deploy/helm/values.yaml against the repository's dagster.yaml: Dagster's chart writes the
cluster's instance file from the values, so the two must say the same about the run queue, the
concurrency limits and pools, run monitoring, the daemon's threads and the storage. Also: the
code location keeps its name, secrets are referenced by name only, and every variable named is
one of mentor_pipeline/settings.py.

`chart_instance` renders what matters the way the chart's templates do (dagster/dagster 1.13.27:
templates/configmap-instance.yaml and templates/helpers/instance/*.tpl); no `helm` runs here.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mentor_pipeline.settings import ENVIRONMENT

REPO = Path(__file__).resolve().parents[1]
VALUES = yaml.safe_load((REPO / "deploy" / "helm" / "values.yaml").read_text())
INSTANCE = yaml.safe_load((REPO / "dagster.yaml").read_text())


def chart_instance(values: dict) -> dict:
    daemon = values["dagsterDaemon"]
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    concurrency = values["concurrency"]
    monitoring = daemon["runMonitoring"]
    postgresql = values["postgresql"]
    return {
        "run_coordinator": {
            "class": daemon["runCoordinator"]["type"],
            "config": {"dequeue_use_threads": queued["dequeueUseThreads"],
                       "dequeue_interval_seconds": queued["dequeueIntervalSeconds"]},
        },
        "concurrency": {
            "runs": {"max_concurrent_runs": concurrency["runs"]["maxConcurrentRuns"],
                     "tag_concurrency_limits": concurrency["runs"]["tagConcurrencyLimits"]},
            "pools": {"granularity": concurrency["pools"]["granularity"],
                      "default_limit": concurrency["pools"]["defaultLimit"]},
        },
        "run_monitoring": {"enabled": monitoring["enabled"],
                           "start_timeout_seconds": monitoring["startTimeoutSeconds"],
                           "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
                           "poll_interval_seconds": monitoring["pollIntervalSeconds"]},
        "sensors": {"use_threads": daemon["sensors"]["useThreads"], "num_workers": daemon["sensors"]["numWorkers"]},
        "schedules": {"use_threads": daemon["schedules"]["useThreads"],
                      "num_workers": daemon["schedules"]["numWorkers"]},
        "storage_scheme": postgresql["postgresqlScheme"],
        "telemetry": values["telemetry"],
        **values["additionalInstanceConfig"],
    }


def test_the_chart_writes_the_instance_dagster_yaml_describes():
    rendered = chart_instance(VALUES)
    assert VALUES["dagsterDaemon"]["runCoordinator"]["enabled"] and VALUES["concurrency"]["enabled"]
    assert rendered["run_coordinator"]["class"] == INSTANCE["run_coordinator"]["class"]
    assert rendered["run_coordinator"]["config"] == INSTANCE["run_coordinator"]["config"]
    assert rendered["concurrency"] == INSTANCE["concurrency"]
    assert rendered["run_monitoring"] == INSTANCE["run_monitoring"]
    assert VALUES["dagsterDaemon"]["runMonitoring"]["enabled"] is True
    for key in ("sensors", "schedules", "telemetry", "nux"):
        assert rendered[key] == INSTANCE[key], key
    assert rendered["storage_scheme"] == INSTANCE["storage"]["postgres"]["postgres_db"]["scheme"]


def test_storage_is_an_external_postgres_whose_password_is_a_secret_by_name():
    assert VALUES["postgresql"]["enabled"] is False
    assert VALUES["generatePostgresqlPasswordSecret"] is False
    assert VALUES["global"]["postgresqlSecretName"]
    assert "postgresqlPassword" not in VALUES["postgresql"]
    # The code server's own DAGSTER_PG_* (checked by the image's entrypoint) name the same database.
    env = {item["name"]: item.get("value") for item in user_deployment()["env"]}
    postgresql = VALUES["postgresql"]
    assert (env["DAGSTER_PG_HOST"], env["DAGSTER_PG_USER"], env["DAGSTER_PG_DB"], int(env["DAGSTER_PG_PORT"])) == (
        postgresql["postgresqlHost"], postgresql["postgresqlUsername"], postgresql["postgresqlDatabase"],
        postgresql["service"]["port"])


def user_deployment() -> dict:
    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    return deployment


def test_the_code_location_keeps_its_name_and_runs_as_k8s_jobs_from_its_image():
    (server,) = VALUES["dagsterWebserver"]["workspace"]["servers"]
    (local,) = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    (compose,) = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())["load_from"]
    assert server["name"] == local["python_module"]["location_name"] == compose["grpc_server"]["location_name"]
    assert (server["host"], server["port"]) == (user_deployment()["name"], user_deployment()["port"])
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    assert VALUES["migrate"]["enabled"] is True
    image = user_deployment()["image"]
    (job,) = VALUES["extraManifests"]
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == f"{image['repository']}:{image['tag']}"


def test_secrets_are_referenced_by_name_and_variables_come_from_settings():
    names = {variable.name for variable in ENVIRONMENT}
    secret = {variable.name for variable in ENVIRONMENT if variable.secret}
    (job,) = VALUES["extraManifests"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = [*user_deployment()["env"], *container.get("env", [])]
    assert {item["name"] for item in env} <= names
    assert [item["name"] for item in env if item["name"] in secret and "value" in item] == []
    assert user_deployment()["envSecrets"] == [{"name": "mentor-pipeline-app"}]
    assert container["envFrom"] == [{"secretRef": {"name": "mentor-pipeline-app"}}]
    assert VALUES["runLauncher"]["config"]["k8sRunLauncher"]["envSecrets"] == [{"name": "mentor-pipeline-app"}]
