--
-- roll-ups on randomized data: incremental runs between batches of calls
-- (late ones included) give exactly what a from-scratch computation over
-- the raw calls gives, for every period type, in four time zones
--
SELECT setseed(0.4242);
SELECT llm_usage.create_tenant('rnd_' || i, 'enterprise',
                               (ARRAY['UTC', 'Asia/Tokyo', 'America/New_York', 'Asia/Kolkata'])[i])
  FROM generate_series(1, 4) i;

CREATE TEMP TABLE batches AS SELECT generate_series(1, 4) AS b;
CREATE FUNCTION pg_temp.random_calls(n integer, days_back integer) RETURNS bigint
LANGUAGE sql AS $$
    SELECT count(llm_usage.track_usage(
               'rnd_' || (1 + floor(random() * 4))::int,
               (ARRAY['chat', 'embedding', 'completion', 'tool'])[1 + floor(random() * 4)::int],
               (ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-haiku-4-5', 'rnd-unpriced-model'])[1 + floor(random() * 4)::int],
               x.input, (random() * 2000)::bigint, (x.input * random() * 0.5)::bigint,
               latency_ms => CASE WHEN random() < 0.9 THEN (random() * 4000)::int END,
               result => (ARRAY['success', 'success', 'success', 'failure', 'rate_limited'])[1 + floor(random() * 5)::int],
               occurred_at => '2026-03-20 00:00+00'::timestamptz - random() * make_interval(days => days_back)))
      FROM (SELECT (random() * 8000)::bigint AS input FROM generate_series(1, n)) x
$$;

-- batch 1, roll up; batch 2 with late calls, roll up; batch 3 without a roll-up in between
SELECT pg_temp.random_calls(600, 40);
SELECT llm_usage.aggregate_usage_metrics(p) > 0 AS rolled FROM unnest(ARRAY['hourly', 'daily', 'monthly']) p;
SELECT pg_temp.random_calls(300, 60);
SELECT llm_usage.aggregate_usage_metrics(p) > 0 AS rolled FROM unnest(ARRAY['hourly', 'daily', 'monthly']) p;
SELECT pg_temp.random_calls(300, 5);
SELECT pg_temp.random_calls(100, 90);
SELECT llm_usage.aggregate_usage_metrics(p) > 0 AS rolled FROM unnest(ARRAY['hourly', 'daily', 'monthly']) p;
-- batch 4: more than 100 hours touched within three days
SELECT pg_temp.random_calls(400, 3);
SELECT llm_usage.aggregate_usage_metrics(p) > 0 AS rolled FROM unnest(ARRAY['hourly', 'daily', 'monthly']) p;

CREATE TEMP VIEW recomputed AS
SELECT e.tenant_id, pt.period_type, date_trunc(pt.unit, e.occurred_at, t.timezone) AS period_start,
       count(*) AS api_calls_total,
       count(*) FILTER (WHERE e.result = 'failure') AS api_calls_failed,
       count(*) FILTER (WHERE e.result = 'rate_limited') AS rate_limited_count,
       count(*) FILTER (WHERE e.event_type = 'chat') AS chat_messages_sent,
       count(*) FILTER (WHERE e.event_type = 'embedding') AS embeddings_generated,
       sum(e.input_tokens) AS input_tokens, sum(e.output_tokens) AS output_tokens,
       sum(e.cached_input_tokens) AS cached_input_tokens, sum(e.total_tokens) AS total_tokens_used,
       coalesce(sum(e.cost_usd), 0) AS estimated_cost_usd,
       count(*) FILTER (WHERE e.cost_usd IS NULL) AS unpriced_calls,
       round(percentile_cont(0.50) WITHIN GROUP (ORDER BY e.latency_ms)::numeric, 2) AS p50,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY e.latency_ms)::numeric, 2) AS p95,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY e.latency_ms)::numeric, 2) AS p99,
       round(count(*) FILTER (WHERE e.result <> 'success')::numeric / count(*), 4) AS error_rate,
       coalesce(sum(e.latency_ms), 0)::numeric AS latency_sum_ms, count(e.latency_ms) AS latency_count
  FROM llm_usage.usage_events e
  JOIN llm_usage.tenants t ON t.tenant_id = e.tenant_id
 CROSS JOIN (VALUES ('hourly', 'hour'), ('daily', 'day'), ('monthly', 'month')) pt(period_type, unit)
 WHERE e.tenant_id LIKE 'rnd\_%'
 GROUP BY 1, 2, 3;
CREATE TEMP VIEW rolled AS
SELECT tenant_id, period_type, period_start, api_calls_total, api_calls_failed, rate_limited_count,
       chat_messages_sent, embeddings_generated, input_tokens, output_tokens, cached_input_tokens,
       total_tokens_used, estimated_cost_usd, unpriced_calls, api_latency_p50_ms, api_latency_p95_ms,
       api_latency_p99_ms, error_rate, latency_sum_ms, latency_count
  FROM llm_usage.tenant_usage_metrics WHERE tenant_id LIKE 'rnd\_%';

SELECT (SELECT count(*) FROM llm_usage.usage_events WHERE tenant_id LIKE 'rnd\_%') AS calls,
       (SELECT count(*) FROM recomputed) AS periods,
       (SELECT count(*) FROM (SELECT * FROM recomputed EXCEPT SELECT * FROM rolled) x) AS missing_or_wrong,
       (SELECT count(*) FROM (SELECT * FROM rolled EXCEPT SELECT * FROM recomputed) x) AS extra_or_wrong;
SELECT period_type, count(*) AS periods, sum(api_calls_total) AS calls FROM rolled GROUP BY 1 ORDER BY 1;

-- a full recomputation from scratch changes nothing either
SELECT sum(llm_usage.aggregate_usage_metrics(p, since => '2025-01-01')) AS rows_changed
  FROM unnest(ARRAY['hourly', 'daily', 'monthly']) p;
