"""A production install: no `demo` extra (embedded PostgreSQL, the emulator's web server), and
the light CLI commands start without importing Dagster."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.support.cli import DEMO_EXTRA, cli_argv


def run(argv: list[str], **env: str) -> subprocess.CompletedProcess:
    merged = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"} | env
    return subprocess.run(argv, capture_output=True, text=True, env=merged, timeout=120)


def test_production_code_imports_without_the_demo_extra():
    script = "\n".join([
        f"import sys; sys.modules.update(dict.fromkeys({list(DEMO_EXTRA)!r}))",
        "import mentor_pipeline.definitions",
        "print(sorted(m for m in sys.modules if m.startswith('mentor_pipeline.emulator')))",
        "import mentor_pipeline.cli; mentor_pipeline.cli.build_parser()",
    ])
    result = run([sys.executable, "-c", script])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # the code location does not load the emulator at all


def test_light_commands_need_neither_dagster_nor_the_demo_extra(db_url):
    missing = ("dagster", *DEMO_EXTRA)
    assert run(cli_argv("db", "seed"), DATABASE_URL=db_url).returncode == 0
    commands = {
        ("db", "url", "--show-password"): db_url,
        ("db", "migrate"): "database is up to date",
        ("mentor", "list", "--org", "HLF"): "Ingrid Hansen",
        ("mentor", "set-status", "Ingrid Hansen", "paused"): "Ingrid Hansen: active -> paused",
    }
    for args, expected in commands.items():
        result = run(cli_argv(*args, missing=missing), DATABASE_URL=db_url)
        assert result.returncode == 0, (args, result.stderr)
        assert expected in result.stdout, (args, result.stdout)


def test_without_database_url_or_the_demo_extra_the_error_says_what_to_do():
    result = run(cli_argv("db", "url", missing=DEMO_EXTRA))
    assert result.returncode == 1
    assert result.stderr.strip() == ("mentor-pipeline db: error: DATABASE_URL is not set and embedded PostgreSQL "
                                     "is not installed: set DATABASE_URL, or install mentor_pipeline[demo]")


def test_the_emulator_without_the_demo_extra_says_what_to_install():
    result = run(cli_argv("emulator", "--port", "0", missing=DEMO_EXTRA))
    assert result.returncode == 1
    assert result.stderr.strip().startswith("mentor-pipeline emulator: error: the emulator needs ")
    assert result.stderr.strip().endswith(": install mentor_pipeline[demo]")


def test_a_wheel_built_from_the_repository_migrates_a_database(admin_url, tmp_path):
    # The SQL must travel inside the wheel: an installed pipeline has no checkout to read it from.
    from mentor_pipeline.db.connection import project_root, with_database
    from tests.support.db import apply_supabase_default_grants, create_database, drop_database

    # Built from a copy, so setuptools' build/ folder never lands in the checkout.
    source = tmp_path / "source"
    shutil.copytree(project_root(), source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".pgdata", ".demo", "build", "dist", "*.egg-info", "__pycache__", "test-artifacts"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", str(source),
                            "-w", str(tmp_path / "dist")], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    [wheel] = (tmp_path / "dist").glob("mentor_pipeline-*.whl")
    site = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr

    name = create_database(admin_url)
    try:
        apply_supabase_default_grants(with_database(admin_url, name))
        # From a folder with no checkout in it, the installed copy first on the path.
        env = {"PYTHONPATH": str(site), "DATABASE_URL": with_database(admin_url, name)}
        script = ("import mentor_pipeline, sys; print(mentor_pipeline.__file__);"
                  " from mentor_pipeline.cli import main; sys.exit(main(sys.argv[1:]))")
        result = subprocess.run([sys.executable, "-c", script, "db", "migrate", "--with-app-standin"],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, **env})
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0].startswith(str(site))
        assert "20261125000500_clock.sql" in result.stdout
    finally:
        drop_database(admin_url, name)
