--
-- quota periods are calendar periods in the tenant's zone
--
SET timezone = 'UTC';
-- New York, across the spring-forward day (2026-03-08 has 23 hours)
SELECT p, b.period_start, b.period_end, b.period_end - b.period_start AS length
  FROM unnest(ARRAY['minute', 'hour', 'day', 'month']) p,
       llm_usage._period_bounds(p, '2026-03-08 12:34:56+00', 'America/New_York') b;
-- and the fall-back day (2026-11-01 has 25 hours); the repeated 01:00 hour is two hours
SELECT b.period_start, b.period_end, b.period_end - b.period_start AS length
  FROM llm_usage._period_bounds('day', '2026-11-01 12:00+00', 'America/New_York') b;
SELECT b.period_start, b.period_end
  FROM unnest(ARRAY['2026-11-01 05:30+00', '2026-11-01 06:30+00']::timestamptz[]) t,
       llm_usage._period_bounds('hour', t, 'America/New_York') b;
-- half-hour and quarter-hour zones: hours start at :30 and :15 UTC
SELECT b.period_start, b.period_end FROM llm_usage._period_bounds('hour', '2026-06-01 10:10+00', 'Asia/Kolkata') b;
SELECT b.period_start, b.period_end FROM llm_usage._period_bounds('hour', '2026-06-01 10:10+00', 'Asia/Kathmandu') b;
SELECT b.period_start, b.period_end FROM llm_usage._period_bounds('day', '2026-06-01 20:00+00', 'Asia/Kolkata') b;
-- months: local calendar months, of 28 to 31 days
SELECT b.period_start, b.period_end, b.period_end - b.period_start AS length
  FROM unnest(ARRAY['2026-02-28 12:00+00', '2026-02-28 12:00+00']::timestamptz[]) WITH ORDINALITY t(at, n),
       llm_usage._period_bounds('month', at, CASE n WHEN 1 THEN 'UTC' ELSE 'Pacific/Auckland' END) b;
-- the instant of local midnight belongs to the new day
SELECT b.period_start FROM llm_usage._period_bounds('day', '2026-06-30 22:00+00', 'Europe/Berlin') b;
SELECT b.period_start FROM llm_usage._period_bounds('day', '2026-06-30 21:59:59.999999+00', 'Europe/Berlin') b;

-- a tenant far from UTC: its day quota resets at its own midnight
SELECT llm_usage.create_plan('zoned');
SELECT llm_usage.set_plan_quota('zoned', 'api_calls', 3, 'day');
SELECT llm_usage.set_plan_quota('zoned', 'api_calls', 1000, 'hour');
SELECT llm_usage.set_plan_quota('zoned', 'tokens', 10, 'month');
SELECT llm_usage.create_tenant('auckland', 'zoned', 'Pacific/Auckland');
SELECT llm_usage.create_tenant('honolulu', 'zoned', 'Pacific/Honolulu');
SELECT t, resets_at = (date_trunc('day', now() AT TIME ZONE t) + interval '1 day') AT TIME ZONE t AS local_midnight
  FROM unnest(ARRAY['Pacific/Auckland', 'Pacific/Honolulu']) t,
       llm_usage.quota_status(CASE t WHEN 'Pacific/Auckland' THEN 'auckland' ELSE 'honolulu' END) s
 WHERE s.quota_type = 'api_calls' AND s.period = 'day';
SELECT t, resets_at = (date_trunc('month', now() AT TIME ZONE t) + interval '1 month') AT TIME ZONE t AS local_month_end
  FROM unnest(ARRAY['Pacific/Auckland', 'Pacific/Honolulu']) t,
       llm_usage.quota_status(CASE t WHEN 'Pacific/Auckland' THEN 'auckland' ELSE 'honolulu' END) s
 WHERE s.quota_type = 'tokens';
SELECT resets_at = date_trunc('hour', now()) + interval '1 hour' AS hour_end
  FROM llm_usage.quota_status('auckland') WHERE period = 'hour';
-- the counter row records the local period it counts for
SELECT allowed FROM llm_usage.enforce_quota('auckland', 'api_calls', 3);
SELECT period, period_start = date_trunc(period, now(), 'Pacific/Auckland') AS local_period_start
  FROM llm_usage.quota_counters WHERE tenant_id = 'auckland' ORDER BY period;

-- a counter already in the next period (another session's clock moved on
-- first): a call still stamped with the old period is counted in the newer
-- one and reports that period, on both the shared-memory path ('ahead') and
-- the table path (an id over 255 bytes)
SELECT llm_usage.create_plan('ahead');
SELECT llm_usage.set_plan_quota('ahead', 'api_calls', 5, 'hour');
CREATE TEMP TABLE ahead (tenant text, label text);
INSERT INTO ahead VALUES ('ahead', 'shared memory'), ('ahead_' || repeat('€', 100), 'table');
SELECT count(llm_usage.create_tenant(tenant, 'ahead')) AS created FROM ahead;
SELECT label, llm_usage._shm_usable(tenant) AS in_shared_memory FROM ahead ORDER BY 1;
SELECT a.label, e.allowed, e.used FROM ahead a, llm_usage.enforce_quota(a.tenant, 'api_calls', 1) e ORDER BY 1;
CREATE TEMP TABLE next_hour AS SELECT date_trunc('hour', now()) + interval '1 hour' AS start;
UPDATE llm_usage.quota_counters SET period_start = (SELECT start FROM next_hour), used = 3
 WHERE tenant_id IN (SELECT tenant FROM ahead);
SELECT a.label, e.allowed, e.used, e.remaining, e.resets_at = n.start + interval '1 hour' AS next_hour_end
  FROM ahead a, next_hour n, llm_usage.enforce_quota(a.tenant, 'api_calls', 1) e ORDER BY 1;
SELECT a.label, e.allowed, e.used, e.remaining, e.resets_at = n.start + interval '1 hour' AS next_hour_end
  FROM ahead a, next_hour n, llm_usage.enforce_quota(a.tenant, 'api_calls', 2) e ORDER BY 1;
SELECT a.label, e.allowed, e.used, e.resets_at = n.start + interval '1 hour' AS next_hour_end
  FROM ahead a, next_hour n, llm_usage.enforce_quotas(a.tenant, '{"api_calls": 1}') e0,
       jsonb_to_record(e0.results->'api_calls') e(allowed boolean, used numeric, resets_at timestamptz)
 ORDER BY 1;
SELECT a.label, c.period_start = n.start AS in_next_hour, c.used,
       (SELECT count(*) FROM llm_usage.quota_counters_table t WHERE t.tenant_id = a.tenant) AS table_rows
  FROM ahead a, next_hour n, llm_usage.quota_counters c WHERE c.tenant_id = a.tenant ORDER BY 1;
