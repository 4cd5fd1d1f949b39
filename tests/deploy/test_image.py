"""The image (Dockerfile), built with podman as `docker build` would build it."""

from __future__ import annotations

import json

from tests.deploy.podman import IMAGE, ULIMITS, podman


def test_the_definitions_validate_inside_the_image(image):
    result = podman("run", "--rm", *ULIMITS, "--env", "DAGSTER_HOME=/tmp", "--env", "MENTOR_PIPELINE_FIRST_NIGHT=2026-12-01",
                    image, "dagster", "definitions", "validate", "-m", "mentor_pipeline.definitions", "-a", "defs",
                    check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def test_the_image_runs_as_a_user_without_test_tooling_and_names_itself(image):
    inspect = json.loads(podman("image", "inspect", image).stdout)[0]
    config = inspect["Config"]
    env = dict(item.split("=", 1) for item in config["Env"])
    assert config["User"] == "mentor"
    assert inspect["Healthcheck"]["Test"] == ["CMD", "python", "-m", "mentor_pipeline.service", "health"]
    assert env["DAGSTER_CURRENT_IMAGE"] == IMAGE  # a container run launcher starts runs from this image
    assert env["DAGSTER_HOME"] == "/opt/dagster/home"
    assert "PIP_CERT" not in env
    script = ("import importlib.util, pathlib; "
              "print([m for m in ('pgserver', 'pytest', 'hypothesis', 'playwright') if importlib.util.find_spec(m)]); "
              "print(pathlib.Path('/opt/dagster/home/dagster.yaml').is_file(), pathlib.Path('/run/secrets/pip-ca').exists())")
    result = podman("run", "--rm", *ULIMITS, "--entrypoint", "python", image, "-c", script)
    assert result.stdout.split("\n")[:2] == ["[]", "True False"]  # no demo/test extras; the CA was build-time only
