"""The credential health check every scheduled run starts with, against the emulator."""

from __future__ import annotations

import json
import logging

import pytest

from mentor_pipeline.dynamics.errors import (
    DynamicsAuthError,
    DynamicsConfigError,
    DynamicsProtocolError,
    DynamicsUnavailable,
    ExpiredClientSecret,
    InvalidClientSecret,
)
from mentor_pipeline.operations.alerts import AlertSink
from mentor_pipeline.operations.health import CLEARED_BY_A_HEALTHY_CHECK, check_dynamics_credentials
from mentor_pipeline.resources import dynamics_resource_for
from mentor_pipeline.vocabulary import incident_kind_for
from tests.support.webhook import webhook_receiver

pytestmark = pytest.mark.emulator(seed_contacts=1)


@pytest.fixture
def sink(db_url):
    """An alert sink on the test database, posting to `hook` (set by each test)."""
    return lambda hook: AlertSink(database_url=db_url, webhook_url=hook.url)


def test_valid_credentials_pass_quietly(emulator, sink):
    with webhook_receiver() as hook:
        assert check_dynamics_credentials(dynamics_resource_for(emulator.settings()), sink(hook))
    assert hook.posts == []
    assert [r["path"] for r in emulator.admin.requests()][-1].endswith("/WhoAmI")


def test_wrong_secret_alerts_at_once_naming_the_cause(emulator, caplog, sink):
    wrong = "definitely-not-the-secret-42"
    with webhook_receiver() as hook, caplog.at_level(logging.INFO):
        healthy = check_dynamics_credentials(
            dynamics_resource_for(emulator.settings(client_secret=wrong)), sink(hook)
        )
    assert healthy is False
    assert hook.kinds() == ["dynamics_auth_wrong_secret"]
    assert "AADSTS7000215" in hook.posts[0]["summary"]
    for text in (json.dumps(hook.posts), caplog.text):
        assert wrong not in text and hook.url not in text


def test_repeated_failures_are_one_incident_and_a_passing_check_resolves_it(emulator, sink):
    wrong = dynamics_resource_for(emulator.settings(client_secret="definitely-not-the-secret-42"))
    with webhook_receiver() as hook:
        for _ in range(5):
            assert not check_dynamics_credentials(wrong, sink(hook))
        assert check_dynamics_credentials(dynamics_resource_for(emulator.settings()), sink(hook))
        assert check_dynamics_credentials(dynamics_resource_for(emulator.settings()), sink(hook))
    assert [(p["kind"], p["state"], p["count"]) for p in hook.posts] == [
        ("dynamics_auth_wrong_secret", "open", 1), ("dynamics_auth_wrong_secret", "resolved", 5)]


def test_expired_secret_alerts_with_its_own_cause(emulator, sink):
    emulator.admin.expire_secrets()
    with webhook_receiver() as hook:
        assert not check_dynamics_credentials(dynamics_resource_for(emulator.settings()), sink(hook))
    assert hook.kinds() == ["dynamics_auth_expired_secret"]
    assert "AADSTS7000222" in hook.posts[0]["summary"]


def test_unreachable_dynamics_alerts_too(emulator, sink):
    settings = emulator.settings(url="http://127.0.0.1:1", authority="http://127.0.0.1:1")
    with webhook_receiver() as hook:
        resource = dynamics_resource_for(settings, timeout_seconds=0.5)
        assert not check_dynamics_credentials(resource, sink(hook))
    assert hook.kinds() == ["dynamics_unreachable"]


def test_missing_configuration_alerts_and_names_the_variables(monkeypatch, sink):
    from mentor_pipeline.resources import dynamics_from_env

    for name in ["DYNAMICS_URL", "DYNAMICS_TENANT_ID", "DYNAMICS_CLIENT_ID", "DYNAMICS_CLIENT_SECRET"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DYNAMICS_URL", "https://hlf.crm4.dynamics.com")
    with webhook_receiver() as hook:
        assert not check_dynamics_credentials(dynamics_from_env(), sink(hook))
    assert hook.kinds() == ["dynamics_not_configured"]
    assert hook.posts[0]["summary"] == (
        "Dynamics is not configured: set DYNAMICS_TENANT_ID, DYNAMICS_CLIENT_ID, DYNAMICS_CLIENT_SECRET"
        " for the Dagster code server"
    )


def test_a_passing_check_resolves_exactly_what_a_failing_one_raises():
    failures = [InvalidClientSecret("x"), ExpiredClientSecret("x"), DynamicsAuthError("x"), DynamicsConfigError("x"),
                DynamicsUnavailable("x"), DynamicsProtocolError("x")]
    assert set(CLEARED_BY_A_HEALTHY_CHECK) == {incident_kind_for(exc) for exc in failures}
