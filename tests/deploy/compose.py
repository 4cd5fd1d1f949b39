"""The repository's compose.yaml, run with podman by Docker Compose v2's rules.

Debian's podman-compose 1.0.3 ignores profiles and `depends_on` conditions and mangles `CMD`
health checks, so the tests read the same compose.yaml that Docker reads (PyYAML) and start its
services with `podman run`, the way Compose v2 would: `${VAR}` interpolation from the env file,
services of inactive profiles left out (with their `required: false` dependencies), one network
with each service reachable by its name, named volumes, and `up` starting the services in
dependency order, waiting for `service_completed_successfully` and `service_healthy`.

Where podman differs, on purpose: health checks have no timer (podman runs them from systemd
timers and there is no systemd here), so waiting for `service_healthy` runs `podman healthcheck
run`; and ports are not published (the tests reach the services on the network's addresses, and
the machine is shared).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path

import yaml

from tests.deploy.podman import ULIMITS, logs, podman

REPO = Path(__file__).resolve().parents[2]
INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


class ComposeError(AssertionError):
    pass


def interpolate(value, env: dict[str, str]):
    """Compose's `${NAME}`, `${NAME:-default}`, `${NAME:?error}` and `$$`, through the whole tree."""
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if not isinstance(value, str):
        return value

    def replace(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name, operator, argument = match.groups()
        current = env.get(name)
        unset = current is None or (operator or "").startswith(":") and current == ""
        if operator in ("-", ":-") and unset:
            return argument
        if operator in ("?", ":?") and unset:
            raise ComposeError(f"required variable {name} is missing a value: {argument}")
        return current or ""

    return INTERPOLATION.sub(replace, value)


def podman_health_command(test: list[str]) -> str:
    """Podman 4.3 takes no JSON here: it splits --health-cmd on whitespace and runs the words as
    they are, which is Compose's ["CMD", ...] form as long as no word holds a space."""
    form, *words = test
    assert form == "CMD" and not any(" " in word for word in words), f"not supported by the tests: {test}"
    return " ".join(words)


class Compose:
    """compose.yaml as project `project`, with `env` as its .env file and images renamed by `images`."""

    def __init__(self, project: str, env: dict[str, str], folder: Path, images: dict[str, str],
                 profiles: tuple[str, ...] = ()):
        self.project = project
        self.env = env
        self.images = images
        self.network = f"{project}_default"
        # A file of its own: another Compose of the same project may hold another .env.
        handle, path = tempfile.mkstemp(prefix=f"{project}-", suffix=".env", dir=folder)
        os.close(handle)
        self.env_file = Path(path)
        self.env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
        self.env_file.chmod(0o600)
        config = interpolate(yaml.safe_load((REPO / "compose.yaml").read_text()), env)
        self.volumes = list(config.get("volumes") or {})
        self.services = {name: service for name, service in config["services"].items()
                         if not service.get("profiles") or set(service["profiles"]) & set(profiles)}

    def container(self, service: str) -> str:
        return f"{self.project}-{service}-1"

    # -- podman run, as Compose would -----------------------------------------------------------

    def run_args(self, name: str, container: str | None = None) -> list[str]:
        service = self.services[name]
        args = ["--name", container or self.container(name), "--network", self.network, "--network-alias", name, *ULIMITS]
        for env_file in _as_list(service.get("env_file")):
            assert env_file == ".env", "the tests stand in for .env only"
            args += ["--env-file", str(self.env_file)]
        for key, value in (service.get("environment") or {}).items():
            args += ["--env", f"{key}={value}"]
        for volume in service.get("volumes") or []:
            source, target = volume.split(":", 1)
            args += ["--volume", f"{self.project}_{source}:{target}" if source in self.volumes else volume]
        if service.get("init"):
            args.append("--init")
        check = service.get("healthcheck")
        if check and not check.get("disable"):
            args += ["--health-cmd", podman_health_command(check["test"]), "--health-interval", "disable",
                     "--health-timeout", check.get("timeout", "30s"),  # both take Go durations
                     "--health-retries", str(check.get("retries", 3)),
                     "--health-start-period", check.get("start_period", "0s")]
        image = self.images.get(service["image"], service["image"])
        return [*args, image, *service.get("command", [])]

    def create_network(self) -> None:
        podman("network", "create", self.network)

    def state(self, name: str) -> dict | None:
        result = podman("container", "inspect", self.container(name), check=False)
        return json.loads(result.stdout)[0]["State"] if result.returncode == 0 else None

    def start(self, name: str) -> None:
        """`up` for one service: create and start it, start it again if it stopped, else leave it."""
        state = self.state(name)
        if state is None:
            restart = self.services[name].get("restart", "no")
            podman("run", "--detach", *([] if restart == "no" else ["--restart", restart]), *self.run_args(name))
        elif not state["Running"]:
            podman("start", self.container(name))

    def up(self, timeout: float = 300) -> None:
        for name in self.order():
            for dependency, spec in (self.services[name].get("depends_on") or {}).items():
                if dependency not in self.services:
                    if spec.get("required", True):
                        raise ComposeError(f"service {name} depends on undefined service {dependency}")
                    continue
                self.wait(dependency, spec.get("condition", "service_started"), timeout)
            self.start(name)

    def order(self) -> list[str]:
        done: list[str] = []

        def visit(name: str) -> None:
            if name in done or name not in self.services:
                return
            for dependency in self.services[name].get("depends_on") or {}:
                visit(dependency)
            done.append(name)

        for name in self.services:
            visit(name)
        return done

    def wait(self, name: str, condition: str, timeout: float) -> None:
        container = self.container(name)
        if condition == "service_completed_successfully":
            code = int(podman("wait", container, timeout=timeout).stdout.strip())
            if code != 0:
                raise ComposeError(f"service {name} didn't complete successfully: exit {code}\n{logs(container)}")
        elif condition == "service_healthy":
            self.wait_healthy(name, timeout)

    def wait_healthy(self, name: str, timeout: float) -> None:
        container = self.container(name)
        deadline = time.monotonic() + timeout
        while True:
            check = podman("healthcheck", "run", container, check=False, timeout=120)
            if check.returncode == 0:
                return
            state = self.state(name)
            if state is None or not state["Running"] and state["ExitCode"] != 0:  # exited, or between restarts
                raise ComposeError(f"service {name} exited ({state and state['ExitCode']}):\n{logs(container)}")
            if time.monotonic() > deadline:
                raise ComposeError(f"service {name} not healthy after {timeout:.0f} s: {check.stdout}{check.stderr}"
                                   f"\n{logs(container)}")
            time.sleep(3)

    def run(self, name: str, timeout: float = 300):
        """`docker compose run --rm --no-deps NAME`: the service's command once, in the foreground,
        without its restart policy."""
        return podman("run", "--rm", *self.run_args(name, f"{self.project}-{name}-run"), check=False, timeout=timeout)

    def address(self, name: str) -> str:
        inspect = json.loads(podman("container", "inspect", self.container(name)).stdout)[0]
        return inspect["NetworkSettings"]["Networks"][self.network]["IPAddress"]

    def down(self) -> None:
        """`docker compose down --volumes`: containers, the network, the named volumes."""
        for name in self.services:
            podman("rm", "--force", "--time", "5", self.container(name), check=False)
        podman("network", "rm", "--force", self.network, check=False)
        for volume in self.volumes:
            podman("volume", "rm", "--force", f"{self.project}_{volume}", check=False)


def _as_list(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]
