--
-- roles, tenant access and row-level security, with real roles
--
SELECT llm_usage.create_tenant('sec_a', 'pro');
SELECT llm_usage.create_tenant('sec_b', 'pro');
SELECT llm_usage.track_usage('sec_a', 'chat', 'gpt-4o-mini', 100, 10, request_id => 'a-1') > 0 AS a_tracked;
SELECT llm_usage.track_usage('sec_b', 'chat', 'gpt-4o-mini', 200, 20, request_id => 'b-1') > 0 AS b_tracked;
SELECT llm_usage.track_usage('sec_b', 'chat', 'b-secret-model', 1, 1) > 0 AS b_unpriced;
SELECT llm_usage.aggregate_usage_metrics('daily') > 0 AS rolled_up;

CREATE ROLE regress_app_a LOGIN IN ROLE llm_usage_app;
CREATE ROLE regress_reader_a LOGIN IN ROLE llm_usage_reader;
CREATE ROLE regress_admin LOGIN IN ROLE llm_usage_admin;
CREATE ROLE regress_outsider LOGIN;
CREATE ROLE regress_team_a NOLOGIN;                 -- a group that is granted the tenant
CREATE ROLE regress_member_a LOGIN IN ROLE llm_usage_app, regress_team_a;

SELECT llm_usage.grant_tenant_access('regress_app_a', 'sec_a');
SELECT llm_usage.grant_tenant_access('regress_reader_a', 'sec_a');
SELECT llm_usage.grant_tenant_access('regress_team_a', 'sec_a');
SELECT llm_usage.grant_tenant_access('regress_app_a', 'sec_a');   -- again: no-op
SELECT tenant_id, role_name FROM llm_usage.tenant_access ORDER BY 1, 2;

-- the caller is current_user as the client set it
SET ROLE regress_app_a;
SELECT llm_usage._caller()::regrole AS caller, llm_usage._my_tenants() AS my_tenants, llm_usage._is_admin() AS admin;

-- app: enforce, track, status for its tenant
SELECT allowed FROM llm_usage.enforce_quota('sec_a', 'api_calls');
SELECT llm_usage.track_usage('sec_a', 'chat', 'gpt-4o-mini', 1, 1, request_id => 'a-2') > 0 AS tracked;
SELECT count(*) > 0 AS has_status FROM llm_usage.quota_status('sec_a');
SELECT api_calls FROM llm_usage.today_usage('sec_a');
SELECT llm_usage.audit('sec_a', 'usage', 'app_event') > 0 AS audited;
-- ... and nothing of the other tenant; an unknown tenant looks the same (no leak)
SELECT try($$SELECT * FROM llm_usage.enforce_quota('sec_b', 'api_calls')$$);
SELECT try($$SELECT llm_usage.track_usage('sec_b', 'chat')$$);
SELECT try($$SELECT * FROM llm_usage.quota_status('sec_b')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('sec_b', '{"tokens": 1}')$$);
SELECT try($$SELECT llm_usage.audit('sec_b', 'usage', 'x')$$);
SELECT try($$SELECT llm_usage.deduct_credits('sec_b', 1, 'x')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('no_such_tenant', 'api_calls')$$);
-- no direct reads of tenant tables (row-level security alone would leave
-- EXPLAIN ANALYZE counting other tenants' rows): functions and the views
-- over them only
SELECT try($$SELECT tenant_id, request_id FROM llm_usage.usage_events$$);
SELECT try($$SELECT tenant_id FROM llm_usage.tenants$$);
SELECT try($$SELECT tenant_id FROM llm_usage.tenant_usage_metrics$$);
SELECT try($$SELECT tenant_id FROM llm_usage.credit_balances$$);
SELECT DISTINCT tenant_id FROM llm_usage.quota_counters;
-- admin functions and direct writes are refused
SELECT try($$SELECT llm_usage.create_tenant('evil')$$);
SELECT try($$SELECT llm_usage.set_custom_quota('sec_a', 'api_calls', 1000000)$$);
SELECT try($$SELECT llm_usage.grant_tenant_access('regress_app_a', 'sec_b')$$);
SELECT try($$SELECT llm_usage.grant_credits('sec_a', 100, 'free money')$$);
SELECT try($$SELECT llm_usage.set_model_price('openai', 'gpt-4o-mini', 0, 0)$$);
SELECT try($$SELECT llm_usage.aggregate_usage_metrics()$$);
SELECT try($$UPDATE llm_usage.quota_counters SET used = 0$$);
SELECT try($$INSERT INTO llm_usage.usage_events (tenant_id, event_type) VALUES ('sec_b', 'chat')$$);
SELECT try($$DELETE FROM llm_usage.usage_events$$);
SELECT try($$SELECT * FROM llm_usage.audit_events$$);
SELECT try($$SELECT * FROM llm_usage.tenant_access$$);
-- reader functions are not the app's
SELECT try($$SELECT * FROM llm_usage.tenant_usage('sec_a', now() - interval '1 day', now())$$);
RESET ROLE;

-- a login role in a group that was granted the tenant
SET ROLE regress_member_a;
SELECT allowed FROM llm_usage.enforce_quota('sec_a', 'api_calls');
SELECT try($$SELECT * FROM llm_usage.enforce_quota('sec_b', 'api_calls')$$);
RESET ROLE;

-- reader: roll-ups and dashboards of its tenant only
INSERT INTO llm_usage.alerts (tenant_id, kind, message, subject)
VALUES ('sec_a', 'cost_anomaly', 'regress alert of sec_a', 'regress'),
       ('sec_b', 'cost_anomaly', 'regress alert of sec_b', 'regress');
SET ROLE regress_reader_a;
SELECT tenant_id, api_calls_total FROM llm_usage.tenant_usage('sec_a', now() - interval '2 days', now() + interval '1 day');
SELECT tenant_id FROM llm_usage.top_consumers('tokens');
SELECT tenant FROM llm_usage.cost_summary();
SELECT model FROM llm_usage.unpriced_models();
SELECT o->>'tenant_id' FROM llm_usage.usage_overview('sec_a', '7d') o;
SELECT count(*) > 0 AS has_trail FROM llm_usage.audit_trail('sec_a');
SELECT try($$SELECT DISTINCT tenant_id FROM llm_usage.tenant_usage_metrics$$);
SELECT try($$SELECT count(*) FROM llm_usage.alerts$$);
SELECT tenant, message FROM llm_usage.alerts_for() WHERE subject = 'regress';
SELECT count(*) AS runs FROM llm_usage.collector_runs_for('sec_a');
SELECT try($$SELECT * FROM llm_usage.alerts_for('sec_b')$$);
SELECT try($$SELECT * FROM llm_usage.collector_runs_for('sec_b')$$);
SELECT try($$SELECT * FROM llm_usage.tenant_usage('sec_b', now() - interval '2 days', now())$$);
SELECT try($$SELECT llm_usage.usage_overview('sec_b')$$);
SELECT try($$SELECT * FROM llm_usage.cost_summary('sec_b')$$);
SELECT try($$SELECT * FROM llm_usage.tenant_events('sec_b', now() - interval '1 day', now() + interval '1 day')$$);
SELECT try($$SELECT * FROM llm_usage.audit_trail('sec_b')$$);
SELECT try($$SELECT llm_usage.audit_report('sec_b', now() - interval '1 day', now())$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('sec_a', 'api_calls')$$);
SELECT try($$SELECT llm_usage.track_usage('sec_a', 'chat')$$);
RESET ROLE;

DELETE FROM llm_usage.alerts WHERE subject = 'regress';

-- a role with no llm_usage role at all gets nothing
SET ROLE regress_outsider;
SELECT try($$SELECT * FROM llm_usage.quota_status('sec_a')$$);
SELECT try($$SELECT * FROM llm_usage.usage_events$$);
RESET ROLE;
SELECT llm_usage.grant_tenant_access('regress_outsider', 'sec_a');
SET ROLE regress_outsider;
SELECT try($$SELECT * FROM llm_usage.quota_status('sec_a')$$);
RESET ROLE;

-- an llm_usage admin (not a superuser) sees and manages everything
SET ROLE regress_admin;
SELECT llm_usage._is_admin() AS admin;
SELECT count(DISTINCT tenant_id) >= 2 AS sees_all FROM llm_usage.usage_events WHERE tenant_id LIKE 'sec_%';
SELECT llm_usage.set_custom_quota('sec_b', 'api_calls', 5);
SELECT count(*) > 0 AS audit_readable FROM llm_usage.audit_events WHERE tenant_id = 'sec_b';
SELECT try($$UPDATE llm_usage.audit_events SET action = 'x'$$);
RESET ROLE;

-- revoking takes effect at once
SELECT llm_usage.revoke_tenant_access('regress_app_a', 'sec_a');
SELECT llm_usage.revoke_tenant_access('regress_app_a', 'sec_a');
SET ROLE regress_app_a;
SELECT try($$SELECT * FROM llm_usage.enforce_quota('sec_a', 'api_calls')$$);
SELECT count(*) AS visible_counters FROM llm_usage.quota_counters;
RESET ROLE;
SELECT try($$SELECT llm_usage.grant_tenant_access(NULL, 'sec_a')$$);
SELECT try($$SELECT llm_usage.grant_tenant_access('regress_app_a', 'nobody')$$);
SELECT try($$SELECT llm_usage.grant_tenant_access('regress_no_such_role', 'sec_a')$$);
SELECT action, details FROM llm_usage.security_events('sec_a') ORDER BY audit_id;

-- a SECURITY DEFINER function is not fooled by the caller's search_path
CREATE SCHEMA regress_evil;
CREATE FUNCTION regress_evil.pg_has_role(oid, name, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
GRANT USAGE ON SCHEMA regress_evil TO PUBLIC;
SET ROLE regress_app_a;
SET search_path = regress_evil, public;
SELECT try($$SELECT * FROM llm_usage.enforce_quota('sec_b', 'api_calls')$$);
RESET search_path;
RESET ROLE;

-- the caller is the current user when the API is entered: a SECURITY
-- DEFINER function owned by a role without tenant access gets nothing,
-- whoever calls it (the superuser here, the app role below)
CREATE ROLE regress_wrapper NOLOGIN IN ROLE llm_usage_app;
CREATE SCHEMA regress_wrap AUTHORIZATION regress_wrapper;
GRANT USAGE ON SCHEMA regress_wrap TO PUBLIC;
SET ROLE regress_wrapper;
CREATE FUNCTION regress_wrap.status(t text) RETURNS bigint LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT count(*) FROM llm_usage.quota_status(t) $$;
CREATE FUNCTION regress_wrap.who() RETURNS text LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT llm_usage._caller()::regrole::text $$;
CREATE FUNCTION regress_wrap.events() RETURNS bigint LANGUAGE sql SECURITY DEFINER
    AS $$ SELECT count(*) FROM llm_usage.quota_counters $$;
RESET ROLE;
SELECT try($$SELECT regress_wrap.status('sec_a')$$) AS superuser_through_wrapper;
SELECT regress_wrap.who() AS caller_in_wrapper, regress_wrap.events() AS events_in_wrapper;
SET ROLE regress_member_a;
SELECT count(*) > 0 AS member_sees_own_status FROM llm_usage.quota_status('sec_a');
SELECT try($$SELECT regress_wrap.status('sec_a')$$) AS member_through_wrapper;
RESET ROLE;
DROP SCHEMA regress_wrap CASCADE;
DROP ROLE regress_wrapper;

-- clean up the roles (they are cluster-wide)
DROP SCHEMA regress_evil CASCADE;
DELETE FROM llm_usage.tenant_access WHERE role_name::text LIKE 'regress\_%';
DROP ROLE regress_app_a, regress_reader_a, regress_admin, regress_outsider, regress_member_a, regress_team_a;
