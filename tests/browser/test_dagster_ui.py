"""A person's path through the Dagster UI: the assets and what they are, then an operator's force sync
of a mentor by name (force_sync_job, from its launchpad), watched until the run succeeds.

Screenshots land in test-artifacts/browser/ (git-ignored): the asset graph, the asset page, the
launchpad and the finished run.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.e2e.harness import Stack, wait_for
from tests.support import factories

pytestmark = [
    pytest.mark.browser,
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]

ASSETS = ("certification_state", "expiry_reminders", "website_listing")


def asset_definitions(stack: Stack) -> dict[str, dict]:
    data = stack.graphql(
        "{ assetNodes { assetKey { path } description groupName kinds"
        " owners { __typename ... on TeamAssetOwner { team } ... on UserAssetOwner { email } } } }"
    )
    return {"/".join(node["assetKey"]["path"]): node for node in data["assetNodes"]}


def opening_words(description: str, limit: int = 6) -> str:
    """The description's first plain words (the UI renders it as markdown: stop at markup)."""
    words = []
    for word in description.split()[:limit]:
        if any(mark in word for mark in "`*_[]()"):
            break
        words.append(word)
    return " ".join(words)


def visible_text(page) -> str:
    return page.inner_text("body")


def test_assets_described_and_force_sync_from_the_launchpad_succeeds(stack: Stack, page, artifacts):
    # The one-time "join the community" dialog would cover the page: mark it seen for this instance.
    stack.graphql("mutation { setNuxSeen }")

    definitions = asset_definitions(stack)
    for name in ASSETS:
        node = definitions.get(name)
        assert node, f"asset {name} is not in the code location"
        assert node["description"] and node["groupName"] not in (None, "default"), f"{name}: description and group"
        assert node["owners"] and node["kinds"], f"{name}: owners and kinds"

    # The catalog lists the three assets, each with the start of its description.
    page.goto(stack.dagster_url + "/assets")
    for name in ASSETS:
        page.get_by_text(name, exact=True).first.wait_for()
        page.get_by_text(opening_words(definitions[name]["description"], 3), exact=False).first.wait_for()
    page.screenshot(path=str(artifacts / "asset-catalog.png"))

    # The asset graph, with the groups opened.
    page.goto(stack.dagster_url + "/asset-groups")
    page.get_by_text("Global asset lineage").wait_for()
    for group in sorted({definitions[name]["groupName"] for name in ASSETS}):
        page.get_by_text(group, exact=True).last.wait_for()
    page.keyboard.press("Alt+e")  # the graph's "Expand all groups" (its settings menu, ⌥E)
    for name in ASSETS:
        page.get_by_text(name, exact=True).last.wait_for()
    page.wait_for_timeout(1000)  # let the graph settle before the picture
    page.screenshot(path=str(artifacts / "asset-graph.png"))

    # Each asset's page shows its description.
    for name in ASSETS:
        page.goto(f"{stack.dagster_url}/assets/{name}")
        page.get_by_text(opening_words(definitions[name]["description"]), exact=False).first.wait_for()
        if name == "website_listing":
            page.screenshot(path=str(artifacts / "asset-website_listing.png"))

    # A coordinator asked for a force sync of one mentor whose website listing went wrong.
    # One transaction: on the autocommit connection the certification's queue row (which the
    # factory takes away again) would be visible to a lingering drain between the two statements.
    with stack.connect() as conn, conn.transaction():
        mentor_id = factories.mentor(conn, "HLF", full_name="E2E Frida Forcesync")
        chapter = conn.execute("select c.name from mentors m join chapters c on c.id = m.chapter_id where m.id = %s",
                               (mentor_id,)).fetchone()[0]
    stack.admin.seed_contacts([{"mentor_id": str(mentor_id), "full_name": "E2E Frida Forcesync",
                                "chapter": chapter, "listed": False}])
    before = {r["runId"] for r in stack.runs("force_sync_job")}

    # The operator's force sync by name: force_sync_job from its launchpad.
    page.goto(stack.dagster_url + "/locations/mentor_pipeline/jobs/force_sync_job/playground")
    page.wait_for_selector(".CodeMirror")
    launchpad_text = page.evaluate("() => document.querySelector('.CodeMirror').CodeMirror.getValue()")
    # Secrets are environment references in the launchpad, never values.
    assert "env: DYNAMICS_CLIENT_SECRET" in launchpad_text
    assert stack.secret not in launchpad_text and stack.webhook.url not in launchpad_text
    config = {"ops": {"force_sync": {"config": {"mentor_names": ["E2E Frida Forcesync"], "dry_run": False}}}}
    page.evaluate("(text) => document.querySelector('.CodeMirror').CodeMirror.setValue(text)", json.dumps(config))
    page.get_by_text("No errors").wait_for()
    page.screenshot(path=str(artifacts / "launchpad-force-sync.png"))
    page.locator("button", has_text="Launch Run").last.click()

    [run] = wait_for(lambda: [r for r in stack.runs("force_sync_job") if r["runId"] not in before],
                     timeout=120, what="the run launched from the UI")
    page.goto(f"{stack.dagster_url}/runs/{run['runId']}")
    # Queued behind a lingering sync drain (the Dynamics tag limit), then launched: RUN_TIMEOUT.
    assert stack.wait_for_run(run["runId"]) == "SUCCESS", stack.run_failure_message(run["runId"])
    page.reload()
    page.get_by_text(re.compile(r"^Success$")).first.wait_for()
    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts / "force-sync-run.png"))

    # The run's tags and config, as the UI shows them: no secret among them.
    page.get_by_role("button", name=re.compile("tags and config", re.I)).first.click()
    page.get_by_text("mentor_names").first.wait_for()
    shown = visible_text(page)
    for secret in (stack.secret, stack.webhook.url, stack.webhook.url.rsplit("/", 1)[-1]):
        assert secret not in shown
    page.screenshot(path=str(artifacts / "force-sync-run-config.png"))

    # The force sync reached Dynamics, marked as such.
    assert stack.admin.contact(str(mentor_id))["listed"] is True
    with stack.connect() as conn:
        rows = factories.queue_rows(conn, mentor_id)
    assert [(r["triggered_by_event"], r["status"]) for r in rows] == [("force_sync", "done")], rows
