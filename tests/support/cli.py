"""The one way tests run `mentor-pipeline`: in a fresh interpreter (`run_cli`, `start_cli`; optionally
as if some packages were not installed) or in the test's own process (`call_cli`, which sees the
test's monkeypatched environment and stand-ins)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping

# What the `demo` extra adds on top of a production install (pyproject.toml).
DEMO_EXTRA = ("pgserver", "starlette", "uvicorn")


def cli_argv(*args: str, missing: tuple[str, ...] = ()) -> list[str]:
    """argv for `mentor-pipeline *args`; importing any package in `missing` fails in that process."""
    if not missing:
        return [sys.executable, "-m", "mentor_pipeline.cli", *args]
    # A None entry in sys.modules makes `import name` (and `import name.sub`) raise ImportError.
    script = (f"import sys; sys.modules.update(dict.fromkeys({list(missing)!r}));"
              " from mentor_pipeline.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", script, *args]


def run_cli(*args: str, env: Mapping[str, str] | None = None, timeout: float = 120,
            missing: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`mentor-pipeline *args` in a fresh interpreter, `env` over this process's environment."""
    return subprocess.run(cli_argv(*args, missing=missing), capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def start_cli(*args: str, env: Mapping[str, str] | None = None, **popen) -> subprocess.Popen:
    """`mentor-pipeline *args` started in a fresh interpreter, for a test that acts while it runs."""
    return subprocess.Popen(cli_argv(*args), env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def call_cli(capsys, *argv: str) -> tuple[int, str, str]:
    """`mentor-pipeline *argv` in this process: its exit code, stdout and stderr."""
    from mentor_pipeline.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err
