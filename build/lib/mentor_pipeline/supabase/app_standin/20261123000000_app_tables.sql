-- A stand-in for the peer-mentor app's own tables, for the demo and the tests only. In
-- production these tables belong to the app (Supabase) and already exist with more columns and
-- the app's own policies; the pipeline's migrations (supabase/migrations/) apply on top of them
-- and check first that what they need is there (docs/design/schema-contract.md).
-- Applied by `mentor-pipeline db migrate --with-app-standin` (the demo and the tests do that),
-- recorded in supabase_migrations.app_standin_migrations, never in the pipeline's history.

-- Supabase ships these roles; create them elsewhere (embedded and plain PostgreSQL) so the
-- same files apply everywhere. A concurrent runner may win the race: that is fine.
do $$
declare
    role_name text;
begin
    foreach role_name in array array['anon', 'authenticated', 'service_role'] loop
        if not exists (select 1 from pg_roles where rolname = role_name) then
            begin
                execute format('create role %I nologin', role_name);
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end
$$;

create table organizations (
    id uuid primary key default gen_random_uuid(),
    code text not null unique,
    name text not null,
    -- Whether this organisation lists its mentors on a website fed by Dynamics.
    website_sync_enabled boolean not null default false,
    created_at timestamptz not null default now()
);

create table chapters (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references organizations (id),
    name text not null,
    unique (organization_id, name),
    -- Lets mentors reference (chapter, organisation) so a mentor's chapter is in their organisation.
    unique (id, organization_id)
);

create table mentors (
    id uuid primary key default gen_random_uuid(),
    organization_id uuid not null references organizations (id),
    chapter_id uuid,
    full_name text not null,
    status text not null default 'active'
        constraint mentors_status_check check (status in ('active', 'paused', 'expired_cert')),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    foreign key (chapter_id, organization_id) references chapters (id, organization_id)
);

create table certifications (
    id uuid primary key default gen_random_uuid(),
    mentor_id uuid not null references mentors (id) on delete cascade,
    issued_at timestamptz not null default now(),
    expires_at timestamptz not null,
    created_at timestamptz not null default now(),
    constraint certifications_expires_after_issue check (expires_at > issued_at)
);

-- The app keeps Row Level Security on; its policies for the app roles are the app's business.
alter table organizations enable row level security;
alter table chapters enable row level security;
alter table mentors enable row level security;
alter table certifications enable row level security;
