--
-- quotas: atomic check-and-consume, all-or-nothing, overrides, status
--
SELECT llm_usage.create_plan('qtest', 'quota tests');
SELECT llm_usage.set_plan_quota('qtest', 'api_calls', 5, 'day');
SELECT llm_usage.set_plan_quota('qtest', 'api_calls', 100, 'month');
SELECT llm_usage.set_plan_quota('qtest', 'tokens', 1000, 'day');
SELECT llm_usage.set_plan_quota('qtest', 'cost_usd', 0.05, 'day');
SELECT llm_usage.set_plan_quota('qtest', 'chat_messages', NULL, 'day');
SELECT llm_usage.create_tenant('q1', 'qtest', safe_zone());
SELECT llm_usage.create_tenant('q2', 'qtest', safe_zone());

-- five calls fit, the sixth does not, and consumes nothing
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls');
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 3);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 1);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 1);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 1);
SELECT quota_type, period, used FROM llm_usage.quota_counters WHERE tenant_id = 'q1' ORDER BY 1, 2;
-- a zero amount only looks
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 0);
-- the other tenant is untouched
SELECT allowed, used, remaining FROM llm_usage.enforce_quota('q2', 'api_calls');

-- an amount larger than the whole limit is denied and consumes nothing
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q2', 'tokens', 1001);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q2', 'tokens', 1000);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q2', 'tokens', 0.5);
-- fractional amounts (cost)
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q2', 'cost_usd', 0.0312);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q2', 'cost_usd', 0.0189);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q2', 'cost_usd', 0.0188);
-- resets_at is the end of the tenant's day
SELECT resets_at = (date_trunc('day', now() AT TIME ZONE safe_zone()) + interval '1 day') AT TIME ZONE safe_zone() AS resets_at_local_midnight
  FROM llm_usage.enforce_quota('q2', 'cost_usd', 0);

-- unlimited (NULL limit) is allowed and counted; a type without any quota is allowed and not counted
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q2', 'chat_messages', 7);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q2', 'chat_messages', 7);
SELECT allowed, quota_limit, used, remaining, resets_at FROM llm_usage.enforce_quota('q2', 'embeddings', 10);
SELECT quota_type, period, used FROM llm_usage.quota_counters WHERE tenant_id = 'q2' ORDER BY 1, 2;

-- enforce_quotas: all or nothing
SELECT allowed, results #- '{tokens,resets_at}' #- '{chat_messages,resets_at}' AS results
  FROM llm_usage.enforce_quotas('q1', '{"tokens": 100, "chat_messages": 1}');
SELECT allowed, (results->'api_calls') - 'resets_at' AS api_calls, (results->'tokens') - 'resets_at' AS tokens,
       (results->'tokens'->>'resets_at')::timestamptz = (date_trunc('day', now() AT TIME ZONE safe_zone()) + interval '1 day') AT TIME ZONE safe_zone() AS resets_ok
  FROM llm_usage.enforce_quotas('q1', '{"tokens": 100, "api_calls": 1}');
SELECT quota_type, period, used FROM llm_usage.quota_counters WHERE tenant_id = 'q1' ORDER BY 1, 2;
SELECT allowed, results->'embeddings' AS embeddings FROM llm_usage.enforce_quotas('q1', '{"embeddings": 3}');

-- quota_status
SELECT quota_type, period, quota_limit, used, remaining, percentage, source
  FROM llm_usage.quota_status('q1');

-- overrides take effect on the next call
SELECT llm_usage.set_custom_quota('q1', 'api_calls', 8);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 3);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 1);
SELECT llm_usage.set_custom_quota('q1', 'api_calls', NULL, 'day');
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 50);
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 50);
SELECT llm_usage.set_custom_quota('q1', 'embeddings', 2, 'month');
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'embeddings', 3);
SELECT quota_type, period, quota_limit, used, source FROM llm_usage.quota_status('q1') WHERE quota_type IN ('api_calls', 'embeddings');
SELECT llm_usage.clear_custom_quota('q1', 'api_calls');
SELECT quota_type, period, quota_limit, used, source FROM llm_usage.quota_status('q1') WHERE quota_type = 'api_calls';
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 1);

-- a new period starts from zero: move the stored period back one day
UPDATE llm_usage.quota_counters SET period_start = period_start - interval '1 day'
 WHERE tenant_id = 'q1' AND quota_type = 'api_calls' AND period = 'day';
SELECT quota_type, period, used FROM llm_usage.quota_status('q1') WHERE quota_type = 'api_calls';
SELECT allowed, quota_limit, used, remaining FROM llm_usage.enforce_quota('q1', 'api_calls', 2);
SELECT used, period_start = date_trunc('day', now(), safe_zone()) AS current_period
  FROM llm_usage.quota_counters WHERE tenant_id = 'q1' AND quota_type = 'api_calls' AND period = 'day';
-- a counter already in a later period (another session's clock ran ahead) keeps counting there
UPDATE llm_usage.quota_counters SET period_start = period_start + interval '1 day'
 WHERE tenant_id = 'q1' AND quota_type = 'api_calls' AND period = 'day';
SELECT allowed, used FROM llm_usage.enforce_quota('q1', 'api_calls', 1);
SELECT used, period_start = date_trunc('day', now(), safe_zone()) + interval '1 day' AS kept_later_period
  FROM llm_usage.quota_counters WHERE tenant_id = 'q1' AND quota_type = 'api_calls' AND period = 'day';

-- denials are audited, aggregated: pending (in shared memory) until a
-- denial comes in a later minute or a flush writes them, one event per
-- tenant and window carrying the count (and can be switched off)
SELECT count(*) AS events_before_flush FROM llm_usage.audit_events
 WHERE action = 'quota_exceeded' AND tenant_id IN ('q1', 'q2');
SELECT llm_usage.flush_quota_denials() BETWEEN 2 AND 4 AS events_written;
SELECT sum((details->>'denied_calls')::integer) AS denied_calls,
       count(*) <= 4 AS at_most_one_event_per_tenant_and_minute,
       bool_and(result = 'denied' AND origin = 'llm_usage' AND role_name = current_user) AS extension_records
  FROM llm_usage.audit_events
 WHERE action = 'quota_exceeded' AND tenant_id IN ('q1', 'q2');
SELECT llm_usage.create_tenant('q3', 'qtest', safe_zone());
SELECT allowed FROM llm_usage.enforce_quota('q3', 'tokens', 1001);
SELECT allowed FROM llm_usage.enforce_quota('q3', 'tokens', 999);
SELECT llm_usage.flush_quota_denials() AS events_written;
SELECT details - 'first_at' - 'last_at' #- '{denied,0,period_start}' AS details,
       (details->>'first_at')::timestamptz <= (details->>'last_at')::timestamptz AS times_ordered
  FROM llm_usage.audit_events WHERE action = 'quota_exceeded' AND tenant_id = 'q3';
SELECT llm_usage.flush_quota_denials() AS nothing_pending;
-- a flush rolled back (to a savepoint, or the whole transaction) gives the
-- denials back: the next flush writes them, once
SELECT allowed FROM llm_usage.enforce_quota('q3', 'tokens', 1001);
SELECT allowed FROM llm_usage.enforce_quota('q3', 'tokens', 2000);
BEGIN;
SELECT llm_usage.flush_quota_denials() AS written_then_rolled_back;
ROLLBACK;
BEGIN;
SAVEPOINT s;
SELECT llm_usage.flush_quota_denials() AS written_then_rolled_back_to_savepoint;
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT llm_usage.flush_quota_denials() BETWEEN 1 AND 2 AS written;
SELECT count(*) BETWEEN 2 AND 3 AS events, sum((details->>'denied_calls')::integer) AS denied_calls,
       max(details->'denied'->0->>'requested') AS last_requested
  FROM llm_usage.audit_events WHERE action = 'quota_exceeded' AND tenant_id = 'q3';
SET llm_usage.audit_quota_denials = off;
SELECT allowed FROM llm_usage.enforce_quota('q2', 'tokens', 5000);
RESET llm_usage.audit_quota_denials;
SELECT llm_usage.flush_quota_denials() AS not_audited;
SET ROLE llm_usage_app;
SELECT try($$SELECT llm_usage.flush_quota_denials()$$);
RESET ROLE;

-- _shm_consume and _consume_table take each quota type once (12 times
-- api_calls would be 24 checks of a type with two periods: more than the
-- 20 quotas a tenant can have); nothing is consumed
CREATE TEMP TABLE before_repeat AS SELECT * FROM llm_usage.quota_counters WHERE tenant_id = 'q1';
SELECT try($$SELECT * FROM llm_usage._shm_consume('q1', array_fill('api_calls'::text, ARRAY[12]), array_fill(1::numeric, ARRAY[12]))$$);
SELECT try($$SELECT * FROM llm_usage._shm_consume('q1', ARRAY['tokens', 'api_calls', 'tokens'], ARRAY[1, 1, 1]::numeric[])$$);
SELECT try($$SELECT * FROM llm_usage._consume_table((SELECT t FROM llm_usage.tenants t WHERE tenant_id = 'q1'), array_fill('api_calls'::text, ARRAY[12]), array_fill(1::numeric, ARRAY[12]))$$);
SELECT try($$SELECT * FROM llm_usage._shm_consume('q1', ARRAY['tokens', 'api_calls'], ARRAY[1]::numeric[])$$);
SELECT try($$SELECT * FROM llm_usage._consume_table((SELECT t FROM llm_usage.tenants t WHERE tenant_id = 'q1'), ARRAY['tokens', 'api_calls'], ARRAY[1]::numeric[])$$);
SELECT try($$SELECT * FROM llm_usage._shm_consume('q1', ARRAY['widgets'], ARRAY[1]::numeric[])$$);
SELECT try($$SELECT * FROM llm_usage._shm_consume('q1', ARRAY[NULL, 'tokens'], ARRAY[1, 1]::numeric[])$$);
SELECT try($$SELECT * FROM llm_usage._shm_consume('q1', ARRAY['tokens'], ARRAY[NULL]::numeric[])$$);
SELECT count(*) AS changed_by_repeated_types
  FROM ((SELECT * FROM llm_usage.quota_counters WHERE tenant_id = 'q1' EXCEPT SELECT * FROM before_repeat)
        UNION ALL (SELECT * FROM before_repeat EXCEPT SELECT * FROM llm_usage.quota_counters WHERE tenant_id = 'q1')) x;
-- each type once, all five: every quota of the tenant checked at once
SELECT quota_type, period, fits FROM llm_usage._shm_consume('q1', ARRAY['tokens', 'api_calls', 'cost_usd', 'embeddings', 'chat_messages'],
                                                            ARRAY[0, 0, 0, 0, 0]::numeric[]) ORDER BY 1, 2;

-- bad input: clear error, SQLSTATE, nothing consumed
CREATE TEMP TABLE before AS SELECT * FROM llm_usage.quota_counters;
SELECT try($$SELECT * FROM llm_usage.enforce_quota(NULL, 'tokens', 1)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('', 'tokens', 1)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('nobody', 'tokens', 1)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q1', 'widgets', 1)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q1', NULL, 1)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q1', 'tokens', -1)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q1', 'tokens', NULL)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q1', 'tokens', 'NaN')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q1', 'tokens', 1e13)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('q1', NULL)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('q1', '{}')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('q1', '[1, 2]')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('q1', '{"tokens": 1, "widgets": 2}')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('q1', '{"tokens": "10"}')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('q1', '{"tokens": 10, "api_calls": -1}')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('nobody', '{"tokens": 1}')$$);
SELECT try($$SELECT * FROM llm_usage.quota_status(NULL)$$);
SELECT try($$SELECT * FROM llm_usage.quota_status('nobody')$$);
SELECT try($$SELECT llm_usage.set_custom_quota('q1', 'tokens', -5)$$);
SELECT try($$SELECT llm_usage.set_custom_quota('q1', 'tokens', 5, 'fortnight')$$);
SELECT try($$SELECT llm_usage.set_custom_quota('q1', 'tokens', 5, NULL)$$);
SELECT try($$SELECT llm_usage.set_custom_quota('q1', 'widgets', 5)$$);
SELECT try($$SELECT llm_usage.set_custom_quota('nobody', 'tokens', 5)$$);
SELECT try($$SELECT llm_usage.set_custom_quota('q1', 'tokens', 'NaN')$$);
SELECT try($$SELECT llm_usage.clear_custom_quota('q1', 'tokens', 'day')$$);
SELECT try($$SELECT llm_usage.clear_custom_quota('q1', 'tokens', 'year')$$);
SELECT count(*) AS changed_counters
  FROM (SELECT * FROM llm_usage.quota_counters EXCEPT SELECT * FROM before) x;
SELECT count(*) AS overrides FROM llm_usage.tenant_quota_overrides WHERE tenant_id = 'q1';

\set SHOW_CONTEXT never
SELECT * FROM llm_usage.enforce_quota('q1', 'widgets', 1);
SELECT * FROM llm_usage.enforce_quotas('q1', '{"tokens": "10"}');
\set SHOW_CONTEXT errors

-- 1.2: the live counters are in shared memory; the table copy, corrections
SELECT llm_usage.save_quota_counters() > 0 AS saved;
SELECT llm_usage.save_quota_counters() AS saved_again_unchanged;
SELECT count(*) AS q1_rows_in_table FROM llm_usage.quota_counters_table WHERE tenant_id = 'q1';
SELECT (SELECT array_agg(used ORDER BY quota_type, period) FROM llm_usage.quota_counters WHERE tenant_id = 'q1')
     = (SELECT array_agg(used ORDER BY quota_type, period) FROM llm_usage.quota_counters_table WHERE tenant_id = 'q1')
       AS table_copy_equal;
UPDATE llm_usage.quota_counters SET used = 0 WHERE tenant_id = 'q1' AND quota_type = 'api_calls' AND period = 'day';
SELECT quota_type, period, used FROM llm_usage.quota_status('q1') WHERE quota_type = 'api_calls' ORDER BY 2;
CREATE TEMP TABLE counters_before AS SELECT * FROM llm_usage.quota_counters WHERE tenant_id IN ('q1', 'q2');
SELECT try($$UPDATE llm_usage.quota_counters SET tenant_id = 'q2' WHERE tenant_id = 'q1'$$);
SELECT try($$UPDATE llm_usage.quota_counters SET used = -1 WHERE tenant_id = 'q1'$$);
SELECT try($$UPDATE llm_usage.quota_counters SET period_start = NULL WHERE tenant_id = 'q1'$$);
SET ROLE llm_usage_app;
SELECT try($$SELECT llm_usage.save_quota_counters()$$);
RESET ROLE;
-- the refused corrections and save changed nothing
SELECT count(*) AS changed_by_refused_statements
  FROM ((SELECT * FROM llm_usage.quota_counters WHERE tenant_id IN ('q1', 'q2') EXCEPT SELECT * FROM counters_before)
        UNION ALL
        (SELECT * FROM counters_before EXCEPT SELECT * FROM llm_usage.quota_counters WHERE tenant_id IN ('q1', 'q2'))) x;

-- reserve, then settle: a request_id that is empty, blank or over 255
-- characters is refused (22023) by both functions and counts nothing
SELECT used AS q1_tokens_before FROM llm_usage.quota_status('q1') WHERE quota_type = 'tokens' AND period = 'day';
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q1', 'tokens', 5, '')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q1', 'tokens', 5, '   ')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q1', 'tokens', 5, repeat('r', 256))$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('q1', '{"tokens": 5}', '')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('q1', '{"tokens": 5}', repeat('é', 256))$$);
SELECT try($$SELECT * FROM llm_usage._shm_consume('q1', ARRAY['tokens'], ARRAY[5]::numeric[], '')$$);
SELECT try($$SELECT * FROM llm_usage._shm_consume(NULL, ARRAY['tokens'], ARRAY[5]::numeric[], 'x')$$);
SELECT try($$SELECT llm_usage._shm_settle(NULL, 'x', 1, 0, NULL, now())$$);
SELECT used AS q1_tokens_after FROM llm_usage.quota_status('q1') WHERE quota_type = 'tokens' AND period = 'day';

-- enforce_quota counts, so it writes: a read-only transaction gets 25006,
-- whether or not the tenant is already counted in shared memory, and nothing
-- is counted
SELECT llm_usage.create_tenant('q_ro', 'pro');
BEGIN READ ONLY;
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q1', 'tokens', 5)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quota('q_ro', 'tokens', 5)$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('q1', '{"tokens": 5}')$$);
SELECT try($$SELECT * FROM llm_usage.enforce_quotas('q_ro', '{"tokens": 5}')$$);
COMMIT;
SELECT used AS q1_tokens_after_read_only FROM llm_usage.quota_status('q1') WHERE quota_type = 'tokens' AND period = 'day';
SELECT allowed, used FROM llm_usage.enforce_quota('q_ro', 'tokens', 5);
