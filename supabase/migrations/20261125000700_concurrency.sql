-- Concurrency under READ COMMITTED: races between the pipeline's processes and the app's own
-- transactions, each proven by a two-session test in tests/db/test_races.py.

-- ---------------------------------------------------------------------------------------------
-- Changes that decided "nothing to write" on what their snapshot showed.
--
-- Every change marks its own key, so the drain writes the rule's answer after it commits; two
-- triggers, though, decide not to mark from what their snapshot shows of ANOTHER transaction's
-- data, and that transaction may commit a moment later, having marked its keys as it saw them:
--   * every trigger marks a change only for organisations with website sync. A change made while
--     an organisation's switch to website sync was uncommitted marked nothing, and the switch
--     marked the mentors without that change: a drain writing the switch's rows before the change
--     committed left a mentor paused, deleted or moved meanwhile listed (a renewed one unlisted);
--   * a reinstatement without a valid certification writes nothing (a warning in the audit). A
--     renewal committed while the reinstatement was uncommitted was written as "not listed" (the
--     mentor was still paused), and then the reinstatement committed: an active, certified
--     mentor stayed unlisted.
-- Both lasted until the nightly reconciliation. Waiting for the other transaction is not an
-- option (the app never waits on the pipeline, and a lock here would also be a deadlock risk), so
-- such a change leaves a note, and the drain path's tick marks its keys once more when every
-- transaction that could have run alongside it has ended: the first tick that sees the note (its
-- transaction has committed) records the transactions still in progress, since any of them that
-- decided without seeing it had its id by then; a later tick, when none of them is in progress,
-- marks the keys through the one enqueue, whose rule read now sees what they committed. A row
-- still pending absorbs the second mark. Switching website sync off needs no note: a change that
-- saw it still on marked itself, and one that saw it off needs no write.

create table website_sync_rechecks (
    id bigint generated always as identity primary key,  -- append-only: a note never waits on a tick
    event text not null,
    mentor_ids uuid[] not null,                     -- the keys to mark again
    organization_id uuid,                           -- and this organisation's mentors by then (a switch)
    waits_for xid8[],                               -- null until a tick saw the note committed
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
    event text := sync_event('organization_change');
begin
    perform queue_website_sync(keys, event);
    if new.website_sync_enabled then
        insert into website_sync_rechecks (event, mentor_ids, organization_id) values (event, keys, new.id);
    end if;
    return null;
end
$$;

-- As in 20261125000100_desired_state.sql, plus the note of a reinstatement without a valid
-- certification (a rare path: the common ones write nothing more).
create or replace function enqueue_website_sync()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
declare
    event text := sync_event('status_change');
    wanted_operation text;
    warning_text text;
    enqueued integer := 0;
begin
    if new.status in ('paused', 'expired_cert') then
        wanted_operation := 'remove';
    elsif new.status = 'active' and old.status in ('paused', 'expired_cert') then
        -- Reinstated: the status alone proves nothing; the most recent certification decides.
        if has_valid_certification(new.id) then
            wanted_operation := 'restore';
        else
            warning_text := 'reinstated without a valid certification: website listing not restored';
        end if;
    end if;

    if (wanted_operation is not null or warning_text is not null)
       and exists (select 1 from organizations o where o.id = new.organization_id and o.website_sync_enabled) then
        if wanted_operation is not null then
            enqueued := queue_website_sync(array[new.id], event, wanted_operation);
        else
            -- A renewal committed meanwhile would have found the mentor still paused.
            insert into website_sync_rechecks (event, mentor_ids) values (event, array[new.id]);
        end if;
    end if;

    insert into mentor_status_audit (mentor_id, organization_id, old_status, new_status, triggered_by_event, sync_operation, warning)
    values (new.id, new.organization_id, old.status, new.status, event,
            case when enqueued > 0 then wanted_operation end, warning_text);
    return null;
end
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

create or replace function website_sync_tick(p_at timestamptz default now())
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

alter table website_sync_rechecks enable row level security;
revoke all on website_sync_rechecks from anon, authenticated;
revoke all on sequence website_sync_rechecks_id_seq from anon, authenticated;
revoke execute on function recheck_website_sync(timestamptz) from public, anon, authenticated;
