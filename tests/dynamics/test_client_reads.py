"""Reading every listing: $select, maxpagesize, nextLink to the end, streamed pages."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from mentor_pipeline.dynamics.errors import DynamicsProtocolError


def test_reads_more_than_5000_records_following_next_link(emulator):
    emulator.admin.seed(12_345)
    with emulator.client() as client:
        pages = [len(page) for page in client.iter_listings()]
    assert pages == [5000, 5000, 2345]
    gets = emulator.admin.requests()
    assert len(gets) == 3
    assert all(g["headers"]["prefer"] == "odata.maxpagesize=5000" for g in gets)
    first = unquote(gets[0]["query"])
    assert "$select=hlf_mentorid,hlf_websitelisted,hlf_chaptername" in first
    assert "$filter=hlf_mentorid ne null" in first
    assert "$skiptoken=" in unquote(gets[1]["query"]) and "$skip=" not in unquote(gets[1]["query"])


def test_listing_rows_map_to_mentor_listed_chapter(emulator):
    emulator.admin.seed_contacts([
        {"mentor_id": "a1", "full_name": "Ada", "chapter": "Berlin", "listed": True},
        {"mentor_id": "b2", "full_name": "Bo", "chapter": None, "listed": False},
    ])
    with emulator.client() as client:
        rows = [row for page in client.iter_listings() for row in page]
    assert rows == [{"mentor_id": "a1", "listed": True, "chapter": "Berlin"},
                    {"mentor_id": "b2", "listed": False, "chapter": None}]


def test_pages_are_streamed_not_collected(emulator):
    emulator.admin.seed(10_001)
    with emulator.client() as client:
        pages = client.iter_listings()
        next(pages)
        assert len(emulator.admin.requests()) == 1  # the second page is fetched only when asked for


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("html", "text/html instead of JSON"),
        ("truncated_json", "not valid JSON"),
        ("missing_value", "without a 'value' array"),
        ("foreign_next_link", "refusing to follow it"),
    ],
)
def test_malformed_pages_give_clear_protocol_errors(emulator, kind, expected):
    emulator.admin.seed(3)
    emulator.admin.set_faults(malformed_next=[kind])
    with emulator.client() as client, pytest.raises(DynamicsProtocolError) as caught:
        list(client.iter_listings())
    assert expected in str(caught.value)
    assert "\n" not in str(caught.value)
