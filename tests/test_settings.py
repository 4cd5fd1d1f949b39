"""The one list of environment variables (mentor_pipeline/settings.py) is what the docs tell
operators: the README's Configuration table lists exactly these, and docs/operations.md names
no variable that is not in the list."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

from mentor_pipeline.settings import ENVIRONMENT

REPO = Path(__file__).resolve().parents[1]
NAMES = [variable.name for variable in ENVIRONMENT]
# An environment variable's name in prose, or a family of them: `DYNAMICS_*`, `MENTOR_PIPELINE_*_MINUTES`.
VARIABLE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_(?:[A-Z0-9]+|\*))+")


def readme_configuration_table() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [name for row in rows for name in re.findall(r"`([^`]+)`", row.split("|")[1])]


def test_the_readme_table_lists_exactly_the_variables():
    listed = readme_configuration_table()
    assert sorted(listed) == sorted(NAMES), (f"missing from the README: {sorted(set(NAMES) - set(listed))}; "
                                             f"not in mentor_pipeline/settings.py: {sorted(set(listed) - set(NAMES))}")
    assert len(NAMES) == len(set(NAMES))


def test_operations_names_no_variable_outside_the_list():
    named = set(VARIABLE.findall((REPO / "docs" / "operations.md").read_text()))
    unknown = sorted(name for name in named if not fnmatch.filter(NAMES, name))
    assert unknown == []
    assert {"DATABASE_URL", "DYNAMICS_CLIENT_SECRET", "DAGSTER_PG_*"} <= named  # the pattern finds them
