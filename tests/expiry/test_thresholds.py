"""Per-organisation thresholds: validated by the database, switched on by a flag, never half-applied."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from tests.expiry.helpers import RUN_DATE, expiring_on, mentor_expiring, reminders_of, run_expiry_sql
from tests.support.factories import organization


def effective(db, code):
    return db.execute(
        "select threshold_days, threshold_overrides_enabled from organization_expiry_thresholds where organization_code = %s",
        (code,),
    ).fetchone()


def save(db, code, days, enabled=True):
    db.execute(
        "insert into expiry_threshold_config (organization_id, threshold_days, threshold_overrides_enabled)"
        " values (%s, %s, %s) on conflict (organization_id) do update"
        " set threshold_days = excluded.threshold_days, threshold_overrides_enabled = excluded.threshold_overrides_enabled",
        (organization(db, code), days, enabled),
    )


def test_defaults_apply_to_every_organisation_without_configuration(db):
    organization(db, "HLF")
    organization(db, "NHF")
    assert effective(db, "HLF") == ([30, 14, 7], False)
    assert effective(db, "NHF") == ([30, 14, 7], False)


def test_override_applies_only_with_the_flag_on(db):
    hlf = mentor_expiring(db, expiring_on(RUN_DATE, 40))
    nhf = mentor_expiring(db, expiring_on(RUN_DATE, 40), org="NHF")
    save(db, "HLF", [3, 45, 10], enabled=False)
    assert effective(db, "HLF") == ([30, 14, 7], False)
    run_expiry_sql(db)
    assert reminders_of(db, hlf) == []

    db.execute("update expiry_threshold_config set threshold_overrides_enabled = true")
    assert effective(db, "HLF") == ([45, 10, 3], True)  # stored largest first
    assert effective(db, "NHF") == ([30, 14, 7], False)
    run_expiry_sql(db)
    assert reminders_of(db, hlf) == [(45, (RUN_DATE + timedelta(days=40)))]
    assert reminders_of(db, nhf) == []


def test_override_tightest_threshold_is_chosen_from_the_organisations_own_list(db):
    mentor_id = mentor_expiring(db, expiring_on(RUN_DATE, 2))
    save(db, "HLF", [60, 21, 3, 1])
    run_expiry_sql(db)
    assert reminders_of(db, mentor_id) == [(3, RUN_DATE + timedelta(days=2))]


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ([30, 0, 7], "thresholds are positive whole days, got 0"),
        ([30, -14], "thresholds are positive whole days, got -14"),
        ([30, 14, 14, 7], "each threshold may appear once, 14 is repeated"),
        ([], "list at least one threshold"),
        ([30, None], "a threshold is empty (null)"),
    ],
    ids=["zero", "negative", "duplicate", "empty", "null"],
)
def test_invalid_configuration_is_rejected_with_a_clear_error(db, days, message):
    with pytest.raises(psycopg.errors.CheckViolation) as error:
        save(db, "HLF", days)
    text = str(error.value)
    assert text.startswith("invalid expiry thresholds") and "organisation HLF" in text and message in text
    assert db.execute("select count(*) from expiry_threshold_config").fetchone() == (0,)


@pytest.mark.parametrize("literal", ["{7.5,14}", "{30,fourteen}", "{{30,14},{7,1}}"], ids=["fraction", "text", "nested"])
def test_not_whole_days_or_not_a_list_are_rejected(db, literal):
    org_id = organization(db, "HLF")
    with pytest.raises((psycopg.errors.InvalidTextRepresentation, psycopg.errors.CheckViolation)):
        db.execute("insert into expiry_threshold_config (organization_id, threshold_days, threshold_overrides_enabled)"
                   " values (%s, %s::integer[], true)", (org_id, literal))
    assert db.execute("select count(*) from expiry_threshold_config").fetchone() == (0,)


def test_a_bad_update_leaves_the_previous_configuration_whole(db):
    save(db, "HLF", [21, 10, 2])
    save(db, "NHF", [40, 20])
    with pytest.raises(psycopg.errors.CheckViolation):
        # One statement saving both organisations, one of them wrong: neither changes.
        db.execute("update expiry_threshold_config set threshold_days = case when threshold_days[1] = 21"
                   " then array[14, 7] else array[20, 20] end")
    assert effective(db, "HLF") == ([21, 10, 2], True)
    assert effective(db, "NHF") == ([40, 20], True)

    with psycopg.connect(db.info.dsn) as conn:  # a multi-statement save in one transaction
        conn.execute("update expiry_threshold_config set threshold_overrides_enabled = false"
                     " where organization_id = (select id from organizations where code = 'NHF')")
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("update expiry_threshold_config set threshold_days = '{5,0}'"
                         " where organization_id = (select id from organizations where code = 'HLF')")
    assert effective(db, "NHF") == ([40, 20], True)
