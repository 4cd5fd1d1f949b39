-- The merge of two changes to the same two functions: the settle step's and the coordinator
-- status's probes of sync_queue's partial indexes (20261206000200, 20261206000205) and the one
-- comparison of a confirmed listing with the rule (20261206000300), which re-created both from
-- their earlier text. Both now have both.

create or replace function reconciliation_app_state(p_mentor_ids uuid[] default null, p_at timestamptz default now())
returns table (mentor_id uuid, status text, should_be_listed boolean, chapter_name text,
               confirmed_listed boolean, in_queue boolean, confirmed_matches boolean)
language sql
stable
set search_path = public, pg_temp
as $$
    select d.mentor_id,
           d.status,
           d.should_be_listed,
           d.chapter_name,
           w.listed,
           exists (select 1 from sync_queue q where q.mentor_id = d.mentor_id and q.status = 'pending')
           or exists (select 1 from sync_queue q where q.mentor_id = d.mentor_id and q.status = 'processing'),
           listing_matches_rule(w.listed, w.chapter_name, d.should_be_listed, d.chapter_name)
      from (select r.* from website_listing_rule(p_at) r where p_mentor_ids is null
            union all
            select r.* from (select distinct unnest(p_mentor_ids) as id) k
              join website_listing_rule(p_at) r on r.mentor_id = k.id) d
      left join website_listing_state w on w.mentor_id = d.mentor_id
     where d.website_sync_enabled
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
        select d.should_be_listed, d.chapter_name from mentor_website_desired_state d
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
