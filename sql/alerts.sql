--
-- alert rules, check_alerts(), throttling, acknowledge_alert() (1.1)
--
SET llm_usage.alert_throttle = '1h';
SELECT kind, enabled, threshold, min_calls, severity FROM llm_usage.alert_rules ORDER BY kind;
-- start from a clean slate: earlier suites left denials and unpriced calls behind
SELECT llm_usage.check_alerts() >= 0 AS first_check;
SELECT count(*) > 0 AS earlier_alerts FROM llm_usage.alerts;
DELETE FROM llm_usage.alerts;
-- and ids of this suite's own (the NOTICE below prints one)
SELECT setval(pg_get_serial_sequence('llm_usage.alerts', 'id'), 100, false) AS first_alert_id;

SELECT llm_usage.create_tenant(t, 'enterprise', safe_zone())
  FROM unnest(ARRAY['al_slow', 'al_fast', 'al_err', 'al_ok_err', 'al_few', 'al_quota', 'al_spend', 'al_steady']) t;
SELECT llm_usage.check_alerts() AS nothing_yet;

-- high_latency: p99 over 5,000 ms in the last hour (20 calls) fires; 4,900 ms does not
SELECT count(llm_usage.track_usage(t, 'chat', 'gpt-4o-mini', 10, 10, latency_ms => lat,
                                   occurred_at => now() - make_interval(mins => i)))
  FROM (VALUES ('al_slow', 6000), ('al_fast', 4900)) v(t, lat), generate_series(1, 20) i;
-- high_error_rate: 3 of 20 failed (15 %) fires; 1 of 20 (5 %, not over) does not; 5 of 10 is under min_calls
SELECT count(llm_usage.track_usage(t, 'chat', 'gpt-4o-mini', 10, 10, latency_ms => 100,
                                   result => CASE WHEN i <= bad THEN 'failure' ELSE 'success' END,
                                   occurred_at => now() - make_interval(mins => i)))
  FROM (VALUES ('al_err', 3, 20), ('al_ok_err', 1, 20), ('al_few', 5, 10)) v(t, bad, total), generate_series(1, total) i;
-- quota: 80 % then 100 % of a daily limit, then a denial
SELECT llm_usage.set_custom_quota('al_quota', 'chat_messages', 10, 'day');
SELECT allowed FROM llm_usage.enforce_quota('al_quota', 'chat_messages', 7);
SELECT llm_usage.check_alerts() >= 0 AS checked;
SELECT kind, tenant_id, subject, message FROM llm_usage.alerts ORDER BY tenant_id, kind, id;
SELECT allowed FROM llm_usage.enforce_quota('al_quota', 'chat_messages', 1);
SELECT llm_usage.check_alerts() AS quota_near_80;
SELECT allowed FROM llm_usage.enforce_quota('al_quota', 'chat_messages', 1);
SELECT llm_usage.check_alerts() AS nothing_new_at_90;
SELECT allowed FROM llm_usage.enforce_quota('al_quota', 'chat_messages', 1);
SELECT allowed FROM llm_usage.enforce_quota('al_quota', 'chat_messages', 1);
SELECT llm_usage.check_alerts() AS quota_near_100_and_exceeded;
SELECT kind, details->'level' AS level, details->'used' AS used, details->'denials' AS denials
  FROM llm_usage.alerts WHERE tenant_id = 'al_quota' ORDER BY id;

-- cost_anomaly: yesterday at 3x the average of the 7 days before fires; 1.9x does not
SELECT count(llm_usage.track_usage(t, 'chat', 'gpt-4o', 100000, 0,
             occurred_at => (date_trunc('day', now(), safe_zone()) - make_interval(days => d) + interval '12 hours')))
  FROM (VALUES ('al_spend'), ('al_steady')) v(t), generate_series(2, 8) d;
SELECT count(llm_usage.track_usage(t, 'chat', 'gpt-4o', n, 0,
             occurred_at => date_trunc('day', now(), safe_zone()) - interval '12 hours'))
  FROM (VALUES ('al_spend', 300000), ('al_steady', 190000)) v(t, n);
SELECT llm_usage.aggregate_usage_metrics('daily') > 0 AS rolled_up;
SELECT llm_usage.check_alerts() AS cost_anomaly;
SELECT tenant_id, details->'cost_usd' AS cost_usd, details->'trailing_avg_usd' AS trailing_avg, details->'ratio' AS ratio
  FROM llm_usage.alerts WHERE kind = 'cost_anomaly';

-- unpriced_usage: a model without a price, once per model
SELECT llm_usage.track_usage('al_steady', 'chat', 'mystery-model-x', 5, 5) > 0 AS unpriced;
SELECT llm_usage.track_usage('al_steady', 'chat', 'mystery-model-x', 5, 5) > 0 AS unpriced;
SELECT llm_usage.check_alerts() AS unpriced_usage;
SELECT kind, subject, details->'calls' AS calls FROM llm_usage.alerts WHERE kind = 'unpriced_usage';

-- throttling: the same tenant, kind and subject at most once per llm_usage.alert_throttle
SELECT llm_usage.track_usage('al_steady', 'chat', 'mystery-model-x', 5, 5) > 0 AS more_unpriced;
SELECT llm_usage.check_alerts() AS throttled;
SET llm_usage.alert_throttle = 0;
SELECT llm_usage.track_usage('al_steady', 'chat', 'mystery-model-x', 5, 5) > 0 AS more_unpriced;
SELECT llm_usage.check_alerts() AS not_throttled;
RESET llm_usage.alert_throttle;
SELECT count(*) AS unpriced_alerts FROM llm_usage.alerts WHERE kind = 'unpriced_usage';

-- rules per tenant: a lower latency threshold for al_fast, high_error_rate off for al_err
SELECT llm_usage.set_alert_rule('high_latency', threshold => 4000, tenant_id => 'al_fast');
SELECT llm_usage.set_alert_rule('high_error_rate', enabled => false, tenant_id => 'al_err');
SELECT kind, enabled, threshold, min_calls, source FROM llm_usage.alert_rules_for('al_fast') WHERE kind LIKE 'high%';
SELECT kind, enabled, source FROM llm_usage.alert_rules_for('al_err') WHERE kind LIKE 'high%';
SELECT llm_usage.check_alerts() AS al_fast_latency;
SELECT tenant_id, kind FROM llm_usage.alerts WHERE kind = 'high_latency' ORDER BY tenant_id;
-- a global change applies to every tenant without its own
SELECT llm_usage.set_alert_rule('quota_near', threshold => 50);
SELECT kind, threshold, source FROM llm_usage.alert_rules_for('al_slow') WHERE kind = 'quota_near';

-- acknowledge
SELECT id AS some_alert FROM llm_usage.alerts WHERE tenant_id = 'al_slow' ORDER BY id LIMIT 1 \gset
SELECT llm_usage.acknowledge_alert(:some_alert);
SELECT acknowledged_at IS NOT NULL AS acknowledged FROM llm_usage.alerts WHERE id = :some_alert;
SELECT llm_usage.acknowledge_alert(:some_alert);

-- bad input
SELECT try($$SELECT llm_usage.set_alert_rule('volcano')$$);
SELECT try($$SELECT llm_usage.set_alert_rule(NULL)$$);
SELECT try($$SELECT llm_usage.set_alert_rule('high_latency', threshold => -1)$$);
SELECT try($$SELECT llm_usage.set_alert_rule('high_latency', min_calls => 0)$$);
SELECT try($$SELECT llm_usage.set_alert_rule('collection_failed', threshold => 3)$$);
SELECT try($$SELECT llm_usage.set_alert_rule('cost_anomaly', min_calls => 3)$$);
SELECT try($$SELECT llm_usage.set_alert_rule('high_latency', enabled => NULL)$$);
SELECT try($$SELECT llm_usage.set_alert_rule('high_latency', 1000, tenant_id => 'nobody')$$);
SELECT try($$SELECT llm_usage.acknowledge_alert(NULL)$$);
SELECT try($$SELECT llm_usage.acknowledge_alert(-1)$$);
SELECT try($$SELECT * FROM llm_usage.alert_rules_for('nobody')$$);
SELECT try($$UPDATE llm_usage.alert_rules SET threshold = 1$$);
SELECT count(*) AS overrides FROM llm_usage.alert_rule_overrides;
