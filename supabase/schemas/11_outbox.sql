-- The transactional outbox: sync_queue, an append-only log of changes that may need a website
-- write, its audit trail of status transitions, and the one enqueue every source of change
-- calls (queue_website_sync), in the same transaction as the change. The sources of change are
-- in 21_sources.sql, the drain's side of the queue in 20_queue.sql.

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

-- Every status change of the app, as its transaction made it, until the drain path's tick moves
-- it into the audit trail and the outbox (move_status_changes, 21_sources.sql). The status trigger
-- appends here and nowhere else: one plain insert into a table with only its primary key, the
-- cheapest write a trigger-based outbox can make, so a status change costs the app one write. The
-- audit row and the website row follow at the next tick (every poll, every drain).
create table mentor_status_inbox (
    id bigint generated always as identity primary key,
    mentor_id uuid not null,
    organization_id uuid not null,
    old_status text not null,
    new_status text not null,
    triggered_by_event text not null,
    changed_at timestamptz not null default now()
);

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
-- Row Level Security on the pipeline's tables, with no policies for anon/authenticated: they
-- see and change nothing there. The app's tables, their RLS and policies belong to the app. The
-- pipeline connects as the owner (or service_role), which bypasses RLS.

alter table sync_queue enable row level security;
alter table mentor_status_audit enable row level security;
alter table mentor_status_inbox enable row level security;

revoke all on sync_queue, mentor_status_audit, mentor_status_inbox from anon, authenticated;
-- Under Supabase's default grants the app roles get every sequence created in public: nextval or
-- setval on sync_queue_id_seq would let any signed-in user break every later status change.
revoke all on sequence sync_queue_id_seq, mentor_status_audit_id_seq, mentor_status_inbox_id_seq
    from anon, authenticated;
-- PUBLIC too: PostgreSQL grants EXECUTE to everyone on every new function. The triggers run as
-- their owner (SECURITY DEFINER); the pipeline is the owner or service_role.
revoke execute on function
    sync_trigger_events(),
    sync_app_events(),
    sync_change_waiting(text),
    sync_event(text),
    queue_website_sync(uuid[], text, text, timestamptz)
from public, anon, authenticated;
