-- The website listing rule (desired-state sync, level-triggered): what the public website should
-- show per mentor key, at any moment. Every change that can alter the answer marks the mentor in
-- the outbox (11_outbox.sql) through the sources of change (21_sources.sql) and the clock
-- (22_clock.sql); the drain (20_queue.sql) writes whatever the rule says at the moment of
-- writing. docs/design/sync.md explains it.
--
-- Here: a mentor's most recent certification, the rule, the rule per mentor key, and the one
-- comparison of a listing with the rule.
--
-- The pipeline applies on top of the app's existing tables (organizations, chapters, mentors,
-- certifications): it never creates them. docs/design/schema-contract.md lists what it reads,
-- the triggers it adds and the roles it expects.

-- ---------------------------------------------------------------------------------------------
-- A mentor's most recent certification

-- The pipeline's own indexes on the app's tables: the per-organisation passes and "a mentor's
-- most recent certification" are index lookups. Not the status: an index that holds it makes
-- every status update of the app write every index of mentors (no HOT update).
create index mentors_organization on mentors (organization_id);
create index certifications_mentor_recent on certifications (mentor_id, issued_at desc, expires_at desc, id desc);

-- A mentor's most recent certification at a moment: the latest issued by then (ties: the later
-- expiry). A certification recorded in advance does not count before its issued_at. The probe
-- form for one mentor (inlined into a LATERAL join: one index probe per mentor).
create function latest_certification(p_mentor_id uuid, p_at timestamptz)
returns table (certification_id uuid, issued_at timestamptz, expires_at timestamptz)
language sql
stable
as $$
    select c.id, c.issued_at, c.expires_at
      from public.certifications c
     where c.mentor_id = p_mentor_id and c.issued_at <= p_at
     order by c.issued_at desc, c.expires_at desc, c.id desc
     limit 1
$$;

-- The bulk form of the same definition for the million-row nightly passes (a hash join beats a
-- million probes). tests/db/test_desired_state.py proves both forms agree. The nightly transition
-- asks it at its own time. A plain SQL function: inlined, so the plans are the view's.
create function latest_certifications(p_at timestamptz)
returns table (mentor_id uuid, certification_id uuid, issued_at timestamptz, expires_at timestamptz)
language sql
stable
as $$
    select distinct on (c.mentor_id) c.mentor_id, c.id, c.issued_at, c.expires_at
      from public.certifications c
     where c.issued_at <= p_at
     order by c.mentor_id, c.issued_at desc, c.expires_at desc, c.id desc
$$;

-- The one definition of "a mentor's most recent certification" now: every rule that needs it in
-- bulk reads this view.
create view mentor_latest_certification with (security_invoker = true) as
select mentor_id, certification_id, issued_at, expires_at from latest_certifications(now());

-- Schema-qualified instead of a pinned search_path, so the planner can inline it (the
-- trigger calls it on every reinstatement).
create function has_valid_certification(p_mentor_id uuid, p_at timestamptz default now())
returns boolean
language sql
stable
as $$
    select coalesce((select lc.expires_at > p_at from public.latest_certification(p_mentor_id, p_at) lc), false)
$$;

-- ---------------------------------------------------------------------------------------------
-- The rule

-- THE rule: what the public website should show for each mentor of the app at p_at. Listed
-- when the organisation has website sync, the status is active and the most recent
-- certification is valid at p_at; the chapter name is what the page groups by; `reason` says
-- why a mentor is not listed. Everything that asks "should this mentor be listed" reads this
-- (through mentor_website_desired_state or website_desired_listing); nothing restates it.
create function website_listing_rule(p_at timestamptz)
returns table (
    mentor_id uuid,
    organization_id uuid,
    organization_code text,
    website_sync_enabled boolean,
    chapter_id uuid,
    chapter_name text,
    full_name text,
    status text,
    certification_expires_at timestamptz,
    should_be_listed boolean,
    reason text
)
language sql
stable
as $$
    select m.id, m.organization_id, o.code, o.website_sync_enabled, m.chapter_id, ch.name, m.full_name, m.status,
           c.expires_at,
           o.website_sync_enabled and m.status = 'active' and coalesce(c.expires_at > p_at, false),
           case
               when not o.website_sync_enabled then 'organisation ' || o.code || ' has no website sync'
               when m.status <> 'active' then 'status ' || m.status
               when c.expires_at is null then 'no certification'
               when c.expires_at <= p_at then 'certification lapsed ' || public.oslo_date(c.expires_at)
           end
      from public.mentors m
      join public.organizations o on o.id = m.organization_id
      left join public.chapters ch on ch.id = m.chapter_id
      left join lateral public.latest_certification(m.id, p_at) c on true
$$;

-- The rule now, for every mentor in the app (all organisations).
create view mentor_website_desired_state with (security_invoker = true) as
select * from website_listing_rule(now());

-- The rule per mentor KEY, including keys whose mentor no longer exists in the app (never
-- listed). The processor, force sync and reconciliation ask this for the keys they hold.
create function website_desired_listing(p_mentor_ids uuid[], p_at timestamptz default now())
returns table (
    mentor_id uuid,
    in_app boolean,
    organization_code text,
    full_name text,
    status text,
    chapter_name text,
    certification_expires_at timestamptz,
    should_be_listed boolean,
    reason text
)
language sql
stable
as $$
    select k.id, r.mentor_id is not null, r.organization_code, r.full_name, r.status, r.chapter_name,
           r.certification_expires_at, coalesce(r.should_be_listed, false),
           coalesce(r.reason, 'no longer in the app')
      from (select distinct unnest(p_mentor_ids) as id) k
      left join public.website_listing_rule(p_at) r on r.mentor_id = k.id
$$;

-- ---------------------------------------------------------------------------------------------
-- The one comparison of a listing with the rule

-- "The listing Dynamics shows matches the rule": the same listed flag and, for a listing, the
-- same chapter (the public page groups by it; an unlisted contact's chapter shows nowhere). One
-- definition for everything that compares a listing with the rule: the re-check notes below,
-- the drift watch (70_drift_watch.sql), reconciliation_app_state (whose confirmed_matches
-- reconciliation's settle step and divergence check read) and website_sync_status. Null when
-- nothing is known of the listing (p_listed null). Inlined by the planner like the one above.
create function listing_matches_rule(p_listed boolean, p_chapter text, p_should_be_listed boolean,
                                     p_rule_chapter text)
returns boolean
language sql
immutable
parallel safe
as $$
    select case when p_listed is not null
                then p_listed = p_should_be_listed
                     and (not p_should_be_listed or p_chapter is not distinct from p_rule_chapter) end
$$;

-- ---------------------------------------------------------------------------------------------
-- Privileges: the app roles read none of this. PUBLIC too: PostgreSQL grants EXECUTE to everyone
-- on every new function; the pipeline is the owner or service_role.

revoke all on mentor_latest_certification, mentor_website_desired_state from anon, authenticated;
revoke execute on function
    latest_certification(uuid, timestamptz),
    latest_certifications(timestamptz),
    has_valid_certification(uuid, timestamptz),
    website_listing_rule(timestamptz),
    website_desired_listing(uuid[], timestamptz),
    listing_matches_rule(boolean, text, boolean, text)
from public, anon, authenticated;
