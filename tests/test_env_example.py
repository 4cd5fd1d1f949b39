"""`.env.example` (what `cp .env.example .env` starts a compose deployment from) lists every
variable of mentor_pipeline/settings.py once, marks exactly the required ones "required" and
leaves none of them commented out, and holds no value for a secret."""

from __future__ import annotations

import re
from pathlib import Path

from mentor_pipeline.settings import ENVIRONMENT

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")


def entries() -> dict[str, tuple[bool, bool, str]]:
    """name -> (required, commented out, value), "required" from the nearest "# required"/"# optional" line above."""
    found: dict[str, tuple[bool, bool, str]] = {}
    required = None
    for line in (REPO / ".env.example").read_text().splitlines():
        if re.match(r"^# (required|optional)\b", line):
            required = line.startswith("# required")
            continue
        match = ASSIGNMENT.match(line)
        if match:
            commented, name, value = match.groups()
            assert name not in found, f"{name} is listed twice"
            assert required is not None, f"{name} has no required/optional line above it"
            found[name] = (required, bool(commented), value)
    return found


def test_every_variable_of_settings_is_listed_and_nothing_else():
    assert sorted(entries()) == sorted(variable.name for variable in ENVIRONMENT)


def test_required_variables_are_marked_and_set_out_optional_ones_commented():
    listed = entries()
    for variable in ENVIRONMENT:
        required, commented, _ = listed[variable.name]
        assert required == variable.required, variable.name
        assert commented != variable.required, f"{variable.name}: required ones to fill in, optional ones commented out"


def test_no_secret_has_a_value():
    listed = entries()
    assert [variable.name for variable in ENVIRONMENT if variable.secret and listed[variable.name][2]] == []
