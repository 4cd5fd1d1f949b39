-- Nightly certification expiry: reminder thresholds per organisation, the certification state
-- snapshot, expiry reminders and coordinator notifications, and the auto-transition of lapsed
-- mentors. docs/design/expiry.md explains the night; the Oslo calendar it counts in is
-- 00_dates.sql.
--
-- The rules live here, as set-based SQL; the Dagster assets and the CLI only call these
-- functions. Re-running is harmless because unique constraints (reminders, notifications) and
-- the status check inside the UPDATE (transitions) do the work, not "check, then insert".

-- Speeds up "which certifications expire inside the reminder window" (and the clock's range scan,
-- 22_clock.sql).
create index certifications_expires_at on certifications (expires_at);

-- ---------------------------------------------------------------------------------------------
-- Reminder thresholds: defaults for everyone, per-organisation overrides behind a flag

-- The default thresholds (days before expiry), for every organisation whose overrides are off.
create function expiry_default_threshold_days()
returns integer[]
language sql
immutable
parallel safe
as $$
    select array[30, 14, 7]
$$;

-- Why a list of thresholds is unacceptable, or null when it is fine: the one statement of the
-- rule, read by the save trigger (a readable error), the check constraint (any writer) and the
-- view below (rows saved before the rule, or behind its back, are skipped, never used). Whole
-- days, 1 to 365, at most 10, each once.
create function expiry_threshold_days_problem(p_days numeric[])
returns text
language sql
immutable
parallel safe
as $$
    select case
        when p_days is null or cardinality(p_days) = 0 then
            'list at least one threshold (e.g. {30,14,7})'
        when array_ndims(p_days) <> 1 then
            'give one flat list of days (e.g. {30,14,7})'
        when array_position(p_days, null) is not null then
            'a threshold is empty (null)'
        when exists (select from unnest(p_days) d where d <> trunc(d)) then
            format('thresholds are whole days, got %s',
                   (select string_agg(d::text, ', ') from unnest(p_days) d where d <> trunc(d)))
        when exists (select from unnest(p_days) d where d <= 0) then
            format('thresholds are positive whole days, got %s',
                   (select string_agg(d::text, ', ') from unnest(p_days) d where d <= 0))
        -- A reminder more than a year ahead is a typo; and it keeps every date sum in range.
        when exists (select from unnest(p_days) d where d > 365) then
            format('thresholds are at most 365 days, got %s',
                   (select string_agg(d::text, ', ') from unnest(p_days) d where d > 365))
        when cardinality(p_days) > 10 then
            format('at most 10 thresholds, got %s', cardinality(p_days))
        when (select count(distinct d) from unnest(p_days) d) <> cardinality(p_days) then
            format('each threshold may appear once, %s is repeated',
                   (select string_agg(d::text, ', ') from (
                        select d from unnest(p_days) d group by d having count(*) > 1 order by d desc) dup))
    end
$$;

-- One row per organisation that has saved a configuration. No row, or the flag off, means the
-- defaults. The whole list is one value in one row, so a save is all or nothing.
-- threshold_days holds what the writer gave (numeric), so the check sees a fraction: an integer
-- column rounds array[30, 7.6] to {30,8} before any check can look at it. (A writer who casts
-- to integer himself, array[30, 7.6]::int[], has rounded before the value reaches the table.)
-- The migration that made the check stricter added it NOT VALID and validated it only when no
-- saved row broke it; the night skips such a row (see the view) until it is fixed.
create table expiry_threshold_config (
    organization_id uuid primary key references organizations (id) on delete cascade,
    -- The feature flag: off means the defaults apply whatever threshold_days says.
    threshold_overrides_enabled boolean not null default false,
    threshold_days numeric[] not null default expiry_default_threshold_days(),
    updated_at timestamptz not null default now(),
    constraint expiry_threshold_config_valid check (expiry_threshold_days_problem(threshold_days) is null)
);

-- The save trigger: a readable error that names the organisation (the check constraint alone
-- would not), and the list stored largest first.
create function validate_expiry_threshold_config()
returns trigger
language plpgsql
set search_path = public, pg_temp
as $$
declare
    problem text := expiry_threshold_days_problem(new.threshold_days);
    org_code text;
begin
    if problem is not null then
        select code into org_code from organizations where id = new.organization_id;
        raise exception 'invalid expiry thresholds % for organisation %: %',
            coalesce(new.threshold_days::text, 'null'), coalesce(org_code, new.organization_id::text), problem
            using errcode = 'check_violation',
                  hint = 'thresholds are whole days before expiry, 1 to 365, each listed once, at most 10; nothing was saved';
    end if;
    -- Stored largest first, so what a coordinator reads back is in reminder order.
    new.threshold_days := (select array_agg(d order by d desc) from unnest(new.threshold_days) d);
    new.updated_at := now();
    return new;
end
$$;

create trigger expiry_threshold_config_validate
before insert or update on expiry_threshold_config
for each row execute function validate_expiry_threshold_config();

-- The thresholds in force per organisation (the only place the flag is interpreted).
-- threshold_problem: why the organisation's own list is not used tonight (it is invalid); its
-- threshold_days is then null, so it gets no reminders rather than wrong ones or a crash.
create view organization_expiry_thresholds with (security_invoker = true) as
select
    o.id as organization_id,
    o.code as organization_code,
    coalesce(c.threshold_overrides_enabled, false) as threshold_overrides_enabled,
    case when c.threshold_overrides_enabled is not true then expiry_default_threshold_days()
         when p.problem is null then c.threshold_days::integer[] end as threshold_days,
    p.problem as threshold_problem
from organizations o
left join expiry_threshold_config c on c.organization_id = o.id
cross join lateral (
    select case when c.threshold_overrides_enabled then expiry_threshold_days_problem(c.threshold_days) end as problem
) p;

-- ---------------------------------------------------------------------------------------------
-- Certification state as of a run date

-- Per mentor: the most recent certification on the night (latest_certifications, the one
-- definition, at 00:00 Oslo on the run date, the cut-off the buckets use; or at p_at if that is
-- earlier), its Oslo expiry date, days left, validity as of the run date and the bucket. A
-- certification issued after the night (a renewal recorded later) does not decide it, so a
-- night re-run later (a backfill) gets that night's answer. A plain SQL function so the planner
-- inlines it into the statements that read it.
--
-- Cost matters at a million mentors: converting to Oslo time is the expensive part, so the
-- bucket compares expires_at with the Oslo midnights that bound it (days_left < 7 is the same as
-- expires_at < 00:00 Oslo on run date + 7), which fold to constants; only days_left and the
-- expiry date convert, and only where a caller reads them.
create function certification_state_as_of(p_run_date date, p_at timestamptz default now())
returns table (
    mentor_id uuid,
    organization_id uuid,
    chapter_id uuid,
    status text,
    certification_id uuid,
    certification_expires_at timestamptz,
    certification_expiry_date date,
    days_left integer,
    valid_as_of_run_date boolean,
    bucket text
)
language sql
stable
as $$
    select
        m.id,
        m.organization_id,
        m.chapter_id,
        m.status,
        l.certification_id,
        l.expires_at,
        public.oslo_date(l.expires_at),
        public.certification_days_left(l.expires_at, p_run_date),
        coalesce(public.certification_valid_as_of(l.expires_at, p_run_date), false),
        case
            when l.mentor_id is null then 'no_certification'
            when l.expires_at <= public.expiry_run_start(p_run_date) then 'expired'
            when l.expires_at < public.expiry_run_start(p_run_date + 7) then 'lt_7_days'
            when l.expires_at < public.expiry_run_start(p_run_date + 14) then 'lt_14_days'
            when l.expires_at < public.expiry_run_start(p_run_date + 30) then 'lt_30_days'
            else 'ok'
        end
    from public.mentors m
    left join public.latest_certifications(least(p_at, public.expiry_run_start(p_run_date))) l on l.mentor_id = m.id
$$;

-- Each refresh of the certification_state asset: the run date and the counts it reported.
create table certification_state_runs (
    id bigint generated always as identity primary key,
    run_date date not null,
    -- [{"organization_code": ..., "bucket": ..., "mentors": n, "active_mentors": n}, ...]
    counts jsonb not null,
    refreshed_at timestamptz not null default now()
);

-- The certification state as of the latest refreshed run date, on current statuses. A view, not a
-- copy: rewriting a million rows every night bought nothing but time and WAL, and a lookup for
-- one mentor stays an index probe.
create view certification_state with (security_invoker = true) as
select s.*, r.run_date, r.refreshed_at
from (select run_date, refreshed_at from certification_state_runs order by id desc limit 1) r
cross join lateral certification_state_as_of(r.run_date) s;

-- Refreshes the certification_state asset for a run date: counts per organisation and bucket in
-- one pass (active_mentors: how many of them are active), recorded and returned.
create function refresh_certification_state(p_run_date date)
returns table (organization_code text, bucket text, mentors bigint, active_mentors bigint)
language plpgsql
set search_path = public, pg_temp
set plan_cache_mode = force_custom_plan
set work_mem = '64MB'
as $$
begin
    return query
    with counts as (
        select o.code as organization_code, s.bucket, count(*) as mentors,
               count(*) filter (where s.status = 'active') as active_mentors
        from certification_state_as_of(p_run_date) s
        join organizations o on o.id = s.organization_id
        group by o.code, s.bucket
    ),
    recorded as (
        insert into certification_state_runs (run_date, counts)
        select p_run_date, coalesce(jsonb_agg(to_jsonb(c) order by c.organization_code, c.bucket), '[]'::jsonb)
        from counts c
    )
    select c.organization_code, c.bucket, c.mentors, c.active_mentors from counts c order by 1, 2;
end
$$;

-- Active mentors with no certification at all: a data gap for coordinators, not an expiry.
-- Unordered so that "the first 20" stops early; callers sort what they show.
create function active_mentors_without_certification()
returns table (mentor_id uuid, full_name text, organization_code text, chapter_name text)
language sql
stable
as $$
    select m.id, m.full_name, o.code, ch.name
    from public.mentors m
    join public.organizations o on o.id = m.organization_id
    left join public.chapters ch on ch.id = m.chapter_id
    where m.status = 'active'
      and not exists (select from public.certifications c where c.mentor_id = m.id)
$$;

-- ---------------------------------------------------------------------------------------------
-- Reminders and coordinator notifications

-- One reminder per mentor, threshold and certification expiry date: the unique constraint is
-- what makes a re-run of the nightly job harmless. organization_id and days_left are copies
-- taken when the reminder was created, for reading without joins. No foreign keys on copies
-- here or in coordinator_notifications: the reminder's own mentor_id foreign key (on delete
-- cascade) already ties every row to a mentor, and each extra key costs a probe per row.
create table cert_expiry_reminders (
    id bigint generated always as identity primary key,
    mentor_id uuid not null references mentors (id) on delete cascade,
    threshold_day integer not null constraint cert_expiry_reminders_threshold_positive check (threshold_day > 0),
    certification_expiry_date date not null,
    certification_id uuid references certifications (id) on delete set null,
    run_date date,
    created_at timestamptz not null default now(),
    organization_id uuid,
    days_left integer,
    constraint cert_expiry_reminders_once unique (mentor_id, threshold_day, certification_expiry_date)
);
-- Its foreign key's index: deleting a certification finds its reminders without a table scan.
create index cert_expiry_reminders_certification on cert_expiry_reminders (certification_id);

-- The outbox the app reads: one notification per reminder, for the coordinators of the
-- mentor's chapter. Its own unique constraints make a second insert for the same reminder
-- (or the same mentor, threshold and expiry date) impossible.
create table coordinator_notifications (
    id bigint generated always as identity primary key,
    reminder_id bigint not null references cert_expiry_reminders (id) on delete cascade,
    mentor_id uuid not null,
    organization_id uuid not null,
    -- The coordinator's chapter (the mentor's chapter); null for a mentor without a chapter,
    -- whose notification goes to the organisation's coordinators.
    chapter_id uuid references chapters (id) on delete set null,
    threshold_day integer not null,
    certification_expiry_date date not null,
    days_left integer not null,
    message text not null,
    created_at timestamptz not null default now(),
    read_at timestamptz,
    constraint coordinator_notifications_one_per_reminder unique (reminder_id),
    constraint coordinator_notifications_once unique (mentor_id, threshold_day, certification_expiry_date)
);
create index coordinator_notifications_unread on coordinator_notifications (chapter_id, created_at) where read_at is null;

-- Which threshold is due: the tightest one reached (smallest threshold >= days_left). A mentor 5
-- days from expiry on the first run gets the 7-day reminder only, not 30, 14 and 7 at once;
-- crossing into a tighter threshold later gives one more reminder. (Written inline in
-- create_expiry_reminders: a SQL function with FROM is not inlined and cost a second per 40k.)
--
-- Inserts the reminders due on a run date and one notification per new reminder, in one
-- statement, and returns counts per organisation and threshold (nothing is pulled row by row).
-- It starts from the certifications inside the widest window (an index range: those expiring
-- later cannot be due for any organisation, so only the few inside it are converted to Oslo
-- dates), keeps those that are their mentor's most recent (latest_certification, probed per
-- mentor by a correlated subquery, not a join) both on the night, as in certification_state_as_of,
-- and still at p_at: one superseded since (a renewal recorded after the night) is not reminded
-- about, so a backfill never asks for a renewal already made. Then it picks the threshold due
-- for each.
-- ON CONFLICT DO NOTHING returns only the rows this call created, so only those get a
-- notification. The advisory lock serialises concurrent runs (two schedulers, a retry next to a
-- manual run): without it two inserts of overlapping key sets in different orders could
-- deadlock; a concurrent call waits and then finds everything done. Reminders and notifications
-- are counted apart and joined only as totals: CTE row estimates are guesses, and a join of two
-- 40k-row CTEs planned as a nested loop took minutes.
--
-- Reminders are never sent for a certification that has lapsed by the day they are sent.
-- p_sent_on: the Oslo day the notifications go out, today unless the caller says otherwise.
-- For tonight's run it is the run date and nothing changes; a backfilled night (a run date in
-- the past) reminds only about certifications still valid today, and its message counts the
-- days from today, the day the coordinator reads it.
create function create_expiry_reminders(p_run_date date, p_sent_on date default null,
                                        p_at timestamptz default now())
returns table (organization_code text, threshold_day integer, reminders bigint, notifications bigint)
language plpgsql
set search_path = public, pg_temp
set plan_cache_mode = force_custom_plan
set work_mem = '64MB'
as $$
declare
    sent_on date := coalesce(p_sent_on, oslo_date(p_at));
    night timestamptz := least(p_at, expiry_run_start(p_run_date));
    -- Certifications must still be valid on both days: the night's and the sending day's.
    valid_from date;
    window_end timestamptz := expiry_run_start(p_run_date + 1 + (
        select coalesce(max(d), 0) from organization_expiry_thresholds t, unnest(t.threshold_days) d));
begin
    if sent_on < p_run_date then
        raise exception 'reminders for the night of % cannot be sent on %, before that night', p_run_date, sent_on
            using errcode = 'invalid_parameter_value';
    end if;
    valid_from := greatest(p_run_date, sent_on);

    perform pg_advisory_xact_lock(hashtext('mentor_pipeline.create_expiry_reminders'));

    return query
    with due as (
        select c.mentor_id, m.organization_id, c.id as certification_id,
               oslo_date(c.expires_at) as certification_expiry_date,
               certification_days_left(c.expires_at, p_run_date) as days_left,
               (select min(d) from unnest(t.threshold_days) d
                where d >= certification_days_left(c.expires_at, p_run_date)) as threshold_day
        from certifications c
        join mentors m on m.id = c.mentor_id
        join organization_expiry_thresholds t on t.organization_id = m.organization_id
        where certification_valid_as_of(c.expires_at, valid_from)
          and c.expires_at < window_end
          -- The most recent at p_at and issued by the night: so also the most recent on the night.
          and c.issued_at <= night
          and c.id = (select l.certification_id from latest_certification(c.mentor_id, p_at) l)
    ),
    reminded as (
        insert into cert_expiry_reminders (
            mentor_id, threshold_day, certification_expiry_date, certification_id, run_date, organization_id, days_left)
        select d.mentor_id, d.threshold_day, d.certification_expiry_date, d.certification_id, p_run_date,
               d.organization_id, d.days_left
        from due d
        where d.threshold_day is not null
        on conflict on constraint cert_expiry_reminders_once do nothing
        returning id, cert_expiry_reminders.mentor_id, cert_expiry_reminders.threshold_day,
                  cert_expiry_reminders.certification_expiry_date, cert_expiry_reminders.days_left,
                  cert_expiry_reminders.organization_id
    ),
    notified as (
        insert into coordinator_notifications (
            reminder_id, mentor_id, organization_id, chapter_id, threshold_day, certification_expiry_date, days_left, message)
        select r.id, r.mentor_id, r.organization_id, m.chapter_id, r.threshold_day, r.certification_expiry_date,
               r.days_left,
               format('%s''s certification expires %s (%s): %s-day reminder. Please arrange a renewal.',
                      m.full_name,
                      case r.certification_expiry_date - sent_on when 0 then 'today' when 1 then 'tomorrow'
                                       else format('in %s days', r.certification_expiry_date - sent_on) end,
                      to_char(r.certification_expiry_date, 'DD.MM.YYYY'),
                      r.threshold_day)
        from reminded r
        join mentors m on m.id = r.mentor_id
        on conflict do nothing
        returning coordinator_notifications.organization_id, coordinator_notifications.threshold_day
    ),
    reminder_counts as (
        select r.organization_id, r.threshold_day, count(*) as n from reminded r group by 1, 2
    ),
    notification_counts as (
        select n.organization_id, n.threshold_day, count(*) as n from notified n group by 1, 2
    )
    select o.code, rc.threshold_day, rc.n, coalesce(nc.n, 0)
    from reminder_counts rc
    join organizations o on o.id = rc.organization_id
    left join notification_counts nc on nc.organization_id = rc.organization_id and nc.threshold_day = rc.threshold_day
    order by o.code, rc.threshold_day desc;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Auto-transition: active -> expired_cert when the most recent certification has lapsed

-- Moves active mentors whose most recent certification (the one issued by p_at: a renewal
-- recorded by then keeps the mentor active) expired at or before p_as_of to expired_cert and
-- returns their ids; it refuses a cut-off after p_at. The status check and the expiry check sit
-- in the WHERE clause of the UPDATE itself, so a mentor paused, already expired or reinstated
-- meanwhile is left alone. Going through the status column lets the outbox trigger enqueue the
-- website removal (HLF) marked nightly_expiry.
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
-- Row Level Security and privileges: the app roles see and run none of this.

alter table expiry_threshold_config enable row level security;
alter table certification_state_runs enable row level security;
alter table cert_expiry_reminders enable row level security;
alter table coordinator_notifications enable row level security;

revoke all on expiry_threshold_config, certification_state_runs, cert_expiry_reminders, coordinator_notifications
from anon, authenticated;
revoke all on organization_expiry_thresholds, certification_state from anon, authenticated;
revoke all on sequence cert_expiry_reminders_id_seq, certification_state_runs_id_seq, coordinator_notifications_id_seq
from anon, authenticated;
revoke execute on function
    expiry_default_threshold_days(),
    expiry_threshold_days_problem(numeric[]),
    validate_expiry_threshold_config(),
    certification_state_as_of(date, timestamptz),
    refresh_certification_state(date),
    active_mentors_without_certification(),
    create_expiry_reminders(date, date, timestamptz),
    expire_mentors_with_lapsed_certifications(timestamptz, timestamptz)
from public, anon, authenticated;
