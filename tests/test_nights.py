"""The first night the UI offers comes from the deployment (its go-live date)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mentor_pipeline.nights import first_night
from mentor_pipeline import settings


def test_first_night_defaults_and_reads_the_go_live_date():
    assert first_night({}) == settings.FIRST_NIGHT.default
    assert first_night({settings.FIRST_NIGHT.name: " 2026-12-01 "}) == "2026-12-01"
    assert first_night({settings.FIRST_NIGHT.name: "20261201"}) == "2026-12-01"  # what Dagster's start_date expects


@pytest.mark.parametrize("raw", ["2026-13-01", "next monday", "01.12.2026"])
def test_an_invalid_first_night_names_the_variable(raw):
    with pytest.raises(ValueError, match=f"{settings.FIRST_NIGHT.name} must be a date like 2026-12-01.*{raw}"):
        first_night({settings.FIRST_NIGHT.name: raw})


def test_the_partitions_start_on_the_configured_night():
    code = "from mentor_pipeline.nights import NIGHTS; print(NIGHTS.get_first_partition_window().start.date())"
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, settings.FIRST_NIGHT.name: "2026-11-02"},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "2026-11-02"
