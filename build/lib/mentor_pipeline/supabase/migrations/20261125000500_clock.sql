-- A clock the callers control. Every function that decides by time takes that time as its last
-- argument, p_at, defaulting to now(): production leaves it out, the tests pass the moment they
-- want (a lease run out, a backoff passed, a certification lapsed) instead of waiting for it.
-- Old signatures are dropped, not overloaded: a call that leaves the time out resolves to the
-- new function and gets now(), as before. Bookkeeping columns (created_at, updated_at,
-- archived_at) stay on the wall clock; decisions and what they are compared with later
-- (available_at, locked_until, processed_at, last_synced_at) use p_at.

-- ---------------------------------------------------------------------------------------------
-- The most recent certification, in bulk, at a moment. The view is this at now(); the nightly
-- transition asks it at its own time. A plain SQL function: inlined, so the plans are the view's.

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

create or replace view mentor_latest_certification with (security_invoker = true) as
select mentor_id, certification_id, issued_at, expires_at from latest_certifications(now());

-- ---------------------------------------------------------------------------------------------
-- The one enqueue, at a moment: the rule is asked at p_at and the row is due at p_at.

drop function queue_website_sync(uuid[], text, text);
create function queue_website_sync(p_mentor_ids uuid[], p_event text, p_operation text default null,
                                   p_at timestamptz default now())
returns integer
language plpgsql
-- Neither SECURITY DEFINER nor a pinned search_path: every caller already runs as the owner
-- (the triggers, the pipeline, the coordinator RPC), the app roles cannot call it, and a SET
-- clause costs a configuration save and restore on every status change. Names are qualified.
as $$
declare
    marked integer;
begin
    if not p_event = any (public.sync_trigger_events()) then
        raise exception 'unknown triggered_by_event %: use one of %', quote_literal(p_event), public.sync_trigger_events()
            using errcode = 'check_violation';
    end if;
    if p_operation is null then
        -- The rule's answer for all the keys in one set-based read (an organisation toggle marks
        -- 100,000 at once).
        insert into public.sync_queue as q (mentor_id, operation, triggered_by_event, available_at)
        select d.mentor_id, case when d.should_be_listed then 'add' else 'remove' end, p_event, p_at
          from public.website_desired_listing(p_mentor_ids, p_at) d
         where d.mentor_id is not null
        on conflict (mentor_id) where status = 'pending' do update
            set operation = excluded.operation,
                triggered_by_event = excluded.triggered_by_event,
                attempts = 0,
                -- least(): an already-due row keeps its value, so its index entry need not move.
                available_at = least(q.available_at, p_at),
                last_error = null,
                updated_at = now();
    else
        -- The caller's operation (the status trigger, on every status change): a plain upsert,
        -- no read of the rule, so the outbox costs one write.
        insert into public.sync_queue as q (mentor_id, operation, triggered_by_event, available_at)
        select distinct u.id, p_operation, p_event, p_at
          from unnest(p_mentor_ids) u(id)
         where u.id is not null
        on conflict (mentor_id) where status = 'pending' do update
            set operation = excluded.operation,
                triggered_by_event = excluded.triggered_by_event,
                attempts = 0,
                available_at = least(q.available_at, p_at),
                last_error = null,
                updated_at = now();
    end if;
    get diagnostics marked = row_count;
    return marked;
end
$$;

create or replace function enqueue_certification_clock(p_at timestamptz default now())
returns integer
language plpgsql
set search_path = public, pg_temp
as $$
declare
    since timestamptz;
    crossed uuid[];
begin
    -- One checker at a time; a concurrent caller skips (the other one covers the window).
    select checked_until into since from website_sync_clock for update skip locked;
    if not found or since >= p_at then
        return 0;
    end if;
    select array_agg(distinct c.mentor_id) into crossed
      from (select mentor_id from certifications where expires_at > since and expires_at <= p_at
            union all
            select mentor_id from certifications where issued_at > since and issued_at <= p_at) c;
    update website_sync_clock set checked_until = p_at;
    if crossed is null then
        return 0;
    end if;
    return queue_website_sync(array(
        select m.id from mentors m
          join organizations o on o.id = m.organization_id and o.website_sync_enabled
         where m.id = any (crossed) and m.status = 'active'), 'certification_lapsed', null, p_at);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The queue protocol (20261123000300_sync.sql explains each step), at p_at.

drop function claim_sync_batch(integer, interval, uuid);
-- Claims that race each other each take their own rows. Choosing the candidates first (the
-- oldest due ids) and only then locking them with SKIP LOCKED would let a claim running while
-- another one still held those same candidates skip all of them and return nothing, so a drain
-- would end with "nothing due" while hundreds of rows were. So each kind of claimable row is
-- locked by the scan that picks it, so a locked row is passed over and the limit is filled from
-- the rows behind it. A row another claim took and committed meanwhile is re-checked on its
-- current version by FOR UPDATE and drops out (it is no longer pending).
create function claim_sync_batch(p_limit integer, p_lease interval, p_token uuid, p_at timestamptz default now())
returns setof sync_queue
language plpgsql
set search_path = public, pg_temp
as $$
declare
    tries integer := 0;
    claimed sync_queue[];
begin
    loop
        begin
            -- A stale lease for a mentor who has a newer pending row: the newer row carries
            -- the latest wanted state, so the stale one is superseded, never re-applied.
            update sync_queue s
               set status = 'superseded',
                   processed_at = p_at,
                   updated_at = now(),
                   locked_until = null,
                   lease_token = null,
                   last_error = 'lease expired; superseded by newer row ' || p.id
              from sync_queue p
             where s.status = 'processing'
               and s.locked_until < p_at
               and p.mentor_id = s.mentor_id
               and p.status = 'pending';

            with due as (
                select q.id
                  from sync_queue q
                 where q.status = 'pending'
                   and q.available_at <= p_at
                   -- one row per mentor in flight: a newer row waits for the current one
                   and not exists (select 1 from sync_queue p
                                    where p.mentor_id = q.mentor_id and p.status = 'processing')
                 order by q.id
                 limit p_limit
                   for update skip locked
            ),
            lease_ran_out as (
                select q.id
                  from sync_queue q
                 where q.status = 'processing'
                   and q.locked_until < p_at
                 order by q.id
                 limit p_limit
                   for update skip locked
            ),
            c as (
                select id from due
                union all
                select id from lease_ran_out
                order by id
                limit p_limit
            ),
            updated as (
                update sync_queue q
                   set status = 'processing',
                       locked_until = p_at + p_lease,
                       lease_token = p_token,
                       -- a lease that ran out means a processor died holding this row: that
                       -- counts as an attempt, so a row that kills its processor ends up dead
                       attempts = q.attempts + case when q.status = 'processing' then 1 else 0 end,
                       last_error = case when q.status = 'processing'
                                         then 'lease expired before the outcome was recorded (processor stopped?)'
                                         else q.last_error end,
                       updated_at = now()
                  from c
                 where q.id = c.id
                returning q.*
            )
            select coalesce(array_agg(u order by u.id), '{}') into claimed from updated u;
            exit;
        exception when unique_violation then
            -- Another transaction put a row of one of these mentors in flight (or queued a
            -- newer pending row) between our snapshot and our update. Look again.
            tries := tries + 1;
            if tries >= 5 then
                raise;
            end if;
        end;
    end loop;
    return query select * from unnest(claimed);
end
$$;

drop function extend_sync_lease(uuid, interval);
create function extend_sync_lease(p_token uuid, p_lease interval, p_at timestamptz default now())
returns integer
language sql
set search_path = public, pg_temp
as $$
    with extended as (
        update sync_queue
           set locked_until = p_at + p_lease
         where status = 'processing' and lease_token = p_token
        returning 1
    )
    select count(*)::integer from extended
$$;

drop function record_sync_outcomes(uuid, jsonb, integer, interval, interval);
create function record_sync_outcomes(
    p_token uuid,
    p_results jsonb,
    p_max_attempts integer,
    p_backoff_base interval,
    p_backoff_max interval,
    p_at timestamptz default now())
returns table (id bigint, mentor_id uuid, status text, attempts integer, available_at timestamptz,
               last_error text, processed_at timestamptz)
language plpgsql
set search_path = public, pg_temp
as $$
#variable_conflict use_column
declare
    tries integer := 0;
    recorded jsonb;
begin
    loop
        begin
            with r as (
                select x.id, x.outcome, x.error, x.listed, x.chapter, coalesce(x.consume_attempt, true) as consume_attempt
                  from jsonb_to_recordset(p_results)
                       as x(id bigint, outcome text, error text, listed boolean, chapter text, consume_attempt boolean)
            ),
            mine as (
                select q.id, q.mentor_id, r.outcome, r.error, r.listed, r.chapter,
                       q.attempts + case when r.outcome = 'retry' and r.consume_attempt then 1 else 0 end as new_attempts,
                       exists (select 1 from sync_queue p
                                where p.mentor_id = q.mentor_id and p.status = 'pending') as newer_pending
                  from sync_queue q
                  join r on r.id = q.id
                 where q.status = 'processing' and q.lease_token = p_token
                   for update of q
            ),
            decided as (
                select m.*,
                       case
                           when m.outcome in ('done', 'dead', 'superseded') then m.outcome
                           when m.outcome = 'retry' and m.new_attempts >= p_max_attempts then 'dead'
                           when m.outcome in ('retry', 'release') and m.newer_pending then 'superseded'
                           when m.outcome in ('retry', 'release') then 'pending'
                       end as new_status
                  from mine m
            ),
            updated as (
                update sync_queue q
                   set status = d.new_status,
                       attempts = d.new_attempts,
                       locked_until = null,
                       lease_token = null,
                       updated_at = now(),
                       processed_at = case when d.new_status = 'pending' then null else p_at end,
                       available_at = case
                           when d.new_status <> 'pending' then q.available_at
                           when d.outcome = 'retry' and d.new_attempts > 0 then
                               p_at + least(p_backoff_max, p_backoff_base * power(2, d.new_attempts - 1))
                           else p_at
                       end,
                       last_error = case
                           when d.new_status = 'done' then d.error
                           when d.outcome = 'retry' and d.new_status = 'dead' then
                               format('gave up after %s attempts: %s', d.new_attempts, d.error)
                           when d.outcome in ('retry', 'release') and d.new_status = 'superseded' then
                               coalesce(d.error || '; ', '') || 'superseded by a newer queued change'
                           else coalesce(d.error, q.last_error)
                       end
                  from decided d
                 where q.id = d.id
                returning q.id, q.mentor_id, q.status, q.attempts, q.available_at, q.last_error, q.processed_at
            ),
            listing as (
                -- The confirmed write is what the website listing now is.
                insert into website_listing_state as w (mentor_id, listed, chapter_name, last_synced_at, last_queue_id, updated_at)
                select d.mentor_id, d.listed, d.chapter, p_at, d.id, now()
                  from decided d
                 where d.new_status = 'done' and d.listed is not null
                on conflict (mentor_id) do update
                    set listed = excluded.listed,
                        chapter_name = coalesce(excluded.chapter_name, w.chapter_name),
                        last_synced_at = excluded.last_synced_at,
                        last_queue_id = excluded.last_queue_id,
                        updated_at = excluded.updated_at
            )
            select coalesce(jsonb_agg(to_jsonb(u) order by u.id), '[]'::jsonb) into recorded from updated u;
            exit;
        exception when unique_violation then
            -- The outbox trigger queued a newer pending row between our check and our update:
            -- decide again, now seeing it.
            tries := tries + 1;
            if tries >= 5 then
                raise;
            end if;
        end;
    end loop;
    return query
        select x.id, x.mentor_id, x.status, x.attempts, x.available_at, x.last_error, x.processed_at
          from jsonb_to_recordset(recorded)
               as x(id bigint, mentor_id uuid, status text, attempts integer, available_at timestamptz,
                    last_error text, processed_at timestamptz);
end
$$;

drop function archive_sync_queue(interval, interval, integer);
create function archive_sync_queue(
    p_done_retention interval default interval '7 days',
    p_dead_retention interval default interval '90 days',
    p_limit integer default 5000,
    p_at timestamptz default now())
returns integer
language sql
set search_path = public, pg_temp
as $$
    with old as (
        select id from sync_queue
         where (status in ('done', 'superseded') and processed_at < p_at - p_done_retention)
            or (status = 'dead' and processed_at < p_at - p_dead_retention)
         order by processed_at
         limit p_limit
           for update skip locked
    ),
    moved as (
        delete from sync_queue q using old where q.id = old.id
        returning q.id, q.mentor_id, q.operation, q.triggered_by_event, q.status, q.attempts, q.available_at,
                  q.locked_until, q.last_error, q.created_at, q.updated_at, q.processed_at, q.lease_token
    ),
    archived as (
        insert into sync_queue_archive (id, mentor_id, operation, triggered_by_event, status, attempts,
                                        available_at, locked_until, last_error, created_at, updated_at,
                                        processed_at, lease_token)
        select * from moved
        on conflict (id) do nothing
        returning 1
    )
    select count(*)::integer from moved
$$;

-- website_sync_tick calls this: dropped with it and made again below.
drop function website_sync_tick(timestamptz);
drop function sync_queue_due();
create function sync_queue_due(p_at timestamptz default now())
returns table (due_count bigint, max_due_id bigint, expired_leases bigint)
language sql
stable
set search_path = public, pg_temp
as $$
    select (select count(*) from sync_queue where status = 'pending' and available_at <= p_at),
           (select max(id) from sync_queue where status = 'pending' and available_at <= p_at),
           (select count(*) from sync_queue where status = 'processing' and locked_until < p_at)
$$;

-- Marks the keys of the notes whose concurrent transactions have all ended; returns how many it
-- marked. The tick calls it; one ticker per note (SKIP LOCKED), the others pass over it.
create function recheck_website_sync(p_at timestamptz default now())
returns integer
language plpgsql
set search_path = public, pg_temp
as $$
declare
    note website_sync_rechecks;
    keys uuid[];
    marked integer := 0;
begin
    for note in select * from website_sync_rechecks order by id for update skip locked loop
        if note.waits_for is null then
            update website_sync_rechecks set waits_for = array(select pg_snapshot_xip(pg_current_snapshot()))
             where id = note.id;
        elsif not exists (select from unnest(note.waits_for) x where pg_xact_status(x) = 'in progress') then
            keys := array(select unnest(note.mentor_ids)
                          union
                          select m.id from mentors m where m.organization_id = note.organization_id);
            -- Only the keys a change may have raced: those Dynamics was last confirmed to show
            -- differently from the rule's answer now, and those with a write in flight (its rule
            -- read may predate the change). The keys whose write went out with the right answer
            -- (most of an organisation switched on) need no second write, and a key never written
            -- needs one only to be listed.
            keys := array(select d.mentor_id
                            from website_desired_listing(keys, p_at) d
                            left join website_listing_state s on s.mentor_id = d.mentor_id
                           where exists (select from sync_queue q where q.mentor_id = d.mentor_id and q.status = 'processing')
                              or case when s.mentor_id is null then d.should_be_listed
                                      else s.listed <> d.should_be_listed
                                           or (d.should_be_listed and s.chapter_name is distinct from d.chapter_name)
                                 end);
            marked := marked + queue_website_sync(keys, note.event, null, p_at);
            delete from website_sync_rechecks where id = note.id;
        end if;
    end loop;
    return marked;
end
$$;

create function website_sync_tick(p_at timestamptz default now())
returns table (clock_marked integer, due_count bigint, max_due_id bigint, expired_leases bigint)
language plpgsql
set search_path = public, pg_temp
as $$
declare
    marked integer := enqueue_certification_clock(p_at) + recheck_website_sync(p_at);
begin
    return query select marked, d.due_count, d.max_due_id, d.expired_leases from sync_queue_due(p_at) d;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Reconciliation and its dead-row check, at p_at.

drop function reconciliation_app_state(uuid[]);
create function reconciliation_app_state(p_mentor_ids uuid[] default null, p_at timestamptz default now())
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
                    where q.mentor_id = d.mentor_id and q.status in ('pending', 'processing'))
      from website_listing_rule(p_at) d
      left join website_listing_state w on w.mentor_id = d.mentor_id
     where d.website_sync_enabled
       and (p_mentor_ids is null or d.mentor_id = any (p_mentor_ids))
$$;

drop function unresolved_dead_sync_rows(interval);
create function unresolved_dead_sync_rows(p_older_than interval default interval '1 day', p_at timestamptz default now())
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
                          and n.status in ('done', 'pending', 'processing'))
     order by q.processed_at
$$;

-- ---------------------------------------------------------------------------------------------
-- The nightly transition, at p_at: it refuses a cut-off after p_at, and the most recent
-- certification is the one issued by p_at (a renewal recorded by then keeps the mentor active).

drop function expire_mentors_with_lapsed_certifications(timestamptz);
create function expire_mentors_with_lapsed_certifications(p_as_of timestamptz, p_at timestamptz default now())
returns table (mentor_id uuid)
language plpgsql
set search_path = public, pg_temp
-- The pass over all mentors hashes the latest certifications: keep it in memory, and in one
-- process (a parallel plan recomputes the latest certifications in every worker).
set work_mem = '64MB'
set max_parallel_workers_per_gather = 0
as $$
declare
    previous_event text := current_setting('mentor_pipeline.triggered_by_event', true);
    candidates uuid[];
begin
    if p_as_of is null or p_at is null or p_as_of > p_at then
        raise exception 'refusing to expire certifications as of %: that is in the future (the time is %)',
            coalesce(p_as_of::text, 'null'), coalesce(p_at::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;

    -- One transition run at a time; a concurrent run waits and then finds nothing left to do.
    perform pg_advisory_xact_lock(hashtext('mentor_pipeline.expire_mentors_with_lapsed_certifications'));

    -- One pass over all mentors finds and locks the candidates (in id order) ...
    select array_agg(locked.id) into candidates
    from (
        select m.id
        from mentors m
        join latest_certifications(p_at) l on l.mentor_id = m.id
        where m.status = 'active' and l.expires_at <= p_as_of
        order by m.id
        -- NO KEY UPDATE, which the status UPDATE below takes anyway. FOR UPDATE would also block
        -- the key-share lock every certification INSERT takes on its mentor: a renewal waiting
        -- here while this transition waited for the renewal's transaction (another mentor's
        -- outbox row) was a deadlock that cancelled the app's renewal (tests/db/test_races.py).
        for no key update of m
    ) locked;
    if candidates is null then
        return;
    end if;

    -- ... and only then decides, in the UPDATE below, with a fresh snapshot. Under READ
    -- COMMITTED an UPDATE that waits on a row rechecks that row but not the certifications it
    -- saw: a coordinator who just committed a new certification together with a change to the
    -- mentor would otherwise be expired on stale data.
    perform set_config('mentor_pipeline.triggered_by_event', 'nightly_expiry', true);

    return query
    update mentors m
    set status = 'expired_cert', updated_at = now()
    where m.id = any(candidates)
      and m.status = 'active'
      and exists (select from latest_certifications(p_at) l where l.mentor_id = m.id and l.expires_at <= p_as_of)
    returning m.id;

    -- Leave the caller's transaction as we found it.
    perform set_config('mentor_pipeline.triggered_by_event', coalesce(previous_event, ''), true);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Privileges: as before, the app roles run none of these.

revoke execute on function
    latest_certifications(timestamptz),
    queue_website_sync(uuid[], text, text, timestamptz),
    enqueue_certification_clock(timestamptz),
    recheck_website_sync(timestamptz),
    claim_sync_batch(integer, interval, uuid, timestamptz),
    extend_sync_lease(uuid, interval, timestamptz),
    record_sync_outcomes(uuid, jsonb, integer, interval, interval, timestamptz),
    archive_sync_queue(interval, interval, integer, timestamptz),
    sync_queue_due(timestamptz),
    website_sync_tick(timestamptz),
    reconciliation_app_state(uuid[], timestamptz),
    unresolved_dead_sync_rows(interval, timestamptz),
    expire_mentors_with_lapsed_certifications(timestamptz, timestamptz)
from public, anon, authenticated;
