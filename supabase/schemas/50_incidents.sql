-- Incidents: what operators are told, one row per (kind, scope). The first alert opens an
-- incident (one post); while it stays open, further occurrences only update it, and reminders
-- go out at growing intervals; resolving it posts once more. mentor_pipeline/operations/store.py maps
-- each function here to one Python function; mentor_pipeline/operations/alerts.py posts what they return.

create table incidents (
    kind text not null,              -- e.g. dynamics_auth_wrong_secret, run_failed
    scope text not null default '',  -- what it is about within the kind: a job, an organisation, or ''
    state text not null check (state in ('open', 'reminded', 'resolved')),
    first_seen timestamptz not null,
    last_seen timestamptz not null,
    occurrences integer not null check (occurrences > 0),
    summary text not null,           -- the latest occurrence's summary
    details jsonb not null default '{}',
    reminders_sent integer not null default 0,
    next_reminder_at timestamptz,    -- a reminder goes out with the first occurrence after this
    resolved_at timestamptz,
    resolution text,
    primary key (kind, scope),
    check ((state = 'resolved') = (resolved_at is not null))
);
create index incidents_unresolved on incidents (first_seen) where state <> 'resolved';

-- One occurrence of (kind, scope). Returns the incident after the update and `notify`: 'open'
-- when this occurrence opened it (new, or reopened after a resolution), 'reminder' when a
-- reminder is due, null when nobody needs to hear about it again. Reminders: the first after
-- p_reminder_intervals[1], the next after [2], ..., the last interval repeating.
-- The primary key serialises concurrent raisers: one of them inserts (and is told to post);
-- the others wait for its commit, then find the row open and only count themselves.
create function raise_incident(
    p_kind text,
    p_scope text,
    p_summary text,
    p_details jsonb,
    p_reminder_intervals interval[],
    p_now timestamptz default now())
returns table (notify text, kind text, scope text, state text, first_seen timestamptz, last_seen timestamptz,
               occurrences integer, summary text, details jsonb, reminders_sent integer,
               next_reminder_at timestamptz, resolved_at timestamptz, resolution text)
language plpgsql
set search_path = public, pg_temp
as $$
#variable_conflict use_column
declare
    current incidents;
    intervals integer := coalesce(array_length(p_reminder_intervals, 1), 0);
    notice text;
begin
    if intervals = 0 then
        raise exception 'raise_incident needs at least one reminder interval';
    end if;
    insert into incidents (kind, scope, state, first_seen, last_seen, occurrences, summary, details,
                           reminders_sent, next_reminder_at)
    values (p_kind, p_scope, 'open', p_now, p_now, 1, p_summary, coalesce(p_details, '{}'), 0,
            p_now + p_reminder_intervals[1])
    on conflict do nothing;
    if found then
        notice := 'open';
    else
        select * into current from incidents i where i.kind = p_kind and i.scope = p_scope for update;
        if current.state = 'resolved' then
            update incidents i
               set state = 'open', first_seen = p_now, last_seen = p_now, occurrences = 1,
                   summary = p_summary, details = coalesce(p_details, '{}'), reminders_sent = 0,
                   next_reminder_at = p_now + p_reminder_intervals[1], resolved_at = null, resolution = null
             where i.kind = p_kind and i.scope = p_scope;
            notice := 'open';
        else
            if p_now >= current.next_reminder_at then
                notice := 'reminder';
            end if;
            update incidents i
               set state = case when notice is null then i.state else 'reminded' end,
                   last_seen = greatest(i.last_seen, p_now),
                   occurrences = i.occurrences + 1,
                   summary = p_summary,
                   details = coalesce(p_details, '{}'),
                   reminders_sent = i.reminders_sent + case when notice is null then 0 else 1 end,
                   next_reminder_at = case when notice is null then i.next_reminder_at
                       else p_now + p_reminder_intervals[least(i.reminders_sent + 2, intervals)] end
             where i.kind = p_kind and i.scope = p_scope;
        end if;
    end if;
    return query
        select notice, i.kind, i.scope, i.state, i.first_seen, i.last_seen, i.occurrences, i.summary, i.details,
               i.reminders_sent, i.next_reminder_at, i.resolved_at, i.resolution
          from incidents i
         where i.kind = p_kind and i.scope = p_scope;
end
$$;

-- The condition behind (kind, scope) has cleared. Returns the incident when this call resolved
-- it (post once), nothing when it was not open (nothing to post; cheap to call on every success).
-- Two resolvers at once: the row lock makes the second find it resolved already.
create function resolve_incident(p_kind text, p_scope text, p_resolution text, p_now timestamptz default now())
returns setof incidents
language sql
set search_path = public, pg_temp
as $$
    update incidents
       set state = 'resolved', resolved_at = p_now, resolution = p_resolution, next_reminder_at = null,
           last_seen = greatest(last_seen, p_now)
     where kind = p_kind and scope = p_scope and state <> 'resolved'
    returning *
$$;

-- The webhook did not take a post: make the next occurrence post again (as a reminder).
create function incident_delivery_failed(p_kind text, p_scope text, p_now timestamptz default now())
returns void
language sql
set search_path = public, pg_temp
as $$
    update incidents set next_reminder_at = p_now
     where kind = p_kind and scope = p_scope and state <> 'resolved'
$$;

-- What operators look at: every incident not yet resolved, oldest first.
create view open_incidents with (security_invoker = true) as
    select kind, scope, state, first_seen, now() - first_seen as age, occurrences, last_seen, summary,
           reminders_sent, next_reminder_at
      from incidents
     where state <> 'resolved'
     order by first_seen;

alter table incidents enable row level security;
revoke all on incidents, open_incidents from anon, authenticated;
revoke execute on function
    raise_incident(text, text, text, jsonb, interval[], timestamptz),
    resolve_incident(text, text, text, timestamptz),
    incident_delivery_failed(text, text, timestamptz)
from public, anon, authenticated;
