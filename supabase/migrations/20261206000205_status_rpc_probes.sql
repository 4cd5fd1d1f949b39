-- The dashboard's status RPC reads one mentor's waiting rows, not all of sync_queue (issue 23):
-- "a change is waiting" as one test on the pair of statuses matched neither partial index, so
-- every call scanned the whole queue (a week of finished rows before the archive).
-- Same signature: CREATE OR REPLACE keeps the grants. Current body: supabase/schemas/60_coordinators.sql.

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
        -- One probe per partial index (pending, processing: sync_change_waiting's pair), which
        -- the pair as one test matches neither of: it read all of sync_queue per call.
        select w.operation, w.created_at
          from (select q.id, q.operation, q.created_at from sync_queue q
                 where q.mentor_id = target.id and q.status = 'pending'
                union all
                select q.id, q.operation, q.created_at from sync_queue q
                 where q.mentor_id = target.id and q.status = 'processing') w
         order by w.id desc
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
