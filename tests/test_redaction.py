"""One redaction helper for every URL that can reach a message, and the places that use it:
a malformed or unreachable DATABASE_URL, `db url`, a DYNAMICS_URL with credentials in it,
webhook URLs in httpx's request log."""

from __future__ import annotations

import logging

import pytest

from mentor_pipeline.redaction import redact, redact_url
from tests.support.cli import run_cli

SECRET = "s3cretPW"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"postgresql://app:{SECRET}@db.example.org:5432/postgres", "postgresql://<redacted>@db.example.org:5432/postgres"),
        (f"postgresql://app:{SECRET}@h/db?sslmode=require&password={SECRET}",
         "postgresql://<redacted>@h/db?sslmode=require&password=<redacted>"),
        (f"postgresql://app:pa/{SECRET}@h/db", "postgresql://<redacted>@h/db"),  # an unescaped "/" in the password
        (f"postgresql://app:{SECRET}@[::1/db", "postgresql://<redacted>@[::1/db"),  # too broken to parse
        (f"https://user:{SECRET}@hlf.crm4.dynamics.com/", "https://<redacted>@hlf.crm4.dynamics.com/"),
        (f"https://acct.blob.core.windows.net/c?sv=2020-08-04&sig={SECRET}&se=1#part",
         "https://acct.blob.core.windows.net/c?sv=2020-08-04&sig=<redacted>&se=1#part"),
        (f"http://h/t?client_secret={SECRET}&access_token={SECRET}&api_key={SECRET}&x=1",
         "http://h/t?client_secret=<redacted>&access_token=<redacted>&api_key=<redacted>&x=1"),
        (f"host=db port=5432 password='{SECRET} x' user=app", "host=db port=5432 password=<redacted> user=app"),
        ("postgresql:///postgres?host=/tmp/pg", "postgresql:///postgres?host=/tmp/pg"),
        ("not a url", "not a url"),
    ],
    ids=["password", "query-password", "slash-in-password", "malformed", "dynamics", "sas-signature",
         "oauth-params", "libpq-keywords", "socket", "plain-text"],
)
def test_redact_url_removes_user_info_and_credential_query_values(url, expected):
    assert redact_url(url) == expected


def test_a_webhook_url_loses_its_whole_path():
    assert redact_url(f"https://hooks.slack.com/services/T000/B000/{SECRET}", hide_path=True) == \
        "https://hooks.slack.com/<redacted>"


def test_redact_finds_urls_inside_a_message():
    message = f'The resource principal named https://u:{SECRET}@hlf.crm4.dynamics.com was not found ("x").'
    assert redact(message) == 'The resource principal named https://<redacted>@hlf.crm4.dynamics.com was not found ("x").'


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (f"postgresql://app:{SECRET}@[::1/db", "the database URL postgresql://<redacted>@[::1/db is malformed"),
        (f"postgresql://app:{SECRET} x@127.0.0.1/db", "is malformed (unexpected spaces found in \"…\""),
        (f"postgresql://app:{SECRET}@127.0.0.1/db?nonsense=1", "is malformed (invalid URI query parameter: \"…\")"),
        (f"postgresql://app:{SECRET}@127.0.0.1:1/db", "cannot connect to postgresql://<redacted>@127.0.0.1:1/db: "),
    ],
    ids=["broken-host", "space-in-password", "unknown-parameter", "unreachable"],
)
def test_a_bad_database_url_is_one_line_without_its_password(url, message):
    result = run_cli("mentor", "list", env={"DATABASE_URL": url})
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("mentor-pipeline mentor: error: ") and message in line, line
    assert SECRET not in result.stderr
    if "malformed" in message:
        assert line.endswith("percent-encoded; check DATABASE_URL")


def test_db_url_hides_the_password_unless_asked():
    with_password = f"postgresql://app:{SECRET}@db.example.org:5432/postgres"  # printed, never dialled
    shown = run_cli("db", "url", env={"DATABASE_URL": with_password})
    assert shown.returncode == 0 and shown.stdout.strip() == redact_url(with_password)
    assert SECRET not in shown.stdout
    whole = run_cli("db", "url", "--show-password", env={"DATABASE_URL": with_password})
    assert whole.stdout.strip() == with_password


def test_credentials_in_dynamics_url_never_reach_the_sign_in_error_or_the_alert(caplog):
    from mentor_pipeline.dynamics.errors import DynamicsAuthError
    from mentor_pipeline.operations.alerts import AlertSink
    from mentor_pipeline.operations.health import check_dynamics_credentials
    from mentor_pipeline.resources import dynamics_resource_for
    from tests.support.emulator import running_emulator
    from tests.support.webhook import webhook_receiver

    caplog.set_level(logging.DEBUG)
    with running_emulator() as emulator, webhook_receiver() as hook:
        host = emulator.url.split("://", 1)[1]
        settings = emulator.settings(url=f"http://hlf:{SECRET}@{host}")
        with emulator.client(settings={"url": settings.url}) as client, pytest.raises(DynamicsAuthError) as caught:
            client.whoami()
        ok = check_dynamics_credentials(dynamics_resource_for(settings), AlertSink(webhook_url=hook.url))
    message = str(caught.value)
    assert "The resource principal named http://<redacted>@" in message and SECRET not in message
    assert SECRET not in repr(settings) and SECRET not in repr(client)
    assert ok is False and hook.kinds() == ["dynamics_auth_failed"]
    assert SECRET not in str(hook.posts) and SECRET not in caplog.text


def test_webhook_urls_and_url_credentials_stay_out_of_the_http_log(caplog):
    from mentor_pipeline.operations.alerts import AlertSink
    from tests.support.webhook import webhook_receiver

    caplog.set_level(logging.INFO, logger="httpx")
    with webhook_receiver() as hook:
        path = hook.url.split("://", 1)[1].split("/", 1)[1]
        assert AlertSink(webhook_url=hook.url).alert("test_alert", "hello") is True
        host = hook.url.split("://", 1)[1].split("/", 1)[0]
        logging.getLogger("httpx").info(f"HTTP Request: GET http://u:{SECRET}@{host}/x?token={SECRET}")
    assert hook.kinds() == ["test_alert"]
    assert "HTTP Request: POST http://" in caplog.text and "/<redacted>" in caplog.text
    assert (path and path not in caplog.text) and SECRET not in caplog.text
