"""Per-organisation thresholds: validated by the database, switched on by a flag, never half-applied."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest

from mentor_pipeline.expiry.run import run_nightly_expiry
from tests.expiry.helpers import (
    RUN_DATE,
    expiring_on,
    mentor_expiring,
    plant_thresholds,
    reminders_of,
    run_expiry_sql,
    status_of,
)
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
        ([400], "thresholds are at most 365 days, got 400"),
        ([200000000], "thresholds are at most 365 days, got 200000000"),
        ([2147483647], "thresholds are at most 365 days, got 2147483647"),
        ([Decimal(30), Decimal("7.6")], "thresholds are whole days, got 7.6"),
        (list(range(11, 0, -1)), "at most 10 thresholds, got 11"),
    ],
    ids=["zero", "negative", "duplicate", "empty", "null", "over-a-year", "huge", "int-max", "fraction", "too-many"],
)
def test_invalid_configuration_is_rejected_with_a_clear_error(db, days, message):
    save(db, "HLF", [21, 10, 2])
    with pytest.raises(psycopg.errors.CheckViolation) as error:
        save(db, "HLF", days)
    text = str(error.value)
    assert text.startswith("invalid expiry thresholds") and "organisation HLF" in text and message in text
    assert effective(db, "HLF") == ([21, 10, 2], True)  # the previous configuration is whole
    assert db.execute("select count(*) from expiry_threshold_config").fetchone() == (1,)


def test_a_fraction_from_the_app_json_is_rejected_not_rounded(db):
    # PostgREST turns the request body into a row with json_populate_record: [30, 7.6] arrives
    # as written, and is refused instead of being stored as {30,8}.
    org_id = organization(db, "HLF")
    body = json.dumps({"organization_id": str(org_id), "threshold_overrides_enabled": True, "threshold_days": [30, 7.6]})
    with pytest.raises(psycopg.errors.CheckViolation, match="thresholds are whole days, got 7.6"):
        db.execute("insert into expiry_threshold_config"
                   " select * from json_populate_record(null::expiry_threshold_config, %s::json)", (body,))
    assert db.execute("select count(*) from expiry_threshold_config").fetchone() == (0,)


def test_the_check_constraint_alone_holds_for_a_writer_without_the_trigger(db):
    org_id = organization(db, "HLF")
    db.execute("alter table expiry_threshold_config disable trigger expiry_threshold_config_validate")
    with pytest.raises(psycopg.errors.CheckViolation, match="expiry_threshold_config_valid"):
        db.execute("insert into expiry_threshold_config values (%s, true, '{400}')", (org_id,))
    assert db.execute("select count(*) from expiry_threshold_config").fetchone() == (0,)


def test_an_invalid_configuration_already_stored_is_skipped_and_the_other_organisations_run(db):
    hlf = mentor_expiring(db, expiring_on(RUN_DATE, 3))
    nhf_soon = mentor_expiring(db, expiring_on(RUN_DATE, 3), org="NHF")
    nhf_lapsed = mentor_expiring(db, expiring_on(RUN_DATE, -1), org="NHF")
    plant_thresholds(db, "NHF", "{2147483647}")
    assert db.execute("select threshold_days, threshold_problem from organization_expiry_thresholds"
                      " where organization_code = 'NHF'").fetchone() == (
        None, "thresholds are at most 365 days, got 2147483647")

    result = run_nightly_expiry(db, RUN_DATE, sent_on=RUN_DATE)

    assert result.reminders.skipped == {"NHF": "thresholds are at most 365 days, got 2147483647"}
    assert reminders_of(db, hlf) == [(7, RUN_DATE + timedelta(days=3))]
    assert reminders_of(db, nhf_soon) == []
    assert status_of(db, nhf_lapsed) == "expired_cert"  # the rest of NHF's night ran
    stored = db.execute("select threshold_days::text from expiry_threshold_config").fetchone()
    assert stored == ("{2147483647}",)  # kept for the coordinator to fix, not rewritten


def test_the_migration_keeps_a_row_saved_under_the_old_rule(admin_url, tmp_path):
    """A {400} saved before this rule must neither fail the migration nor be lost."""
    from mentor_pipeline.db.connection import with_database
    from mentor_pipeline.db.migrate import MIGRATIONS_DIR, discover, migrate
    from tests.support.db import create_database, drop_database

    for migration in discover():
        if migration.version < "20261125000200":
            (tmp_path / migration.path.name).write_text(migration.sql)
    name = create_database(admin_url)
    try:
        url = with_database(admin_url, name)
        migrate(url, tmp_path, with_app_standin=True)
        with psycopg.connect(url, autocommit=True) as conn:
            save(conn, "NHF", [400])
            migrate(url, MIGRATIONS_DIR)
            assert conn.execute("select threshold_days::text from expiry_threshold_config").fetchone() == ("{400}",)
            assert conn.execute("select threshold_problem from organization_expiry_thresholds").fetchone() == (
                "thresholds are at most 365 days, got 400",)
            assert conn.execute("select convalidated from pg_constraint"
                                " where conname = 'expiry_threshold_config_valid'").fetchone() == (False,)
            with pytest.raises(psycopg.errors.CheckViolation, match="at most 365 days, got 500"):
                save(conn, "NHF", [500])
    finally:
        drop_database(admin_url, name)


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
