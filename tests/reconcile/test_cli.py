"""The break-glass commands (`sync`, `reconcile`, `force-sync`) after HLF IT rotated the secret:
the old one fails with a clear line, the new one from the environment (or the prompt) works."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time
import uuid

import pytest

from tests.reconcile.helpers import in_sync_world, writes_sent
from tests.support.cli import call_cli
from tests.support.factories import move_status_changes, queue_rows
from tests.sync.helpers import hlf_mentors, listed_in_dynamics, set_statuses

NEW_SECRET = f"new-secret-{uuid.uuid4().hex}"


@pytest.fixture
def rotated(db, emulator, monkeypatch):
    """A world with one lost removal (Dynamics still lists a paused mentor) and one pending change;
    HLF IT has just rotated the secret, and the environment still holds the old one."""
    mentors = in_sync_world(db, emulator, 4)
    set_statuses(db, [mentors[0]], "paused")
    move_status_changes(db)  # the tick queues the removal...
    db.execute("delete from sync_queue")  # ...and it is lost
    set_statuses(db, [mentors[1]], "paused")  # pending in the queue
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    emulator.admin.rotate_secret(NEW_SECRET)
    emulator.admin.clear_requests()
    return mentors


def test_old_secret_fails_with_one_clear_line_and_changes_nothing(db, emulator, rotated, capsys):
    for command in (["sync"], ["reconcile"], ["force-sync"], ["reconcile", "--dry-run"]):
        code, out, err = call_cli(capsys, *command)
        assert code == 1, command
        [line] = err.strip().splitlines()
        assert "AADSTS7000215" in line and "DYNAMICS_CLIENT_SECRET" in line and "nothing was changed" in line
        assert "Traceback" not in err and emulator.options.client_secret not in out + err and NEW_SECRET not in out + err
    assert writes_sent(emulator) == []
    assert [(r["mentor_id"], r["status"]) for r in queue_rows(db)] == [(rotated[1], "pending")]


def test_new_secret_from_the_environment_drains_reconciles_and_force_syncs(db, emulator, rotated, capsys, monkeypatch):
    monkeypatch.setenv("DYNAMICS_CLIENT_SECRET", NEW_SECRET)

    code, out, err = call_cli(capsys, "sync")
    assert code == 0, out + err
    assert "applied" in out and "writing to Dynamics" in err  # summary table on stdout, progress on stderr
    assert listed_in_dynamics(emulator)[str(rotated[1])] is False

    code, out, err = call_cli(capsys, "reconcile", "--dry-run")
    assert code == 0 and "dry run" in out and "listed_but_should_not" in out and str(rotated[0]) in out
    assert "reading Dynamics listings" in err
    assert listed_in_dynamics(emulator)[str(rotated[0])] is True  # unchanged

    code, out, err = call_cli(capsys, "reconcile")
    assert code == 0, out + err
    assert listed_in_dynamics(emulator)[str(rotated[0])] is False
    assert {r["triggered_by_event"] for r in queue_rows(db) if r["mentor_id"] == rotated[0]} == {"reconciliation"}

    code, out, err = call_cli(capsys, "force-sync", "--mentor", str(rotated[2]))
    assert code == 0, out + err
    assert [r["triggered_by_event"] for r in queue_rows(db) if r["mentor_id"] == rotated[2]] == ["force_sync"]
    assert NEW_SECRET not in out + err


def test_force_sync_exit_codes_for_bad_ids_and_missing_contacts(db, emulator, rotated, capsys, monkeypatch):
    monkeypatch.setenv("DYNAMICS_CLIENT_SECRET", NEW_SECRET)
    code, out, err = call_cli(capsys, "force-sync", "--mentor", "nope", "--mentor", str(rotated[2]))
    assert code == 1 and "nope (no mentor with this exact name)" in err and "nothing was applied" in err
    assert writes_sent(emulator) == [] and emulator.admin.requests() == []

    [no_contact] = hlf_mentors(db, 1)
    code, out, err = call_cli(capsys, "force-sync", "--mentor", str(no_contact))
    assert code == 5 and "dead" in out and "no contact in Dynamics" in out
    assert "mentor-pipeline force-sync: left undone: 1 dead" in out


def test_the_secret_is_prompted_for_when_unset_on_a_terminal(db_url, emulator, rotated):
    env = {**os.environ, **emulator.env(), "DATABASE_URL": db_url}
    env.pop("DYNAMICS_CLIENT_SECRET")
    primary, secondary = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "mentor_pipeline.cli", "sync"], stdin=secondary,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, start_new_session=True)
    os.close(secondary)
    try:
        # getpass flushes pending terminal input when it turns echo off: answer after the prompt.
        prompt = b""
        deadline = time.monotonic() + 60
        while not prompt.endswith(b"(input hidden): ") and time.monotonic() < deadline:
            chunk = process.stderr.read(1)
            if not chunk:
                break
            prompt += chunk
        time.sleep(0.2)
        os.write(primary, f"{NEW_SECRET}\n".encode())
        out, err = process.communicate(timeout=60)
    finally:
        os.close(primary)
        if process.poll() is None:
            process.kill()
    err = prompt + err
    text = out.decode() + err.decode()
    assert process.returncode == 0, text
    assert "Dynamics client secret" in text and NEW_SECRET not in text
    assert listed_in_dynamics(emulator)[str(rotated[1])] is False
