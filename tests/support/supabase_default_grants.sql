-- What a Supabase project grants in schema public before any migration of ours runs: the API
-- roles get everything on every table, sequence and function created there (the statements of
-- Supabase's initial schema, 00-initial-schema.sql). Tests apply this first, so every privilege
-- test runs against what production really starts from; the migrations must take back what the
-- app roles should not have.
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

grant usage on schema public to anon, authenticated, service_role;
alter default privileges in schema public grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public grant all on functions to anon, authenticated, service_role;
alter default privileges in schema public grant all on sequences to anon, authenticated, service_role;
