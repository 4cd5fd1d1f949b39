"""deploy/constraints.txt, every package the image installs at the version tested, agrees with
pyproject.toml's pins (the production dependencies and the container launcher extras) and holds
nothing only the demo or the tests use."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def pins(requirements: list[str]) -> dict[str, str]:
    found = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^]]*\])?==([^;\s]+)", requirement.strip())
        if match:
            found[match.group(1).lower().replace("_", "-")] = match.group(2)
    return found


def test_the_image_constraints_agree_with_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    lines = [line for line in (REPO / "deploy" / "constraints.txt").read_text().splitlines()
             if line.strip() and not line.startswith("#")]
    constraints = pins(lines)
    assert len(constraints) == len(lines), "every line pins one package"
    wanted = pins([*project["dependencies"], *extras["docker"], *extras["k8s"]])
    assert {name: constraints.get(name) for name in wanted} == wanted
    # What only the demo and the tests use (dagster-webserver brings uvicorn and dagster-graphql anyway).
    assert {"pgserver", "pytest", "hypothesis", "playwright"} & set(constraints) == set()
