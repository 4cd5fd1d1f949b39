"""anon and authenticated see, change and run none of the expiry tables, views and functions."""

from __future__ import annotations

import psycopg
import pytest

from tests.expiry.helpers import RUN_DATE, expiring_on, mentor_expiring, run_expiry_sql

RELATIONS = ["expiry_threshold_config", "certification_state_runs", "coordinator_notifications",
             "organization_expiry_thresholds", "certification_state"]
FUNCTIONS = [
    "select * from refresh_certification_state('2026-06-15')",
    "select * from create_expiry_reminders('2026-06-15')",
    "select * from expire_mentors_with_lapsed_certifications(now() - interval '1 day')",
    "select * from active_mentors_without_certification()",
]


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize("relation", RELATIONS)
def test_app_roles_cannot_read_expiry_relations(db_url, db, role, relation):
    mentor_expiring(db, expiring_on(RUN_DATE, 3))
    run_expiry_sql(db)
    with psycopg.connect(db_url) as conn:
        conn.execute(f"set role {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"select * from {relation}")


@pytest.mark.parametrize("role", ["anon", "authenticated"])
@pytest.mark.parametrize("call", FUNCTIONS, ids=lambda c: c.split("from ")[1].split("(")[0])
def test_app_roles_cannot_run_expiry_functions(db_url, role, call):
    with psycopg.connect(db_url) as conn:
        conn.execute(f"set role {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(call)
