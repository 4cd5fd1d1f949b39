-- The outbox and the website listing rule (desired-state sync, level-triggered). One SQL rule
-- says what the website should show per mentor key (website_listing_rule); every change that can
-- alter it marks the mentor in the outbox (sync_queue) through one enqueue function
-- (queue_website_sync), in the same transaction as the change; the processor (20_queue.sql)
-- writes whatever the rule says at the moment of writing. docs/design/sync.md explains it.
--
-- Here: the trigger events, a mentor's most recent certification, the rule, the outbox table and
-- its audit trail, the one enqueue, the triggers on the app's tables that call it, the re-check
-- notes, and the clock that marks certifications lapsing with no write to any table.
--
-- The pipeline applies on top of the app's existing tables (organizations, chapters, mentors,
-- certifications): it never creates them. docs/design/schema-contract.md lists what it reads,
-- the triggers it adds and the roles it expects.

-- ---------------------------------------------------------------------------------------------
-- Why a sync_queue row exists: one list, used by the column's check and by the triggers.

-- Every source of change the outbox knows. The first two are the app's own; the rest are
-- written by triggers and by the pipeline (queue_website_sync checks who may use which).
create function sync_trigger_events()
returns text[]
language sql
immutable
as $$
    select array['status_change', 'manual_coordinator_action', 'nightly_expiry', 'reconciliation', 'force_sync',
                 'certification_change', 'certification_lapsed', 'mentor_deleted', 'organization_change',
                 'chapter_change', 'dynamics_drift']
$$;

-- The events an app role (anon, authenticated) may name; the others only the pipeline may.
create function sync_app_events()
returns text[]
language sql
immutable
as $$
    select array['status_change', 'manual_coordinator_action']
$$;

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
-- The outbox

-- The transactional outbox. 'pending' rows wait for the processor; 'processing' rows are
-- leased (locked_until) so a crashed processor's rows come back on their own. The mentor key
-- outlives the mentor row (no foreign key): a deleted mentor's pending change must survive the
-- delete, or the contact stays published.
create table sync_queue (
    id bigint generated always as identity primary key,
    mentor_id uuid not null,
    operation text not null
        constraint sync_queue_operation_check check (operation in ('add', 'remove', 'restore')),
    triggered_by_event text not null default 'status_change'
        constraint sync_queue_triggered_by_event_check check (triggered_by_event = any (sync_trigger_events())),
    status text not null default 'pending'
        constraint sync_queue_status_check check (status in ('pending', 'processing', 'done', 'dead', 'superseded')),
    attempts integer not null default 0,
    available_at timestamptz not null default now(),
    locked_until timestamptz,
    last_error text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    processed_at timestamptz,
    -- A claim stamps its rows with a fresh token. Outcomes and lease extensions only touch rows
    -- that still carry the caller's token, so a processor whose lease ran out (and whose rows
    -- another processor took over) can never overwrite the newer processor's record.
    lease_token uuid
);
-- An append-only log on the app's side: every change appends its own row with a plain INSERT,
-- which waits on no other transaction, so the outbox never makes an app transaction wait or
-- deadlock. The idempotency guard sits on the pipeline's side: the claim takes a mentor's newest
-- waiting row and absorbs the others (one write per mentor per drain, however many changes
-- wait), and at most one row per mentor is in flight (20_queue.sql).
-- A mentor's waiting changes, for the claim that absorbs them and the per-mentor questions.
create index sync_queue_pending_mentor on sync_queue (mentor_id) where status = 'pending';
-- (The claim protocol's indexes: 20_queue.sql.)

-- "A change is waiting": its sync_queue row is queued or in flight. One definition, used by every
-- function that asks and by the pipeline's own queries (mentor_pipeline.vocabulary.QueueStatus.WAITING
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

-- The audit trail of status transitions. It outlives the mentor row too, and each status change
-- pays no foreign-key checks (each a key-share row lock on mentors and organizations) for its
-- audit row: the trigger takes both ids from the row being changed.
create table mentor_status_audit (
    id bigint generated always as identity primary key,
    mentor_id uuid not null,
    organization_id uuid not null,
    old_status text not null,
    new_status text not null,
    triggered_by_event text not null,
    -- The sync operation enqueued for the website, or null when nothing was enqueued.
    sync_operation text,
    warning text,
    changed_at timestamptz not null default now()
);
create index mentor_status_audit_mentor on mentor_status_audit (mentor_id, changed_at);

-- ---------------------------------------------------------------------------------------------
-- The one enqueue

-- The event a change is marked with: the transaction's `mentor_pipeline.triggered_by_event`
-- when set, else p_default. App roles may only name the app's own events, so the audit trail
-- cannot be forged from the app; an unknown event fails the statement (nothing changes).
create function sync_event(p_default text)
returns text
language plpgsql
stable
-- No pinned search_path (names are qualified): the triggers call it on every status change, and a
-- SET clause costs a configuration save and restore per call.
as $$
declare
    event text := current_setting('mentor_pipeline.triggered_by_event', true);
begin
    if event is null or event = '' then
        return p_default;
    end if;
    if not event = any (public.sync_trigger_events()) then
        raise exception 'invalid mentor_pipeline.triggered_by_event %: use one of %', quote_literal(event),
            public.sync_trigger_events()
            using errcode = 'check_violation';
    end if;
    -- SECURITY DEFINER changes current_user, not the `role` setting that SET ROLE (PostgREST) made.
    if current_setting('role') in ('anon', 'authenticated') and event <> p_default
       and not event = any (public.sync_app_events()) then
        raise exception 'mentor_pipeline.triggered_by_event % is reserved for the pipeline: the app may mark % only',
            quote_literal(event), public.sync_app_events()
            using errcode = 'insufficient_privilege';
    end if;
    return event;
end
$$;

-- Mark mentors for a website write: one appended row per mentor key, due at p_at (the claim
-- coalesces a mentor's waiting rows). p_operation says what the change asked for (the seeds' remove /
-- restore); null derives it from the rule (add when the mentor should be listed, else remove).
-- Either way the processor writes the rule's answer at the moment of writing. Returns how many
-- mentors were marked. Callers choose which keys concern the website. The rule is asked at p_at
-- and the row is due at p_at.
create function queue_website_sync(p_mentor_ids uuid[], p_event text, p_operation text default null,
                                              p_at timestamptz default now())
returns integer
language plpgsql
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
        insert into public.sync_queue (mentor_id, operation, triggered_by_event, available_at)
        select d.mentor_id, case when d.should_be_listed then 'add' else 'remove' end, p_event, p_at
          from public.website_desired_listing(p_mentor_ids, p_at) d
         where d.mentor_id is not null;
    elsif cardinality(p_mentor_ids) = 1 and p_mentor_ids[1] is not null then
        -- One key with the caller's operation (the status trigger, on every status change).
        insert into public.sync_queue (mentor_id, operation, triggered_by_event, available_at)
        values (p_mentor_ids[1], p_operation, p_event, p_at);
    else
        -- The caller's operation for a set of keys: no read of the rule.
        insert into public.sync_queue (mentor_id, operation, triggered_by_event, available_at)
        select distinct u.id, p_operation, p_event, p_at
          from unnest(p_mentor_ids) u(id)
         where u.id is not null;
    end if;
    get diagnostics marked = row_count;
    return marked;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- The sources of change

-- Status changes. The seeds' three cases: paused/expired_cert -> remove; a reinstatement (active
-- after paused/expired_cert) -> restore only when the most recent certification is valid now,
-- otherwise no write, a warning in the audit trail and a re-check note (below). Every other
-- transition (onboarding -> active, active -> retired, a status the app adds later) asks the rule,
-- as every other source of change does: the website follows the rule for every status value.
-- Mentors of organisations with website sync only. Every status change writes its audit row.
-- SECURITY DEFINER with a pinned search_path: the app updates statuses as Supabase's
-- `authenticated` role, which cannot touch sync_queue, yet the enqueue must still happen in the
-- same transaction. Callers mark their updates with
-- `set local mentor_pipeline.triggered_by_event = '...'` (default 'status_change').
create function enqueue_website_sync()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
declare
    event text := sync_event('status_change');
    wanted_operation text;
    warning_text text;
    enqueued_operation text;
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

    if exists (select 1 from organizations o where o.id = new.organization_id and o.website_sync_enabled) then
        if wanted_operation is not null then
            if queue_website_sync(array[new.id], event, wanted_operation) > 0 then
                enqueued_operation := wanted_operation;
            end if;
        elsif warning_text is not null then
            -- A renewal committed meanwhile would have found the mentor still paused.
            insert into website_sync_rechecks (event, mentor_ids) values (event, array[new.id]);
        else
            -- Any other transition: the rule's answer (add or remove) for this mentor now, as the
            -- row just appended says.
            perform queue_website_sync(array[new.id], event);
            select q.operation into enqueued_operation
              from sync_queue q where q.mentor_id = new.id and q.status = 'pending'
             order by q.id desc
             limit 1;
        end if;
    end if;

    insert into mentor_status_audit (mentor_id, organization_id, old_status, new_status, triggered_by_event, sync_operation, warning)
    values (new.id, new.organization_id, old.status, new.status, event, enqueued_operation, warning_text);
    return null;
end
$$;

create trigger mentors_enqueue_website_sync
after update of status on mentors
for each row
when (old.status is distinct from new.status)
execute function enqueue_website_sync();

-- A mentor moved to another chapter or organisation: the page groups by chapter, and the
-- organisation decides whether the mentor is listed at all.
create function enqueue_mentor_move()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
    if exists (select 1 from organizations o
                where o.id in (old.organization_id, new.organization_id) and o.website_sync_enabled)
       or exists (select 1 from website_listing_state w where w.mentor_id = new.id) then
        perform queue_website_sync(array[new.id], sync_event('chapter_change'));
    end if;
    return null;
end
$$;

create trigger mentors_enqueue_move
after update of chapter_id, organization_id on mentors
for each row
when (old.chapter_id is distinct from new.chapter_id or old.organization_id is distinct from new.organization_id)
execute function enqueue_mentor_move();

-- A deleted mentor: the key stays in the outbox and the contact is unlisted (never deleted).
create function enqueue_mentor_deletion()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
    perform queue_website_sync(array(
        select g.id from gone g
         where exists (select 1 from organizations o where o.id = g.organization_id and o.website_sync_enabled)
            or exists (select 1 from website_listing_state w where w.mentor_id = g.id)), sync_event('mentor_deleted'), 'remove');
    return null;
end
$$;

create trigger mentors_enqueue_deletion
after delete on mentors
referencing old table as gone
for each statement
execute function enqueue_mentor_deletion();

-- Certifications inserted, edited or deleted: one statement-level trigger per kind (transition
-- tables), one enqueue per statement whatever its size.
create function enqueue_certification_change()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
declare
    changed uuid[];
begin
    if tg_op = 'INSERT' then
        select array_agg(distinct n.mentor_id) into changed from new_rows n;
    elsif tg_op = 'DELETE' then
        select array_agg(distinct o.mentor_id) into changed from old_rows o;
    else
        select array_agg(distinct x.mentor_id) into changed
          from (select mentor_id from new_rows union all select mentor_id from old_rows) x;
    end if;
    -- Mentors of organisations with website sync; a mentor deleted with its certifications
    -- (cascade) was marked by the deletion trigger already.
    perform queue_website_sync(array(
        select m.id from mentors m
          join organizations o on o.id = m.organization_id and o.website_sync_enabled
         where m.id = any (changed)), sync_event('certification_change'));
    return null;
end
$$;

create trigger certifications_enqueue_insert
after insert on certifications
referencing new table as new_rows
for each statement
execute function enqueue_certification_change();

create trigger certifications_enqueue_update
after update on certifications
referencing old table as old_rows new table as new_rows
for each statement
execute function enqueue_certification_change();

create trigger certifications_enqueue_delete
after delete on certifications
referencing old table as old_rows
for each statement
execute function enqueue_certification_change();

-- An organisation's website sync switched on or off: all its mentors, in one statement.
create function enqueue_organization_change()
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

create trigger organizations_enqueue_sync_toggle
after update of website_sync_enabled on organizations
for each row
when (old.website_sync_enabled is distinct from new.website_sync_enabled)
execute function enqueue_organization_change();

-- A chapter renamed: its listed mentors show under the new name.
create function enqueue_chapter_rename()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
begin
    perform queue_website_sync(array(
        select m.id from mentors m
          join organizations o on o.id = m.organization_id and o.website_sync_enabled
         where m.chapter_id = new.id), sync_event('chapter_change'));
    return null;
end
$$;

create trigger chapters_enqueue_rename
after update of name on chapters
for each row
when (old.name is distinct from new.name)
execute function enqueue_chapter_rename();

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
          join organizations o on o.id = m.organization_id and o.website_sync_enabled
         where m.status = 'active'), 'certification_lapsed', null, p_at);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Row Level Security on the pipeline's tables, with no policies for anon/authenticated: they
-- see and change nothing there. The app's tables, their RLS and policies belong to the app. The
-- pipeline connects as the owner (or service_role), which bypasses RLS.

alter table sync_queue enable row level security;
alter table mentor_status_audit enable row level security;
alter table website_sync_rechecks enable row level security;
alter table website_sync_clock enable row level security;

revoke all on sync_queue, mentor_status_audit, website_sync_rechecks, website_sync_clock from anon, authenticated;
revoke all on mentor_latest_certification, mentor_website_desired_state from anon, authenticated;
-- Under Supabase's default grants the app roles get every sequence created in public: nextval or
-- setval on sync_queue_id_seq would let any signed-in user break every later status change.
revoke all on sequence sync_queue_id_seq, mentor_status_audit_id_seq, website_sync_rechecks_id_seq
from anon, authenticated;
-- PUBLIC too: PostgreSQL grants EXECUTE to everyone on every new function. The triggers run as
-- their owner (SECURITY DEFINER); the pipeline is the owner or service_role.
revoke execute on function
    sync_trigger_events(),
    sync_app_events(),
    sync_change_waiting(text),
    listing_matches_rule(boolean, text, boolean, text),
    latest_certification(uuid, timestamptz),
    latest_certifications(timestamptz),
    has_valid_certification(uuid, timestamptz),
    website_listing_rule(timestamptz),
    website_desired_listing(uuid[], timestamptz),
    sync_event(text),
    queue_website_sync(uuid[], text, text, timestamptz),
    enqueue_website_sync(),
    enqueue_mentor_move(),
    enqueue_mentor_deletion(),
    enqueue_certification_change(),
    enqueue_organization_change(),
    enqueue_chapter_rename(),
    recheck_website_sync(timestamptz),
    enqueue_certification_clock(timestamptz)
from public, anon, authenticated;
