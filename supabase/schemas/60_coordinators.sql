-- Coordinators in the app: who coordinates which organisation, and the two functions the
-- coordinator dashboard calls through PostgREST (`supabase.rpc(...)` as `authenticated`):
--   request_website_sync(mentor_id)  the "Sync to website" button
--   website_sync_status(mentor_id)   what the website should show, shows, and by when
-- Both are allowed only for a coordinator of the mentor's organisation (SQLSTATE 42501 for
-- anyone else). docs/coordinators.md explains the button to coordinators.

-- Supabase's auth.uid(): the user id (`sub`) from the JWT claims PostgREST puts in
-- `request.jwt.claims` for each request. Supabase provides it; elsewhere (embedded and plain
-- PostgreSQL, the tests) a stand-in that reads the claims the same way.
do $$
begin
    if not exists (select 1 from pg_proc p join pg_namespace n on n.oid = p.pronamespace
                    where n.nspname = 'auth' and p.proname = 'uid') then
        create schema if not exists auth;
        create function auth.uid()
        returns uuid
        language sql
        stable
        as $f$
            select coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
            )::uuid
        $f$;
        grant usage on schema auth to anon, authenticated, service_role;
        grant execute on function auth.uid() to anon, authenticated, service_role;
    end if;
end
$$;

-- Who coordinates which organisation. The app's administrators (service_role) maintain it;
-- user_id is the Supabase Auth user (auth.users.id).
create table coordinators (
    user_id uuid not null,
    organization_id uuid not null references organizations (id) on delete cascade,
    created_at timestamptz not null default now(),
    primary key (user_id, organization_id)
);
create index coordinators_organization on coordinators (organization_id);

-- On Supabase, a deleted Auth user stops being a coordinator with it.
do $$
begin
    if to_regclass('auth.users') is not null then
        alter table coordinators
            add constraint coordinators_user_id_fkey foreign key (user_id) references auth.users (id) on delete cascade;
    end if;
end
$$;

alter table coordinators enable row level security;
revoke all on coordinators from anon, authenticated;
-- A signed-in user may see their own rows (the dashboard shows the button to coordinators only).
grant select on coordinators to authenticated;
create policy coordinators_read_own on coordinators for select to authenticated
    using (user_id = (select auth.uid()));

-- Who pressed the button, when, for which mentor, and which queue row it wrote.
create table website_sync_requests (
    id bigint generated always as identity primary key,
    mentor_id uuid not null references mentors (id) on delete cascade,
    requested_by uuid not null,
    queue_id bigint,
    requested_at timestamptz not null default now()
);
create index website_sync_requests_mentor on website_sync_requests (mentor_id, requested_at);
alter table website_sync_requests enable row level security;
revoke all on website_sync_requests from anon, authenticated;
-- Supabase's default grants give the app roles every new sequence: a setval would break the button.
revoke all on sequence website_sync_requests_id_seq from anon, authenticated;

-- How long Power Pages may keep showing the old listing after a confirmed Dataverse write.
create function portal_cache_delay()
returns interval
language sql
immutable
as $$ select interval '15 minutes' $$;

-- The mentor, if the signed-in user coordinates the mentor's organisation; 42501 otherwise.
-- An unknown mentor gets the same error, so the answer never tells whether an id exists.
create function coordinated_mentor(p_mentor_id uuid)
returns mentors
language plpgsql
stable
set search_path = public, pg_temp
as $$
declare
    uid uuid := auth.uid();
    found mentors;
begin
    select m.* into found
      from mentors m
     where m.id = p_mentor_id
       and uid is not null
       and exists (select 1 from coordinators c where c.user_id = uid and c.organization_id = m.organization_id);
    if found.id is null then
        raise exception 'not allowed: only a coordinator of the mentor''s organisation can do this'
            using errcode = 'insufficient_privilege',
                  hint = 'Sign in as a coordinator of that organisation, or ask an administrator to add you to coordinators.';
    end if;
    return found;
end
$$;

-- Mark the mentor for a website write through the one enqueue function (queue_website_sync):
-- the processor writes what the rule says when it writes; a second request while a change waits
-- returns that change (no second row). Nothing for a mentor whose organisation has no website.
-- Returns the newest waiting row.
create function coordinator_enqueue(p_mentor_id uuid)
returns setof sync_queue
language plpgsql
set search_path = public, pg_temp
as $$
begin
    if not exists (select 1 from mentor_website_desired_state d
                    where d.mentor_id = p_mentor_id and d.website_sync_enabled) then
        return;
    end if;
    -- A change that waits untried and due is written at the next drain: asking again returns it.
    -- A retry waiting out its backoff gets a new row, due now, which the claim absorbs it into.
    if not exists (select 1 from sync_queue q
                    where q.mentor_id = p_mentor_id and q.status = 'pending' and q.attempts = 0
                      and q.available_at <= now()) then
        perform queue_website_sync(array[p_mentor_id], 'manual_coordinator_action');
    end if;
    return query select * from sync_queue q where q.mentor_id = p_mentor_id and q.status = 'pending'
                  order by q.id desc limit 1;
end
$$;

-- The "Sync to website" button: queue this mentor's write now. Returns the queued row; asking
-- again while it waits returns the same row. Called as `authenticated`; SECURITY DEFINER
-- because that role cannot touch sync_queue.
create function request_website_sync(mentor_id uuid)
returns table (queue_id bigint, operation text, triggered_by_event text, status text, available_at timestamptz)
language plpgsql
security definer
set search_path = public, pg_temp
as $$
#variable_conflict use_column
declare
    target mentors := coordinated_mentor(request_website_sync.mentor_id);
    queued sync_queue;
begin
    select * into queued from coordinator_enqueue(target.id);
    if queued.id is null then
        raise exception 'nothing to sync: % does not list its mentors on a website',
            (select o.name from organizations o where o.id = target.organization_id)
            using errcode = 'invalid_parameter_value';
    end if;
    insert into website_sync_requests (mentor_id, requested_by, queue_id) values (target.id, auth.uid(), queued.id);
    return query select queued.id, queued.operation, queued.triggered_by_event, queued.status, queued.available_at;
end
$$;

-- For the dashboard: what the app wants on the website, what Dynamics last confirmed and when,
-- whether a change is waiting, and by when the public page shows it.
--   wanted_listed     the app's wish (mentor_website_desired_state); null: no website
--   confirmed_listed  the listing Dynamics last confirmed; null: never written by the pipeline
--   confirmed_at      when that write was confirmed
--   change_waiting    a queued or in-flight write exists, or a status change the tick has not
--                     moved yet; waiting_operation says which write (null for such a change)
--   public_page_by    confirmed_at + the portal cache, when nothing waits; null while a change
--                     waits (the page shows it within ~15 min after its write, seconds away)
--   state             website_off | waiting | in_sync | differs | never_synced (in_sync: the
--                     confirmed flag and chapter match the rule, listing_matches_rule)
create function website_sync_status(mentor_id uuid)
returns table (wanted_listed boolean, confirmed_listed boolean, confirmed_at timestamptz,
               change_waiting boolean, waiting_operation text, waiting_since timestamptz,
               public_page_by timestamptz, state text)
language plpgsql
stable
security definer
set search_path = public, pg_temp
as $$
#variable_conflict use_column
declare
    target mentors := coordinated_mentor(website_sync_status.mentor_id);
begin
    return query
    with wanted as (
        select d.should_be_listed, d.chapter_name from mentor_website_desired_state d
         where d.mentor_id = target.id and d.website_sync_enabled
    ),
    waiting as (
        -- One probe per partial index (pending, processing: sync_change_waiting's pair), which
        -- the pair as one test matches neither of: it read all of sync_queue per call.
        select w.operation, w.created_at
          from (select false as in_inbox, q.id, q.operation, q.created_at from sync_queue q
                 where q.mentor_id = target.id and q.status = 'pending'
                union all
                select false, q.id, q.operation, q.created_at from sync_queue q
                 where q.mentor_id = target.id and q.status = 'processing'
                union all
                -- A status change the tick has not moved yet (seconds; its operation is decided
                -- then): newer than any queue row. The inbox holds seconds of changes: no index.
                select true, i.id, null, i.changed_at from mentor_status_inbox i
                 where i.mentor_id = target.id) w
         order by w.in_inbox desc, w.id desc
         limit 1
    ),
    confirmed as (
        select w.listed, w.chapter_name, w.last_synced_at from website_listing_state w where w.mentor_id = target.id
    )
    select (select should_be_listed from wanted),
           c.listed,
           c.last_synced_at,
           exists (select 1 from waiting),
           (select operation from waiting),
           (select created_at from waiting),
           case when not exists (select 1 from waiting) then c.last_synced_at + portal_cache_delay() end,
           case
               when not exists (select 1 from wanted) then 'website_off'
               when exists (select 1 from waiting) then 'waiting'
               when c.listed is null then 'never_synced'
               when (select listing_matches_rule(c.listed, c.chapter_name, w.should_be_listed, w.chapter_name)
                       from wanted w) then 'in_sync'
               else 'differs'
           end
      from (select 1) one
      left join confirmed c on true;
end
$$;

revoke execute on function portal_cache_delay() from public, anon, authenticated;
revoke execute on function coordinated_mentor(uuid) from public, anon, authenticated;
revoke execute on function coordinator_enqueue(uuid) from public, anon, authenticated;
revoke execute on function request_website_sync(uuid) from public, anon;
revoke execute on function website_sync_status(uuid) from public, anon;
grant execute on function request_website_sync(uuid), website_sync_status(uuid) to authenticated;
