-- Restarts cost seconds, not a timeout: a heartbeat per Dynamics run, so a run whose worker died
-- is failed within a minute and the next drain starts; and the 429 hold in the database, so the
-- process that starts after a throttled one died still waits the Retry-After out.

-- ---------------------------------------------------------------------------------------------
-- Liveness of the runs that hold the Dynamics budget, and the budget's 429 hold: state every
-- process of the pipeline sees, so a restart of any of them costs seconds, not a timeout.

-- A heartbeat per Dagster run that holds the Dynamics budget, beaten every few seconds by the
-- run's own process (mentor_pipeline/operations/liveness.py). A run Dagster still calls STARTED
-- whose heartbeat went silent has lost its worker (a killed daemon or code server, an OOM kill,
-- a host restart): dead_run_sensor fails it, which frees the budget for the next drain, and
-- the changes it held come back when their leases end.
create table run_heartbeats (
    run_id text primary key,
    job_name text not null,
    started_at timestamptz not null default now(),
    beat_at timestamptz not null default now(),
    -- Where the worker ran, for the failure message ("last heard from host:pid").
    worker text not null
);

create function beat_run_heartbeat(p_run_id text, p_job_name text, p_worker text, p_at timestamptz default now())
returns void
language sql
as $$
    insert into public.run_heartbeats as h (run_id, job_name, started_at, beat_at, worker)
    values (p_run_id, p_job_name, p_at, p_at, p_worker)
    on conflict (run_id) do update set beat_at = greatest(h.beat_at, excluded.beat_at), worker = excluded.worker
$$;

-- The runs among p_run_ids whose last beat is older than p_silent_for at p_at, with that beat.
-- A run that never beat is not listed: the caller knows when it started.
create function silent_runs(p_run_ids text[], p_silent_for interval, p_at timestamptz default now())
returns table (run_id text, beat_at timestamptz, worker text)
language sql
stable
as $$
    select h.run_id, h.beat_at, h.worker
      from public.run_heartbeats h
     where h.run_id = any (p_run_ids) and h.beat_at < p_at - p_silent_for
$$;

-- A run that ended (cleanly, or failed by the sensor) beats no more.
create function end_run_heartbeat(p_run_id text)
returns void
language sql
as $$
    delete from public.run_heartbeats where run_id = p_run_id
$$;

-- Dataverse's service-protection limits are per application user, and a 429's Retry-After holds
-- every request of that user until it ends. The hold lives here, not only in the memory of the
-- process that received it, so a run started after that process died, a break-glass command
-- and a reconciliation all wait it out (mentor_pipeline/operations/throttle_hold.py).
create table dynamics_throttle_holds (
    -- The application user: the org URL and the client id (neither is a secret).
    budget text primary key,
    hold_until timestamptz not null,
    retry_after_seconds double precision not null,
    what text not null,
    recorded_at timestamptz not null default now()
);

-- A 429 with Retry-After p_seconds at p_at: nothing of that user is sent before it has passed.
-- A later deadline wins; an earlier one changes nothing.
create function record_dynamics_hold(p_budget text, p_seconds double precision, p_what text,
                                     p_at timestamptz default now())
returns timestamptz
language sql
as $$
    insert into public.dynamics_throttle_holds as t (budget, hold_until, retry_after_seconds, what, recorded_at)
    values (p_budget, p_at + make_interval(secs => p_seconds), p_seconds, p_what, p_at)
    on conflict (budget) do update
        set hold_until = excluded.hold_until, retry_after_seconds = excluded.retry_after_seconds,
            what = excluded.what, recorded_at = excluded.recorded_at
        where excluded.hold_until > t.hold_until
    returning hold_until
$$;

-- Seconds left of the user's hold at p_at (no row when none), with what was throttled and the
-- deadline (a process knows the deadlines it recorded itself and holds them already).
create function dynamics_hold_left(p_budget text, p_at timestamptz default now())
returns table (seconds double precision, what text, hold_until timestamptz)
language sql
stable
as $$
    select greatest(extract(epoch from t.hold_until - p_at)::double precision, 0), t.what, t.hold_until
      from public.dynamics_throttle_holds t
     where t.budget = p_budget and t.hold_until > p_at
$$;

alter table run_heartbeats enable row level security;
alter table dynamics_throttle_holds enable row level security;
revoke all on run_heartbeats, dynamics_throttle_holds from anon, authenticated;
revoke execute on function
    beat_run_heartbeat(text, text, text, timestamptz),
    silent_runs(text[], interval, timestamptz),
    end_run_heartbeat(text),
    record_dynamics_hold(text, double precision, text, timestamptz),
    dynamics_hold_left(text, timestamptz)
from public, anon, authenticated;
