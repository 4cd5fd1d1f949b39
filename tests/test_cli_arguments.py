"""Every command line refuses a bad port or number of seconds with the same one-line reason
(mentor_pipeline/arguments.py)."""

from __future__ import annotations

import pytest

from mentor_pipeline.cli import main
from mentor_pipeline.emulator.command import main as emulator_main

PORT_ERROR = "-5 is out of range: give a whole number from 0 to 65535"
SECONDS_ERROR = "-1 is out of range: give 0 or more seconds"


@pytest.mark.parametrize(("run", "argv", "message"), [
    (main, ["demo", "--dagster-port", "-5"], f"argument --dagster-port: {PORT_ERROR}"),
    (main, ["demo", "--emulator-port", "-5"], f"argument --emulator-port: {PORT_ERROR}"),
    (main, ["emulator", "--port", "-5"], f"argument --port: {PORT_ERROR}"),
    (emulator_main, ["--port", "-5"], f"argument --port: {PORT_ERROR}"),
    (main, ["demo", "--portal-delay", "-1"], f"argument --portal-delay: {SECONDS_ERROR}"),
    (main, ["emulator", "--portal-delay", "-1"], f"argument --portal-delay: {SECONDS_ERROR}"),
    (main, ["demo", "--dagster-port", "http"], "argument --dagster-port: 'http' is not a whole number"),
])
def test_a_bad_value_gets_the_same_clear_error_everywhere(run, argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(argv)
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)
