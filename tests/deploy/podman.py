"""Podman for the deploy tests: the tools, a Debian base image, the project's image, and
`podman` itself with the settings this VM needs.

No Docker daemon runs here and no container registry is reachable, but Debian's podman works as
root: `runc` (crun refuses this VM's cgroup layout), `nofile`/`nproc` ulimits of 1024 (the VM
cannot raise them), a base image made with debootstrap from Debian's packages (the Dockerfile's
BASE_IMAGE takes it), and the host's CA bundle given to pip as a build secret (the package
registries are reached through a TLS proxy; the image never holds the bundle). Installed with apt
when running as root, as the PgBouncer and Chromium tests do; otherwise the tests skip with
instructions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Debian's package -> what it installs (catatonit is podman's --init: compose.yaml's `init: true`).
PACKAGES = {"podman": "podman", "runc": "runc", "catatonit": "/usr/libexec/podman/catatonit",
            "debootstrap": "debootstrap"}
# Kept between runs, outside the repository: the debootstrapped tree and the image made from it.
CACHE = Path("/var/cache/mentor-pipeline-deploy")
BASE_IMAGE = "localhost/mentor-pipeline-test-base:bookworm"
IMAGE = "localhost/mentor-pipeline:deploy-test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]


def podman(*args: str, check: bool = True, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(["podman", "--runtime", "runc", *args], capture_output=True, text=True,
                            timeout=timeout, **kwargs)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args[:3])} ... failed (exit {result.returncode}):\n"
                             f"{result.stderr[-3000:]}")
    return result


def ensure_tools() -> None:
    missing = [package for package, binary in PACKAGES.items() if not shutil.which(binary)]
    if not missing:
        return
    if os.geteuid() != 0:
        pytest.skip(f"{', '.join(missing)} not installed: `sudo apt-get install -y {' '.join(PACKAGES)}` (Debian's "
                    "packages) and run the tests as root to build the image and run the compose stack")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", *PACKAGES]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:  # a stale package index: refresh it once
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"apt-get install {' '.join(PACKAGES)} failed (exit {result.returncode}):\n{result.stderr[-2000:]}")


def base_image() -> str:
    """Debian bookworm with Python 3.11 (what python:3.11-slim is), made once with debootstrap."""
    if podman("image", "exists", BASE_IMAGE, check=False).returncode == 0:
        return BASE_IMAGE
    CACHE.mkdir(parents=True, exist_ok=True)
    tree = CACHE / "bookworm"
    if not (tree / "usr/bin/python3.11").exists():
        scratch = CACHE / "bookworm.partial"
        shutil.rmtree(scratch, ignore_errors=True)
        subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv", "bookworm",
                        str(scratch), "http://deb.debian.org/debian"], check=True, capture_output=True, timeout=1200)
        scratch.rename(tree)
    archive = CACHE / "bookworm.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(tree, arcname=".")
    podman("import", str(archive), BASE_IMAGE)
    archive.unlink()
    return BASE_IMAGE


def build_image() -> str:
    """The repository's Dockerfile, as `docker build` reads it; layers are cached between runs."""
    podman("build", "--format", "docker", *ULIMITS, "--build-arg", f"BASE_IMAGE={base_image()}",
           "--build-arg", f"IMAGE={IMAGE}", "--secret", f"id=pip-ca,src={CA_BUNDLE}",
           "--tag", IMAGE, str(REPO), timeout=1800)
    return IMAGE


def logs(container: str) -> str:
    result = podman("logs", container, check=False)
    return result.stdout + result.stderr
