"""The one comparison of a listing with the rule (listing_matches_rule): flag and chapter, and
the chapter only for a listing. reconciliation_app_state answers with it (confirmed_matches), so
a chapter that did not get written is not "in sync"."""

from __future__ import annotations

import pytest

from tests.support.factories import mentor


@pytest.mark.parametrize(("listed", "chapter", "should", "rule_chapter", "matches"), [
    (True, "Oslo", True, "Oslo", True),
    (True, "Bergen", True, "Oslo", False),  # listed under another chapter
    (True, None, True, "Oslo", False),
    (False, "Oslo", True, "Oslo", False),
    (True, "Oslo", False, "Oslo", False),
    (False, "Bergen", False, "Oslo", True),  # an unlisted contact's chapter shows nowhere
    (None, None, True, "Oslo", None),  # nothing known of the listing
])
def test_listing_matches_rule(db, listed, chapter, should, rule_chapter, matches):
    assert db.execute("select listing_matches_rule(%s, %s, %s, %s)",
                      (listed, chapter, should, rule_chapter)).fetchone()[0] is matches


def test_reconciliation_app_state_compares_flag_and_chapter(db):
    right, wrong_chapter, never = (mentor(db, "HLF", full_name=n) for n in ("Right", "Wrong chapter", "Never"))
    (rule_chapter,) = db.execute("select chapter_name from mentor_website_desired_state where mentor_id = %s",
                                 (right,)).fetchone()
    db.execute("insert into website_listing_state (mentor_id, listed, chapter_name) values (%s, true, %s),"
               " (%s, true, 'Elsewhere')", (right, rule_chapter, wrong_chapter))
    rows = dict(db.execute("select mentor_id, confirmed_matches from reconciliation_app_state()").fetchall())
    assert (rows[right], rows[wrong_chapter], rows[never]) == (True, False, None)
