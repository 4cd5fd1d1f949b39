-- "A change is waiting": its sync_queue row is queued or in flight. One definition, used by every
-- function below and by the pipeline's own queries (mentor_pipeline.vocabulary.QueueStatus.WAITING
-- is the same pair; tests/db/test_vocabulary.py compares them).
--
-- A plain immutable SQL expression: the planner inlines it, so every query plans exactly as it
-- did with the literal list. PARALLEL SAFE because the planner decides about parallel plans
-- before it inlines anything: an unmarked function would rule them out for the whole query.
create function sync_change_waiting(p_status text)
returns boolean
language sql
immutable
parallel safe
as $$
    select p_status in ('pending', 'processing')
$$;

-- The functions that wrote the pair out, again with the one definition (bodies otherwise
-- unchanged; CREATE OR REPLACE keeps their grants).

create or replace function reconciliation_app_state(p_mentor_ids uuid[] default null, p_at timestamptz default now())
returns table (mentor_id uuid, status text, should_be_listed boolean, chapter_name text,
               confirmed_listed boolean, in_queue boolean)
language sql
stable
set search_path = public, pg_temp
as $$
    select d.mentor_id,
           d.status,
           d.should_be_listed,
           d.chapter_name,
           w.listed,
           exists (select 1 from sync_queue q
                    where q.mentor_id = d.mentor_id and sync_change_waiting(q.status))
      from website_listing_rule(p_at) d
      left join website_listing_state w on w.mentor_id = d.mentor_id
     where d.website_sync_enabled
       and (p_mentor_ids is null or d.mentor_id = any (p_mentor_ids))
$$;

create or replace function unresolved_dead_sync_rows(p_older_than interval default interval '1 day',
                                                     p_at timestamptz default now())
returns table (id bigint, mentor_id uuid, operation text, triggered_by_event text, attempts integer,
               last_error text, processed_at timestamptz)
language sql
stable
set search_path = public, pg_temp
as $$
    select q.id, q.mentor_id, q.operation, q.triggered_by_event, q.attempts, q.last_error, q.processed_at
      from sync_queue q
     where q.status = 'dead'
       and q.processed_at < p_at - p_older_than
       and not exists (select 1 from sync_queue n
                        where n.mentor_id = q.mentor_id and n.id > q.id
                          and (n.status = 'done' or sync_change_waiting(n.status)))
     order by q.processed_at
$$;

-- What a break-glass drain left undone (20261125000300_incidents.sql explains the columns), now
-- at p_at like every function that decides by time.
drop function sync_queue_left(timestamptz);
create function sync_queue_left(p_since timestamptz, p_at timestamptz default now())
returns table (due_untried bigint, retry_pending bigint, next_retry_at timestamptz, leased bigint,
               leased_until timestamptz, expired_leases bigint, dead_since bigint)
language sql
stable
set search_path = public, pg_temp
as $$
    select count(*) filter (where status = 'pending' and available_at <= p_at and attempts = 0),
           count(*) filter (where status = 'pending' and (attempts > 0 or available_at > p_at)),
           min(available_at) filter (where status = 'pending' and (attempts > 0 or available_at > p_at)),
           count(*) filter (where status = 'processing' and locked_until >= p_at),
           max(locked_until) filter (where status = 'processing' and locked_until >= p_at),
           count(*) filter (where status = 'processing' and locked_until < p_at),
           count(*) filter (where status = 'dead' and processed_at >= p_since)
      from sync_queue
     where sync_change_waiting(status)
        or (status = 'dead' and processed_at >= p_since)
$$;

create or replace function website_sync_status(mentor_id uuid)
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
        select d.should_be_listed from mentor_website_desired_state d
         where d.mentor_id = target.id and d.website_sync_enabled
    ),
    waiting as (
        select q.operation, q.created_at
          from sync_queue q
         where q.mentor_id = target.id and sync_change_waiting(q.status)
         order by q.id desc
         limit 1
    ),
    confirmed as (
        select w.listed, w.last_synced_at from website_listing_state w where w.mentor_id = target.id
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
               when c.listed = (select should_be_listed from wanted) then 'in_sync'
               else 'differs'
           end
      from (select 1) one
      left join confirmed c on true;
end
$$;

-- Privileges: the app roles run none of these (website_sync_status keeps its grant to
-- authenticated: CREATE OR REPLACE leaves privileges as they were).
revoke execute on function
    sync_change_waiting(text),
    sync_queue_left(timestamptz, timestamptz)
from public, anon, authenticated;
