--
-- dashboards: admin_summary, usage_overview's per-model success, the plan in
-- quota_status, rollup_status
--
SET timezone = 'UTC';
SELECT llm_usage.create_tenant('ds1', 'pro', 'UTC');
SELECT llm_usage.create_tenant('ds2', 'enterprise', 'Europe/Berlin');
SELECT llm_usage.create_tenant('ds3', 'trial', 'UTC');

-- two days of calls (gpt-4o-mini: 0.15 in, 0.6 out; claude-haiku-4-5: 1 in, 5 out)
SELECT count(llm_usage.track_usage(t, 'chat', m, i, o, latency_ms => l, result => r, occurred_at => a))
  FROM (VALUES ('ds1', 'gpt-4o-mini', 10000, 1000, 100, 'success', '2025-12-01 10:00+00'::timestamptz),
               ('ds1', 'gpt-4o-mini', 20000, 2000, 300, 'success', '2025-12-01 11:00+00'),
               ('ds1', 'gpt-4o-mini', 30000, 3000, 200, 'failure', '2025-12-02 09:00+00'),
               ('ds1', 'gpt-4o-mini', 40000, 0, NULL, 'rate_limited', '2025-12-02 09:01+00'),
               ('ds2', 'claude-haiku-4-5', 100000, 10000, 900, 'success', '2025-12-01 23:30+00'),
               ('ds2', 'ds-house-model', 500, 50, 1500, 'success', '2025-12-02 12:00+00')) v(t, m, i, o, l, r, a);
-- and one outside the period
SELECT llm_usage.track_usage('ds3', 'chat', 'gpt-4o-mini', 1, 1, occurred_at => '2025-12-05 00:00+00') > 0 AS outside;

-- denials as the extension records them: one event per tenant and minute
-- with the number of denied calls (1.3), or one event per denial (1.2 and
-- before); an application's own "quota_exceeded" events are not the
-- extension's
INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, result, role_name, details, created_at, origin)
VALUES ('ds1', 'quota', 'quota_exceeded', 'denied', 'app', '{"requested": {"tokens/day": 150},
         "denied": [{"quota_type": "tokens", "period": "day", "quota_limit": 100, "used": 90}]}', '2025-12-01 12:00+00', 'llm_usage'),
       ('ds1', 'quota', 'quota_exceeded', 'denied', 'app', '{"denied_calls": 5, "first_at": "2025-12-02T08:00:00Z",
         "last_at": "2025-12-02T08:00:40Z", "denied": [{"quota_type": "api_calls", "period": "minute", "denials": 5}]}',
        '2025-12-02 08:01+00', 'llm_usage'),
       ('ds2', 'quota', 'quota_exceeded', 'denied', 'app', '{"denied_calls": 3, "first_at": "2025-12-02T13:00:00Z",
         "last_at": "2025-12-02T13:00:09Z", "denied": [{"quota_type": "tokens", "period": "minute", "denials": 3}]}',
        '2025-12-02 13:01+00', 'llm_usage'),
       ('ds2', 'quota', 'quota_exceeded', 'denied', 'app', '{"denied_calls": 1000}', '2025-12-02 14:00+00', 'application'),
       ('ds3', 'quota', 'quota_exceeded', 'denied', 'app', '{"denied_calls": 7}', '2025-12-07 00:00+00', 'llm_usage');

SELECT jsonb_pretty(s - 'from' - 'to' - 'tenants') AS summary, s->'tenants'->'with_calls' AS tenants_with_calls,
       (s->'tenants'->>'total')::int >= 3 AS tenants_total
  FROM llm_usage.admin_summary('2025-12-01', '2025-12-03') s;
SELECT s->'top_consumers' AS top_one, jsonb_array_length(s->'quota_exceeded') AS exceeded
  FROM llm_usage.admin_summary('2025-12-01', '2025-12-03', 1) s;
-- an empty period
SELECT s - 'from' - 'to' - 'tenants' AS empty FROM llm_usage.admin_summary('2025-11-01', '2025-11-02') s;

-- bad input, and only admins
SELECT try($$SELECT llm_usage.admin_summary('2025-12-03', '2025-12-01')$$);
SELECT try($$SELECT llm_usage.admin_summary(max_rows => 0)$$);
SELECT try($$SELECT llm_usage.admin_summary(max_rows => NULL)$$);
CREATE ROLE regress_ds_app LOGIN IN ROLE llm_usage_app, llm_usage_reader;
SELECT llm_usage.grant_tenant_access('regress_ds_app', 'ds1');
SET ROLE regress_ds_app;
SELECT try($$SELECT llm_usage.admin_summary()$$);
RESET ROLE;

-- price_reconciliation (provider data: t_price_reconciliation.sh): bad input
SELECT count(*) AS rows FROM llm_usage.price_reconciliation('2025-12-01', '2025-12-03');
SELECT try($$SELECT * FROM llm_usage.price_reconciliation('2025-12-03', '2025-12-01')$$);
SELECT try($$SELECT * FROM llm_usage.price_reconciliation('2000-01-01', '2025-12-01')$$);
SELECT try($$SELECT * FROM llm_usage.price_reconciliation(tenant_id => 'nobody')$$);
SELECT try($$SELECT * FROM llm_usage.price_reconciliation(tenant_id => '')$$);
SET ROLE regress_ds_app;
SELECT try($$SELECT * FROM llm_usage.price_reconciliation(tenant_id => 'ds2')$$);
SELECT count(*) AS own_rows FROM llm_usage.price_reconciliation(tenant_id => 'ds1');
RESET ROLE;

-- quota_status says the plan, for plan and override limits alike
SELECT llm_usage.set_custom_quota('ds1', 'tokens', 123, 'hour');
SELECT quota_type, period, quota_limit, source, plan FROM llm_usage.quota_status('ds1') ORDER BY 1, 2;

-- usage_overview: success rate and failures per model (calls of today)
SELECT count(llm_usage.track_usage('ds3', 'chat', m, 100, 10, result => r))
  FROM (VALUES ('gpt-4o-mini', 'success'), ('gpt-4o-mini', 'failure'), ('gpt-4o-mini', 'rate_limited'),
               ('gpt-4o-mini', 'success'), ('claude-haiku-4-5', 'success')) v(m, r);
SELECT m->>'model' AS model, m->'runs' AS runs, m->'failures' AS failures, m->'rate_limited' AS rate_limited,
       m->'success_rate' AS success_rate
  FROM llm_usage.usage_overview('ds3', '7d') o, jsonb_array_elements(o->'models') m ORDER BY 1;
SELECT o->'overview'->'success_rate' AS overall FROM llm_usage.usage_overview('ds3', '7d') o;

-- rollup_status: last run and watermark per period type, for readers too
SELECT llm_usage.aggregate_usage_metrics('daily') >= 0 AS rolled_up;
SELECT period_type, last_run_at IS NOT NULL AS ran, watermark <= now() AS watermark_set, behind >= interval '0' AS behind
  FROM llm_usage.rollup_status WHERE period_type = 'daily';
SET ROLE regress_ds_app;
SELECT count(*) > 0 AS reader_sees_status FROM llm_usage.rollup_status;
RESET ROLE;

SELECT llm_usage.revoke_tenant_access('regress_ds_app', 'ds1');
DROP ROLE regress_ds_app;
-- today's calls of this suite: out of the way of the alert suites
DELETE FROM llm_usage.usage_events WHERE tenant_id = 'ds3' AND occurred_at > now() - interval '1 day';
