"""Open incidents in the Dagster UI: the sensor's observation of `operator_incidents`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import dagster as dg

from mentor_pipeline.definitions import defs
from mentor_pipeline.operations.assets import OPERATOR_INCIDENTS
from mentor_pipeline.operations.sensors import operator_incidents_sensor
from mentor_pipeline.operations.store import raise_incident, resolve_incident
from mentor_pipeline.resources import AppDatabase


def tick(db_url, cursor=None):
    context = dg.build_sensor_context(instance=dg.DagsterInstance.ephemeral(), cursor=cursor,
                                      resources={"app_db": AppDatabase(url=db_url)})
    return operator_incidents_sensor(context)


def test_open_incidents_show_with_age_and_count_and_changes_show_again(db_url, db):
    two_hours_ago = datetime.now(timezone.utc) - timedelta(hours=2, minutes=1)
    for _ in range(3):
        raise_incident(db, "run_failed", "website_sync_job", "Dagster run of website_sync_job failed: boom",
                       now=two_hours_ago)
    raise_incident(db, "dynamics_auth_wrong_secret", "", "Dynamics rejected the client secret | AADSTS7000215")

    result = tick(db_url)
    [event] = result.asset_events
    assert event.asset_key == OPERATOR_INCIDENTS
    metadata = {key: value.value for key, value in event.metadata.items()}
    assert metadata["open_incidents"] == 2
    assert 121 <= metadata["oldest_open_minutes"] < 125
    table = metadata["incidents"].splitlines()
    assert table[2].startswith("| incident | state | open for | count |")
    assert table[4].startswith("| run_failed:website_sync_job | open | 2 h 1 min | 3 |")
    assert table[5].startswith("| dynamics_auth_wrong_secret | open | 0 min | 1 |")
    assert "secret \\| AADSTS7000215" in table[5]  # a pipe in a summary does not break the table

    unchanged = tick(db_url, result.cursor)
    assert isinstance(unchanged, dg.SkipReason) and "2 open incident(s), unchanged" in unchanged.skip_message

    raise_incident(db, "dynamics_auth_wrong_secret", "", "again")
    counted = tick(db_url, result.cursor)
    assert "| dynamics_auth_wrong_secret | open | 0 min | 2 |" in counted.asset_events[0].metadata["incidents"].value

    resolve_incident(db, "run_failed", "website_sync_job", "next run succeeded")
    resolve_incident(db, "dynamics_auth_wrong_secret", "", "fixed")
    cleared = tick(db_url, counted.cursor)
    assert cleared.asset_events[0].metadata["open_incidents"].value == 0
    assert cleared.asset_events[0].metadata["incidents"].value.startswith("No open incidents")


def test_the_code_location_shows_the_asset_and_runs_the_sensor():
    repo = defs.get_repository_def()
    assert OPERATOR_INCIDENTS in repo.asset_graph.get_all_asset_keys()
    sensor = repo.get_sensor_def("operator_incidents_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert not sensor.targets  # it starts no runs
