"""Hand edits in Dynamics put right under the real daemon: a look of the drift watch (its job
launched through the daemon's queue, as the sensor launches it) marks the mentors, the real
sync_queue_sensor and drain write the rule's answer, with no nightly run."""

from __future__ import annotations

import pytest

from tests.e2e.harness import Stack, wait_for
from tests.e2e.test_lifecycle import SYNC_TIMEOUT, listed, new_mentor, queue

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.filterwarnings("ignore:Using variable_values and operation_name:DeprecationWarning"),
]


def look(stack: Stack) -> None:
    run_id = stack.submit_job("drift_watch_job")
    assert stack.wait_for_run(run_id) == "SUCCESS", stack.run_failure_message(run_id)


def test_hand_edits_in_dynamics_are_put_right_without_a_nightly_run(stack: Stack):
    unlisted, moved, deleted = (new_mentor(stack, "HLF", f"E2E Drift {n}", listed_in_dynamics=True, settled=True)
                                for n in ("Una", "Mads", "Dora"))
    look(stack)  # the watch's position: everything up to now (a full read the first time)
    chapter = stack.admin.contact(str(moved))["chapter"]

    stack.admin.edit_contact(str(unlisted), listed=False)
    stack.admin.edit_contact(str(moved), chapter="Somewhere else")
    stack.admin.delete_contact(str(deleted))
    look(stack)

    wait_for(lambda: listed(stack, unlisted) is True, timeout=SYNC_TIMEOUT, what="the hand-unlisted mentor relisted")
    wait_for(lambda: stack.admin.contact(str(moved))["chapter"] == chapter, timeout=SYNC_TIMEOUT,
             what="the chapter put back")
    [dead] = wait_for(lambda: [r for r in queue(stack, deleted) if r["status"] == "dead"], timeout=SYNC_TIMEOUT,
                      what="a dead row for the deleted contact")
    assert dead["triggered_by_event"] == "dynamics_drift" and "no contact" in dead["last_error"]
    assert {r["triggered_by_event"] for r in queue(stack, unlisted)} == {"dynamics_drift"}
