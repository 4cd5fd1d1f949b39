"""`mentor-pipeline incidents` and `incidents resolve` as an operator runs them."""

from __future__ import annotations


from mentor_pipeline.operations.store import get_incident, raise_incident
from tests.support.cli import run_cli
from tests.support.webhook import webhook_receiver


def test_list_then_resolve_by_hand_posts_once(db_url, db):
    for _ in range(4):
        raise_incident(db, "sync_dead_rows", "", "2 website sync change(s) gave up")
    with webhook_receiver() as hook:
        env = {"DATABASE_URL": db_url, "ALERT_WEBHOOK_URL": hook.url}
        listed = run_cli("incidents", env=env)
        assert listed.returncode == 0
        assert "| sync_dead_rows | open | 0 min | 4 |" in listed.stdout

        resolved = run_cli("incidents", "resolve", "sync_dead_rows", "--note", "contacts created, mentors force-synced", env=env)
        assert resolved.returncode == 0 and "resolved sync_dead_rows" in resolved.stdout
        again = run_cli("incidents", "resolve", "sync_dead_rows", env=env)
        assert again.returncode == 1
        assert "no open incident sync_dead_rows" in again.stderr
    assert [(p["state"], p["summary"]) for p in hook.posts] == [("resolved", "contacts created, mentors force-synced")]
    assert get_incident(db, "sync_dead_rows").state == "resolved"
    assert run_cli("incidents", env=env).stdout.startswith("No open incidents")
