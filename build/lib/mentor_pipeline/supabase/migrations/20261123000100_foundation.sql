-- Foundation: the website sync outbox (sync_queue) filled by a trigger in the same transaction
-- as the status change, and the audit trail of status transitions.
--
-- The pipeline's migrations apply on top of the app's existing tables (organizations, chapters,
-- mentors, certifications): they never create them. docs/design/schema-contract.md lists what
-- the pipeline reads, the triggers it adds and the roles it expects; the demo and the tests
-- create stand-in tables first (supabase/app_standin/, `db migrate --with-app-standin`).

-- The contract, checked before anything is created: one clear error naming everything missing.
do $$
declare
    missing text;
begin
    with required (table_name, column_name, data_type) as (values
        ('organizations', 'id', 'uuid'),
        ('organizations', 'code', 'text'),
        ('organizations', 'website_sync_enabled', 'boolean'),
        ('chapters', 'id', 'uuid'),
        ('chapters', 'organization_id', 'uuid'),
        ('chapters', 'name', 'text'),
        ('mentors', 'id', 'uuid'),
        ('mentors', 'organization_id', 'uuid'),
        ('mentors', 'chapter_id', 'uuid'),
        ('mentors', 'full_name', 'text'),
        ('mentors', 'status', 'text'),
        ('mentors', 'updated_at', 'timestamp with time zone'),
        ('certifications', 'id', 'uuid'),
        ('certifications', 'mentor_id', 'uuid'),
        ('certifications', 'issued_at', 'timestamp with time zone'),
        ('certifications', 'expires_at', 'timestamp with time zone')
    ),
    checked as (
        select r.*, to_regclass(format('public.%I', r.table_name)) as table_oid, a.attnum,
               format_type(a.atttypid, a.atttypmod) as actual_type
          from required r
          left join pg_attribute a
            on a.attrelid = to_regclass(format('public.%I', r.table_name))
           and a.attname = r.column_name and a.attnum > 0 and not a.attisdropped
    ),
    problems (ord, problem) as (
        select distinct 1, format('table public.%I', table_name) from checked where table_oid is null
        union all
        select 2, format('column public.%I.%I (%s)', table_name, column_name, data_type)
          from checked where table_oid is not null and attnum is null
        union all
        select 3, format('column public.%I.%I as %s (it is %s)', table_name, column_name, data_type, actual_type)
          from checked where attnum is not null and actual_type <> data_type
        union all
        -- The pipeline's own tables reference these ids: they must be unique.
        select 4, format('a primary key on public.%I (id)', c.table_name)
          from checked c
         where c.column_name = 'id' and c.attnum is not null
           and not exists (select 1 from pg_index i
                            where i.indrelid = c.table_oid and i.indisunique and i.indpred is null
                              and i.indnatts = 1 and i.indkey[0] = c.attnum)
        union all
        select 5, format('role %I', role_name)
          from unnest(array['anon', 'authenticated']) role_name
         where not exists (select 1 from pg_roles where rolname = role_name)
    )
    select string_agg(problem, ', ' order by ord, problem) into missing from problems;
    if missing is not null then
        raise exception 'the app''s database lacks what the pipeline needs: %. Add it to the app''s schema '
            '(docs/design/schema-contract.md), or for a demo or test database run '
            '`mentor-pipeline db migrate --with-app-standin`', missing
            using errcode = 'object_not_in_prerequisite_state';
    end if;
end
$$;

-- The pipeline's own indexes on the app's tables: the per-organisation passes and "a mentor's
-- most recent certification" are index lookups.
create index mentors_organization_status on mentors (organization_id, status);
create index certifications_mentor_recent on certifications (mentor_id, issued_at desc, expires_at desc, id desc);

-- The one definition of "a mentor's most recent certification": the latest issued
-- (ties: the later expiry). Every rule that needs it reads this view.
create view mentor_latest_certification with (security_invoker = true) as
select distinct on (mentor_id)
    mentor_id,
    id as certification_id,
    issued_at,
    expires_at
from certifications
order by mentor_id, issued_at desc, expires_at desc, id desc;

-- Schema-qualified instead of a pinned search_path, so the planner can inline it (the
-- trigger calls it on every reinstatement).
create function has_valid_certification(p_mentor_id uuid, p_at timestamptz default now())
returns boolean
language sql
stable
as $$
    select coalesce(
        (select lc.expires_at > p_at from public.mentor_latest_certification lc where lc.mentor_id = p_mentor_id),
        false)
$$;

-- What the public website should show: an organisation with website sync, an active mentor,
-- and a most recent certification that is still valid. Reconciliation compares against this.
create view mentor_website_desired_state with (security_invoker = true) as
select
    m.id as mentor_id,
    m.organization_id,
    m.chapter_id,
    m.status,
    c.expires_at as certification_expires_at,
    (m.status = 'active' and coalesce(c.expires_at > now(), false)) as should_be_listed
from mentors m
join organizations o on o.id = m.organization_id and o.website_sync_enabled
left join mentor_latest_certification c on c.mentor_id = m.id;

-- Why a sync_queue row exists. One list, used by the column's check and by the trigger.
create function sync_trigger_events()
returns text[]
language sql
immutable
as $$
    select array['status_change', 'manual_coordinator_action', 'nightly_expiry', 'reconciliation', 'force_sync']
$$;

-- The transactional outbox. 'pending' rows wait for the processor; 'processing' rows are
-- leased (locked_until) so a crashed processor's rows come back on their own.
create table sync_queue (
    id bigint generated always as identity primary key,
    mentor_id uuid not null references mentors (id) on delete cascade,
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
    processed_at timestamptz
);
-- Idempotency guard: at most one pending row per mentor. A newer change rewrites that row.
create unique index sync_queue_one_pending_per_mentor on sync_queue (mentor_id) where status = 'pending';
-- Keeps "what is due" an index-only lookup while done rows pile up until they are archived.
create index sync_queue_pending_due on sync_queue (available_at, id) where status = 'pending';
create index sync_queue_processing_lease on sync_queue (locked_until) where status = 'processing';

create table mentor_status_audit (
    id bigint generated always as identity primary key,
    mentor_id uuid not null references mentors (id) on delete cascade,
    organization_id uuid not null references organizations (id),
    old_status text not null,
    new_status text not null,
    triggered_by_event text not null,
    -- The sync operation enqueued for the website, or null when nothing was enqueued.
    sync_operation text,
    warning text,
    changed_at timestamptz not null default now()
);
create index mentor_status_audit_mentor on mentor_status_audit (mentor_id, changed_at);

-- One reminder per mentor, threshold and certification expiry date: the unique constraint is
-- what makes a re-run of the nightly job harmless.
create table cert_expiry_reminders (
    id bigint generated always as identity primary key,
    mentor_id uuid not null references mentors (id) on delete cascade,
    threshold_day integer not null constraint cert_expiry_reminders_threshold_positive check (threshold_day > 0),
    certification_expiry_date date not null,
    certification_id uuid references certifications (id) on delete set null,
    run_date date,
    created_at timestamptz not null default now(),
    constraint cert_expiry_reminders_once unique (mentor_id, threshold_day, certification_expiry_date)
);

-- The outbox trigger. SECURITY DEFINER with a pinned search_path: the app updates statuses
-- as Supabase's `authenticated` role, which cannot touch sync_queue, yet the enqueue must
-- still happen in the same transaction.
-- Callers mark their updates with `set local mentor_pipeline.triggered_by_event = '...'`
-- (default 'status_change').
create function enqueue_website_sync()
returns trigger
language plpgsql
security definer
set search_path = public, pg_temp
as $$
declare
    event text := coalesce(nullif(current_setting('mentor_pipeline.triggered_by_event', true), ''), 'status_change');
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

    if event <> 'status_change' and not event = any (sync_trigger_events()) then
        raise exception 'invalid mentor_pipeline.triggered_by_event %: use one of %', quote_literal(event), sync_trigger_events()
            using errcode = 'check_violation';
    end if;

    if wanted_operation is not null then
        -- One statement: the organisation's sync flag is the filter, the upsert is the guard.
        insert into sync_queue (mentor_id, operation, triggered_by_event)
        select new.id, wanted_operation, event
        from organizations o
        where o.id = new.organization_id and o.website_sync_enabled
        on conflict (mentor_id) where status = 'pending' do update
            set operation = excluded.operation,
                triggered_by_event = excluded.triggered_by_event,
                attempts = 0,
                -- least(): an already-due row keeps its value, so its index entry need not move.
                available_at = least(sync_queue.available_at, now()),
                last_error = null,
                updated_at = now();
        get diagnostics enqueued = row_count;
    end if;

    insert into mentor_status_audit (mentor_id, organization_id, old_status, new_status, triggered_by_event, sync_operation, warning)
    values (new.id, new.organization_id, old.status, new.status, event,
            case when enqueued > 0 then wanted_operation end, warning_text);
    return null;
end
$$;

create trigger mentors_enqueue_website_sync
after update of status on mentors
for each row
when (old.status is distinct from new.status)
execute function enqueue_website_sync();

-- Row Level Security on the pipeline's tables, with no policies for anon/authenticated: they
-- see and change nothing there. The app's tables, their RLS and policies belong to the app. The
-- pipeline connects as the owner (or service_role), which bypasses RLS.
alter table sync_queue enable row level security;
alter table mentor_status_audit enable row level security;
alter table cert_expiry_reminders enable row level security;

revoke all on sync_queue, mentor_status_audit, cert_expiry_reminders from anon, authenticated;
revoke all on mentor_latest_certification, mentor_website_desired_state from anon, authenticated;
revoke execute on function enqueue_website_sync() from public, anon, authenticated;
