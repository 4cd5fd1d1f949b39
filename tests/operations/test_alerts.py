"""The alert sink over incidents: a storm of alerts is one post, reminders and the resolution
are one post each, the webhook JSON names the incident and never a secret."""

from __future__ import annotations

import json
import logging

import pytest

from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.operations.store import get_incident

SECRET = "hlf-client-secret-Zq8~value"


def an_hour_passes(db, kind, scope=""):
    db.execute("update incidents set first_seen = first_seen - interval '1 hour', next_reminder_at = now() - interval '1 second'"
               " where kind = %s and scope = %s", (kind, scope))


def test_an_alert_storm_is_one_post_then_a_reminder_then_one_resolution(db, sink, webhook):
    summary = "Dynamics rejected the client secret (AADSTS7000215): update DYNAMICS_CLIENT_SECRET."
    for _ in range(29):
        assert sink.alert("dynamics_auth_wrong_secret", summary, {"pending_rows_released": 1}) is True
    assert [(p["kind"], p["state"], p["count"]) for p in webhook.posts] == [("dynamics_auth_wrong_secret", "open", 1)]
    assert get_incident(db, "dynamics_auth_wrong_secret").occurrences == 29

    an_hour_passes(db, "dynamics_auth_wrong_secret")
    sink.alert("dynamics_auth_wrong_secret", summary)
    sink.alert("dynamics_auth_wrong_secret", summary)
    assert [(p["state"], p["count"]) for p in webhook.posts] == [("open", 1), ("reminder", 30)]
    assert webhook.posts[1]["text"].startswith("[mentor_pipeline] STILL OPEN after 1 h 0 min (30 occurrences)")

    assert sink.resolve("dynamics_auth_wrong_secret", "WhoAmI succeeds again with the new secret") is True
    assert sink.resolve("dynamics_auth_wrong_secret", "still fine") is True
    assert [p["state"] for p in webhook.posts] == ["open", "reminder", "resolved"]
    resolved = webhook.posts[-1]
    assert resolved["summary"] == "WhoAmI succeeds again with the new secret" and resolved["count"] == 31
    assert resolved["text"].startswith("[mentor_pipeline] RESOLVED dynamics_auth_wrong_secret after 1 h")


def test_the_webhook_json_names_the_incident(db, sink, webhook):
    sink.alert("run_failed", "Dagster run of website_sync_job failed: boom", {"run_id": "r1"}, scope="website_sync_job")
    [post] = webhook.posts
    incident = get_incident(db, "run_failed", "website_sync_job")
    assert post["kind"] == "run_failed" and post["scope"] == "website_sync_job"
    assert post["incident"] == "run_failed:website_sync_job"
    assert post["state"] == "open" and post["count"] == 1
    assert post["first_seen"] == incident.first_seen.isoformat() == post["last_seen"]
    assert post["summary"] == "Dagster run of website_sync_job failed: boom"
    assert post["details"] == {"run_id": "r1"}
    assert post["text"] == "[mentor_pipeline] OPEN run_failed:website_sync_job: Dagster run of website_sync_job failed: boom"


def test_secrets_never_reach_the_webhook_the_log_or_the_table(db, sink, webhook, monkeypatch, caplog):
    monkeypatch.setenv("DYNAMICS_CLIENT_SECRET", SECRET)
    with caplog.at_level(logging.INFO):
        sink.alert("dynamics_auth_failed", f"sign-in failed with client_secret={SECRET} at {webhook.url}",
                   {"url": f"postgresql://pipeline:pw-{SECRET}@db.example/app", "header": "Bearer eyJhbGciOiJIUzI1NiJ9.abc"})
    stored = db.execute("select summary, details::text from incidents").fetchone()
    for text in (json.dumps(webhook.posts), caplog.text, str(stored)):
        assert SECRET not in text and webhook.url not in text and "eyJhbGciOiJIUzI1NiJ9" not in text
    assert "<redacted>" in webhook.posts[0]["summary"]


def test_without_the_incident_store_every_alert_still_posts(webhook):
    sink = AlertSink(database_url="postgresql://nobody@127.0.0.1:1/none", webhook_url=webhook.url)
    assert sink.alert("dynamics_unreachable", "down") is True
    assert [(p["kind"], p["state"]) for p in webhook.posts] == [("dynamics_unreachable", "open")]
    assert "incident store unavailable" in webhook.posts[0]["text"]
    assert sink.resolve("dynamics_unreachable", "up") is False


def test_a_post_the_webhook_refused_goes_out_with_the_next_occurrence(db, db_url, webhook):
    refusing = AlertSink(database_url=db_url, webhook_url="http://127.0.0.1:1/hooks/x", timeout_seconds=1)
    assert refusing.alert("sync_dead_rows", "3 rows dead") is False
    working = AlertSink(database_url=db_url, webhook_url=webhook.url)
    assert working.alert("sync_dead_rows", "3 rows dead") is True
    assert working.alert("sync_dead_rows", "3 rows dead") is True
    assert [(p["state"], p["count"]) for p in webhook.posts] == [("reminder", 2)]


def test_without_a_webhook_alerts_are_logged_and_recorded(db, db_url, caplog):
    sink = AlertSink(database_url=db_url)
    with caplog.at_level(logging.ERROR, logger="mentor_pipeline.operations.alerts"):
        assert sink.alert("website_stale", "oldest due change waits 31 min") is True
        assert sink.alert("website_stale", "oldest due change waits 32 min") is True
    assert get_incident(db, "website_stale").occurrences == 2
    assert "ALERT [website_stale] oldest due change waits 32 min" in caplog.text
    assert "2 occurrence(s)" in caplog.text


def test_reminder_intervals_come_from_the_environment():
    from mentor_pipeline.operations.alerts import reminder_minutes_from_env

    assert reminder_minutes_from_env({}) == [60, 240, 1440]
    assert reminder_minutes_from_env({"ALERT_REMINDER_MINUTES": "0.5, 2"}) == [0.5, 2.0]
    for bad in ("soon", "60,,240", "0", "-5"):
        with pytest.raises(ValueError, match=r"^ALERT_REMINDER_MINUTES must be positive minutes separated by commas"):
            reminder_minutes_from_env({"ALERT_REMINDER_MINUTES": bad})
