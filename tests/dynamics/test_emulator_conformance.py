"""The emulator against Microsoft's documentation, over real HTTP, without our client.

Each test cites the learn.microsoft.com page it follows; the requests are written from the
docs' examples, not from what the client happens to send.
"""

from __future__ import annotations

import httpx
import pytest

from tests.support.emulator import running_emulator
from tests.support.polling import wait_for

ODATA = {"Accept": "application/json", "OData-MaxVersion": "4.0", "OData-Version": "4.0"}


@pytest.fixture
def emu():
    with running_emulator(seed_contacts=3, request_limit=50) as handle:
        yield handle


def token_form(emu, **overrides):
    form = {"client_id": emu.options.client_id, "client_secret": emu.options.client_secret,
            "grant_type": "client_credentials", "scope": f"{emu.url}/.default"}
    form.update(overrides)
    return form


def get_token(emu) -> str:
    response = httpx.post(f"{emu.url}/{emu.options.tenant_id}/oauth2/v2.0/token", data=token_form(emu))
    assert response.status_code == 200
    return response.json()["access_token"]


@pytest.fixture
def api(emu):
    headers = {**ODATA, "Authorization": f"Bearer {get_token(emu)}"}
    with httpx.Client(base_url=f"{emu.url}/api/data/v9.2/", headers=headers) as http:
        yield http


# -- Microsoft Entra ID: client credentials (identity-platform/v2-oauth2-client-creds-grant-flow) --

def test_token_success_has_bearer_type_lifetime_and_no_refresh_token(emu):
    response = httpx.post(f"{emu.url}/{emu.options.tenant_id}/oauth2/v2.0/token", data=token_form(emu))
    body = response.json()
    assert response.status_code == 200
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599 and body["access_token"]
    assert "refresh_token" not in body


@pytest.mark.parametrize(
    ("overrides", "status", "error", "code"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client", 7000215),
        ({"client_id": "00000000-0000-0000-0000-000000000000"}, 400, "unauthorized_client", 700016),
        ({"scope": "https://other.crm.dynamics.com/.default"}, 400, "invalid_resource", 500011),
        ({"scope": "user.read"}, 400, "invalid_scope", 1002012),
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
    ],
)
def test_token_errors_answer_like_entra_id(emu, overrides, status, error, code):
    response = httpx.post(f"{emu.url}/{emu.options.tenant_id}/oauth2/v2.0/token", data=token_form(emu, **overrides))
    body = response.json()
    assert response.status_code == status
    assert body["error"] == error and body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")
    assert {"timestamp", "trace_id", "correlation_id", "error_uri"} <= set(body)


def test_expired_secret_is_aadsts7000222_and_rotation_replaces_the_secret(emu):
    emu.admin.expire_secrets()
    expired = httpx.post(f"{emu.url}/{emu.options.tenant_id}/oauth2/v2.0/token", data=token_form(emu)).json()
    assert expired["error"] == "invalid_client" and expired["error_codes"] == [7000222]
    emu.admin.rotate_secret("new-secret")
    old = httpx.post(f"{emu.url}/{emu.options.tenant_id}/oauth2/v2.0/token", data=token_form(emu))
    new = httpx.post(f"{emu.url}/{emu.options.tenant_id}/oauth2/v2.0/token",
                     data=token_form(emu, client_secret="new-secret"))
    assert old.status_code == 401 and old.json()["error_codes"] == [7000215]
    assert new.status_code == 200


def test_unknown_tenant_is_aadsts90002(emu):
    response = httpx.post(f"{emu.url}/not-our-tenant/oauth2/v2.0/token", data=token_form(emu))
    assert response.status_code == 400 and response.json()["error_codes"] == [90002]


def test_token_log_never_holds_the_secret(emu):
    httpx.post(f"{emu.url}/{emu.options.tenant_id}/oauth2/v2.0/token", data=token_form(emu))
    logged = httpx.get(f"{emu.url}/_admin/requests").text
    assert emu.options.client_secret not in logged


# -- Web API basics (webapi/compose-http-requests-handle-errors, WhoAmI function) ---------------

def test_missing_or_expired_bearer_token_is_401(emu, api):
    assert httpx.get(f"{emu.url}/api/data/v9.2/WhoAmI", headers=ODATA).status_code == 401
    emu.admin.advance_clock(3600)  # past expires_in
    response = api.get("WhoAmI")
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")


def test_whoami_returns_the_three_ids(api):
    response = api.get("WhoAmI")
    assert response.status_code == 200
    assert {"BusinessUnitId", "UserId", "OrganizationId"} <= set(response.json())
    assert response.headers["OData-Version"] == "4.0"


# -- Query data (webapi/query-data-web-api, page results) ---------------------------------------

def test_select_returns_only_requested_columns_plus_key_and_etag(api):
    rows = api.get("contacts", params={"$select": "hlf_mentorid,hlf_websitelisted"}).json()["value"]
    assert set(rows[0]) == {"@odata.etag", "hlf_mentorid", "hlf_websitelisted", "contactid"}
    assert rows[0]["@odata.etag"].startswith('W/"')


def test_unknown_select_column_is_400_with_hex_code(api):
    response = api.get("contacts", params={"$select": "nosuchcolumn"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "0x80060888"
    assert "nosuchcolumn" in response.json()["error"]["message"]


def test_filter_eq_and_ne(emu, api):
    emu.admin.seed_contacts([{"mentor_id": "m000002", "full_name": "B", "chapter": "Berlin", "listed": False}])
    listed = api.get("contacts", params={"$filter": "hlf_websitelisted eq true", "$select": "hlf_mentorid"})
    assert [r["hlf_mentorid"] for r in listed.json()["value"]] == ["m000001", "m000003"]
    keyed = api.get("contacts", params={"$filter": "hlf_mentorid ne null and hlf_chaptername eq 'Berlin'"})
    assert [r["hlf_mentorid"] for r in keyed.json()["value"]] == ["m000002"]


def test_skip_is_not_supported(api):
    assert api.get("contacts", params={"$skip": "1"}).status_code == 400


def test_maxpagesize_pages_with_opaque_skiptoken_and_preference_applied(api):
    first = api.get("contacts", params={"$select": "hlf_mentorid"}, headers={"Prefer": "odata.maxpagesize=2"})
    assert first.headers["Preference-Applied"] == "odata.maxpagesize=2"
    body = first.json()
    assert len(body["value"]) == 2 and "$skiptoken=" in body["@odata.nextLink"]
    assert "$select=hlf_mentorid" in body["@odata.nextLink"]  # the query carries over
    second = api.get(body["@odata.nextLink"], headers={"Prefer": "odata.maxpagesize=2"}).json()
    assert [r["hlf_mentorid"] for r in second["value"]] == ["m000003"]
    assert "@odata.nextLink" not in second


def test_page_size_is_capped_at_5000(emu, api):
    emu.admin.seed(5001)
    body = api.get("contacts", params={"$select": "hlf_mentorid"}, headers={"Prefer": "odata.maxpagesize=10000"}).json()
    assert len(body["value"]) == 5000 and "@odata.nextLink" in body


# -- Update and upsert (webapi/update-delete-entities-using-web-api, perform-conditional-operations) --

def test_update_only_with_if_match_star_is_204_with_entity_id(emu, api):
    response = api.patch("contacts(hlf_mentorid='m000001')", json={"hlf_websitelisted": False},
                         headers={"If-Match": "*"})
    assert response.status_code == 204 and response.content == b""
    assert response.headers["OData-EntityId"].startswith(f"{emu.url}/api/data/v9.2/contacts(")
    assert emu.admin.contact("m000001")["listed"] is False


def test_prevent_create_in_upsert_is_404_and_creates_nothing(emu, api):
    response = api.patch("contacts(hlf_mentorid='ghost')", json={"hlf_websitelisted": True}, headers={"If-Match": "*"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "0x80040217"
    assert emu.admin.contact("ghost") is None


def test_patch_without_condition_is_an_upsert_that_creates(emu, api):
    response = api.patch("contacts(hlf_mentorid='new1')", json={"hlf_websitelisted": True})
    assert response.status_code == 204
    assert emu.admin.contact("new1")["listed"] is True


def test_prevent_update_in_upsert_is_412(emu, api):
    response = api.patch("contacts(hlf_mentorid='m000001')", json={"hlf_websitelisted": False},
                         headers={"If-None-Match": "*"})
    assert response.status_code == 412
    assert response.json()["error"]["code"] == "0x80040237"
    assert emu.admin.contact("m000001")["listed"] is True


def test_optimistic_concurrency_with_a_stale_etag_is_412(api):
    response = api.patch("contacts(hlf_mentorid='m000001')", json={"hlf_websitelisted": False},
                         headers={"If-Match": 'W/"1"'})
    assert response.status_code == 412


def test_return_representation_gives_200_with_body(api):
    response = api.patch("contacts(hlf_mentorid='m000001')?$select=hlf_websitelisted", json={"hlf_websitelisted": False},
                         headers={"If-Match": "*", "Prefer": "return=representation"})
    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "return=representation"
    assert response.json()["hlf_websitelisted"] is False


def test_unknown_property_in_body_is_400(api):
    response = api.patch("contacts(hlf_mentorid='m000001')", json={"nosuch": 1}, headers={"If-Match": "*"})
    assert response.status_code == 400 and "nosuch" in response.json()["error"]["message"]


# -- $batch (webapi/execute-batch-operations-using-web-api) -------------------------------------

def batch_body(boundary: str, *parts: str) -> str:
    return "".join(f"--{boundary}\r\n{p}" for p in parts) + f"--{boundary}--\r\n"


def patch_part(mentor: str, listed: bool, content_id: str | None = None) -> str:
    cid = f"Content-ID: {content_id}\r\n" if content_id else ""
    return ("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n" + cid + "\r\n"
            f"PATCH /api/data/v9.2/contacts(hlf_mentorid='{mentor}') HTTP/1.1\r\n"
            "Content-Type: application/json\r\nIf-Match: *\r\n\r\n"
            f'{{"hlf_websitelisted": {str(listed).lower()}}}\r\n')


def post_batch(api, body: str, boundary: str, prefer: str | None = None):
    headers = {"Content-Type": f'multipart/mixed; boundary="{boundary}"'}
    if prefer:
        headers["Prefer"] = prefer
    return api.post("$batch", content=body.encode(), headers=headers)


def statuses(response) -> list[int]:
    import re

    return [int(s) for s in re.findall(r"^HTTP/1\.1 (\d{3})", response.text, re.MULTILINE)]


def test_batch_responses_come_in_request_order_with_batchresponse_boundary(emu, api):
    body = batch_body("batch_A", patch_part("m000001", False), patch_part("m000002", False))
    response = post_batch(api, body, "batch_A")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("multipart/mixed; boundary=batchresponse_")
    assert statuses(response) == [204, 204]
    assert "OData-EntityId:" in response.text


def test_batch_without_continue_on_error_stops_at_first_failure_with_400(emu, api):
    body = batch_body("batch_B", patch_part("ghost", False), patch_part("m000002", False))
    response = post_batch(api, body, "batch_B")
    assert response.status_code == 400
    assert statuses(response) == [404]
    assert emu.admin.contact("m000002")["listed"] is True  # not processed


def test_batch_with_continue_on_error_is_200_with_every_part_status(emu, api):
    body = batch_body("batch_C", patch_part("ghost", False), patch_part("m000002", False))
    response = post_batch(api, body, "batch_C", prefer="odata.continue-on-error")
    assert response.status_code == 200
    assert statuses(response) == [404, 204]
    assert emu.admin.contact("m000002")["listed"] is False


def test_change_set_is_atomic_and_rolls_back(emu, api):
    changeset = ("Content-Type: multipart/mixed; boundary=changeset_X\r\n\r\n"
                 + batch_body("changeset_X", patch_part("m000001", False, "1"), patch_part("ghost", False, "2")))
    response = post_batch(api, batch_body("batch_D", changeset), "batch_D", prefer="odata.continue-on-error")
    assert statuses(response) == [404]  # the change set's single error response
    assert "changesetresponse_" in response.text
    assert emu.admin.contact("m000001")["listed"] is True  # rolled back


def test_change_set_success_returns_content_ids(emu, api):
    changeset = ("Content-Type: multipart/mixed; boundary=changeset_Y\r\n\r\n"
                 + batch_body("changeset_Y", patch_part("m000001", False, "1"), patch_part("m000002", False, "2")))
    response = post_batch(api, batch_body("batch_E", changeset), "batch_E")
    assert statuses(response) == [204, 204]
    assert "Content-ID: 1" in response.text and "Content-ID: 2" in response.text


def test_batch_over_1000_operations_is_400(api):
    body = batch_body("batch_F", *[patch_part(f"m{n:06d}", True) for n in range(1001)])
    assert post_batch(api, body, "batch_F").status_code == 400


def test_batch_counts_once_toward_service_protection_but_logs_each_operation(emu, api):
    emu.admin.clear_requests()
    post_batch(api, batch_body("batch_G", patch_part("m000001", False), patch_part("m000002", False)), "batch_G")
    outer = emu.admin.requests(include_batch_parts=False)
    assert [e["path"] for e in outer] == ["/api/data/v9.2/$batch"]
    assert len([e for e in emu.admin.requests() if e["batch"] == outer[0]["seq"]]) == 2


# -- Service protection limits (api-limits) -----------------------------------------------------

def test_request_limit_gives_429_with_retry_after_and_documented_code(emu, api):
    emu.admin.configure(request_limit=3)
    answers = [api.get("WhoAmI") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.json()["error"]["code"] == "0x80072322"
    assert "Number of requests exceeded the limit of 3 over time window of 300 seconds." == refused.json()["error"]["message"]
    retry_after = int(refused.headers["Retry-After"])
    assert 290 <= retry_after <= 300  # the oldest request leaves the 5-minute window then
    emu.admin.advance_clock(retry_after)
    assert api.get("WhoAmI").status_code == 200  # sliding window: room again


def test_concurrency_limit_refuses_at_once_with_0x80072326(emu, api):
    import concurrent.futures

    emu.admin.configure(concurrency_limit=2)
    emu.admin.set_faults(latency=3)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        held = [pool.submit(api.get, "WhoAmI") for _ in range(2)]
        wait_for(lambda: emu.admin.state()["limits"]["in_flight"] == 2)  # both admitted, neither answered
        refused = api.get("WhoAmI")
        assert [answer.result().status_code for answer in held] == [200, 200]
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "0x80072326"
    assert "Retry-After" in refused.headers


# -- Portal (Power Pages server-side cache) -----------------------------------------------------

def test_portal_page_lags_dataverse_by_the_portal_delay(emu, api):
    emu.admin.configure(portal_delay=900)
    api.patch("contacts(hlf_mentorid='m000001')", json={"hlf_websitelisted": False}, headers={"If-Match": "*"})
    shown = lambda: {m["mentor_id"] for ms in emu.admin.portal().values() for m in ms}  # noqa: E731
    assert "m000001" in shown()  # still cached
    emu.admin.advance_clock(900)
    assert "m000001" not in shown()
    page = httpx.get(emu.url + "/")
    assert page.status_code == 200 and 'data-mentor-id="m000002"' in page.text
    assert 'data-mentor-id="m000001"' not in page.text
