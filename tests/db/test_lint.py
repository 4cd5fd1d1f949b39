"""Database lint rules for every object the pipeline creates (the app's own tables, from
supabase/app_standin/, are the app's business):

* each foreign key has an index that starts with its columns (else every delete of the row it
  points at scans the referencing table: Supabase's "unindexed foreign keys" lint);
* each function either pins its search_path or names every table, view and function it uses
  with its schema (else a caller's search_path can redirect it: "function search path mutable");
* each view is security_invoker (else it reads with its owner's rights and bypasses the caller's
  row level security: "security definer view").
"""

from __future__ import annotations

import re

APP_TABLES = {"organizations", "chapters", "mentors", "certifications"}
PIPELINE_SCHEMAS = ("public", "auth")


def test_every_foreign_key_of_the_pipeline_is_indexed(db):
    unindexed = db.execute(
        """
        select c.conrelid::regclass::text || ' (' || c.conname || ')'
          from pg_constraint c
         where c.contype = 'f'
           and c.connamespace = 'public'::regnamespace
           and c.conrelid::regclass::text <> all (%s)
           and not exists (
               select from pg_index i
                where i.indrelid = c.conrelid
                  and (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                  and (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
         order by 1
        """, (sorted(APP_TABLES),)).fetchall()
    assert [row[0] for row in unindexed] == []


def pipeline_functions(db) -> list[tuple[str, str, list[str] | None]]:
    """(signature, body, config) of every function in the pipeline's schemas, not an extension's."""
    return db.execute(
        """
        select p.oid::regprocedure::text, p.prosrc, p.proconfig
          from pg_proc p
         where p.pronamespace = any (%s::text[]::regnamespace[])
           and not exists (select from pg_depend d where d.objid = p.oid and d.deptype = 'e')
         order by 1
        """, (list(PIPELINE_SCHEMAS),)).fetchall()


def unqualified_names(body: str, names: set[str]) -> list[str]:
    """Names of project tables, views and functions used in `body` without a schema."""
    code = re.sub(r"--[^\n]*", "", body)  # comments
    code = re.sub(r"'(?:[^']|'')*'", "''", code)  # string literals
    return sorted({m.group(1) for m in re.finditer(r"(?<![.\w])(\w+)\b(?!\s*\.)", code) if m.group(1) in names}
                  - {"p_at"})


def test_every_function_pins_its_search_path_or_qualifies_every_name(db):
    names = {row[0] for row in db.execute(
        """
        select c.relname from pg_class c where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'v', 'p')
        union
        select p.proname from pg_proc p where p.pronamespace = 'public'::regnamespace
        """)}
    mutable = {}
    for signature, body, config in pipeline_functions(db):
        if any(setting.startswith("search_path=") for setting in config or []):
            continue
        found = unqualified_names(body, names)
        if found:
            mutable[signature] = found
    assert mutable == {}


def test_the_lint_finds_an_unqualified_name():
    names = {"mentors", "oslo_date"}
    assert unqualified_names("select oslo_date(x) from public.mentors -- mentors", names) == ["oslo_date"]
    assert unqualified_names("select public.oslo_date(m.x) from mentors m", names) == ["mentors"]
    assert unqualified_names("select 'mentors', public.oslo_date(x)", names) == []


def test_every_view_is_security_invoker(db):
    definer = db.execute(
        """
        select c.oid::regclass::text from pg_class c
         where c.relkind in ('v', 'm') and c.relnamespace = any (%s::text[]::regnamespace[])
           and not coalesce('security_invoker=true' = any (c.reloptions), false)
         order by 1
        """, (list(PIPELINE_SCHEMAS),)).fetchall()
    assert [row[0] for row in definer] == []
