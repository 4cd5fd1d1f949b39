"""compose.yaml's stack, from the image, against the host's PostgreSQL and the emulator: migrated
once, healthy, and a status change in the app database reaches Dynamics through the containerised
daemon and its run. The tests run in order on one stack (a module fixture)."""

from __future__ import annotations

import httpx
import psycopg

from mentor_pipeline.db.seed import seed
from mentor_pipeline.demo.stack import seed_emulator_from_database
from tests.deploy.podman import logs, podman
from tests.e2e.harness import wait_for

LONG_RUNNING = ("codeserver", "daemon", "webserver")


def test_up_migrates_once_and_every_service_becomes_healthy(deployment):
    compose = deployment.compose
    assert set(compose.services) == {"migrate", *LONG_RUNNING}  # the bundled Postgres is a profile
    compose.up()
    migrate_log = logs(compose.container("migrate"))
    assert "$ dagster instance migrate" in migrate_log and "applied 20261123000100_foundation" in migrate_log
    for name in ("codeserver", "daemon"):
        compose.wait_healthy(name, timeout=180)
    compose.wait_healthy("webserver", timeout=180)
    info = httpx.get(f"http://{compose.address('webserver')}:3000/server_info", timeout=10)
    assert info.status_code == 200 and info.json()["dagster_webserver_version"] == "1.13.27"


def test_a_second_up_migrates_nothing_and_keeps_the_services(deployment):
    compose = deployment.compose
    before = {name: compose.state(name)["StartedAt"] for name in LONG_RUNNING}
    compose.up()
    assert {name: compose.state(name)["StartedAt"] for name in LONG_RUNNING} == before
    migrate_log = logs(compose.container("migrate"))
    assert migrate_log.count("$ mentor-pipeline db migrate") == 2
    assert migrate_log.count("database is up to date") == 1  # the second run: nothing to apply


def test_a_status_change_reaches_dynamics_through_the_daemon_and_its_run(deployment):
    seed(deployment.app_url)
    seed_emulator_from_database(deployment.emulator.url, deployment.app_url)
    admin = deployment.emulator.admin
    with psycopg.connect(deployment.app_url, autocommit=True) as conn:
        (mentor_id,) = conn.execute(
            "select mentor_id::text from mentor_website_desired_state where should_be_listed order by mentor_id limit 1"
        ).fetchone()
        wait_for(lambda: admin.contact(mentor_id)["listed"] is True, timeout=30, what="the seeded contact")
        conn.execute("update mentors set status = 'paused', updated_at = now() where id = %s", (mentor_id,))
    wait_for(lambda: admin.contact(mentor_id)["listed"] is False, timeout=240, interval=1,
             what="the paused mentor unlisted in Dynamics by the containerised daemon's run")
    storage = deployment.env["DAGSTER_PG_DB"]
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{storage}") as conn:
        statuses = {status for (status,) in conn.execute("select status from runs where pipeline_name = 'website_sync_job'")}
    assert "SUCCESS" in statuses or "STARTED" in statuses, statuses


def test_no_secret_shows_in_any_service_log(deployment):
    compose = deployment.compose
    secrets = [deployment.env["DYNAMICS_CLIENT_SECRET"], deployment.env["DAGSTER_PG_PASSWORD"]]
    for name in compose.services:
        text = logs(compose.container(name))
        assert not [secret for secret in secrets if secret in text], name
    inspect = podman("container", "inspect", compose.container("daemon")).stdout
    assert deployment.env["DYNAMICS_CLIENT_SECRET"] not in inspect  # the daemon never gets the app's secrets
