"""The client's $batch codec against the response examples in Microsoft's batch article."""

from __future__ import annotations

import pytest

from mentor_pipeline.dynamics.batch import BatchOperation, decode_batch_response, encode_batch
from mentor_pipeline.dynamics.errors import DynamicsProtocolError

# From "Execute batch operations using the Web API" (continue-on-error example), CRLF on the wire.
DOC_RESPONSE = """--batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 400 Bad Request
REQ_ID: de4c5227-4a28-4ebd-8ced-3392ece1697b
Content-Type: application/json; odata.metadata=minimal
OData-Version: 4.0

{"error":{"code":"0x80044331","message":"A validation error occurred."}}
--batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139
Content-Type: application/http
Content-Transfer-Encoding: binary

HTTP/1.1 204 No Content
OData-Version: 4.0
OData-EntityId: [Organization Uri]/api/data/v9.2/tasks(aed2ae8b-3c94-ed11-aad1-000d3a9933c9)


--batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139--
""".replace("\n", "\r\n")

CHANGESET_RESPONSE = """--batchresponse_1
Content-Type: multipart/mixed; boundary=changesetresponse_2

--changesetresponse_2
Content-Type: application/http
Content-Transfer-Encoding: binary
Content-ID: 1

HTTP/1.1 204 No Content
OData-Version: 4.0


--changesetresponse_2--
--batchresponse_1--
"""


def test_decodes_the_documented_continue_on_error_response():
    parts = decode_batch_response(
        "multipart/mixed; boundary=batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139", DOC_RESPONSE.encode())
    assert [p.status for p in parts] == [400, 204]
    assert parts[0].json()["error"]["code"] == "0x80044331"
    assert parts[1].headers["odata-entityid"].endswith("tasks(aed2ae8b-3c94-ed11-aad1-000d3a9933c9)")


def test_decodes_change_set_responses_with_bare_lf():
    (part,) = decode_batch_response("multipart/mixed; boundary=batchresponse_1", CHANGESET_RESPONSE.encode())
    assert part.status == 204 and part.content_id == "1"


def test_cut_off_response_is_a_protocol_error():
    with pytest.raises(DynamicsProtocolError, match="cut off"):
        decode_batch_response("multipart/mixed; boundary=batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139",
                              DOC_RESPONSE.encode()[:300])


def test_encodes_parts_as_application_http_with_crlf():
    content_type, body = encode_batch(
        [BatchOperation("PATCH", "/api/data/v9.2/contacts(hlf_mentorid='a')", {"If-Match": "*"}, {"x": True})],
        boundary="batch_T")
    assert content_type == "multipart/mixed; boundary=batch_T"
    assert body.decode() == (
        "--batch_T\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\n"
        "PATCH /api/data/v9.2/contacts(hlf_mentorid='a') HTTP/1.1\r\nIf-Match: *\r\n"
        "Content-Type: application/json\r\n\r\n{\"x\":true}\r\n--batch_T--\r\n")


@pytest.mark.parametrize("content_type", ["application/json", "multipart/mixed", ""])
def test_an_answer_that_is_not_multipart_with_a_boundary_is_a_protocol_error(content_type):
    with pytest.raises(DynamicsProtocolError, match="instead of multipart/mixed: check DYNAMICS_URL"):
        decode_batch_response(content_type, b'{"value": []}')


def test_a_part_without_a_status_line_is_a_protocol_error():
    body = DOC_RESPONSE.replace("HTTP/1.1 204 No Content", "<html>proxy error</html>").encode()
    with pytest.raises(DynamicsProtocolError, match="does not start with an HTTP status line .'<html>proxy error"):
        decode_batch_response('multipart/mixed; boundary="batchresponse_f44bd09d-573f-4a30-bca0-2e500ee7e139"', body)
