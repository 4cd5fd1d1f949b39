"""Smaller bad inputs: a database nobody migrated, an unknown organisation code, a negative
emulator option, names that would forge log lines or repaint a terminal. Each gets one clear
line with the next step, and nothing is written."""

from __future__ import annotations

import re

import pytest

from mentor_pipeline.cli import main
from mentor_pipeline.db.connection import SchemaMissing, connect, with_database
from mentor_pipeline.text import plain
from tests.support.cli import run_cli
from tests.support.db import create_database, drop_database
from tests.support.factories import mentor

EVIL = "Eve\nALERT forged line\x1b[2J\x1b[31m | *bold* \u202eevil"


@pytest.fixture
def unmigrated_url(admin_url):
    name = create_database(admin_url)
    try:
        yield with_database(admin_url, name)
    finally:
        drop_database(admin_url, name)


def test_an_unmigrated_database_names_the_next_step(unmigrated_url):
    from mentor_pipeline.sync.store import tick

    with connect(unmigrated_url) as conn, pytest.raises(SchemaMissing) as caught:
        tick(conn)
    assert re.match(r"function \w+\([\w ]*\) does not exist in database 'mp_test_\w+': is it migrated\? ", str(caught.value))
    assert str(caught.value).endswith("is it migrated? Run `mentor-pipeline db migrate` (or `supabase db push`)")


def test_an_unmigrated_database_is_one_line_in_the_cli_and_stays_empty(unmigrated_url):
    result = run_cli("mentor", "list", env={"DATABASE_URL": unmigrated_url}, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    [line] = result.stderr.strip().splitlines()
    assert re.match(r'mentor-pipeline mentor: error: relation "\w+" does not exist in database ', line)
    assert line.endswith("Run `mentor-pipeline db migrate` (or `supabase db push`)")
    with connect(unmigrated_url) as conn:
        assert conn.execute("select count(*) from pg_tables where schemaname = 'public'").fetchone() == (0,)


def test_an_unknown_organisation_code_fails_and_lists_the_known_ones(db, capsys):
    mentor(db, "HLF")
    mentor(db, "NHF")
    assert main(["mentor", "list", "--org", "NOPE"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == "mentor-pipeline mentor: error: no organisation with code 'NOPE': known codes are HLF, NHF"
    assert main(["mentor", "list", "--org", "NHF"]) == 0  # a known code still lists
    assert "NHF" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seed-contacts", "-5"], "argument --seed-contacts: -5 is out of range: give a whole number 0 or more"),
        (["--seed-contacts", "many"], "argument --seed-contacts: 'many' is not a whole number"),
        (["--port", "70000"], "argument --port: 70000 is out of range: give a whole number from 0 to 65535"),
        (["--request-limit", "0"], "argument --request-limit: 0 is out of range: give a whole number 1 or more"),
        (["--portal-delay", "-1"], "argument --portal-delay: -1 is out of range: give 0 or more seconds"),
    ],
    ids=["negative-seed", "not-a-number", "port", "zero-limit", "negative-delay"],
)
def test_emulator_options_out_of_range_are_refused_before_anything_starts(tmp_path, capsys, args, message):
    state = tmp_path / "state.json"
    with pytest.raises(SystemExit) as exited:
        main(["emulator", "--port", "0", "--state-file", str(state), *args])
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"mentor-pipeline emulator: error: {message}"
    assert not state.exists()


def test_plain_makes_control_characters_visible():
    assert plain(EVIL) == "Eve\\nALERT forged line\\x1b[2J\\x1b[31m | *bold* \\u202eevil"
    assert plain("Åse Ødegård-Hansen") == "Åse Ødegård-Hansen"


def test_names_reach_the_cli_as_one_safe_line(db, capsys):
    mentor(db, "HLF", full_name=EVIL)
    mentor(db, "HLF", full_name="Kari Nordmann")
    assert main(["mentor", "list", "--org", "HLF"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out
    lines = out.splitlines()
    assert len(lines) == 3 and not any(line.startswith("ALERT") for line in lines)
    assert "Eve\\nALERT forged line\\x1b[2J" in out

    assert main(["mentor", "set-status", EVIL, "paused"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == plain(EVIL) + ": active -> paused"
