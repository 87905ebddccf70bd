--
-- tenants and plans: create, change, and every bad input
--
SELECT llm_usage.create_tenant('acme');
SELECT llm_usage.create_tenant('globex', 'pro', 'Europe/Berlin');
SELECT llm_usage.create_tenant('initech', plan => 'enterprise', timezone => 'America/New_York');
SELECT tenant_id, plan, timezone FROM llm_usage.tenants ORDER BY tenant_id;

-- bad input: clear error, SQLSTATE, nothing created
SELECT try($$SELECT llm_usage.create_tenant(NULL)$$);
SELECT try($$SELECT llm_usage.create_tenant('')$$);
SELECT try($$SELECT llm_usage.create_tenant('has space')$$);
SELECT try($$SELECT llm_usage.create_tenant(repeat('x', 129))$$);
SELECT try($$SELECT llm_usage.create_tenant('t1', 'platinum')$$);
SELECT try($$SELECT llm_usage.create_tenant('t1', NULL)$$);
SELECT try($$SELECT llm_usage.create_tenant('t1', 'pro', 'Mars/Olympus')$$);
SELECT try($$SELECT llm_usage.create_tenant('t1', 'pro', NULL)$$);
SELECT try($$SELECT llm_usage.create_tenant('acme', 'pro')$$);
SELECT count(*) AS tenants FROM llm_usage.tenants;
SELECT plan FROM llm_usage.tenants WHERE tenant_id = 'acme';

\set SHOW_CONTEXT never
-- the hints a user sees
SELECT llm_usage.create_tenant('t1', 'platinum');
SELECT llm_usage.create_tenant('acme');

-- update_tenant
SELECT llm_usage.update_tenant('acme', plan => 'starter');
SELECT llm_usage.update_tenant('acme', timezone => 'Asia/Tokyo');
SELECT tenant_id, plan, timezone FROM llm_usage.tenants WHERE tenant_id = 'acme';
SELECT try($$SELECT llm_usage.update_tenant('acme')$$);
SELECT try($$SELECT llm_usage.update_tenant('nobody', 'pro')$$);
SELECT try($$SELECT llm_usage.update_tenant('acme', 'platinum')$$);
SELECT try($$SELECT llm_usage.update_tenant('acme', timezone => 'Nowhere')$$);
SELECT try($$SELECT llm_usage.update_tenant(NULL, 'pro')$$);
SELECT tenant_id, plan, timezone FROM llm_usage.tenants WHERE tenant_id = 'acme';

-- plans: shipped plans are read-only, own plans are free
SELECT llm_usage.create_plan('team', 'Internal teams', copy_from => 'starter');
SELECT quota_type, period, quota_limit FROM llm_usage.plan_quotas WHERE plan = 'team' ORDER BY 1, 2;
SELECT llm_usage.set_plan_quota('team', 'tokens', 123456, 'day');
SELECT llm_usage.set_plan_quota('team', 'embeddings', NULL, 'hour');
SELECT quota_type, period, quota_limit FROM llm_usage.plan_quotas WHERE plan = 'team' AND quota_type IN ('tokens', 'embeddings') ORDER BY 1, 2;
SELECT try($$SELECT llm_usage.create_plan('team')$$);
SELECT try($$SELECT llm_usage.create_plan('Bad Name')$$);
SELECT try($$SELECT llm_usage.create_plan(NULL)$$);
SELECT try($$SELECT llm_usage.create_plan('x2', copy_from => 'nothing')$$);
SELECT try($$SELECT llm_usage.set_plan_quota('pro', 'tokens', 1, 'day')$$);
SELECT try($$SELECT llm_usage.set_plan_quota('team', 'widgets', 1, 'day')$$);
SELECT try($$SELECT llm_usage.set_plan_quota('team', 'tokens', -1, 'day')$$);
SELECT try($$SELECT llm_usage.set_plan_quota('team', 'tokens', 1, 'week')$$);
SELECT try($$SELECT llm_usage.set_plan_quota('ghost', 'tokens', 1, 'day')$$);
SELECT try($$UPDATE llm_usage.plan_quotas SET quota_limit = 1 WHERE plan = 'pro'$$);
SELECT try($$DELETE FROM llm_usage.plans WHERE plan = 'trial'$$);
SELECT llm_usage.set_plan_quota('pro', 'tokens', 1, 'day');
SELECT count(*) AS plans FROM llm_usage.plans;
SELECT quota_limit FROM llm_usage.plan_quotas WHERE plan = 'pro' AND quota_type = 'tokens' AND period = 'day';

-- tenant creation and changes are audited
SELECT tenant_id, event_type, action, result, details
  FROM llm_usage.audit_events WHERE action IN ('create_tenant', 'update_tenant') ORDER BY audit_id;

-- a time zone is a name of pg_timezone_names, exactly: the session's set of
-- names (src/zone_names.c) answers as the view does for every name it lists
-- and for names it does not (case, abbreviations, POSIX specifications,
-- paths, the empty name, 300 characters)
SELECT count(*) > 400 AS many, count(*) FILTER (WHERE NOT llm_usage._zone_known(name)) AS not_known
  FROM pg_catalog.pg_timezone_names;
CREATE TEMP TABLE zone_probes AS
SELECT probe, llm_usage._zone_known(probe) AS known,
       EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = probe) AS listed
  FROM unnest(ARRAY['UTC', 'Europe/Berlin', 'europe/berlin', 'EUROPE/BERLIN', 'Europe/Berlin ', 'America/Havana',
                    'UTC+3', '<+03>-3', 'PST8PDT,M3.2.0,M11.1.0', '../etc/passwd', '/usr/share/zoneinfo/UTC',
                    'Europe/', '', repeat('a', 300), 'posixrules', 'Factory', 'CET', 'EST5EDT']) AS probe;
SELECT left(probe, 20) AS probe, known FROM zone_probes WHERE probe NOT IN ('posixrules', 'Factory', 'CET', 'EST5EDT');
SELECT count(*) AS probes, count(*) FILTER (WHERE known IS DISTINCT FROM listed) AS disagree FROM zone_probes;
SELECT llm_usage._zone_known(NULL) IS NULL AS strict;
SELECT try($$SELECT llm_usage.create_tenant('tz-probe', timezone => 'UTC+3')$$);
SELECT try($$SELECT llm_usage.create_tenant('tz-probe', timezone => 'europe/berlin')$$);
SELECT count(*) FROM llm_usage.tenants WHERE tenant_id = 'tz-probe';
