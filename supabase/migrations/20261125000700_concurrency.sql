-- Concurrency under READ COMMITTED: races between the pipeline's processes and the app's own
-- transactions, each proven by a two-session test in tests/db/test_races.py.

-- ---------------------------------------------------------------------------------------------
-- The nightly transition locks its candidates FOR NO KEY UPDATE, not FOR UPDATE.
--
-- FOR UPDATE also conflicts with the key-share lock every certification INSERT takes on its
-- mentor (the foreign key check). A renewal of a lapsed mentor's certification therefore waited
-- for the whole transition while that transition could itself wait for the renewal's transaction
-- (the outbox row of another mentor the same transaction had touched): a deadlock in which the
-- app's renewal, the first to wait, was the one PostgreSQL cancelled. NO KEY UPDATE is what the
-- UPDATE of the status takes anyway; it still waits for a transaction that changes the mentor
-- row itself, so the decision below still sees such a change once it commits. A renewal that
-- commits before the UPDATE keeps its mentor active; one still open then is a renewal after the
-- night (the mentor is expired and its coordinator reinstates them), exactly as if it came later.
create or replace function expire_mentors_with_lapsed_certifications(p_as_of timestamptz, p_at timestamptz default now())
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
