"""The end-to-end suite's one shared stack (see harness.py). Every test here is marked `e2e`."""

from __future__ import annotations

import pytest

from tests.e2e import harness


@pytest.fixture(scope="session")
def stack(admin_url, migrated_template, pooler_url, tmp_path_factory) -> harness.Stack:
    running = harness.acquire(admin_url, migrated_template, pooler_url, tmp_path_factory.mktemp("e2e"))
    try:
        yield running
    finally:
        harness.release()


def pytest_collection_modifyitems(items):
    harness.run_stack_tests_last(items)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # A failed end-to-end test is hard to read without the processes' side of the story.
    if report.failed and harness._shared["stack"] is not None and "stack" in item.fixturenames:
        report.sections.append(("Dagster process logs", harness._shared["stack"].log_tails()))
    return report
