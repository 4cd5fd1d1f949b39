"""Run `mentor-pipeline` in a fresh interpreter, optionally as if some packages were not installed."""

from __future__ import annotations

import sys

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
