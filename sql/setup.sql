--
-- setup: install, what the library reports, and the contract's shape
--
CREATE EXTENSION llm_usage;

-- try(sql): run a statement, return 'ok' or 'SQLSTATE: message'.  Errors
-- roll back the statement (a subtransaction), as they would for a client.
CREATE FUNCTION public.try(q text) RETURNS text
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
GRANT EXECUTE ON FUNCTION public.try(text) TO PUBLIC;

-- a time zone at least two hours away from midnight now, so that tests
-- using "day" periods never straddle a day boundary
CREATE FUNCTION public.safe_zone() RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN extract(hour FROM now() AT TIME ZONE 'UTC') BETWEEN 2 AND 21
                THEN 'UTC' ELSE 'Asia/Tokyo' END
$$;
GRANT EXECUTE ON FUNCTION public.safe_zone() TO PUBLIC;

SELECT component FROM llm_usage.build_info() ORDER BY component;
SELECT version FROM llm_usage.build_info() WHERE component = 'llm_usage';
-- the library is preloaded by the test cluster's configuration
SELECT version FROM llm_usage.build_info() WHERE component = 'preloaded';
SELECT version ~ '^[0-9]+\.[0-9]+\.[0-9]+$' AS libcurl_linked FROM llm_usage.build_info() WHERE component = 'libcurl';
SELECT version ~ '^OpenSSL [0-9]' AS openssl_linked FROM llm_usage.build_info() WHERE component = 'openssl';
SHOW llm_usage.audit_quota_denials;

SELECT extname, extversion, extrelocatable, n.nspname
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname = 'llm_usage';

SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname LIKE 'llm\_usage\_%' ORDER BY 1;
SELECT pg_has_role('llm_usage_admin', 'llm_usage_app', 'USAGE') AS admin_is_app,
       pg_has_role('llm_usage_admin', 'llm_usage_reader', 'USAGE') AS admin_is_reader,
       pg_has_role('llm_usage_app', 'llm_usage_admin', 'USAGE') AS app_is_admin;

-- the public contract (design.md): names, argument order and defaults
SELECT p.proname || '(' || pg_get_function_arguments(p.oid) || ') RETURNS ' || pg_get_function_result(p.oid) AS contract
  FROM pg_proc p
 WHERE p.pronamespace = 'llm_usage'::regnamespace AND p.proname !~ '^_'
 ORDER BY p.proname;

-- every function, table, view and column of note is commented
SELECT p.proname AS function_without_comment
  FROM pg_proc p
 WHERE p.pronamespace = 'llm_usage'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL;
SELECT c.relname AS relation_without_comment
  FROM pg_class c
 WHERE c.relnamespace = 'llm_usage'::regnamespace AND c.relkind IN ('r', 'v', 'p')
   AND obj_description(c.oid, 'pg_class') IS NULL;

-- every SECURITY DEFINER function pins its search_path
SELECT p.proname AS secdef_without_search_path
  FROM pg_proc p
 WHERE p.pronamespace = 'llm_usage'::regnamespace AND p.prosecdef
   AND NOT coalesce(array_to_string(p.proconfig, ',') LIKE '%search_path=pg_catalog, pg_temp%', false);

-- no SECURITY DEFINER function may be executed by any role but its owner:
-- roles call SECURITY INVOKER entry points, which record the caller and run
-- the body (src/caller.c)
SELECT p.oid::regprocedure AS secdef_executable_by_a_role
  FROM pg_proc p
 WHERE p.pronamespace = 'llm_usage'::regnamespace AND p.prosecdef
   AND (has_function_privilege('llm_usage_app', p.oid, 'EXECUTE')
        OR has_function_privilege('llm_usage_reader', p.oid, 'EXECUTE')
        OR has_function_privilege('llm_usage_admin', p.oid, 'EXECUTE'));
SELECT count(*) AS entry_points,
       count(*) FILTER (WHERE b.oid IS NULL OR NOT b.prosecdef) AS without_secdef_body
  FROM pg_proc p
  LEFT JOIN pg_proc b ON b.pronamespace = p.pronamespace AND b.proargtypes = p.proargtypes
                     AND b.proname = CASE WHEN p.proname LIKE '\_%' THEN p.proname || '_impl' ELSE '_' || p.proname || '_impl' END
 WHERE p.pronamespace = 'llm_usage'::regnamespace AND p.prosrc = 'llm_usage_entry';

-- writes through a view would run with the view owner's rights: only the
-- counter view, whose INSTEAD OF trigger runs with the caller's, is writable
SELECT c.relname AS writable_view, r.rolname, priv
  FROM pg_class c
 CROSS JOIN (VALUES ('llm_usage_app'), ('llm_usage_reader'), ('llm_usage_admin')) r(rolname)
 CROSS JOIN unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) priv
 WHERE c.relnamespace = 'llm_usage'::regnamespace AND c.relkind = 'v' AND has_table_privilege(r.rolname, c.oid, priv)
 ORDER BY 1, 2, 3;

-- app and reader roles read no relation that holds tenant data but the
-- three views over functions (whose bodies keep to the caller's tenants)
SELECT c.relname AS tenant_relation_readable, r.rolname
  FROM pg_class c
 CROSS JOIN (VALUES ('llm_usage_app'), ('llm_usage_reader')) r(rolname)
 WHERE c.relnamespace = 'llm_usage'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
   AND has_table_privilege(r.rolname, c.oid, 'SELECT')
 ORDER BY 1, 2;

-- PUBLIC may execute nothing of the extension's
SELECT p.proname AS public_executable
  FROM pg_proc p
 WHERE p.pronamespace = 'llm_usage'::regnamespace AND has_function_privilege('public', p.oid, 'EXECUTE');

-- every tenant table has row-level security (partitions are reached through their parent only)
SELECT c.relname, c.relrowsecurity
  FROM pg_class c
 WHERE c.relnamespace = 'llm_usage'::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
 ORDER BY 1;

-- shipped data
SELECT plan, description FROM llm_usage.plans ORDER BY plan;
SELECT plan, quota_type, period, quota_limit FROM llm_usage.plan_quotas ORDER BY plan, quota_type, period;
SELECT quota_type FROM llm_usage.quota_types ORDER BY 1;
SELECT provider, count(*) AS models, count(*) FILTER (WHERE mode = 'embedding') AS embedding_models,
       count(cached_input_usd_per_mtok) AS with_cached_rate, count(cache_write_usd_per_mtok) AS with_cache_write_rate
  FROM llm_usage.model_prices GROUP BY provider ORDER BY provider;
SELECT model, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok, cache_write_usd_per_mtok, valid_from, valid_to
  FROM llm_usage.model_prices
 WHERE model IN ('gpt-4o', 'gpt-4o-mini', 'text-embedding-3-small', 'claude-sonnet-4-5', 'claude-haiku-4-5', 'claude-opus-4-1')
 ORDER BY model;

-- the tables pg_dump keeps (shipped rows are recreated by CREATE EXTENSION)
SELECT c.relname, x.cond
  FROM pg_extension e, unnest(e.extconfig, e.extcondition) AS x(oid, cond)
  JOIN pg_class c ON c.oid = x.oid
 WHERE e.extname = 'llm_usage'
 ORDER BY 1;

-- every PL/pgSQL body compiles (extension scripts run with function body
-- checks off, so a broken body would otherwise only fail when called)
CREATE FUNCTION public.llm_usage_test_compiles(f oid) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM plpgsql_validator(f);
    RETURN true;
EXCEPTION WHEN others THEN
    RAISE NOTICE '%: %', f::regprocedure, SQLERRM;
    RETURN false;
END
$$;
WITH plpgsql AS MATERIALIZED (
    SELECT p.oid
      FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
     WHERE l.lanname = 'plpgsql' AND p.pronamespace = 'llm_usage'::regnamespace)
SELECT count(*) AS functions, count(*) FILTER (WHERE NOT llm_usage_test_compiles(oid)) AS broken
  FROM plpgsql;
