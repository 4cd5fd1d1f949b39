"""The first night the UI offers comes from the deployment (its go-live date)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mentor_pipeline import settings
from mentor_pipeline.nights import first_night


def test_first_night_reads_the_go_live_date():
    assert first_night({settings.FIRST_NIGHT.name: " 2026-12-01 "}) == "2026-12-01"
    assert first_night({settings.FIRST_NIGHT.name: "20261201"}) == "2026-12-01"  # what Dagster's start_date expects


@pytest.mark.parametrize("raw", ["2026-13-01", "next monday", "01.12.2026"])
def test_an_invalid_first_night_names_the_variable(raw):
    with pytest.raises(ValueError, match=f"{settings.FIRST_NIGHT.name} must be a date like 2026-12-01.*{raw}"):
        first_night({settings.FIRST_NIGHT.name: raw})


@pytest.mark.parametrize("raw", ["", "  "])
def test_an_unset_first_night_is_one_line_saying_what_to_set(raw):
    with pytest.raises(ValueError) as failure:
        first_night({settings.FIRST_NIGHT.name: raw})
    assert str(failure.value).startswith(f"{settings.FIRST_NIGHT.name} is not set: set it to the date the pipeline goes live")
    # and with nothing in the environment at all:
    with pytest.raises(ValueError, match="is not set"):
        first_night({})


def test_a_code_location_without_a_first_night_fails_to_load_with_that_line():
    env = {k: v for k, v in os.environ.items() if k != settings.FIRST_NIGHT.name}
    result = subprocess.run([sys.executable, "-c", "import mentor_pipeline.definitions"], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"ValueError: {settings.FIRST_NIGHT.name} is not set: set it to the date the pipeline goes live, e.g. "
        f"{__import__('datetime').date.today().isoformat()}, in the Dagster processes' environment (docs/operations.md)")


def test_the_partitions_start_on_the_configured_night():
    code = "from mentor_pipeline.nights import NIGHTS; print(NIGHTS.get_first_partition_window().start.date())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, settings.FIRST_NIGHT.name: "2026-11-02"},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2026-11-02"
