"""The end-to-end stack as a pytest plugin (named in tests/conftest.py's `pytest_plugins`): one
`stack` session fixture for `tests/e2e` and `tests/browser`, so pytest starts it once, whichever
folder asks first, and stops it when the session ends (harness.py says what runs)."""

from __future__ import annotations

import pytest

from tests.e2e import harness


@pytest.fixture(scope="session")
def stack(admin_url, migrated_template, pooler_url, tmp_path_factory) -> harness.Stack:
    with harness.running_stack(admin_url, migrated_template, pooler_url, tmp_path_factory.mktemp("e2e")) as running:
        yield running


def pytest_collection_modifyitems(items):
    harness.run_stack_tests_last(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # A failed end-to-end or browser test is hard to read without the processes' side of the story.
    running = getattr(item, "funcargs", {}).get("stack")
    if report.failed and running is not None:
        report.sections.append(("Dagster process logs", running.log_tails()))
    return report
