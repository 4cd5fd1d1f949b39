"""Client sign-in against the emulator: typed errors, token caching and renewal, no leaks."""

from __future__ import annotations

import logging

import pytest

from mentor_pipeline.dynamics import DynamicsSettings
from mentor_pipeline.dynamics.errors import DynamicsAuthError, ExpiredClientSecret, InvalidClientSecret


def test_whoami_signs_in_once_and_reuses_the_token(emulator):
    with emulator.client() as client:
        client.whoami()
        client.whoami()
    tokens = emulator.admin.token_requests()
    assert len(tokens) == 1
    assert tokens[0]["body"]["grant_type"] == "client_credentials"
    assert tokens[0]["body"]["scope"] == f"{emulator.url}/.default"
    calls = emulator.admin.requests()
    assert [c["path"] for c in calls] == ["/api/data/v9.2/WhoAmI"] * 2
    assert calls[0]["headers"]["odata-version"] == "4.0" and calls[0]["headers"]["accept"] == "application/json"


def test_wrong_secret_raises_invalid_client_secret_without_the_secret(emulator, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "totally-wrong-secret-value"
    with emulator.client(settings={"client_secret": secret}) as client:
        with pytest.raises(InvalidClientSecret) as caught:
            client.whoami()
    message = str(caught.value)
    assert "AADSTS7000215" in message and "DYNAMICS_CLIENT_SECRET" in message
    assert secret not in message and secret not in repr(caught.value) and secret not in caplog.text
    assert emulator.admin.requests() == []  # never reached the Web API


def test_expired_secret_raises_expired_client_secret(emulator):
    emulator.admin.expire_secrets()
    with emulator.client() as client, pytest.raises(ExpiredClientSecret) as caught:
        client.whoami()
    assert "AADSTS7000222" in str(caught.value) and "expired" in str(caught.value)
    assert isinstance(caught.value, DynamicsAuthError)


def test_rotated_secret_old_one_fails_new_one_works(emulator):
    emulator.admin.rotate_secret("rotated-secret")
    with emulator.client() as client, pytest.raises(InvalidClientSecret):
        client.whoami()
    with emulator.client(settings={"client_secret": "rotated-secret"}) as client:
        assert "UserId" in client.whoami()


def test_rotation_mid_run_does_not_break_a_valid_cached_token(emulator):
    with emulator.client() as client:
        client.whoami()
        emulator.admin.rotate_secret("rotated-secret")
        client.whoami()  # the token issued before rotation stays valid until it expires
    assert len(emulator.admin.token_requests()) == 1


def test_unknown_client_id_is_a_plain_auth_error_naming_the_setting(emulator):
    with emulator.client(settings={"client_id": "11111111-1111-1111-1111-111111111111"}) as client:
        with pytest.raises(DynamicsAuthError) as caught:
            client.whoami()
    assert type(caught.value) is DynamicsAuthError
    assert "AADSTS700016" in str(caught.value) and "DYNAMICS_CLIENT_ID" in str(caught.value)


def test_token_is_renewed_before_expires_in_runs_out(emulator):
    now = [1000.0]
    with emulator.client(clock=lambda: now[0]) as client:
        client.whoami()
        now[0] += 3599 - 301  # still more than the 300 s margin left: reuse
        client.whoami()
        now[0] += 2  # inside the margin: renew before it expires
        client.whoami()
    assert len(emulator.admin.token_requests()) == 2
    assert [c["status"] for c in emulator.admin.requests()] == [200, 200, 200]


def test_token_expired_server_side_is_fetched_again_once(emulator):
    with emulator.client() as client:
        client.whoami()
        emulator.admin.revoke_tokens()
        client.whoami()
    assert [c["status"] for c in emulator.admin.requests()] == [200, 401, 200]
    assert len(emulator.admin.token_requests()) == 2


def test_secret_never_in_settings_repr_or_str():
    settings = DynamicsSettings(url="https://hlf.crm4.dynamics.com", tenant_id="t", client_id="c",
                                client_secret="s3cr3t-value")
    assert "s3cr3t-value" not in repr(settings) and "s3cr3t-value" not in str(settings)
    assert settings.scope == "https://hlf.crm4.dynamics.com/.default"
    assert settings.token_url == "https://login.microsoftonline.com/t/oauth2/v2.0/token"


def test_settings_from_env_defaults_and_missing_names():
    from mentor_pipeline.dynamics.errors import DynamicsConfigError

    env = {"DYNAMICS_URL": "https://hlf.crm4.dynamics.com/", "DYNAMICS_TENANT_ID": "t",
           "DYNAMICS_CLIENT_ID": "c", "DYNAMICS_CLIENT_SECRET": "x"}
    settings = DynamicsSettings.from_env(env)
    assert settings.authority == "https://login.microsoftonline.com"
    assert (settings.entity_set, settings.key_attribute, settings.listed_attribute, settings.chapter_attribute) == (
        "contacts", "hlf_mentorid", "hlf_websitelisted", "hlf_chaptername")
    assert settings.api_base == "https://hlf.crm4.dynamics.com/api/data/v9.2/"
    with pytest.raises(DynamicsConfigError, match="DYNAMICS_CLIENT_SECRET"):
        DynamicsSettings.from_env({k: v for k, v in env.items() if k != "DYNAMICS_CLIENT_SECRET"})
