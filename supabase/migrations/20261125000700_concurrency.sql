-- Concurrency under READ COMMITTED: races between the pipeline's processes and the app's own
-- transactions, each proven by a two-session test in tests/db/test_races.py.

-- ---------------------------------------------------------------------------------------------
-- The nightly transition locks its candidates FOR NO KEY UPDATE, not FOR UPDATE.
--
-- FOR UPDATE also conflicts with the key-share lock every certification INSERT takes on its
-- mentor (the foreign key check). A renewal of a lapsed mentor's certification therefore waited
-- for the whole transition while that transition could itself wait for the renewal's transaction
-- (the outbox row of another mentor the same transaction had touched): a deadlock in which the
-- app's renewal, the first to wait, was the one PostgreSQL cancelled. NO KEY UPDATE is what the
-- UPDATE of the status takes anyway; it still waits for a transaction that changes the mentor
-- row itself, so the decision below still sees such a change once it commits. A renewal that
-- commits before the UPDATE keeps its mentor active; one still open then is a renewal after the
-- night (the mentor is expired and its coordinator reinstates them), exactly as if it came later.
create or replace function expire_mentors_with_lapsed_certifications(p_as_of timestamptz, p_at timestamptz default now())
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
-- An organisation switching website sync on, while the app changes one of its mentors.
--
-- Every trigger marks a change only for organisations with website sync, as its own snapshot
-- shows them. A change made while the switch was not yet committed saw the organisation without
-- website sync and marked nothing; the switch marked the organisation's mentors as its snapshot
-- showed them, without that change. When a drain wrote the switch's rows before the change
-- committed, nothing was left to write the change: a mentor paused (or deleted, or moved out)
-- meanwhile stayed listed, a renewed one stayed unlisted, until the nightly reconciliation.
--
-- The switch cannot see those changes and must not wait for them (the app never waits on the
-- pipeline). So it leaves a note, and the drain path's tick marks the same keys again, plus the
-- organisation's mentors by then, once every transaction that could have decided without seeing
-- the switch has ended: the first tick that sees the note (the switch has committed) records the
-- transactions still in progress, as any such transaction had its id before the switch
-- committed; a later tick, when none of them is in progress any more, marks the keys through
-- the one enqueue, whose rule read now sees what they committed. Rows the switch marked that are
-- still pending simply absorb the second mark. Switching off needs no note: a change that saw
-- website sync still on marked itself, and one that saw it off needs no write.

create table website_sync_switches (
    id bigint generated always as identity primary key,  -- append-only: the switch never waits on a tick
    organization_id uuid not null,
    mentor_ids uuid[] not null,      -- the keys the switch marked
    waits_for xid8[],                -- null until a tick saw the switch committed
    created_at timestamptz not null default now()
);

create or replace function enqueue_organization_change()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
declare
    keys uuid[] := array(select m.id from mentors m where m.organization_id = new.id);
begin
    perform queue_website_sync(keys, sync_event('organization_change'));
    if new.website_sync_enabled then
        insert into website_sync_switches (organization_id, mentor_ids) values (new.id, keys);
    end if;
    return null;
end
$$;

-- Marks the keys of the switches whose concurrent transactions have all ended; returns how many
-- it marked. The tick calls it; one ticker per note (SKIP LOCKED), the others pass over it.
create function recheck_website_sync_switches(p_at timestamptz default now())
returns integer
language plpgsql
set search_path = public, pg_temp
as $$
declare
    note record;
    marked integer := 0;
begin
    for note in select s.id, s.organization_id, s.mentor_ids, s.waits_for
                  from website_sync_switches s order by s.id for update skip locked loop
        if note.waits_for is null then
            update website_sync_switches
               set waits_for = array(select pg_snapshot_xip(pg_current_snapshot()))
             where id = note.id;
        elsif not exists (select from unnest(note.waits_for) x where pg_xact_status(x) = 'in progress') then
            marked := marked + queue_website_sync(array(
                select unnest(note.mentor_ids)
                union
                select m.id from mentors m where m.organization_id = note.organization_id), 'organization_change', null, p_at);
            delete from website_sync_switches where id = note.id;
        end if;
    end loop;
    return marked;
end
$$;

create or replace function website_sync_tick(p_at timestamptz default now())
returns table (clock_marked integer, due_count bigint, max_due_id bigint, expired_leases bigint)
language plpgsql
set search_path = public, pg_temp
as $$
declare
    marked integer := enqueue_certification_clock(p_at) + recheck_website_sync_switches(p_at);
begin
    return query select marked, d.due_count, d.max_due_id, d.expired_leases from sync_queue_due(p_at) d;
end
$$;

alter table website_sync_switches enable row level security;
revoke all on website_sync_switches from anon, authenticated;
revoke all on sequence website_sync_switches_id_seq from anon, authenticated;
revoke execute on function recheck_website_sync_switches(timestamptz) from public, anon, authenticated;
