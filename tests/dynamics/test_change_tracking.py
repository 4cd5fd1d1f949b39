"""Change tracking on contacts, client against the emulator over HTTP (Microsoft Learn: "Use
change tracking to synchronize data with external systems")."""

from __future__ import annotations

import pytest

from mentor_pipeline.dynamics.errors import ChangeTrackingOff, DeltaTokenExpired


def read_all(client, token=None, **options):
    pages = list(client.iter_changes(token, **options))
    changed = {row["mentor_id"]: row for page in pages for row in page.changed}
    deleted = [contactid for page in pages for contactid in page.deleted]
    return pages, changed, deleted


def test_a_first_read_returns_every_contact_and_a_token_then_only_what_changed(emulator):
    emulator.admin.seed(5)
    with emulator.client() as client:
        pages, changed, deleted = read_all(client)
        assert set(changed) == {f"m00000{n}" for n in range(1, 6)} and deleted == []
        token = pages[-1].delta_token
        assert token and all(p.delta_token is None for p in pages[:-1])

        emulator.admin.edit_contact("m000002", listed=False)
        emulator.admin.edit_contact("m000003", chapter="Bergen")
        gone = emulator.admin.contact("m000004")["contactid"]
        emulator.admin.delete_contact("m000004")
        pages, changed, deleted = read_all(client, token)
        assert {k: (v["listed"], v["chapter"]) for k, v in changed.items()} == {
            "m000002": (False, "Munich"), "m000003": (True, "Bergen")}
        assert deleted == [gone]

        _, changed, deleted = read_all(client, pages[-1].delta_token)
        assert changed == {} and deleted == []
    sent = emulator.admin.requests()
    assert all("odata.track-changes" in r["headers"]["prefer"] for r in sent)
    assert all("$filter" not in r["query"] for r in sent)  # not supported with change tracking


def test_a_delta_is_paged_through_next_links_and_the_token_comes_on_the_last_page(emulator):
    emulator.admin.seed(7)
    with emulator.client() as client:
        token = list(client.iter_changes())[-1].delta_token
        for n in range(1, 8):
            emulator.admin.edit_contact(f"m00000{n}", listed=False)
        pages, changed, _ = read_all(client, token, page_size=3)
    assert [len(p.changed) for p in pages] == [3, 3, 1]
    assert len(changed) == 7 and not any(row["listed"] for row in changed.values())
    assert pages[-1].delta_token and pages[-1].delta_token != token
    assert [r["query"].count("$skiptoken") for r in emulator.admin.requests()[-3:]] == [0, 1, 1]


def test_tracking_off_is_refused_with_what_to_switch_on_and_shows_in_entity_definitions(emulator):
    emulator.admin.seed(1)
    emulator.admin.set_change_tracking(False)
    with emulator.client() as client:
        with pytest.raises(ChangeTrackingOff, match="Track changes"):
            list(client.iter_changes())
        response, _ = client._request("GET", client.settings.api_base
                                      + "EntityDefinitions?$select=SchemaName&$filter=ChangeTrackingEnabled eq true",
                                      what="metadata")
        assert response.json()["value"] == []
        emulator.admin.set_change_tracking(True)
        response, _ = client._request("GET", client.settings.api_base
                                      + "EntityDefinitions(LogicalName='contact')?$select=ChangeTrackingEnabled",
                                      what="metadata")
        assert response.json()["ChangeTrackingEnabled"] is True


def test_an_expired_token_is_refused_and_a_full_read_gives_a_new_one(emulator):
    emulator.admin.seed(2)
    with emulator.client() as client:
        token = list(client.iter_changes())[-1].delta_token
        emulator.admin.expire_delta_tokens()
        with pytest.raises(DeltaTokenExpired):
            list(client.iter_changes(token))
        pages, changed, _ = read_all(client)
        assert len(changed) == 2
        assert read_all(client, pages[-1].delta_token)[1] == {}
