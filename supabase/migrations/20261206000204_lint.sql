-- Database lint rules (issue 23; Supabase's Security Advisor lints), kept for every object by
-- tests/db/test_lint.py:
-- * a foreign key without an index: every delete of a certification scanned cert_expiry_reminders;
-- * functions with unqualified names and no pinned search_path (a caller's search_path could
--   redirect them): the names are now schema-qualified. Not a pinned search_path: a SET clause
--   stops the planner from inlining these SQL functions, which the nightly million-row passes
--   rely on;
-- * a view that read with its owner's rights: open_incidents is security_invoker like the others.
-- Same signatures: CREATE OR REPLACE keeps the grants and the views that use them. Current
-- definitions: supabase/schemas/00_dates.sql, 30_expiry.sql, 50_incidents.sql.

create index cert_expiry_reminders_certification on cert_expiry_reminders (certification_id);

create or replace function certification_valid_as_of(p_expires_at timestamptz, p_run_date date)
returns boolean
language sql
immutable
parallel safe
as $$
    select p_expires_at > public.expiry_run_start(p_run_date)
$$;

create or replace function certification_days_left(p_expires_at timestamptz, p_run_date date)
returns integer
language sql
immutable
parallel safe
as $$
    select case when isfinite(p_expires_at) then public.oslo_date(p_expires_at) - p_run_date end
$$;

create or replace function certification_state_as_of(p_run_date date, p_at timestamptz default now())
returns table (
    mentor_id uuid,
    organization_id uuid,
    chapter_id uuid,
    status text,
    certification_id uuid,
    certification_expires_at timestamptz,
    certification_expiry_date date,
    days_left integer,
    valid_as_of_run_date boolean,
    bucket text
)
language sql
stable
as $$
    select
        m.id,
        m.organization_id,
        m.chapter_id,
        m.status,
        l.certification_id,
        l.expires_at,
        public.oslo_date(l.expires_at),
        public.certification_days_left(l.expires_at, p_run_date),
        coalesce(public.certification_valid_as_of(l.expires_at, p_run_date), false),
        case
            when l.mentor_id is null then 'no_certification'
            when l.expires_at <= public.expiry_run_start(p_run_date) then 'expired'
            when l.expires_at < public.expiry_run_start(p_run_date + 7) then 'lt_7_days'
            when l.expires_at < public.expiry_run_start(p_run_date + 14) then 'lt_14_days'
            when l.expires_at < public.expiry_run_start(p_run_date + 30) then 'lt_30_days'
            else 'ok'
        end
    from public.mentors m
    left join public.latest_certifications(least(p_at, public.expiry_run_start(p_run_date))) l on l.mentor_id = m.id
$$;

create or replace function active_mentors_without_certification()
returns table (mentor_id uuid, full_name text, organization_code text, chapter_name text)
language sql
stable
as $$
    select m.id, m.full_name, o.code, ch.name
    from public.mentors m
    join public.organizations o on o.id = m.organization_id
    left join public.chapters ch on ch.id = m.chapter_id
    where m.status = 'active'
      and not exists (select from public.certifications c where c.mentor_id = m.id)
$$;

alter view open_incidents set (security_invoker = true);
