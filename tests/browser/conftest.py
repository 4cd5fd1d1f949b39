"""The Dagster UI in a real browser: Debian's Chromium, driven by Playwright's Python package.

Playwright's own browser download does not work here, so the test launches the system Chromium
(`executable_path`). When it is missing, the setup installs it with apt if running as root and
otherwise skips, saying how to enable the test. The running stack is the end-to-end suite's
`stack` fixture (tests/e2e/plugin.py): one per session, whichever folder asks first.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mentor_pipeline.db.connection import project_root

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
ARTIFACTS = project_root() / "test-artifacts" / "browser"


def _apt_install_chromium() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "chromium"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True, timeout=600)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if result.returncode != 0 or not Path(CHROMIUM).exists():
        pytest.fail(f"apt-get install chromium failed (exit {result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).exists():
        if os.geteuid() != 0:
            pytest.skip(
                f"Chromium is not installed at {CHROMIUM}. Enable the browser test with "
                "`sudo apt-get install -y chromium` (Debian's package; Playwright's browser download "
                "does not work here), or run the tests as root and they install it."
            )
        _apt_install_chromium()
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    # Each wait for a selector or navigation: the Dagster UI's bundle and first GraphQL queries
    # can take tens of seconds on a loaded 2-core box. A deadline only: waits end when the UI shows it.
    page.set_default_timeout(120_000)
    try:
        yield page
    finally:
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / f"failure-{request.node.name}.png"), full_page=True)
        context.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report  # lets the page fixture save a screenshot of a failure
    return report
