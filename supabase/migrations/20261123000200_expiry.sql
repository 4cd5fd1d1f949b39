-- Nightly certification expiry: reminder thresholds per organisation, the certification state
-- snapshot, coordinator notifications, and the auto-transition of lapsed mentors.
--
-- The rules live here, as set-based SQL; the Dagster assets and the CLI only call these
-- functions. Re-running is harmless because unique constraints (reminders, notifications) and
-- the status check inside the UPDATE (transitions) do the work, not "check, then insert".
--
-- Dates: a run is for one Oslo calendar date D (the "run date"). A certification is valid as
-- of D when it has not expired by the start of D in Oslo (00:00 Europe/Oslo); its expiry date
-- is the Oslo calendar date of expires_at; days_left = expiry date - D. A run is therefore a
-- function of the data and D, not of the wall clock, so re-running the same night later gives
-- the same answer.

-- ---------------------------------------------------------------------------------------------
-- Dates

-- The instant a run date starts in Oslo: what "as of the run date" means everywhere below.
create function expiry_run_start(p_run_date date)
returns timestamptz
language sql
immutable
parallel safe
as $$
    select (p_run_date::timestamp at time zone 'Europe/Oslo')
$$;

-- The Oslo calendar date of an instant (a certification's expiry date).
create function oslo_date(p_at timestamptz)
returns date
language sql
immutable
parallel safe
as $$
    select (p_at at time zone 'Europe/Oslo')::date
$$;

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

-- Why a list of thresholds is unacceptable, or null when it is fine. The one statement of the
-- rule: the trigger turns it into a readable error, the check constraint makes it hold for any
-- writer (the whole-days part is the column type: integer).
create function expiry_threshold_days_problem(p_days integer[])
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
        when exists (select from unnest(p_days) d where d <= 0) then
            format('thresholds are positive whole days, got %s',
                   (select string_agg(d::text, ', ') from unnest(p_days) d where d <= 0))
        when (select count(distinct d) from unnest(p_days) d) <> cardinality(p_days) then
            format('each threshold may appear once, %s is repeated',
                   (select string_agg(d::text, ', ') from (
                        select d from unnest(p_days) d group by d having count(*) > 1 order by d desc) dup))
    end
$$;

-- One row per organisation that has saved a configuration. No row, or the flag off, means the
-- defaults. The whole list is one value in one row, so a save is all or nothing.
create table expiry_threshold_config (
    organization_id uuid primary key references organizations (id) on delete cascade,
    -- The feature flag: off means the defaults apply whatever threshold_days says.
    threshold_overrides_enabled boolean not null default false,
    threshold_days integer[] not null default expiry_default_threshold_days(),
    updated_at timestamptz not null default now(),
    constraint expiry_threshold_config_valid check (expiry_threshold_days_problem(threshold_days) is null)
);

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
                  hint = 'thresholds are whole days before expiry, each positive and listed once; nothing was saved';
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
create view organization_expiry_thresholds with (security_invoker = true) as
select
    o.id as organization_id,
    o.code as organization_code,
    coalesce(c.threshold_overrides_enabled, false) as threshold_overrides_enabled,
    case when c.threshold_overrides_enabled then c.threshold_days
         else expiry_default_threshold_days() end as threshold_days
from organizations o
left join expiry_threshold_config c on c.organization_id = o.id;

-- ---------------------------------------------------------------------------------------------
-- Certification state as of a run date

-- Per mentor: the most recent certification (mentor_latest_certification, the one definition),
-- its Oslo expiry date, days left, validity as of the run date and the bucket. A plain SQL
-- function so the planner inlines it into the statements that read it.
create function certification_state_as_of(p_run_date date)
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
        oslo_date(l.expires_at),
        oslo_date(l.expires_at) - p_run_date,
        coalesce(l.expires_at > expiry_run_start(p_run_date), false),
        case
            when l.mentor_id is null then 'no_certification'
            when l.expires_at <= expiry_run_start(p_run_date) then 'expired'
            when oslo_date(l.expires_at) - p_run_date < 7 then 'lt_7_days'
            when oslo_date(l.expires_at) - p_run_date < 14 then 'lt_14_days'
            when oslo_date(l.expires_at) - p_run_date < 30 then 'lt_30_days'
            else 'ok'
        end
    from mentors m
    left join mentor_latest_certification l on l.mentor_id = m.id
$$;

-- The snapshot the certification_state asset materialises (one run date at a time), for
-- coordinators and dashboards. Derived data: no foreign keys, rebuilt whole each night.
create table certification_state (
    mentor_id uuid primary key,
    organization_id uuid not null,
    chapter_id uuid,
    status text not null,
    certification_id uuid,
    certification_expires_at timestamptz,
    certification_expiry_date date,
    days_left integer,
    valid_as_of_run_date boolean not null,
    bucket text not null
        constraint certification_state_bucket_check
        check (bucket in ('expired', 'lt_7_days', 'lt_14_days', 'lt_30_days', 'ok', 'no_certification')),
    run_date date not null,
    refreshed_at timestamptz not null default now()
);

-- Rebuilds the snapshot for a run date and returns the counts per organisation and bucket.
-- TRUNCATE takes an exclusive lock, so two concurrent refreshes run one after the other.
create function refresh_certification_state(p_run_date date)
returns table (organization_code text, bucket text, mentors bigint)
language plpgsql
set search_path = public, pg_temp
as $$
begin
    truncate certification_state;
    insert into certification_state (
        mentor_id, organization_id, chapter_id, status, certification_id, certification_expires_at,
        certification_expiry_date, days_left, valid_as_of_run_date, bucket, run_date)
    select s.mentor_id, s.organization_id, s.chapter_id, s.status, s.certification_id, s.certification_expires_at,
           s.certification_expiry_date, s.days_left, s.valid_as_of_run_date, s.bucket, p_run_date
    from certification_state_as_of(p_run_date) s;

    return query
    select o.code, cs.bucket, count(*)
    from certification_state cs
    join organizations o on o.id = cs.organization_id
    group by o.code, cs.bucket
    order by o.code, cs.bucket;
end
$$;

-- Active mentors with no certification at all: a data gap for coordinators, not an expiry.
create function active_mentors_without_certification()
returns table (mentor_id uuid, full_name text, organization_code text, chapter_name text)
language sql
stable
as $$
    select m.id, m.full_name, o.code, ch.name
    from mentors m
    join organizations o on o.id = m.organization_id
    left join chapters ch on ch.id = m.chapter_id
    where m.status = 'active'
      and not exists (select from certifications c where c.mentor_id = m.id)
    order by o.code, ch.name nulls last, m.full_name, m.id
$$;

-- ---------------------------------------------------------------------------------------------
-- Reminders and coordinator notifications

alter table cert_expiry_reminders
    add column organization_id uuid references organizations (id),
    add column days_left integer;

-- The outbox the app reads: one notification per reminder, for the coordinators of the
-- mentor's chapter. Its own unique constraints make a second insert for the same reminder
-- (or the same mentor, threshold and expiry date) impossible.
create table coordinator_notifications (
    id bigint generated always as identity primary key,
    reminder_id bigint not null references cert_expiry_reminders (id) on delete cascade,
    mentor_id uuid not null references mentors (id) on delete cascade,
    organization_id uuid not null references organizations (id),
    -- The coordinator's chapter (the mentor's chapter); null for a mentor without a chapter,
    -- whose notification goes to the organisation's coordinators.
    chapter_id uuid references chapters (id),
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

-- Which threshold a certification is due for today: the tightest one it has reached
-- (smallest threshold >= days_left). A mentor 5 days from expiry on the first run gets the
-- 7-day reminder only, not 30, 14 and 7 at once; crossing into a tighter threshold later
-- gives one more reminder.
create function expiry_threshold_due(p_threshold_days integer[], p_days_left integer)
returns integer
language sql
immutable
parallel safe
as $$
    select min(d) from unnest(p_threshold_days) d where d >= p_days_left
$$;

-- Inserts the reminders due on a run date and one notification per new reminder, in one
-- statement. ON CONFLICT DO NOTHING returns only the rows this call created, so only those get
-- a notification; a concurrent call waits on the advisory lock and then finds everything done.
-- Returns counts per organisation and threshold (nothing is pulled row by row).
create function create_expiry_reminders(p_run_date date)
returns table (organization_code text, threshold_day integer, reminders bigint, notifications bigint)
language plpgsql
set search_path = public, pg_temp
as $$
begin
    -- Serialises concurrent runs (two schedulers, a retry next to a manual run): without it two
    -- inserts of overlapping key sets in different orders could deadlock.
    perform pg_advisory_xact_lock(hashtext('mentor_pipeline.create_expiry_reminders'));

    return query
    with due as (
        select s.mentor_id, s.organization_id, s.chapter_id, s.certification_id,
               s.certification_expiry_date, s.days_left,
               expiry_threshold_due(t.threshold_days, s.days_left) as threshold_day
        from certification_state_as_of(p_run_date) s
        join organization_expiry_thresholds t on t.organization_id = s.organization_id
        where s.valid_as_of_run_date
          and s.days_left <= t.threshold_days[1]  -- stored largest first; cheap pre-filter
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
                      case r.days_left when 0 then 'today' when 1 then 'tomorrow'
                                       else format('in %s days', r.days_left) end,
                      to_char(r.certification_expiry_date, 'DD.MM.YYYY'),
                      r.threshold_day)
        from reminded r
        join mentors m on m.id = r.mentor_id
        on conflict do nothing
        returning coordinator_notifications.reminder_id
    )
    select o.code, r.threshold_day, count(*), count(n.reminder_id)
    from reminded r
    join organizations o on o.id = r.organization_id
    left join notified n on n.reminder_id = r.id
    group by o.code, r.threshold_day
    order by o.code, r.threshold_day desc;
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Auto-transition: active -> expired_cert when the most recent certification has lapsed

-- Moves active mentors whose most recent certification expired at or before p_as_of to
-- expired_cert and returns their ids. The status check and the expiry check sit in the WHERE
-- clause of the UPDATE itself, so a mentor paused, already expired or reinstated meanwhile is
-- left alone. Going through the status column lets the outbox trigger enqueue the website
-- removal (HLF) marked nightly_expiry.
create function expire_mentors_with_lapsed_certifications(p_as_of timestamptz)
returns table (mentor_id uuid)
language plpgsql
set search_path = public, pg_temp
as $$
declare
    previous_event text := current_setting('mentor_pipeline.triggered_by_event', true);
begin
    if p_as_of is null or p_as_of > now() then
        raise exception 'refusing to expire certifications as of %: that is in the future', coalesce(p_as_of::text, 'null')
            using errcode = 'invalid_parameter_value';
    end if;

    -- One transition run at a time; a concurrent run waits and then finds nothing left to do.
    perform pg_advisory_xact_lock(hashtext('mentor_pipeline.expire_mentors_with_lapsed_certifications'));

    -- Lock the candidates first (in id order), then decide with a fresh snapshot. Under READ
    -- COMMITTED an UPDATE that waits on a row rechecks only that row, not the certifications it
    -- joined: a coordinator who just committed a new certification together with a change to the
    -- mentor would otherwise be expired on stale data.
    perform 1
    from mentors m
    join mentor_latest_certification l on l.mentor_id = m.id
    where m.status = 'active' and l.expires_at <= p_as_of
    order by m.id
    for update of m;

    perform set_config('mentor_pipeline.triggered_by_event', 'nightly_expiry', true);

    return query
    update mentors m
    set status = 'expired_cert', updated_at = now()
    from mentor_latest_certification l
    where l.mentor_id = m.id
      and m.status = 'active'
      and l.expires_at <= p_as_of
    returning m.id;

    -- Leave the caller's transaction as we found it.
    perform set_config('mentor_pipeline.triggered_by_event', coalesce(previous_event, ''), true);
end
$$;

-- ---------------------------------------------------------------------------------------------
-- Row Level Security and privileges: the app roles see and run none of this.

alter table expiry_threshold_config enable row level security;
alter table certification_state enable row level security;
alter table coordinator_notifications enable row level security;

revoke all on expiry_threshold_config, certification_state, coordinator_notifications from anon, authenticated;
revoke all on organization_expiry_thresholds from anon, authenticated;
revoke execute on function
    refresh_certification_state(date),
    create_expiry_reminders(date),
    expire_mentors_with_lapsed_certifications(timestamptz),
    active_mentors_without_certification(),
    certification_state_as_of(date),
    validate_expiry_threshold_config()
from public, anon, authenticated;
