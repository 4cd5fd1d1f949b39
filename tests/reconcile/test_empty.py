"""A brand-new deployment reconciles to "nothing to do": an empty app, an empty Dynamics, or
one of them empty, never a crash (the empty Dynamics frame once had a float64 key)."""

from __future__ import annotations

import pytest

from tests.reconcile.helpers import writes_sent
from tests.support.cli import call_cli
from tests.support.factories import queue_rows
from tests.sync.helpers import hlf_mentors, listed_in_dynamics, seed_contacts


@pytest.fixture
def cli_env(emulator, monkeypatch, db_url):
    for name, value in emulator.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)


def reconcile_cli(capsys) -> tuple[int, str]:
    code, out, err = call_cli(capsys, "reconcile")
    return code, out + err


def test_an_empty_app_and_an_empty_dynamics_have_nothing_to_do(db, emulator, cli_env, capsys):
    code, output = reconcile_cli(capsys)
    assert code == 0, output
    assert "Traceback" not in output
    assert writes_sent(emulator) == [] and queue_rows(db) == []
    [summary] = db.execute("select summary from reconciliation_runs").fetchone()
    assert summary["checked"] == 0 and summary["divergent"] == 0


def test_mentors_in_the_app_and_an_empty_dynamics_are_reported_not_created(db, emulator, cli_env, capsys):
    hlf_mentors(db, 3)
    code, output = reconcile_cli(capsys)
    # Each listing has no contact to write to: a dead row for a person (exit 5), never a create.
    assert code == 5, output
    assert "left undone: 3 dead" in output and "Traceback" not in output
    assert listed_in_dynamics(emulator) == {}
    assert {r["status"] for r in queue_rows(db)} == {"dead"}
    [summary] = db.execute("select summary from reconciliation_runs").fetchone()
    assert summary["checked"] == 3


def test_an_empty_app_and_listed_contacts_in_dynamics_unlists_them(db, emulator, cli_env, capsys):
    seed_contacts(emulator, ["00000000-0000-0000-0000-00000000000a"], listed=True)
    code, output = reconcile_cli(capsys)
    assert code == 0, output
    assert "00000000-0000-0000-0000-00000000000a  (gone)" in output  # the mentor is not in the app
    assert listed_in_dynamics(emulator) == {"00000000-0000-0000-0000-00000000000a": False}
