-- The llm_usage SQL API in two minutes: what an application does before and
-- after each LLM call, and what a dashboard reads.  Run by test/quickstart.sh.
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
\set SHOW_CONTEXT never
CREATE EXTENSION llm_usage;

\echo
\echo '== tenants on plans, each in its own time zone'
SELECT llm_usage.create_tenant('acme', 'starter', 'Europe/Berlin');
SELECT llm_usage.create_tenant('globex', 'pro', 'America/New_York');
SELECT llm_usage.create_tenant('initech', 'trial', 'Asia/Tokyo');
SELECT llm_usage.set_custom_quota('initech', 'api_calls', 5, 'day');
SELECT tenant_id, plan, timezone FROM llm_usage.tenants ORDER BY 1;

\echo '== an application role that may act for acme only'
CREATE ROLE demo_app LOGIN IN ROLE llm_usage_app;
SELECT llm_usage.grant_tenant_access('demo_app', 'acme');

\echo '== before each call: enforce_quota(); after it: track_usage() (cost from published prices)'
SET ROLE demo_app;
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quotas('acme', '{"api_calls": 1, "tokens": 3500}') q,
       LATERAL (SELECT (q.results->'tokens'->>'quota_limit')::numeric AS quota_limit,
                       (q.results->'tokens'->>'used')::numeric AS used,
                       (q.results->'tokens'->>'remaining')::numeric AS remaining) t;
SELECT llm_usage.track_usage('acme', 'chat', 'gpt-4o', 3000, 500, 1200, 820, request_id => 'req-0001') AS event_id;
SELECT llm_usage.track_usage('acme', 'chat', 'gpt-4o', 3000, 500, 1200, 820, request_id => 'req-0001') AS same_event_id_on_retry;
SELECT llm_usage.track_usage('acme', 'chat', 'claude-sonnet-4-5', 12000, 900, 9000, 1430,
                             cache_write_tokens => 2000, request_id => 'req-0002') AS event_id;
SELECT llm_usage.track_usage('acme', 'embedding', 'text-embedding-3-small', 52000, latency_ms => 95) AS event_id;
\echo '-- and it cannot touch another tenant:'
\set ON_ERROR_STOP off
SELECT * FROM llm_usage.enforce_quota('globex', 'api_calls');
\set ON_ERROR_STOP on
RESET ROLE;

SELECT count(llm_usage.track_usage('globex', 'chat', m, i * 800, i * 90, i * 200, 300 + 37 * i,
                                   result => CASE WHEN i % 9 = 0 THEN 'failure' ELSE 'success' END))
       AS globex_calls
  FROM generate_series(1, 27) i, (VALUES ('gpt-4o-mini'), ('claude-haiku-4-5')) v(m);
SELECT llm_usage.track_usage('globex', 'chat', 'in-house-model-v2', 4000, 400) AS unpriced_event;

\echo '== a tenant over its quota is refused, and nothing is consumed'
SELECT i AS call, q.allowed, q.used, q.remaining
  FROM generate_series(1, 7) i, LATERAL llm_usage.enforce_quota('initech', 'api_calls', 1 + 0 * i) q;

\echo '== quota_status(acme)'
SELECT quota_type, period, quota_limit, used, remaining, percentage, resets_at FROM llm_usage.quota_status('acme');

\echo '== today_usage(acme): calls, tokens, cost so far today in Berlin, tightest quota'
SELECT tenant, day, api_calls, total_tokens, cost_usd, tightest_quota_type, tightest_quota_period, tightest_quota_percentage
  FROM llm_usage.today_usage('acme');

\echo '== calculate_cost: cached input is billed at the cached rate'
SELECT llm_usage.calculate_cost('gpt-4o', 3000, 500) AS uncached_usd,
       llm_usage.calculate_cost('gpt-4o', 3000, 500, 1200) AS with_1200_cached_usd;

\echo '== top_consumers by cost, today'
SELECT rank, tenant_id, value AS cost_usd FROM llm_usage.top_consumers('cost');

\echo '== models used without a price (cost NULL, not 0)'
SELECT model, calls, input_tokens, output_tokens FROM llm_usage.unpriced_models();
SELECT llm_usage.set_model_price('custom', 'in-house-model-v2', 0.5, 1.5, valid_from => now() - interval '1 day') AS price_id;
SELECT count(*) AS still_unpriced FROM llm_usage.unpriced_models();

\echo '== roll-ups (hourly, daily) and the daily row for globex'
SELECT llm_usage.aggregate_usage_metrics('hourly') AS hourly_rows, llm_usage.aggregate_usage_metrics('daily') AS daily_rows;
SELECT tenant_id, period_start, api_calls_total, api_calls_failed, total_tokens_used, estimated_cost_usd,
       api_latency_p50_ms, api_latency_p95_ms, api_latency_p99_ms, error_rate
  FROM llm_usage.tenant_usage('globex', now() - interval '2 days', now() + interval '1 day');

\echo '== cost_summary: yesterday and this week, tracked vs provider-reported (none collected yet)'
SELECT * FROM llm_usage.cost_summary();

\echo '== usage_overview(globex, 7d)'
SELECT jsonb_pretty(jsonb_build_object('overview', o->'overview', 'models', o->'models')) AS usage_overview
  FROM llm_usage.usage_overview('globex', '7d') o;

\echo '== credits and the audit trail'
SELECT llm_usage.grant_credits('acme', 50, 'prepaid top-up', 'inv-2026-001') AS balance;
SELECT llm_usage.deduct_credits('acme', 0.0251, 'call req-0001', 'req-0001') AS balance;
SELECT created_at::time(0) AS at, event_type, action, result, actor FROM llm_usage.audit_trail('acme');
