--
-- aggregate_usage_metrics: periods in the tenant's zone, percentiles, error
-- rate, idempotence, incremental runs, late events
--
SET timezone = 'UTC';
SELECT llm_usage.create_tenant('r_utc', 'enterprise', 'UTC');
SELECT llm_usage.create_tenant('r_tokyo', 'enterprise', 'Asia/Tokyo');

-- the same ten calls for both tenants, around 2026-02-01 00:00 UTC (09:00 in Tokyo)
SELECT count(llm_usage.track_usage(t, CASE WHEN i % 5 = 0 THEN 'embedding' ELSE 'chat' END,
                                   CASE WHEN i % 5 = 0 THEN 'text-embedding-3-small' ELSE 'gpt-4o-mini' END,
                                   1000 * i, 100 * i, 0, 100 * i, 200,
                                   CASE WHEN i = 3 THEN 'failure' WHEN i = 7 THEN 'rate_limited' ELSE 'success' END,
                                   occurred_at => '2026-01-31 20:00+00'::timestamptz + make_interval(hours => i)))
  FROM unnest(ARRAY['r_utc', 'r_tokyo']) t, generate_series(1, 10) i;

SELECT llm_usage.aggregate_usage_metrics('daily') > 0 AS wrote_rows;
SELECT tenant_id, period_start, api_calls_total, api_calls_failed, rate_limited_count, chat_messages_sent,
       embeddings_generated, input_tokens, output_tokens, total_tokens_used, estimated_cost_usd, unpriced_calls,
       api_latency_p50_ms, api_latency_p95_ms, api_latency_p99_ms, error_rate
  FROM llm_usage.tenant_usage_metrics WHERE period_type = 'daily' AND tenant_id LIKE 'r\_%'
 ORDER BY tenant_id, period_start;
-- cross-check against the raw events
SELECT sum(estimated_cost_usd) = (SELECT sum(cost_usd) FROM llm_usage.usage_events WHERE tenant_id = 'r_utc') AS cost_matches
  FROM llm_usage.tenant_usage_metrics WHERE period_type = 'daily' AND tenant_id = 'r_utc';

-- idempotent: a re-run writes nothing and changes nothing
CREATE TEMP TABLE snap AS SELECT * FROM llm_usage.tenant_usage_metrics;
SELECT llm_usage.aggregate_usage_metrics('daily') AS rows_written;
SELECT llm_usage.aggregate_usage_metrics('daily', since => '2026-01-01') AS rows_written_full_recompute;
SELECT count(*) AS changed FROM (SELECT * FROM llm_usage.tenant_usage_metrics EXCEPT SELECT * FROM snap) x;

-- hourly and monthly
SELECT llm_usage.aggregate_usage_metrics('hourly') > 0 AS wrote_hourly;
SELECT llm_usage.aggregate_usage_metrics('monthly') > 0 AS wrote_monthly;
SELECT tenant_id, period_start, api_calls_total, total_tokens_used
  FROM llm_usage.tenant_usage_metrics WHERE period_type = 'monthly' AND tenant_id LIKE 'r\_%'
 ORDER BY tenant_id, period_start;
SELECT count(*) AS hourly_periods, sum(api_calls_total) AS calls
  FROM llm_usage.tenant_usage_metrics WHERE period_type = 'hourly' AND tenant_id = 'r_tokyo';

-- a late event (days ago) lands in its own period and only that one is rewritten
DROP TABLE snap;
CREATE TEMP TABLE snap AS SELECT * FROM llm_usage.tenant_usage_metrics;
SELECT llm_usage.track_usage('r_tokyo', 'chat', 'gpt-4o-mini', 500, 50, occurred_at => '2026-01-31 14:59:59+00') > 0 AS late;
SELECT llm_usage.aggregate_usage_metrics('daily') AS rows_written;
SELECT m.period_start, s.api_calls_total AS before, m.api_calls_total AS after
  FROM llm_usage.tenant_usage_metrics m
  LEFT JOIN snap s USING (tenant_id, period_type, period_start)
 WHERE m.period_type = 'daily'
   AND (m.*) IS DISTINCT FROM (s.*);
SELECT llm_usage.aggregate_usage_metrics('daily') AS rows_written;

-- re-pricing unpriced calls counts as a change
SELECT llm_usage.track_usage('r_utc', 'chat', 'r-model', 1000000, 0, occurred_at => '2026-02-01 05:00+00') > 0 AS unpriced;
SELECT llm_usage.aggregate_usage_metrics('daily') AS rows_written;
SELECT estimated_cost_usd, unpriced_calls FROM llm_usage.tenant_usage_metrics
 WHERE tenant_id = 'r_utc' AND period_type = 'daily' AND period_start = '2026-02-01 00:00+00';
SELECT llm_usage.set_model_price('custom', 'r-model', 2, 2, valid_from => '2026-01-01') > 0 AS priced;
SELECT llm_usage.aggregate_usage_metrics('daily') AS rows_written;
SELECT estimated_cost_usd, unpriced_calls FROM llm_usage.tenant_usage_metrics
 WHERE tenant_id = 'r_utc' AND period_type = 'daily' AND period_start = '2026-02-01 00:00+00';

-- a run inside the transaction that wrote events counts them; the next run has nothing left to do
BEGIN;
SELECT llm_usage.track_usage('r_utc', 'chat', 'gpt-4o-mini', 1, 1, occurred_at => '2026-01-31 01:00+00') > 0 AS in_open_txn;
SELECT llm_usage.aggregate_usage_metrics('daily') > 0 AS own_events_seen;
COMMIT;
SELECT llm_usage.aggregate_usage_metrics('daily') AS rows_written;

-- tenant_usage reads the roll-ups
SELECT period_start, api_calls_total, total_tokens_used
  FROM llm_usage.tenant_usage('r_tokyo', '2026-01-01', '2026-03-01');
SELECT period_start, api_calls_total FROM llm_usage.tenant_usage('r_utc', '2026-01-31', '2026-02-01', 'daily');
SELECT count(*) FROM llm_usage.tenant_usage('r_utc', '2026-02-01', '2026-02-02', 'hourly');

-- bad input
SELECT try($$SELECT llm_usage.aggregate_usage_metrics('weekly')$$);
SELECT try($$SELECT llm_usage.aggregate_usage_metrics(NULL)$$);
SELECT try($$SELECT llm_usage.aggregate_usage_metrics('daily', 'infinity')$$);
SELECT try($$SELECT * FROM llm_usage.tenant_usage('r_utc', '2026-02-01', '2026-01-01')$$);
SELECT try($$SELECT * FROM llm_usage.tenant_usage('r_utc', NULL, '2026-01-01')$$);
SELECT try($$SELECT * FROM llm_usage.tenant_usage('r_utc', '2026-01-01', '2026-02-01', 'yearly')$$);
SELECT try($$SELECT * FROM llm_usage.tenant_usage('nobody', '2026-01-01', '2026-02-01')$$);
SELECT try($$SELECT * FROM llm_usage.tenant_usage(NULL, '2026-01-01', '2026-02-01')$$);

-- chat messages and embeddings count by the event-type mapping, by name:
-- chat_message and chat feed chat_messages_sent, embedding and embeddings
-- embeddings_generated, search nothing until an admin maps it; incremental
-- and full runs agree
SELECT llm_usage.create_tenant('r_evt', 'enterprise', 'UTC');
SELECT count(llm_usage.track_usage('r_evt', t, 'gpt-4o', 100, 10, occurred_at => '2026-03-02 10:00+00'))
  FROM unnest(ARRAY['chat', 'chat_message', 'chat_message', 'embedding', 'embeddings', 'search', 'search', 'search', 'My Tool']) t;
SELECT llm_usage.aggregate_usage_metrics('daily') > 0 AS rolled_up;
SELECT period_start, api_calls_total, chat_messages_sent, embeddings_generated
  FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'r_evt' AND period_type = 'daily';
SELECT llm_usage.set_event_type('search', 'embeddings');
SELECT llm_usage.set_event_type('My Tool', 'chat_messages');
SELECT llm_usage.track_usage('r_evt', 'search', 'gpt-4o', 100, 10, occurred_at => '2026-03-02 11:00+00') > 0 AS tracked;
-- the next run recomputes the period the new call is in, every call by the mapping in force;
-- a recomputation counts the periods computed before the change by it too
-- (here the tracking suite's search calls of tenant evt)
SELECT llm_usage.aggregate_usage_metrics('daily') > 0 AS rolled_up;
SELECT period_start, api_calls_total, chat_messages_sent, embeddings_generated
  FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'r_evt' AND period_type = 'daily';
SELECT llm_usage.aggregate_usage_metrics('daily', since => '2026-03-02') > 0 AS recomputed;
SELECT period_start, api_calls_total, chat_messages_sent, embeddings_generated
  FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'r_evt' AND period_type = 'daily';
SELECT llm_usage.remove_event_type('search');
SELECT llm_usage.remove_event_type('My Tool');
-- back to the shipped mapping: the periods computed under the admin's are recomputed
SELECT sum(llm_usage.aggregate_usage_metrics(p, since => '2025-01-01')) > 0 AS recomputed
  FROM unnest(ARRAY['hourly', 'daily', 'monthly']) p;
SELECT period_start, api_calls_total, chat_messages_sent, embeddings_generated
  FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'r_evt' AND period_type = 'daily';
