"""Writes: update-only by alternate key, $batch with continue-on-error, results per mentor."""

from __future__ import annotations

import re

import pytest

from mentor_pipeline.dynamics import ListingUpdate, UpdateOutcome


def test_set_listed_patches_by_alternate_key_with_if_match_star(emulator):
    emulator.admin.seed(2)
    with emulator.client() as client:
        result = client.set_listed("m000002", False)
    assert result.outcome is UpdateOutcome.APPLIED and result.code is None
    (patch,) = emulator.admin.requests()
    assert patch["method"] == "PATCH"
    assert patch["path"] == "/api/data/v9.2/contacts(hlf_mentorid='m000002')"
    assert patch["headers"]["if-match"] == "*"
    assert patch["body"] == {"hlf_websitelisted": False}  # changed column only, no key in the body
    assert emulator.admin.contact("m000002")["listed"] is False


def test_missing_contact_is_not_found_and_no_ghost_is_created(emulator):
    with emulator.client() as client:
        result = client.set_listed("m404", True)
    assert result.outcome is UpdateOutcome.NOT_FOUND
    assert result.code == "0x80040217"
    assert emulator.admin.contacts() == []


def test_quote_in_mentor_id_is_escaped_as_odata_literal(emulator):
    emulator.admin.seed_contacts([{"mentor_id": "o'brien", "full_name": "O", "chapter": "Cork", "listed": True}])
    with emulator.client() as client:
        assert client.set_listed("o'brien", False).outcome is UpdateOutcome.APPLIED
    assert emulator.admin.contact("o'brien")["listed"] is False


def test_apply_updates_batches_with_continue_on_error_and_maps_results_in_order(emulator):
    emulator.admin.seed(5)
    updates = [ListingUpdate("m000001", False), ListingUpdate("ghost-1", False), ListingUpdate("m000003", False),
               ListingUpdate("ghost-2", True), ListingUpdate("m000005", False)]
    with emulator.client(batch_size=2, max_in_flight=2) as client:
        results = client.apply_updates(updates)
    assert [r.mentor_id for r in results] == [u.mentor_id for u in updates]
    assert [r.outcome for r in results] == [UpdateOutcome.APPLIED, UpdateOutcome.NOT_FOUND, UpdateOutcome.APPLIED,
                                            UpdateOutcome.NOT_FOUND, UpdateOutcome.APPLIED]
    batches = emulator.admin.requests(include_batch_parts=False)
    assert len(batches) == 3 and all(b["path"] == "/api/data/v9.2/$batch" for b in batches)
    assert all(b["headers"]["prefer"] == "odata.continue-on-error" for b in batches)
    assert all(re.match(r"multipart/mixed; boundary=batch_", b["headers"]["content-type"]) for b in batches)
    parts = [e for e in emulator.admin.requests() if e["batch"]]
    assert len(parts) == 5 and all(p["headers"]["if-match"] == "*" for p in parts)
    listed = {c["mentor_id"]: c["listed"] for c in emulator.admin.contacts()}
    assert listed == {"m000001": False, "m000002": True, "m000003": False, "m000004": True, "m000005": False}


def test_batch_partial_failure_reports_dataverse_code_and_message(emulator):
    emulator.admin.seed(1)
    with emulator.client() as client:
        results = client.apply_updates([ListingUpdate("m000001", True), ListingUpdate("nobody", True)])
    assert results[0].outcome is UpdateOutcome.APPLIED
    assert results[1].outcome is UpdateOutcome.NOT_FOUND
    assert results[1].code == "0x80040217" and "does not exist" in results[1].message


def test_bad_column_setting_fails_each_operation_with_dataverse_error(emulator):
    emulator.admin.seed(2)
    with emulator.client(settings={"listed_attribute": "hlf_typo"}) as client:
        single = client.set_listed("m000001", False)
        batch = client.apply_updates([ListingUpdate("m000002", False)])
    for result in (single, batch[0]):
        assert result.outcome is UpdateOutcome.FAILED
        assert result.code == "0x80048d19" and "hlf_typo" in result.message


def test_empty_update_list_sends_nothing(emulator):
    with emulator.client() as client:
        assert client.apply_updates([]) == []
    assert emulator.admin.requests() == []


def test_auth_failure_propagates_from_apply_updates(emulator):
    from mentor_pipeline.dynamics.errors import ExpiredClientSecret

    emulator.admin.seed(3)
    emulator.admin.expire_secrets()
    with emulator.client() as client, pytest.raises(ExpiredClientSecret):
        client.apply_updates([ListingUpdate("m000001", False)])
