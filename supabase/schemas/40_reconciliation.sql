-- Nightly reconciliation and force sync: what each run found and did (reconciliation_runs,
-- reconciliation_log), the app side it compares with Dynamics, the dead queue rows nobody
-- resolved, and the compensation query (seed risk 1) that finds duplicates left by re-run jobs.
-- docs/design/reconciliation.md explains the flow; mentor_pipeline/reconcile/store.py maps
-- each function here to one Python function.

-- One row per reconciliation or force sync that changed something (dry runs write nothing).
create table reconciliation_runs (
    id uuid primary key default gen_random_uuid(),
    kind text not null
        constraint reconciliation_runs_kind_check check (kind in ('reconciliation', 'force_sync')),
    -- The Dagster run, or null for the break-glass command.
    dagster_run_id text,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    -- Counts per classification and outcome ({"listed_but_should_not": 3, "still_divergent": 0, ...}).
    summary jsonb not null default '{}'::jsonb
);
create index reconciliation_runs_recent on reconciliation_runs (kind, started_at desc);

-- Per run, one row per mentor it acted on or found divergent: the app state, the Dynamics state
-- and the action. In-sync mentors are counted in the run's summary, not logged (100,000 rows a
-- night would bury the few that matter). The mentor key outlives the mentor row (no foreign
-- key): a deleted mentor's reconciliation history survives the delete.
create table reconciliation_log (
    id bigint generated always as identity primary key,
    run_id uuid not null references reconciliation_runs (id) on delete cascade,
    mentor_id uuid not null,
    -- App state: the mentor's status (null: no longer in the app) and the one rule's answer
    -- (website_listing_rule).
    app_status text,
    should_be_listed boolean not null,
    -- Dynamics state as read: listed / unlisted / absent (no contact); null when not read (a
    -- force sync writes without reading).
    dynamics_state text
        constraint reconciliation_log_dynamics_state_check check (dynamics_state in ('listed', 'unlisted', 'absent')),
    classification text not null
        constraint reconciliation_log_classification_check
        check (classification in ('listed_but_should_not', 'missing_but_should', 'chapter_differs', 'contact_absent',
                                  'listed_mentor_gone', 'listed_without_website_sync', 'in_sync', 'forced')),
    -- add / remove: a sync_queue row was queued; left_to_queue: a pending or in-flight row
    -- already carries the mentor's change; none: nothing to write.
    action text not null
        constraint reconciliation_log_action_check check (action in ('add', 'remove', 'left_to_queue', 'none')),
    queue_id bigint,
    created_at timestamptz not null default now(),
    -- One action per mentor per run. The compensation query checks it too, for history written
    -- before this constraint or by hand.
    constraint reconciliation_log_once_per_run unique (run_id, mentor_id)
);
create index reconciliation_log_mentor on reconciliation_log (mentor_id, created_at);

-- The app side of a reconciliation, per mentor key of an organisation with website sync (all,
-- or the given ones), at p_at: the one rule's answer with the chapter the page groups by, the
-- listing last confirmed by a write, whether that listing matches the rule (flag and chapter:
-- listing_matches_rule; null when never confirmed), and whether a queue row is pending or in
-- flight (those mentors are left to the queue).
-- Linear in the keys: the given keys are joined (one index probe each), all mentors are read
-- only when none are given (a one-time filter on the parameter), and in_queue is one probe per
-- partial index of sync_queue (pending, processing: the pair sync_change_waiting() names, which
-- as one `in` test matches neither index). tests/db/test_plans.py keeps it so.
create function reconciliation_app_state(p_mentor_ids uuid[] default null, p_at timestamptz default now())
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

-- Dead queue rows that nobody resolved: dead for longer than p_older_than at p_at, and no later
-- row of the same mentor was written (done) or is on its way (pending, processing).
create function unresolved_dead_sync_rows(p_older_than interval default interval '1 day',
                                          p_at timestamptz default now())
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
                          and (n.status = 'done' or sync_change_waiting(n.status)))
     order by q.processed_at
$$;

-- The compensation query (seed risk 1): the same thing recorded twice for one certification
-- period, wherever the database does not already make it impossible or where such a guarantee
-- could have been missing when the rows were written. Each hit is for manual review:
--   expired_cert_transition   two transitions to expired_cert of one mentor for the same
--                             certification (the latest one issued before the change);
--   expiry_reminder           two cert_expiry_reminders for one (mentor, threshold, expiry date);
--   coordinator_notification  two notifications for one (mentor, threshold, expiry date);
--   reconciliation_action     two actions for one mentor in one reconciliation run.
create view reconciliation_duplicates with (security_invoker = true) as
with transitions as (
    select a.id, a.mentor_id, a.changed_at,
           (select oslo_date(c.expires_at)
              from certifications c
             where c.mentor_id = a.mentor_id and c.issued_at <= a.changed_at
             order by c.issued_at desc, c.expires_at desc, c.id desc
             limit 1) as certification_expiry_date
      from mentor_status_audit a
     where a.new_status = 'expired_cert'
)
select 'expired_cert_transition'::text as kind, t.mentor_id, t.certification_expiry_date,
       null::integer as threshold_day, null::uuid as reconciliation_run_id,
       count(*) as occurrences, min(t.changed_at) as first_at, max(t.changed_at) as last_at,
       array_agg(t.id order by t.id) as row_ids
  from transitions t
 group by t.mentor_id, t.certification_expiry_date
having count(*) > 1
union all
select 'expiry_reminder', r.mentor_id, r.certification_expiry_date, r.threshold_day, null,
       count(*), min(r.created_at), max(r.created_at), array_agg(r.id order by r.id)
  from cert_expiry_reminders r
 group by r.mentor_id, r.threshold_day, r.certification_expiry_date
having count(*) > 1
union all
select 'coordinator_notification', n.mentor_id, n.certification_expiry_date, n.threshold_day, null,
       count(*), min(n.created_at), max(n.created_at), array_agg(n.id order by n.id)
  from coordinator_notifications n
 group by n.mentor_id, n.threshold_day, n.certification_expiry_date
having count(*) > 1
union all
select 'reconciliation_action', l.mentor_id, null, null, l.run_id,
       count(*), min(l.created_at), max(l.created_at), array_agg(l.id order by l.id)
  from reconciliation_log l
 where l.action in ('add', 'remove')
 group by l.run_id, l.mentor_id
having count(*) > 1;

alter table reconciliation_runs enable row level security;
alter table reconciliation_log enable row level security;
revoke all on reconciliation_runs, reconciliation_log from anon, authenticated;
revoke all on reconciliation_duplicates from anon, authenticated;
revoke all on sequence reconciliation_log_id_seq from anon, authenticated;
revoke execute on function
    reconciliation_app_state(uuid[], timestamptz),
    unresolved_dead_sync_rows(interval, timestamptz)
from public, anon, authenticated;
