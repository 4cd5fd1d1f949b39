"""The DAGSTER_PG_* variables that point the repository's dagster.yaml at a test database."""

from __future__ import annotations

import yaml

from mentor_pipeline.demo.instance import install_instance, repository_instance, storage_env, write_instance_yaml


def test_a_socket_url_leaves_the_host_to_pghost():
    # dagster-postgres writes the host into a URL, where a socket folder cannot go.
    assert storage_env("postgresql://postgres:@/mp_x?host=/tmp/s/pgdata") == {
        "DAGSTER_PG_HOST": "", "DAGSTER_PG_PORT": "5432", "DAGSTER_PG_USER": "postgres",
        "DAGSTER_PG_PASSWORD": "", "DAGSTER_PG_DB": "mp_x", "PGHOST": "/tmp/s/pgdata"}


def test_a_tcp_url_maps_field_by_field():
    assert storage_env("postgresql://dagster:p%40ss@db.internal:5433/dagster") == {
        "DAGSTER_PG_HOST": "db.internal", "DAGSTER_PG_PORT": "5433", "DAGSTER_PG_USER": "dagster",
        "DAGSTER_PG_PASSWORD": "p@ss", "DAGSTER_PG_DB": "dagster"}


def test_install_copies_the_repository_file_unchanged(tmp_path):
    install_instance(tmp_path, "postgresql://postgres@127.0.0.1:5432/d")
    assert (tmp_path / "dagster.yaml").read_bytes() == repository_instance().read_bytes()


def test_the_written_copy_differs_from_the_repository_file_only_where_asked(tmp_path):
    deployed = yaml.safe_load(repository_instance().read_text())
    written = yaml.safe_load(write_instance_yaml(tmp_path, "postgresql://postgres@h/d", queued=False).read_text())
    assert written.pop("storage") == {"postgres": {"postgres_url": "postgresql+psycopg2://postgres@h/d"}}
    assert written.pop("run_coordinator")["class"] == "DefaultRunCoordinator"
    assert written == {k: v for k, v in deployed.items() if k not in ("storage", "run_coordinator")}


def test_every_dynamics_job_tags_its_runs_however_they_are_launched():
    from mentor_pipeline.definitions import defs

    [limit] = yaml.safe_load(repository_instance().read_text())["concurrency"]["runs"]["tag_concurrency_limits"]
    for name in ("website_sync_job", "nightly_reconciliation_job", "force_sync_job"):
        job = defs.resolve_job_def(name)
        assert limit["key"] in job.tags, name  # what a launch from the UI or GraphQL tags the run with
        assert limit["key"] in job.run_tags, name  # what a sensor's or schedule's run request gets
    # The nightly reconciliation is started by declarative automation, as an asset run: the
    # automation sensor tags those runs itself.
    automation = defs.get_repository_def().get_sensor_def("nightly_reconciliation_automation")
    assert limit["key"] in automation.run_tags
