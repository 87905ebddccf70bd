--
-- dashboards: today_usage, top_consumers, tenant_events, usage_overview, cost_summary
--
SELECT llm_usage.create_tenant('d1', 'enterprise', safe_zone());
SELECT llm_usage.create_tenant('d2', 'enterprise', safe_zone());
SELECT llm_usage.create_tenant('d3', 'enterprise', safe_zone());
SELECT llm_usage.set_custom_quota('d1', 'api_calls', 10, 'day');
SELECT allowed FROM llm_usage.enforce_quota('d1', 'api_calls', 4);

-- today: a few calls each (gpt-4o-mini: 0.15 in, 0.6 out)
SELECT count(llm_usage.track_usage(t, 'chat', 'gpt-4o-mini', n * 1000, n * 100, latency_ms => 100 * n,
                                   result => CASE WHEN n = 2 THEN 'failure' ELSE 'success' END))
  FROM (VALUES ('d1', 1), ('d1', 2), ('d1', 3), ('d2', 10), ('d3', 5)) v(t, n);
SELECT llm_usage.track_usage('d1', 'chat', 'unknown-model', 7, 7) > 0 AS unpriced;

SELECT tenant, day = (now() AT TIME ZONE safe_zone())::date AS is_today, api_calls, failed_calls, input_tokens,
       output_tokens, total_tokens, cost_usd, unpriced_calls, tightest_quota_type, tightest_quota_period,
       tightest_quota_remaining, tightest_quota_percentage
  FROM llm_usage.today_usage('d1');
SELECT api_calls, cost_usd, tightest_quota_type FROM llm_usage.today_usage('d3');

SELECT rank, tenant_id, value FROM llm_usage.top_consumers('tokens') WHERE tenant_id LIKE 'd_';
SELECT rank, tenant_id, value FROM llm_usage.top_consumers('cost', 'monthly') WHERE tenant_id LIKE 'd_';
SELECT rank, tenant_id, value FROM llm_usage.top_consumers('api_calls', 'hourly', 2) WHERE tenant_id LIKE 'd_';
SELECT count(*) <= 2 AS limited FROM llm_usage.top_consumers('api_calls', 'daily', 2);

SELECT event_type, model, input_tokens, result
  FROM llm_usage.tenant_events('d1', now() - interval '1 hour', now() + interval '1 hour');
SELECT count(*) FROM llm_usage.tenant_events('d1', now() - interval '1 hour', now() + interval '1 hour', 'embedding');
SELECT count(*) FROM llm_usage.tenant_events('d1', now() - interval '1 hour', now() + interval '1 hour', max_rows => 2);

-- usage_overview: last 7 days against the 7 before
SELECT llm_usage.track_usage('d2', 'chat', 'gpt-4o-mini', 5000, 500, latency_ms => 100,
                             occurred_at => now() - interval '10 days') > 0 AS previous_period;
-- closed days are read from the daily roll-ups: a late call shows after the next roll-up
SELECT (o->'overview'->'previous_period'->>'runs')::int AS previous_runs_before_rollup
  FROM llm_usage.usage_overview('d2', '7d') o;
SELECT llm_usage.aggregate_usage_metrics('daily') > 0 AS rolled_up;
SELECT (o->'overview') - 'avg_latency_ms' AS overview, o->'models' AS models,
       jsonb_array_length(o->'time_series') AS buckets, o->'most_expensive'->0->'tokens' AS top_tokens
  FROM llm_usage.usage_overview('d2', '7d') o;
SELECT jsonb_array_length(o->'most_expensive') AS expensive, o->'overview'->'runs' AS runs
  FROM unnest(ARRAY['7d', '30d', '90d', '1y']) p, llm_usage.usage_overview('d1', p) o;
SELECT o->'overview'->'runs' AS runs, o->'models' AS models FROM llm_usage.usage_overview('d3') o;

-- cost_summary: tracked against provider-reported, side by side
-- provider days are UTC days: the one dated like the tenant's yesterday
INSERT INTO llm_usage.provider_costs (tenant_id, key_id, provider, bucket_start, bucket_end, line_item, amount_usd)
SELECT 'd1', 0, 'openai', d, d + interval '1 day', 'gpt-4o-mini, input', 0.123456
  FROM (SELECT ((now() AT TIME ZONE safe_zone())::date - 1)::timestamp AT TIME ZONE 'UTC' AS d) x;
SELECT llm_usage.track_usage('d1', 'chat', 'gpt-4o-mini', 100000, 10000,
                             occurred_at => date_trunc('day', now(), safe_zone()) - interval '12 hours') > 0 AS yesterday;
SELECT yesterday_tracked_usd AS before_rollup FROM llm_usage.cost_summary('d1');
SELECT llm_usage.aggregate_usage_metrics('daily') > 0 AS rolled_up;
SELECT tenant, yesterday = (now() AT TIME ZONE safe_zone())::date - 1 AS is_yesterday,
       yesterday_tracked_usd, yesterday_provider_usd,
       week_start = date_trunc('week', now() AT TIME ZONE safe_zone())::date AS is_monday,
       week_tracked_usd >= 0.0024 AS week_tracked_includes_today
  FROM llm_usage.cost_summary('d1');
SELECT tenant FROM llm_usage.cost_summary() WHERE tenant LIKE 'd_' ORDER BY 1;

-- bad input
SELECT try($$SELECT * FROM llm_usage.today_usage(NULL)$$);
SELECT try($$SELECT * FROM llm_usage.today_usage('nobody')$$);
SELECT try($$SELECT * FROM llm_usage.top_consumers('happiness')$$);
SELECT try($$SELECT * FROM llm_usage.top_consumers(NULL)$$);
SELECT try($$SELECT * FROM llm_usage.top_consumers('tokens', 'weekly')$$);
SELECT try($$SELECT * FROM llm_usage.top_consumers('tokens', 'daily', 0)$$);
SELECT try($$SELECT * FROM llm_usage.top_consumers('tokens', 'daily', NULL)$$);
SELECT try($$SELECT * FROM llm_usage.tenant_events('d1', '2026-02-01 00:00+00', '2026-01-01 00:00+00')$$);
SELECT try($$SELECT * FROM llm_usage.tenant_events('d1', now() - interval '1 day', now(), '')$$);
SELECT try($$SELECT * FROM llm_usage.tenant_events('d1', now() - interval '1 day', now(), E'x\ty')$$);
SELECT count(*) AS dance_events FROM llm_usage.tenant_events('d1', now() - interval '1 day', now(), 'dance');
SELECT try($$SELECT * FROM llm_usage.tenant_events('d1', now() - interval '1 day', now(), NULL, 100000)$$);
SELECT try($$SELECT * FROM llm_usage.tenant_events('nobody', now() - interval '1 day', now())$$);
SELECT try($$SELECT llm_usage.usage_overview('d1', '2w')$$);
SELECT try($$SELECT llm_usage.usage_overview('d1', NULL)$$);
SELECT try($$SELECT llm_usage.usage_overview('nobody')$$);
SELECT try($$SELECT * FROM llm_usage.cost_summary('nobody')$$);
SELECT try($$SELECT * FROM llm_usage.cost_summary('')$$);
