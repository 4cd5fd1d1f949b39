-- The clock: what changes the rule's answer with no write to any table (a certification that
-- lapses, one recorded in advance that takes effect), and the re-check notes of changes that
-- decided "nothing to write" on what their snapshot showed. The drain path's tick
-- (website_sync_tick, 20_queue.sql) calls both.

-- ---------------------------------------------------------------------------------------------
-- Changes that decided "nothing to write" on what their snapshot showed: notes for a later tick.
--
-- Every change marks its own key, so the drain writes the rule's answer after it commits; two
-- triggers, though, decide not to mark from what their snapshot shows of ANOTHER transaction's
-- data, and that transaction may commit a moment later, having marked its keys as it saw them:
--   * every trigger marks a change only for organisations with website sync. A change made while
--     an organisation's switch to website sync was uncommitted marked nothing, and the switch
--     marked the mentors without that change: a drain writing the switch's rows before the change
--     committed left a mentor paused, deleted or moved meanwhile listed (a renewed one unlisted);
--   * a reinstatement without a valid certification writes nothing (a warning in the audit). The
--     tick's move decides that (move_status_changes, 21_sources.sql) after the reinstatement
--     committed, but a renewal still uncommitted then was written as "not listed" if its own
--     trigger ran while the mentor was still paused: an active, certified mentor stayed unlisted.
-- Both lasted until the nightly reconciliation. Waiting for the other transaction is not an
-- option (the app never waits on the pipeline, and a lock here would also be a deadlock risk), so
-- such a change leaves a note, and the drain path's tick marks its keys once more when every
-- transaction that could have run alongside it has ended: the first tick that sees the note (its
-- transaction has committed) records the transactions still in progress, since any of them that
-- decided without seeing it had its id by then; a later tick, when none of them is in progress,
-- marks again the keys such a change may have raced, through the one enqueue, whose rule read
-- now sees what they committed (recheck_website_sync, below). The claim absorbs the second mark
-- into a row still waiting. Switching website sync off needs no note: a change that saw it
-- still on marked itself, and one that saw it off needs no write.

create table website_sync_rechecks (
    id bigint generated always as identity primary key,  -- append-only: a note never waits on a tick
    event text not null,
    mentor_ids uuid[] not null,                     -- the keys to mark again
    organization_id uuid,                           -- and this organisation's mentors by then (a switch)
    waits_for xid8[],                               -- null until a tick saw the note committed
    created_at timestamptz not null default now()
);

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
                                      else not listing_matches_rule(s.listed, s.chapter_name, d.should_be_listed,
                                                                    d.chapter_name)
                                 end);
            marked := marked + queue_website_sync(keys, note.event, null, p_at);
            delete from website_sync_rechecks where id = note.id;
        end if;
    end loop;
    return marked;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Time: a certification that lapses (or one recorded in advance that takes effect) changes the
-- rule's answer with no write to any table. The drain path calls enqueue_certification_clock
-- every poll: it marks the mentors whose certification crossed expires_at or issued_at since the
-- watermark, by two index range scans, never a scan of all mentors.

create table website_sync_clock (
    id boolean primary key default true constraint website_sync_clock_one_row check (id),
    checked_until timestamptz not null
);
insert into website_sync_clock (checked_until) values (now());

create index certifications_issued_at on certifications (issued_at);
-- (certifications_expires_at: 30_expiry.sql.)

create function enqueue_certification_clock(p_at timestamptz default now())
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
    -- The crossed keys joined (one index probe each, or one hash), not `m.id = any (crossed)`,
    -- which the planner may answer with a scan of every mentor searching the array per row.
    return queue_website_sync(array(
        select m.id from unnest(crossed) c(id)
          join mentors m on m.id = c.id
         where m.status = 'active' and exists (select from public.mentor_concerns_website(m.id, m.organization_id))),
        'certification_lapsed', null, p_at);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Row Level Security and privileges: the app roles see and run none of this.

alter table website_sync_rechecks enable row level security;
alter table website_sync_clock enable row level security;

revoke all on website_sync_rechecks, website_sync_clock from anon, authenticated;
revoke all on sequence website_sync_rechecks_id_seq from anon, authenticated;
revoke execute on function
    recheck_website_sync(timestamptz),
    enqueue_certification_clock(timestamptz)
from public, anon, authenticated;
