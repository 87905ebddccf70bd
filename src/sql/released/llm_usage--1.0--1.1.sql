/*
 * llm_usage 1.0 -> 1.1
 *
 * Alert rules with per-tenant overrides, check_alerts(), acknowledge_alert(),
 * throttling, and the worker's periodic maintenance (roll-ups, then alerts).
 * A fresh CREATE EXTENSION installs 1.0 and applies this script, so fresh
 * installs and upgraded ones are the same (test/t_upgrade.sh checks it).
 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION llm_usage UPDATE TO '1.1'" to load this file. \quit

------------------------------------------------------------------------
-- Alert rules: shipped defaults, overridden globally or per tenant
------------------------------------------------------------------------
CREATE TABLE llm_usage.alert_rules (
    kind        text PRIMARY KEY
                CONSTRAINT alert_rules_kind_check CHECK (kind IN ('quota_exceeded', 'quota_near', 'high_latency',
                    'high_error_rate', 'cost_anomaly', 'collection_failed', 'maintenance_failed', 'unpriced_usage')),
    enabled     boolean NOT NULL,
    threshold   numeric,
    min_calls   integer,
    severity    text NOT NULL,
    description text NOT NULL
);
COMMENT ON TABLE llm_usage.alert_rules IS
'The alert kinds and their shipped thresholds (read-only; change them with set_alert_rule(), globally or per tenant).';

INSERT INTO llm_usage.alert_rules (kind, enabled, threshold, min_calls, severity, description) VALUES
    ('quota_exceeded',     true, NULL, NULL, 'warning',
     'enforce_quota() denied a tenant since the last check (one alert per quota type and period)'),
    ('quota_near',         true, 80,   NULL, 'warning',
     'a quota crossed threshold percent, and again 100 percent, of its limit (once per period each)'),
    ('high_latency',       true, 5000, 10,   'warning',
     'p99 latency over the last hour above threshold ms, with at least min_calls calls'),
    ('high_error_rate',    true, 5,    20,   'warning',
     'share of calls that did not succeed over the last hour above threshold percent, with at least min_calls calls'),
    ('cost_anomaly',       true, 2,    NULL, 'warning',
     'a day''s cost (yesterday, or today so far) above threshold times the average of the 7 days before it'),
    ('collection_failed',  true, NULL, NULL, 'error',
     'a collection run of a provider key failed'),
    ('maintenance_failed', true, NULL, NULL, 'error',
     'the worker''s roll-up or alert check failed'),
    ('unpriced_usage',     true, NULL, NULL, 'warning',
     'calls of a model with no price were tracked since the last check (their cost is NULL, not 0)');

CREATE FUNCTION llm_usage._alert_rules_read_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'llm_usage.alert_rules holds the shipped defaults and is read-only'
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Use llm_usage.set_alert_rule() to change a rule for every tenant or for one.';
END
$$;
COMMENT ON FUNCTION llm_usage._alert_rules_read_only() IS 'Internal: trigger keeping the shipped alert rules unchanged (they are recreated, not dumped).';
CREATE TRIGGER alert_rules_read_only
    BEFORE INSERT OR UPDATE OR DELETE ON llm_usage.alert_rules
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._alert_rules_read_only();

CREATE TABLE llm_usage.alert_rule_overrides (
    tenant_id  text NOT NULL,
    kind       text NOT NULL REFERENCES llm_usage.alert_rules (kind),
    enabled    boolean NOT NULL,
    threshold  numeric,
    min_calls  integer,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind)
);
COMMENT ON TABLE llm_usage.alert_rule_overrides IS
'Changed alert rules: tenant_id ''*'' for every tenant, or one tenant''s own; set with set_alert_rule().';

CREATE FUNCTION llm_usage._alert_rule(p_tenant text, p_kind text,
                                      OUT enabled boolean, OUT threshold numeric, OUT min_calls integer,
                                      OUT severity text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(t.enabled, g.enabled, r.enabled),
           CASE WHEN t.kind IS NOT NULL THEN t.threshold WHEN g.kind IS NOT NULL THEN g.threshold ELSE r.threshold END,
           CASE WHEN t.kind IS NOT NULL THEN t.min_calls WHEN g.kind IS NOT NULL THEN g.min_calls ELSE r.min_calls END,
           r.severity
      FROM llm_usage.alert_rules r
      LEFT JOIN llm_usage.alert_rule_overrides g ON g.tenant_id = '*' AND g.kind = r.kind
      LEFT JOIN llm_usage.alert_rule_overrides t ON t.tenant_id = p_tenant AND t.kind = r.kind
     WHERE r.kind = p_kind
$$;
COMMENT ON FUNCTION llm_usage._alert_rule(text, text) IS
'Internal: the rule in force for a tenant and kind: its own override, else the global one, else the shipped default.';

CREATE FUNCTION llm_usage.set_alert_rule(kind text, threshold numeric DEFAULT NULL, min_calls integer DEFAULT NULL,
                                         enabled boolean DEFAULT true, tenant_id text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    r      llm_usage.alert_rules;
    v_who  text := '*';
BEGIN
    PERFORM llm_usage._require_admin('set_alert_rule');
    PERFORM llm_usage._require_arg($1, 'kind');
    SELECT * INTO r FROM llm_usage.alert_rules a WHERE a.kind = $1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'unknown alert kind "%"', $1
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Alert kinds are: ' || (SELECT string_agg(a.kind, ', ' ORDER BY a.kind) FROM llm_usage.alert_rules a) || '.';
    END IF;
    PERFORM llm_usage._require_arg($4, 'enabled');
    IF $2 IS NOT NULL AND r.threshold IS NULL THEN
        RAISE EXCEPTION 'alert kind "%" has no threshold', $1
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $2 IS NOT NULL THEN
        PERFORM llm_usage._check_amount($2, 'threshold', false);
    END IF;
    IF $3 IS NOT NULL AND r.min_calls IS NULL THEN
        RAISE EXCEPTION 'alert kind "%" has no minimum number of calls', $1
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $3 IS NOT NULL AND ($3 < 1 OR $3 > 1000000) THEN
        RAISE EXCEPTION 'min_calls must be between 1 and 1000000, got %', $3
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $5 IS NOT NULL THEN
        v_who := (llm_usage._tenant($5)).tenant_id;
    END IF;
    INSERT INTO llm_usage.alert_rule_overrides AS o (tenant_id, kind, enabled, threshold, min_calls)
    VALUES (v_who, $1, $4, coalesce($2, r.threshold), coalesce($3, r.min_calls))
    ON CONFLICT (tenant_id, kind) DO UPDATE
       SET enabled = EXCLUDED.enabled, threshold = EXCLUDED.threshold, min_calls = EXCLUDED.min_calls,
           updated_at = now();
END
$$;
COMMENT ON FUNCTION llm_usage.set_alert_rule(text, numeric, integer, boolean, text) IS
'Changes an alert rule (threshold, min_calls, enabled) for every tenant (tenant_id NULL) or for one; unset values keep the shipped default.  Admin only.';

CREATE FUNCTION llm_usage.alert_rules_for(tenant_id text)
RETURNS TABLE (kind text, enabled boolean, threshold numeric, min_calls integer, severity text, source text, description text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants := llm_usage._tenant($1);
BEGIN
    RETURN QUERY
    SELECT r.kind, e.enabled, e.threshold, e.min_calls, e.severity,
           CASE WHEN EXISTS (SELECT 1 FROM llm_usage.alert_rule_overrides o WHERE o.tenant_id = t.tenant_id AND o.kind = r.kind) THEN 'tenant'
                WHEN EXISTS (SELECT 1 FROM llm_usage.alert_rule_overrides o WHERE o.tenant_id = '*' AND o.kind = r.kind) THEN 'global'
                ELSE 'default' END,
           r.description
      FROM llm_usage.alert_rules r
     CROSS JOIN LATERAL llm_usage._alert_rule(t.tenant_id, r.kind) e
     ORDER BY r.kind;
END
$$;
COMMENT ON FUNCTION llm_usage.alert_rules_for(text) IS 'The alert rules in force for a tenant, and where each comes from (default, global, tenant).';

------------------------------------------------------------------------
-- Raising alerts: rules, throttling, NOTIFY
------------------------------------------------------------------------
ALTER TABLE llm_usage.alerts
    ADD COLUMN subject text NOT NULL DEFAULT '',
    ADD COLUMN webhook_status text CONSTRAINT alerts_webhook_status_check CHECK (webhook_status IN ('pending', 'delivered', 'failed')),
    ADD COLUMN webhook_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN webhook_error text,
    ADD COLUMN email_status text CONSTRAINT alerts_email_status_check CHECK (email_status IN ('pending', 'delivered', 'failed')),
    ADD COLUMN email_attempts integer NOT NULL DEFAULT 0,
    ADD COLUMN email_error text,
    ADD COLUMN delivered_at timestamptz;
COMMENT ON COLUMN llm_usage.alerts.webhook_status IS
'pending, delivered or failed when llm_usage.alert_webhook_url was set as the alert was raised; NULL otherwise.';
COMMENT ON COLUMN llm_usage.alerts.email_status IS
'pending, delivered or failed when llm_usage.alert_smtp_url and alert_email_to were set as the alert was raised; NULL otherwise.';
CREATE INDEX alerts_pending_idx ON llm_usage.alerts (id) WHERE webhook_status = 'pending' OR email_status = 'pending';
COMMENT ON COLUMN llm_usage.alerts.subject IS
'What the alert is about within its kind (a quota and period, a model, a key, a day); throttling is per tenant, kind and subject.';
CREATE INDEX alerts_throttle_idx ON llm_usage.alerts (tenant_id, kind, subject, created_at);

DROP FUNCTION llm_usage._raise_alert(text, text, text, text, jsonb);
CREATE FUNCTION llm_usage._raise_alert(p_tenant text, p_kind text, p_severity text, p_message text, p_details jsonb,
                                       p_subject text DEFAULT '')
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a          llm_usage.alerts;
    v_throttle interval := coalesce(current_setting('llm_usage.alert_throttle', true), '1h')::interval;
BEGIN
    -- tenant '*' (the system) reads the global override, if any
    IF NOT (llm_usage._alert_rule(p_tenant, p_kind)).enabled THEN
        RETURN NULL;
    END IF;
    IF EXISTS (SELECT 1 FROM llm_usage.alerts x
                WHERE x.tenant_id = p_tenant AND x.kind = p_kind AND x.subject = p_subject
                  AND x.created_at > now() - v_throttle) THEN
        RETURN NULL;            -- throttled
    END IF;
    INSERT INTO llm_usage.alerts (tenant_id, kind, severity, message, details, subject, webhook_status, email_status)
    VALUES (p_tenant, p_kind, p_severity, left(p_message, 2000), p_details, p_subject,
            CASE WHEN coalesce(current_setting('llm_usage.alert_webhook_url', true), '') <> '' THEN 'pending' END,
            CASE WHEN coalesce(current_setting('llm_usage.alert_smtp_url', true), '') <> ''
                  AND coalesce(current_setting('llm_usage.alert_email_to', true), '') <> '' THEN 'pending' END)
    RETURNING * INTO a;
    IF a.webhook_status IS NOT NULL OR a.email_status IS NOT NULL THEN
        PERFORM llm_usage._wake_worker();       -- deliver soon after commit
    END IF;
    PERFORM pg_notify('llm_usage_alerts',
                      left(jsonb_build_object('id', a.id, 'tenant_id', a.tenant_id, 'kind', a.kind,
                                              'severity', a.severity, 'subject', a.subject,
                                              'message', left(a.message, 500), 'created_at', a.created_at)::text, 7900));
    RETURN a.id;
END
$$;
COMMENT ON FUNCTION llm_usage._raise_alert(text, text, text, text, jsonb, text) IS
'Internal: store an alert and NOTIFY llm_usage_alerts with its JSON (sent at commit), unless its rule is disabled for the tenant or the same tenant, kind and subject alerted within llm_usage.alert_throttle.  Tenant ''*'' is the system.';
REVOKE ALL ON FUNCTION llm_usage._raise_alert(text, text, text, text, jsonb, text) FROM PUBLIC;

-- collection failures are throttled per key
CREATE OR REPLACE FUNCTION llm_usage._finish_run(p_run_id bigint, p_status text, p_pages integer, p_rows bigint,
                                                 p_attempts integer, p_error text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r llm_usage.collector_runs;
BEGIN
    UPDATE llm_usage.collector_runs
       SET status = p_status, finished_at = now(), pages = p_pages, rows_written = p_rows,
           http_attempts = p_attempts, error = p_error
     WHERE run_id = p_run_id
    RETURNING * INTO r;
    UPDATE llm_usage.provider_key_store
       SET last_synced_at = now(), last_sync_status = p_status, last_error = p_error,
           collected_through = CASE WHEN p_status = 'succeeded'
                                    THEN greatest(collected_through, (r.window_to AT TIME ZONE 'UTC')::date - 1)
                                    ELSE collected_through END
     WHERE key_id = r.key_id;
    IF p_status = 'failed' THEN
        PERFORM llm_usage._raise_alert(r.tenant_id, 'collection_failed', 'error',
                    format('collection of %s key %s failed: %s', r.provider, r.key_id, p_error),
                    jsonb_build_object('run_id', r.run_id, 'key_id', r.key_id, 'provider', r.provider,
                                       'window_from', r.window_from, 'window_to', r.window_to,
                                       'http_attempts', p_attempts, 'error', p_error),
                    'key ' || r.key_id);
    END IF;
END
$$;

CREATE FUNCTION llm_usage.acknowledge_alert(alert_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    a llm_usage.alerts;
BEGIN
    PERFORM llm_usage._require_arg($1, 'alert_id');
    SELECT * INTO a FROM llm_usage.alerts x WHERE x.id = $1;
    IF NOT FOUND OR NOT (llm_usage._is_admin() OR (a.tenant_id <> '*' AND llm_usage._can_access(a.tenant_id))) THEN
        RAISE EXCEPTION 'alert % does not exist', $1
            USING ERRCODE = 'undefined_object';
    END IF;
    IF a.acknowledged_at IS NOT NULL THEN
        RAISE NOTICE 'alert % was already acknowledged', $1;
        RETURN;
    END IF;
    UPDATE llm_usage.alerts x SET acknowledged_at = now() WHERE x.id = $1 AND x.tenant_id = a.tenant_id;
    IF a.tenant_id <> '*' THEN
        INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
        VALUES (a.tenant_id, 'alerts', 'acknowledge_alert', llm_usage._caller()::regrole::text,
                jsonb_build_object('alert_id', a.id, 'kind', a.kind));
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage.acknowledge_alert(bigint) IS
'Marks an alert acknowledged (once).  Admins, and readers for their tenants'' alerts.';

------------------------------------------------------------------------
-- Evaluating the rules
------------------------------------------------------------------------
CREATE TABLE llm_usage.alert_state (
    name       text PRIMARY KEY,
    checked_at timestamptz NOT NULL
);
COMMENT ON TABLE llm_usage.alert_state IS 'When check_alerts() last looked at new audit events and calls.';

CREATE TABLE llm_usage.alert_quota_marks (
    tenant_id    text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    quota_type   text NOT NULL,
    period       text NOT NULL,
    period_start timestamptz NOT NULL,
    level        numeric NOT NULL,
    marked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, quota_type, period, period_start, level)
);
COMMENT ON TABLE llm_usage.alert_quota_marks IS 'quota_near levels already alerted, per quota period, so each fires once per period.';

/*
 * check_alerts(): evaluate every rule once and raise what is due.  Windows:
 * quota_exceeded and unpriced_usage look at what happened since the last
 * check; quota_near at the current periods; high_latency and
 * high_error_rate at the last hour of calls; cost_anomaly at yesterday
 * (daily roll-ups) and today so far (raw calls), each against the average of
 * the 7 days before it.  Concurrent calls are serialised.
 */
CREATE FUNCTION llm_usage.check_alerts()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now   timestamptz := clock_timestamp();
    v_since timestamptz;
    n       integer := 0;
    r       record;
BEGIN
    PERFORM llm_usage._require_admin('check_alerts');
    INSERT INTO llm_usage.alert_state (name, checked_at) VALUES ('check_alerts', v_now - interval '1 hour')
    ON CONFLICT DO NOTHING;
    SELECT checked_at INTO v_since FROM llm_usage.alert_state WHERE name = 'check_alerts' FOR UPDATE;

    -- quota_exceeded: denials since the last check, one per quota type and period
    FOR r IN SELECT a.tenant_id, d->>'quota_type' AS quota_type, d->>'period' AS period, count(*) AS denials,
                    max((d->>'quota_limit')::numeric) AS quota_limit
               FROM llm_usage.audit_events a
              CROSS JOIN LATERAL jsonb_array_elements(a.details->'denied') d
              WHERE a.action = 'quota_exceeded' AND a.created_at >= v_since AND a.created_at < v_now
              GROUP BY 1, 2, 3
    LOOP
        n := n + (llm_usage._raise_alert(r.tenant_id, 'quota_exceeded', (llm_usage._alert_rule(r.tenant_id, 'quota_exceeded')).severity,
                      format('tenant %s was denied %s time(s) by its %s quota per %s (limit %s)',
                             r.tenant_id, r.denials, r.quota_type, r.period, r.quota_limit),
                      jsonb_build_object('quota_type', r.quota_type, 'period', r.period, 'denials', r.denials,
                                         'quota_limit', r.quota_limit),
                      r.quota_type || '/' || r.period) IS NOT NULL)::integer;
    END LOOP;

    -- quota_near: the current period of each limited quota crossed threshold % or 100 %
    FOR r IN SELECT t.tenant_id, q.quota_type, q.period, q.quota_limit, c.used, b.period_start, lv.level
               FROM llm_usage.tenants t
              CROSS JOIN LATERAL llm_usage._effective_quotas(t.tenant_id, t.plan) q
              CROSS JOIN LATERAL llm_usage._period_bounds(q.period, v_now, t.timezone) b
               JOIN llm_usage.quota_counters c
                 ON c.tenant_id = t.tenant_id AND c.quota_type = q.quota_type AND c.period = q.period
                AND c.period_start >= b.period_start
              CROSS JOIN LATERAL (SELECT unnest(ARRAY[(llm_usage._alert_rule(t.tenant_id, 'quota_near')).threshold, 100]) AS level) lv
              WHERE q.quota_limit > 0 AND (llm_usage._alert_rule(t.tenant_id, 'quota_near')).enabled
                AND 100 * c.used / q.quota_limit >= lv.level
                AND NOT EXISTS (SELECT 1 FROM llm_usage.alert_quota_marks m
                                 WHERE m.tenant_id = t.tenant_id AND m.quota_type = q.quota_type AND m.period = q.period
                                   AND m.period_start = b.period_start AND m.level = lv.level)
              ORDER BY t.tenant_id, q.quota_type, q.period, lv.level
    LOOP
        INSERT INTO llm_usage.alert_quota_marks (tenant_id, quota_type, period, period_start, level)
        VALUES (r.tenant_id, r.quota_type, r.period, r.period_start, r.level);
        n := n + (llm_usage._raise_alert(r.tenant_id, 'quota_near', (llm_usage._alert_rule(r.tenant_id, 'quota_near')).severity,
                      format('tenant %s used %s of its %s %s quota per %s (%s %%, alert at %s %%)',
                             r.tenant_id, r.used, r.quota_limit, r.quota_type, r.period,
                             round(100 * r.used / r.quota_limit, 1), r.level),
                      jsonb_build_object('quota_type', r.quota_type, 'period', r.period, 'period_start', r.period_start,
                                         'quota_limit', r.quota_limit, 'used', r.used, 'level', r.level),
                      format('%s/%s/%s/%s', r.quota_type, r.period, r.period_start, r.level)) IS NOT NULL)::integer;
    END LOOP;

    -- high_latency and high_error_rate: the last hour of calls
    FOR r IN SELECT e.tenant_id, count(*) AS calls,
                    count(*) FILTER (WHERE e.result <> 'success') AS failed,
                    percentile_cont(0.99) WITHIN GROUP (ORDER BY e.latency_ms) AS p99,
                    count(e.latency_ms) AS timed
               FROM llm_usage.usage_events e
              WHERE e.occurred_at >= v_now - interval '1 hour' AND e.occurred_at <= v_now
              GROUP BY e.tenant_id
    LOOP
        DECLARE
            err record := llm_usage._alert_rule(r.tenant_id, 'high_error_rate');
            l   record := llm_usage._alert_rule(r.tenant_id, 'high_latency');
        BEGIN
            IF l.enabled AND r.timed >= l.min_calls AND r.p99 > l.threshold THEN
                n := n + (llm_usage._raise_alert(r.tenant_id, 'high_latency', l.severity,
                              format('tenant %s: p99 latency over the last hour is %s ms (threshold %s ms, %s calls)',
                                     r.tenant_id, round(r.p99::numeric), l.threshold, r.timed),
                              jsonb_build_object('p99_ms', round(r.p99::numeric, 2), 'threshold_ms', l.threshold,
                                                 'calls', r.timed)) IS NOT NULL)::integer;
            END IF;
            IF err.enabled AND r.calls >= err.min_calls AND 100.0 * r.failed / r.calls > err.threshold THEN
                n := n + (llm_usage._raise_alert(r.tenant_id, 'high_error_rate', err.severity,
                              format('tenant %s: %s of %s calls over the last hour did not succeed (%s %%, threshold %s %%)',
                                     r.tenant_id, r.failed, r.calls, round(100.0 * r.failed / r.calls, 1), err.threshold),
                              jsonb_build_object('failed', r.failed, 'calls', r.calls,
                                                 'error_rate_pct', round(100.0 * r.failed / r.calls, 2),
                                                 'threshold_pct', err.threshold)) IS NOT NULL)::integer;
            END IF;
        END;
    END LOOP;

    -- cost_anomaly: yesterday (roll-ups) and today so far (raw calls) against the 7 days before each
    FOR r IN WITH days AS (
                 SELECT t.tenant_id, t.timezone, d.day,
                        CASE WHEN d.day = (v_now AT TIME ZONE t.timezone)::date
                             THEN (SELECT coalesce(sum(e.cost_usd), 0) FROM llm_usage.usage_events e
                                    WHERE e.tenant_id = t.tenant_id
                                      AND e.occurred_at >= d.day::timestamp AT TIME ZONE t.timezone
                                      AND e.occurred_at < v_now)
                             ELSE (SELECT coalesce(sum(m.estimated_cost_usd), 0) FROM llm_usage.tenant_usage_metrics m
                                    WHERE m.tenant_id = t.tenant_id AND m.period_type = 'daily'
                                      AND m.period_start = d.day::timestamp AT TIME ZONE t.timezone) END AS cost,
                        (SELECT avg(coalesce(m.estimated_cost_usd, 0))
                           FROM generate_series(d.day - 7, d.day - 1, interval '1 day') g(day)
                           LEFT JOIN llm_usage.tenant_usage_metrics m
                             ON m.tenant_id = t.tenant_id AND m.period_type = 'daily'
                            AND m.period_start = g.day::timestamp AT TIME ZONE t.timezone) AS trailing_avg
                   FROM llm_usage.tenants t
                  CROSS JOIN LATERAL (VALUES ((v_now AT TIME ZONE t.timezone)::date - 1),
                                             ((v_now AT TIME ZONE t.timezone)::date)) d(day))
             SELECT * FROM days
              WHERE trailing_avg > 0
                AND (llm_usage._alert_rule(tenant_id, 'cost_anomaly')).enabled
                AND cost > (llm_usage._alert_rule(tenant_id, 'cost_anomaly')).threshold * trailing_avg
              ORDER BY tenant_id, day
    LOOP
        n := n + (llm_usage._raise_alert(r.tenant_id, 'cost_anomaly', (llm_usage._alert_rule(r.tenant_id, 'cost_anomaly')).severity,
                      format('tenant %s spent %s USD on %s, %s times the average of the 7 days before (%s USD)',
                             r.tenant_id, r.cost, r.day, round(r.cost / r.trailing_avg, 2), round(r.trailing_avg, 6)),
                      jsonb_build_object('day', r.day, 'cost_usd', r.cost, 'trailing_avg_usd', round(r.trailing_avg, 6),
                                         'ratio', round(r.cost / r.trailing_avg, 2)),
                      'day ' || r.day) IS NOT NULL)::integer;
    END LOOP;

    -- unpriced_usage: calls of models without a price tracked since the last check
    FOR r IN SELECT e.tenant_id, e.model, count(*) AS calls, sum(e.input_tokens + e.output_tokens) AS tokens
               FROM llm_usage.usage_events e
              WHERE e.cost_usd IS NULL AND e.model IS NOT NULL
                AND e.recorded_at >= v_since AND e.recorded_at < v_now
              GROUP BY 1, 2
              ORDER BY 1, 2
    LOOP
        n := n + (llm_usage._raise_alert(r.tenant_id, 'unpriced_usage', (llm_usage._alert_rule(r.tenant_id, 'unpriced_usage')).severity,
                      format('tenant %s: %s call(s) of model %s have no price, so their cost is unknown (not 0)',
                             r.tenant_id, r.calls, r.model),
                      jsonb_build_object('model', r.model, 'calls', r.calls, 'tokens', r.tokens,
                                         'hint', 'llm_usage.set_model_price()'),
                      'model ' || r.model) IS NOT NULL)::integer;
    END LOOP;

    UPDATE llm_usage.alert_state SET checked_at = v_now WHERE name = 'check_alerts';
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage.check_alerts() IS
'Evaluates every alert rule and raises what is due (each also NOTIFY llm_usage_alerts); returns the number of new alerts.  The worker runs it after each roll-up.  Admin only.';


------------------------------------------------------------------------
-- usage_events partitioned by month (native partitioning)
--
-- Monthly partitions (usage_events_YYYYMM) are made by the worker ahead of
-- time and at run time, so they are ordinary tables that pg_dump dumps with
-- their rows; usage_events_default, part of the extension, catches calls of
-- a month that has no partition yet until the worker moves them.  Request
-- ids, which must be unique per tenant across partitions, move to
-- usage_requests.
------------------------------------------------------------------------
DROP VIEW llm_usage.reconciliation;
ALTER TABLE llm_usage.usage_events RENAME TO usage_events_1_0;
ALTER TABLE llm_usage.usage_events_1_0 RENAME CONSTRAINT usage_events_pkey TO usage_events_1_0_pkey;
DROP INDEX llm_usage.usage_events_request_idx, llm_usage.usage_events_occurred_idx,
           llm_usage.usage_events_recorded_brin, llm_usage.usage_events_unpriced_idx;
DROP FUNCTION llm_usage.tenant_events(text, timestamptz, timestamptz, text, integer);

CREATE SEQUENCE llm_usage.usage_events_id_seq;
SELECT setval('llm_usage.usage_events_id_seq',
              coalesce((SELECT max(event_id) FROM llm_usage.usage_events_1_0), 0) + 1, false);

CREATE TABLE llm_usage.usage_events (
    tenant_id           text NOT NULL,
    event_id            bigint NOT NULL DEFAULT nextval('llm_usage.usage_events_id_seq'),
    event_type          text NOT NULL,
    model               text,
    provider            text,
    input_tokens        bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    cached_input_tokens bigint NOT NULL DEFAULT 0,
    cache_write_tokens  bigint NOT NULL DEFAULT 0,
    total_tokens        bigint GENERATED ALWAYS AS (input_tokens + output_tokens) STORED,
    cost_usd            numeric,
    price_id            bigint,
    latency_ms          integer,
    status_code         integer,
    result              text NOT NULL DEFAULT 'success'
                        CONSTRAINT usage_events_result_check CHECK (result IN ('success', 'failure', 'rate_limited')),
    metadata            jsonb NOT NULL DEFAULT '{}',
    request_id          text,
    occurred_at         timestamptz NOT NULL DEFAULT now(),
    recorded_at         timestamptz NOT NULL DEFAULT clock_timestamp()
) PARTITION BY RANGE (occurred_at);
ALTER SEQUENCE llm_usage.usage_events_id_seq OWNED BY llm_usage.usage_events.event_id;
COMMENT ON TABLE llm_usage.usage_events IS
'One row per LLM call reported with track_usage(); append-only, partitioned by month of occurred_at, kept for llm_usage.event_retention months.  cost_usd is computed from the price valid at occurred_at, NULL when the model has no price.';
COMMENT ON COLUMN llm_usage.usage_events.input_tokens IS 'All input tokens, including cached_input_tokens and cache_write_tokens.';
COMMENT ON COLUMN llm_usage.usage_events.cached_input_tokens IS 'Input tokens read from the prompt cache (billed at the cached rate).';
COMMENT ON COLUMN llm_usage.usage_events.cache_write_tokens IS 'Input tokens written to the prompt cache (billed at the cache-write rate).';
COMMENT ON COLUMN llm_usage.usage_events.recorded_at IS 'When the row was written or last re-priced; aggregate_usage_metrics() finds new work by it.';

/*
 * Keys and indexes live on each partition, not on the partitioned table:
 * pg_dump re-attaches run-time partitions with their own indexes, which
 * would clash with indexes cloned from an extension-owned parent.  Every
 * partition gets the same set from this function.
 */
CREATE FUNCTION llm_usage._partition_indexes(p_table text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    EXECUTE format('ALTER TABLE llm_usage.%I ADD PRIMARY KEY (tenant_id, event_id, occurred_at)', p_table);
    EXECUTE format('CREATE INDEX ON llm_usage.%I (tenant_id, occurred_at)', p_table);
    EXECUTE format('CREATE INDEX ON llm_usage.%I USING brin (recorded_at)', p_table);
    EXECUTE format('CREATE INDEX ON llm_usage.%I USING brin (occurred_at)', p_table);
    EXECUTE format('CREATE INDEX ON llm_usage.%I (model) WHERE cost_usd IS NULL AND model IS NOT NULL', p_table);
END
$$;
COMMENT ON FUNCTION llm_usage._partition_indexes(text) IS
'Internal: the primary key and indexes every partition of usage_events has (tenant and time, recorded_at and occurred_at ranges, unpriced calls).';

CREATE TABLE llm_usage.usage_events_default PARTITION OF llm_usage.usage_events DEFAULT;
SELECT llm_usage._partition_indexes('usage_events_default');
COMMENT ON TABLE llm_usage.usage_events_default IS
'Calls of months without a partition yet; the worker moves them into usage_events_YYYYMM.';

CREATE TABLE llm_usage.usage_requests (
    tenant_id   text NOT NULL,
    request_id  text NOT NULL,
    event_id    bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);
COMMENT ON TABLE llm_usage.usage_requests IS
'Request ids of tracked calls, so that track_usage() counts a (tenant_id, request_id) once across partitions.';

INSERT INTO llm_usage.usage_events
    (tenant_id, event_id, event_type, model, provider, input_tokens, output_tokens, cached_input_tokens,
     cache_write_tokens, cost_usd, price_id, latency_ms, status_code, result, metadata, request_id,
     occurred_at, recorded_at)
SELECT tenant_id, event_id, event_type, model, provider, input_tokens, output_tokens, cached_input_tokens,
       cache_write_tokens, cost_usd, price_id, latency_ms, status_code, result, metadata, request_id,
       occurred_at, recorded_at
  FROM llm_usage.usage_events_1_0;
INSERT INTO llm_usage.usage_requests (tenant_id, request_id, event_id, occurred_at)
SELECT tenant_id, request_id, event_id, occurred_at FROM llm_usage.usage_events_1_0 WHERE request_id IS NOT NULL;
DROP TABLE llm_usage.usage_events_1_0;

CREATE VIEW llm_usage.reconciliation WITH (security_barrier) AS
WITH tracked AS (
    SELECT e.tenant_id, e.provider, (e.occurred_at AT TIME ZONE 'UTC')::date AS day, sum(e.cost_usd) AS usd
      FROM llm_usage.usage_events e
     WHERE e.provider IN ('openai', 'anthropic')
     GROUP BY 1, 2, 3),
reported AS (
    SELECT c.tenant_id, c.provider, (c.bucket_start AT TIME ZONE 'UTC')::date AS day, sum(c.amount_usd) AS usd
      FROM llm_usage.provider_costs c
     GROUP BY 1, 2, 3)
SELECT tenant_id, provider, day,
       coalesce(t.usd, 0) AS tracked_usd,
       r.usd AS reported_usd,
       r.usd - coalesce(t.usd, 0) AS difference_usd,
       round(100 * (r.usd - coalesce(t.usd, 0)) / nullif(r.usd, 0), 2) AS difference_pct
  FROM tracked t
  FULL JOIN reported r USING (tenant_id, provider, day)
 WHERE llm_usage._can_access(tenant_id);
COMMENT ON VIEW llm_usage.reconciliation IS
'Per tenant, provider and UTC day: cost tracked with track_usage() against cost the provider reported (NULL until collected), the difference in USD (reported minus tracked) and in percent of reported.';
GRANT SELECT ON llm_usage.reconciliation TO llm_usage_app, llm_usage_reader, llm_usage_admin;

CREATE FUNCTION llm_usage.tenant_events(tenant_id text, from_ts timestamptz, to_ts timestamptz,
                                        event_type text DEFAULT NULL, max_rows integer DEFAULT 100)
RETURNS SETOF llm_usage.usage_events
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants := llm_usage._tenant($1);
BEGIN
    PERFORM llm_usage._check_range($2, $3);
    PERFORM llm_usage._check_max_rows($5);
    IF $4 IS NOT NULL AND $4 NOT IN ('chat', 'completion', 'embedding', 'image', 'audio', 'moderation', 'tool', 'other') THEN
        RAISE EXCEPTION 'unknown event_type "%"', $4
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Event types are: chat, completion, embedding, image, audio, moderation, tool, other.';
    END IF;
    RETURN QUERY
    SELECT e.*
      FROM llm_usage.usage_events e
     WHERE e.tenant_id = t.tenant_id AND e.occurred_at >= $2 AND e.occurred_at < $3
       AND ($4 IS NULL OR e.event_type = $4)
     ORDER BY e.occurred_at DESC, e.event_id DESC
     LIMIT $5;
END
$$;
COMMENT ON FUNCTION llm_usage.tenant_events(text, timestamptz, timestamptz, text, integer) IS
'A tenant''s tracked calls in [from_ts, to_ts), newest first, optionally of one event type.';

REVOKE ALL ON FUNCTION llm_usage.tenant_events(text, timestamptz, timestamptz, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llm_usage.tenant_events(text, timestamptz, timestamptz, text, integer) TO llm_usage_reader;

CREATE OR REPLACE FUNCTION llm_usage.track_usage(tenant_id text, event_type text, model text DEFAULT NULL,
                                      input_tokens bigint DEFAULT 0, output_tokens bigint DEFAULT 0,
                                      cached_input_tokens bigint DEFAULT 0, latency_ms integer DEFAULT NULL,
                                      status_code integer DEFAULT 200, result text DEFAULT 'success',
                                      metadata jsonb DEFAULT '{}', request_id text DEFAULT NULL,
                                      occurred_at timestamptz DEFAULT now(),
                                      cache_write_tokens bigint DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t       llm_usage.tenants := llm_usage._tenant($1);
    p       llm_usage.model_price_versions;
    v_id    bigint;
BEGIN
    PERFORM llm_usage._require_arg($2, 'event_type');
    IF $2 NOT IN ('chat', 'completion', 'embedding', 'image', 'audio', 'moderation', 'tool', 'other') THEN
        RAISE EXCEPTION 'unknown event_type "%"', $2
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Event types are: chat, completion, embedding, image, audio, moderation, tool, other.';
    END IF;
    IF $3 IS NOT NULL AND $3 !~ '^[[:graph:]]{1,200}$' THEN
        RAISE EXCEPTION 'invalid model name "%"', $3
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the model name as sent to the provider, or NULL.';
    END IF;
    PERFORM llm_usage._check_count($4, 'input_tokens');
    PERFORM llm_usage._check_count($5, 'output_tokens');
    PERFORM llm_usage._check_count($6, 'cached_input_tokens');
    PERFORM llm_usage._check_count($13, 'cache_write_tokens');
    PERFORM llm_usage._check_token_split($4, $6, $13);
    IF $7 IS NOT NULL AND ($7 < 0 OR $7 > 86400000) THEN
        RAISE EXCEPTION 'latency_ms must be between 0 and 86400000, got %', $7
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $8 IS NOT NULL AND ($8 < 100 OR $8 > 599) THEN
        RAISE EXCEPTION 'status_code must be an HTTP status between 100 and 599, got %', $8
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM llm_usage._require_arg($9, 'result');
    IF $9 NOT IN ('success', 'failure', 'rate_limited') THEN
        RAISE EXCEPTION 'unknown result "%"', $9
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'result is one of success, failure, rate_limited.';
    END IF;
    PERFORM llm_usage._check_object($10, 'metadata');
    IF $11 IS NOT NULL THEN
        PERFORM llm_usage._check_text($11, 'request_id', 255);
    END IF;
    PERFORM llm_usage._require_arg($12, 'occurred_at');
    IF $12 > now() + interval '1 hour' OR $12 < '2000-01-01'::timestamptz THEN
        RAISE EXCEPTION 'occurred_at % is out of range', $12
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Calls are tracked from 2000-01-01 up to one hour ahead of the server clock.';
    END IF;

    IF $3 IS NOT NULL THEN
        p := llm_usage._price_at($3, $12);
    END IF;

    IF $12 < date_trunc('month', now()) - make_interval(months => coalesce(current_setting('llm_usage.event_retention', true), '13')::integer) THEN
        RAISE EXCEPTION 'occurred_at % is older than llm_usage.event_retention', $12
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Calls are kept for llm_usage.event_retention months; older ones are only in the roll-ups.';
    END IF;

    IF $11 IS NOT NULL THEN
        -- the same request tracked before: return that event, count nothing
        v_id := nextval('llm_usage.usage_events_id_seq');
        INSERT INTO llm_usage.usage_requests (tenant_id, request_id, event_id, occurred_at)
        VALUES (t.tenant_id, $11, v_id, $12)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            SELECT r.event_id INTO v_id
              FROM llm_usage.usage_requests r
             WHERE r.tenant_id = t.tenant_id AND r.request_id = $11;
            RETURN v_id;
        END IF;
        INSERT INTO llm_usage.usage_events
            (tenant_id, event_id, event_type, model, provider, input_tokens, output_tokens, cached_input_tokens,
             cache_write_tokens, cost_usd, price_id, latency_ms, status_code, result, metadata, request_id,
             occurred_at)
        VALUES (t.tenant_id, v_id, $2, $3, p.provider, $4, $5, $6, $13,
                llm_usage._cost(p, $4, $5, $6, $13), p.price_id, $7, $8, $9, $10, $11, $12);
    ELSE
        INSERT INTO llm_usage.usage_events
            (tenant_id, event_type, model, provider, input_tokens, output_tokens, cached_input_tokens,
             cache_write_tokens, cost_usd, price_id, latency_ms, status_code, result, metadata, request_id,
             occurred_at)
        VALUES (t.tenant_id, $2, $3, p.provider, $4, $5, $6, $13,
                llm_usage._cost(p, $4, $5, $6, $13), p.price_id, $7, $8, $9, $10, $11, $12)
        RETURNING event_id INTO v_id;
    END IF;
    RETURN v_id;
END
$$;

CREATE FUNCTION llm_usage._partition_name(p_month date)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT 'usage_events_' || to_char(p_month, 'YYYYMM') $$;
COMMENT ON FUNCTION llm_usage._partition_name(date) IS 'Internal: the name of the monthly partition of usage_events for a month.';

/*
 * _ensure_partitions(from, to): a partition for every month from "from" to
 * "to", and for every month that has calls waiting in the default
 * partition.  A month's calls are moved out of the default partition into a
 * new table, which is then attached; all in the caller's transaction.
 */
CREATE FUNCTION llm_usage._ensure_partitions(p_from date, p_to date)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    m     date;
    v_tab text;
    n     integer := 0;
BEGIN
    FOR m IN
        SELECT DISTINCT x.month FROM (
            SELECT generate_series(date_trunc('month', p_from), date_trunc('month', p_to), interval '1 month')::date AS month
            UNION
            SELECT DISTINCT date_trunc('month', d.occurred_at AT TIME ZONE 'UTC')::date FROM llm_usage.usage_events_default d
        ) x ORDER BY 1
    LOOP
        v_tab := llm_usage._partition_name(m);
        CONTINUE WHEN to_regclass('llm_usage.' || v_tab) IS NOT NULL;
        EXECUTE format('CREATE TABLE llm_usage.%I (LIKE llm_usage.usage_events INCLUDING DEFAULTS INCLUDING GENERATED INCLUDING CONSTRAINTS)', v_tab);
        PERFORM llm_usage._partition_indexes(v_tab);
        EXECUTE format($q$WITH moved AS (
                              DELETE FROM llm_usage.usage_events_default
                               WHERE occurred_at >= %L::timestamp AT TIME ZONE 'UTC'
                                 AND occurred_at < %L::timestamp AT TIME ZONE 'UTC'
                           RETURNING *)
                           INSERT INTO llm_usage.%I (tenant_id, event_id, event_type, model, provider,
                               input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, cost_usd,
                               price_id, latency_ms, status_code, result, metadata, request_id, occurred_at,
                               recorded_at)
                           SELECT tenant_id, event_id, event_type, model, provider, input_tokens, output_tokens,
                                  cached_input_tokens, cache_write_tokens, cost_usd, price_id, latency_ms,
                                  status_code, result, metadata, request_id, occurred_at, recorded_at
                             FROM moved$q$, m, m + interval '1 month', v_tab);
        EXECUTE format($q$ALTER TABLE llm_usage.usage_events ATTACH PARTITION llm_usage.%I
                           FOR VALUES FROM (%L) TO (%L)$q$,
                       v_tab, m::timestamp AT TIME ZONE 'UTC', (m + interval '1 month')::timestamp AT TIME ZONE 'UTC');
        EXECUTE format('COMMENT ON TABLE llm_usage.%I IS %L', v_tab,
                       format('Calls that occurred in %s (UTC); dropped after llm_usage.event_retention months.', to_char(m, 'YYYY-MM')));
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._ensure_partitions(date, date) IS
'Internal (worker): create the monthly partitions of usage_events from p_from to p_to and for calls waiting in the default partition.';

/*
 * _drop_old_partitions(): drop the monthly partitions that ended more than
 * llm_usage.event_retention months ago, once every roll-up has seen all of
 * their calls (no call recorded at or after the oldest roll-up watermark).
 */
CREATE FUNCTION llm_usage._drop_old_partitions()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_keep   timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC')::timestamp AT TIME ZONE 'UTC'
                            - make_interval(months => coalesce(current_setting('llm_usage.event_retention', true), '13')::integer);
    v_wm     timestamptz;
    r        record;
    v_rolled boolean;
    n        integer := 0;
BEGIN
    SELECT CASE WHEN count(*) = 3 AND count(watermark) = 3 THEN min(watermark) END INTO v_wm
      FROM llm_usage.aggregation_state WHERE period_type IN ('hourly', 'daily', 'monthly');
    IF v_wm IS NULL THEN
        RETURN 0;               -- roll-ups have not all run yet: keep everything
    END IF;
    FOR r IN SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
               FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'llm_usage.usage_events'::regclass AND c.relname ~ '^usage_events_[0-9]{6}$'
              ORDER BY c.relname
    LOOP
        CONTINUE WHEN (to_date(right(r.relname, 6), 'YYYYMM') + interval '1 month')::timestamp AT TIME ZONE 'UTC' > v_keep;
        EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM llm_usage.%I WHERE recorded_at >= %L)', r.relname, v_wm)
           INTO v_rolled;
        CONTINUE WHEN NOT v_rolled;
        EXECUTE format('ALTER TABLE llm_usage.usage_events DETACH PARTITION llm_usage.%I', r.relname);
        EXECUTE format('DROP TABLE llm_usage.%I', r.relname);
        DELETE FROM llm_usage.usage_requests
         WHERE occurred_at < (to_date(right(r.relname, 6), 'YYYYMM') + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._drop_old_partitions() IS
'Internal (worker): drop monthly partitions of usage_events older than llm_usage.event_retention whose calls are all rolled up.';

CREATE FUNCTION llm_usage._prune_history()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_before timestamptz := now() - make_interval(days => coalesce(current_setting('llm_usage.history_retention', true), '90')::integer);
    a integer;
    b integer;
BEGIN
    DELETE FROM llm_usage.collector_runs
     WHERE status IN ('succeeded', 'failed') AND finished_at < v_before;
    GET DIAGNOSTICS a = ROW_COUNT;
    DELETE FROM llm_usage.alerts
     WHERE created_at < v_before
       AND coalesce(webhook_status, 'delivered') <> 'pending' AND coalesce(email_status, 'delivered') <> 'pending';
    GET DIAGNOSTICS b = ROW_COUNT;
    RETURN a + b;
END
$$;
COMMENT ON FUNCTION llm_usage._prune_history() IS
'Internal (worker): delete finished collector runs and delivered alerts older than llm_usage.history_retention days.';


------------------------------------------------------------------------
-- Dashboards read the roll-ups: closed days from tenant_usage_metrics,
-- the still-open part (today, and any day the last daily roll-up has not
-- closed) from the raw calls
------------------------------------------------------------------------
ALTER TABLE llm_usage.tenant_usage_metrics
    ADD COLUMN latency_sum_ms numeric NOT NULL DEFAULT 0,
    ADD COLUMN latency_count bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN llm_usage.tenant_usage_metrics.latency_sum_ms IS 'Sum of the latencies reported (ms), for averages over several periods.';
COMMENT ON COLUMN llm_usage.tenant_usage_metrics.latency_count IS 'Number of calls that reported a latency.';
-- the new columns are filled by recomputing every period once
UPDATE llm_usage.aggregation_state SET watermark = NULL;

CREATE OR REPLACE FUNCTION llm_usage.aggregate_usage_metrics(period_type text DEFAULT 'daily', since timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_type   text := $1;
    p_since  timestamptz := $2;
    v_unit   text;
    v_wm     timestamptz;
    v_new_wm timestamptz;
    v_tenants text[];
    v_starts timestamptz[];
    v_rows   integer;
    v_lo     timestamptz;
    v_source text;
BEGIN
    PERFORM llm_usage._require_admin('aggregate_usage_metrics');
    v_unit := llm_usage._require_rollup_unit(p_type);
    IF p_since IS NOT NULL AND p_since > now() THEN
        RAISE EXCEPTION 'since (%) is in the future', p_since
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO llm_usage.aggregation_state (period_type) VALUES (p_type) ON CONFLICT DO NOTHING;
    SELECT s.watermark INTO v_wm
      FROM llm_usage.aggregation_state s
     WHERE s.period_type = p_type
       FOR UPDATE;

    PERFORM pg_stat_clear_snapshot();
    SELECT least(clock_timestamp(), min(a.xact_start)) INTO v_new_wm
      FROM pg_catalog.pg_stat_activity a
     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL;

    /*
     * The calls to aggregate, with the period each falls in ($1 unit,
     * $2 scan start, $4/$5 incremental periods).
     */
    IF p_since IS NOT NULL OR v_wm IS NULL THEN
        /*
         * Scan: one pass over the calls from a lower bound (none on a first
         * run).  It starts a day before the UTC start of since's period,
         * which covers that period in every time zone; HAVING below keeps
         * the periods that really hold a call at or after since.
         */
        v_lo := coalesce(date_trunc(v_unit, p_since, 'UTC') - interval '1 day', '-infinity');
        v_source := $src$
            SELECT e.*, date_trunc($1, e.occurred_at, t.timezone) AS period_start
              FROM llm_usage.usage_events e
              JOIN llm_usage.tenants t ON t.tenant_id = e.tenant_id
             WHERE e.occurred_at >= $2 $src$;
    ELSE
        /* Incremental: whole periods of the calls written since the watermark. */
        SELECT array_agg(d.tenant_id), array_agg(d.period_start) INTO v_tenants, v_starts
          FROM (SELECT DISTINCT e.tenant_id, date_trunc(v_unit, e.occurred_at, t.timezone) AS period_start
                  FROM llm_usage.usage_events e
                  JOIN llm_usage.tenants t ON t.tenant_id = e.tenant_id
                 WHERE e.recorded_at >= v_wm) d;
        v_source := $src$
            SELECT e.*, p.period_start
              FROM unnest($4::text[], $5::timestamptz[]) AS p(tenant_id, period_start)
              JOIN llm_usage.tenants t ON t.tenant_id = p.tenant_id
             CROSS JOIN LATERAL llm_usage._period_bounds($1, p.period_start, t.timezone) b
              JOIN llm_usage.usage_events e
                ON e.tenant_id = p.tenant_id AND e.occurred_at >= b.period_start AND e.occurred_at < b.period_end $src$;
    END IF;

    EXECUTE format($ins$
    INSERT INTO llm_usage.tenant_usage_metrics AS m
        (tenant_id, period_type, period_start, api_calls_total, api_calls_failed, rate_limited_count,
         chat_messages_sent, embeddings_generated, input_tokens, output_tokens, cached_input_tokens,
         total_tokens_used, estimated_cost_usd, unpriced_calls, api_latency_p50_ms, api_latency_p95_ms,
         api_latency_p99_ms, error_rate, latency_sum_ms, latency_count, updated_at)
    SELECT e.tenant_id, $6, e.period_start,
           count(*),
           count(*) FILTER (WHERE e.result = 'failure'),
           count(*) FILTER (WHERE e.result = 'rate_limited'),
           count(*) FILTER (WHERE e.event_type = 'chat'),
           count(*) FILTER (WHERE e.event_type = 'embedding'),
           sum(e.input_tokens),
           sum(e.output_tokens),
           sum(e.cached_input_tokens),
           sum(e.total_tokens),
           coalesce(sum(e.cost_usd), 0),
           count(*) FILTER (WHERE e.cost_usd IS NULL),
           round(percentile_cont(0.50) WITHIN GROUP (ORDER BY e.latency_ms)::numeric, 2),
           round(percentile_cont(0.95) WITHIN GROUP (ORDER BY e.latency_ms)::numeric, 2),
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY e.latency_ms)::numeric, 2),
           round(count(*) FILTER (WHERE e.result <> 'success')::numeric / count(*), 4),
           coalesce(sum(e.latency_ms), 0),
           count(e.latency_ms),
           now()
      FROM (%s) e
     GROUP BY e.tenant_id, e.period_start
    HAVING $3::timestamptz IS NULL OR max(e.occurred_at) >= $3
    ON CONFLICT (tenant_id, period_type, period_start) DO UPDATE
       SET api_calls_total = EXCLUDED.api_calls_total,
           api_calls_failed = EXCLUDED.api_calls_failed,
           rate_limited_count = EXCLUDED.rate_limited_count,
           chat_messages_sent = EXCLUDED.chat_messages_sent,
           embeddings_generated = EXCLUDED.embeddings_generated,
           input_tokens = EXCLUDED.input_tokens,
           output_tokens = EXCLUDED.output_tokens,
           cached_input_tokens = EXCLUDED.cached_input_tokens,
           total_tokens_used = EXCLUDED.total_tokens_used,
           estimated_cost_usd = EXCLUDED.estimated_cost_usd,
           unpriced_calls = EXCLUDED.unpriced_calls,
           api_latency_p50_ms = EXCLUDED.api_latency_p50_ms,
           api_latency_p95_ms = EXCLUDED.api_latency_p95_ms,
           api_latency_p99_ms = EXCLUDED.api_latency_p99_ms,
           error_rate = EXCLUDED.error_rate,
           latency_sum_ms = EXCLUDED.latency_sum_ms,
           latency_count = EXCLUDED.latency_count,
           updated_at = EXCLUDED.updated_at
     WHERE (m.api_calls_total, m.api_calls_failed, m.rate_limited_count, m.chat_messages_sent,
            m.embeddings_generated, m.input_tokens, m.output_tokens, m.cached_input_tokens,
            m.total_tokens_used, m.estimated_cost_usd, m.unpriced_calls, m.api_latency_p50_ms,
            m.api_latency_p95_ms, m.api_latency_p99_ms, m.error_rate, m.latency_sum_ms, m.latency_count)
           IS DISTINCT FROM
           (EXCLUDED.api_calls_total, EXCLUDED.api_calls_failed, EXCLUDED.rate_limited_count,
            EXCLUDED.chat_messages_sent, EXCLUDED.embeddings_generated, EXCLUDED.input_tokens,
            EXCLUDED.output_tokens, EXCLUDED.cached_input_tokens, EXCLUDED.total_tokens_used,
            EXCLUDED.estimated_cost_usd, EXCLUDED.unpriced_calls, EXCLUDED.api_latency_p50_ms,
            EXCLUDED.api_latency_p95_ms, EXCLUDED.api_latency_p99_ms, EXCLUDED.error_rate,
            EXCLUDED.latency_sum_ms, EXCLUDED.latency_count);
    $ins$, v_source)
    USING v_unit, v_lo, p_since, v_tenants, v_starts, p_type;
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    IF p_since IS NULL THEN
        UPDATE llm_usage.aggregation_state s
           SET watermark = v_new_wm, last_run_at = now()
         WHERE s.period_type = p_type;
    ELSE
        UPDATE llm_usage.aggregation_state s
           SET last_run_at = now()
         WHERE s.period_type = p_type;
    END IF;
    RETURN v_rows;
END
$$;

/*
 * _usage_days(tenant, from_day, to_day): per local day in [from_day,
 * to_day] (tenant's zone) the calls, failures, tokens, cost, unpriced calls
 * and latency sum/count.  Days before the cut (today's start, or the start
 * of the day of the daily roll-up's watermark if that is earlier) come
 * from the daily roll-ups; the rest from the raw calls.  A call that
 * arrives late for a closed day shows at the next roll-up.
 */
CREATE FUNCTION llm_usage._usage_days(t llm_usage.tenants, p_from date, p_to date)
RETURNS TABLE (day date, calls bigint, failed bigint, tokens bigint, cost numeric, unpriced bigint,
               latency_sum numeric, latency_count bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_wm  timestamptz := (SELECT s.watermark FROM llm_usage.aggregation_state s WHERE s.period_type = 'daily');
    v_cut date := least((now() AT TIME ZONE t.timezone)::date,
                        coalesce((v_wm AT TIME ZONE t.timezone)::date, '-infinity'::date));
BEGIN
    RETURN QUERY
    SELECT (m.period_start AT TIME ZONE t.timezone)::date, m.api_calls_total,
           m.api_calls_failed + m.rate_limited_count, m.total_tokens_used, m.estimated_cost_usd,
           m.unpriced_calls, m.latency_sum_ms, m.latency_count
      FROM llm_usage.tenant_usage_metrics m
     WHERE m.tenant_id = t.tenant_id AND m.period_type = 'daily'
       AND m.period_start >= p_from::timestamp AT TIME ZONE t.timezone
       AND m.period_start < least(p_to + 1, v_cut)::timestamp AT TIME ZONE t.timezone
    UNION ALL
    SELECT (e.occurred_at AT TIME ZONE t.timezone)::date, count(*),
           count(*) FILTER (WHERE e.result <> 'success'), coalesce(sum(e.total_tokens), 0)::bigint,
           coalesce(sum(e.cost_usd), 0), count(*) FILTER (WHERE e.cost_usd IS NULL),
           coalesce(sum(e.latency_ms), 0)::numeric, count(e.latency_ms)
      FROM llm_usage.usage_events e
     WHERE e.tenant_id = t.tenant_id
       AND e.occurred_at >= greatest(p_from, v_cut)::timestamp AT TIME ZONE t.timezone
       AND e.occurred_at < (p_to + 1)::timestamp AT TIME ZONE t.timezone
     GROUP BY 1;
END
$$;
COMMENT ON FUNCTION llm_usage._usage_days(llm_usage.tenants, date, date) IS
'Internal: per-day usage of a tenant, closed days from the daily roll-ups, the open part from the raw calls.';

CREATE OR REPLACE FUNCTION llm_usage.usage_overview(tenant_id text, period text DEFAULT '30d')
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t        llm_usage.tenants := llm_usage._tenant($1);
    p_period text := $2;
    v_days   integer;
    v_bucket text;
    v_today  date;
    v_from   date;
    v_prev   date;
    v_cur    jsonb;
    v_old    jsonb;
BEGIN
    PERFORM llm_usage._require_arg(p_period, 'period');
    CASE p_period
        WHEN '7d' THEN v_days := 7; v_bucket := 'day';
        WHEN '30d' THEN v_days := 30; v_bucket := 'day';
        WHEN '90d' THEN v_days := 90; v_bucket := 'week';
        WHEN '1y' THEN v_days := 365; v_bucket := 'month';
        ELSE
            RAISE EXCEPTION 'unknown period "%"', p_period
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Periods are: 7d, 30d, 90d, 1y.';
    END CASE;
    v_today := (now() AT TIME ZONE t.timezone)::date;
    v_from := v_today - (v_days - 1);
    v_prev := v_from - v_days;

    SELECT jsonb_build_object(
               'runs', coalesce(sum(d.calls), 0),
               'cost_usd', coalesce(sum(d.cost), 0),
               'tokens', coalesce(sum(d.tokens), 0),
               'avg_cost_per_run_usd', round(coalesce(sum(d.cost), 0) / nullif(sum(d.calls), 0), 8),
               'success_rate', round(1 - sum(d.failed)::numeric / nullif(sum(d.calls), 0), 4),
               'avg_latency_ms', round(sum(d.latency_sum) / nullif(sum(d.latency_count), 0), 1),
               'unpriced_runs', coalesce(sum(d.unpriced), 0))
      INTO v_cur
      FROM llm_usage._usage_days(t, v_from, v_today) d;
    SELECT jsonb_build_object('runs', coalesce(sum(d.calls), 0), 'cost_usd', coalesce(sum(d.cost), 0),
                              'tokens', coalesce(sum(d.tokens), 0))
      INTO v_old
      FROM llm_usage._usage_days(t, v_prev, v_from - 1) d;

    RETURN jsonb_build_object(
        'tenant_id', t.tenant_id,
        'period', p_period,
        'from', v_from,
        'to', v_today,
        'overview', v_cur || jsonb_build_object(
            'previous_period', v_old,
            'runs_change_pct', round(100 * ((v_cur->>'runs')::numeric - (v_old->>'runs')::numeric)
                                          / nullif((v_old->>'runs')::numeric, 0), 2),
            'cost_change_pct', round(100 * ((v_cur->>'cost_usd')::numeric - (v_old->>'cost_usd')::numeric)
                                          / nullif((v_old->>'cost_usd')::numeric, 0), 2),
            'tokens_change_pct', round(100 * ((v_cur->>'tokens')::numeric - (v_old->>'tokens')::numeric)
                                            / nullif((v_old->>'tokens')::numeric, 0), 2)),
        'models', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'model', m.model, 'runs', m.runs, 'tokens', m.tokens, 'cost_usd', m.cost,
                       'unpriced_runs', m.unpriced, 'share_of_cost', m.share)
                       ORDER BY m.cost DESC, m.runs DESC, m.model), '[]')
              FROM (SELECT e.model, count(*) AS runs, sum(e.total_tokens) AS tokens,
                           coalesce(sum(e.cost_usd), 0) AS cost,
                           count(*) FILTER (WHERE e.cost_usd IS NULL) AS unpriced,
                           round(coalesce(sum(e.cost_usd), 0) / nullif(sum(sum(e.cost_usd)) OVER (), 0), 4) AS share
                      FROM llm_usage.usage_events e
                     WHERE e.tenant_id = t.tenant_id
                       AND e.occurred_at >= v_from::timestamp AT TIME ZONE t.timezone
                     GROUP BY e.model) m),
        'time_series', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'bucket', s.bucket, 'runs', s.runs, 'tokens', s.tokens, 'cost_usd', s.cost)
                       ORDER BY s.bucket), '[]')
              FROM (SELECT date_trunc(v_bucket, d.day)::date AS bucket, sum(d.calls) AS runs,
                           sum(d.tokens) AS tokens, sum(d.cost) AS cost
                      FROM llm_usage._usage_days(t, v_from, v_today) d
                     GROUP BY 1) s),
        'most_expensive', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'event_id', x.event_id, 'request_id', x.request_id, 'model', x.model,
                       'tokens', x.total_tokens, 'cost_usd', x.cost_usd, 'occurred_at', x.occurred_at)
                       ORDER BY x.cost_usd DESC, x.event_id), '[]')
              FROM (SELECT e.event_id, e.request_id, e.model, e.total_tokens, e.cost_usd, e.occurred_at
                      FROM llm_usage.usage_events e
                     WHERE e.tenant_id = t.tenant_id
                       AND e.occurred_at >= v_from::timestamp AT TIME ZONE t.timezone
                       AND e.cost_usd IS NOT NULL
                     ORDER BY e.cost_usd DESC, e.event_id
                     LIMIT 10) x));
END
$$;
COMMENT ON FUNCTION llm_usage.usage_overview(text, text) IS
'Dashboard of one tenant over its last 7, 30, 90 or 365 local days (today included): totals and change against the days before, per-model breakdown, time series (daily, weekly for 90d, monthly for 1y) and the 10 most expensive calls.  Closed days come from the daily roll-ups.';

CREATE OR REPLACE FUNCTION llm_usage.cost_summary(tenant_id text DEFAULT NULL)
RETURNS TABLE (tenant text, yesterday date, yesterday_tracked_usd numeric, yesterday_provider_usd numeric,
               week_start date, week_tracked_usd numeric, week_provider_usd numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_tenants text[];
BEGIN
    IF $1 IS NOT NULL THEN
        v_tenants := ARRAY[(llm_usage._tenant($1)).tenant_id];
    ELSIF llm_usage._is_admin() THEN
        SELECT array_agg(t.tenant_id) INTO v_tenants FROM llm_usage.tenants t;
    ELSE
        v_tenants := llm_usage._my_tenants();
    END IF;
    RETURN QUERY
    SELECT t.tenant_id, d.today - 1,
           (SELECT coalesce(sum(u.cost), 0) FROM llm_usage._usage_days(t, d.today - 1, d.today - 1) u),
           (SELECT sum(c.amount_usd) FROM llm_usage.provider_costs c
             WHERE c.tenant_id = t.tenant_id AND (c.bucket_start AT TIME ZONE 'UTC')::date = d.today - 1),
           d.monday,
           (SELECT coalesce(sum(u.cost), 0) FROM llm_usage._usage_days(t, d.monday, d.today) u),
           (SELECT sum(c.amount_usd) FROM llm_usage.provider_costs c
             WHERE c.tenant_id = t.tenant_id
               AND (c.bucket_start AT TIME ZONE 'UTC')::date BETWEEN d.monday AND d.today)
      FROM llm_usage.tenants t
     CROSS JOIN LATERAL (
            SELECT (now() AT TIME ZONE t.timezone)::date AS today,
                   date_trunc('week', now() AT TIME ZONE t.timezone)::date AS monday) d
     WHERE t.tenant_id = ANY (v_tenants)
     ORDER BY t.tenant_id;
END
$$;
COMMENT ON FUNCTION llm_usage.cost_summary(text) IS
'Yesterday''s and this week''s (Monday on, tenant''s zone) cost per tenant: tracked with track_usage() (closed days from the daily roll-ups) and reported by the provider (the provider''s UTC days of those dates; NULL until collected), side by side.  NULL tenant_id = every tenant the caller may see.';
REVOKE ALL ON FUNCTION llm_usage._usage_days(llm_usage.tenants, date, date) FROM PUBLIC;

------------------------------------------------------------------------
-- The worker's periodic maintenance
------------------------------------------------------------------------
CREATE FUNCTION llm_usage._maintenance()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    p integer;
    h integer;
    d integer;
    m integer;
    a integer;
    x integer;
    y integer;
BEGIN
    p := llm_usage._ensure_partitions((now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + 62);
    h := llm_usage.aggregate_usage_metrics('hourly');
    d := llm_usage.aggregate_usage_metrics('daily');
    m := llm_usage.aggregate_usage_metrics('monthly');
    a := llm_usage.check_alerts();
    x := llm_usage._drop_old_partitions();
    y := llm_usage._prune_history();
    RETURN jsonb_build_object('partitions_created', p, 'hourly', h, 'daily', d, 'monthly', m, 'alerts', a,
                              'partitions_dropped', x, 'history_pruned', y);
END
$$;
COMMENT ON FUNCTION llm_usage._maintenance() IS
'Internal (worker, every llm_usage.aggregate_interval), in one transaction: make usage_events partitions two months ahead, roll up hourly, daily and monthly, check alerts, drop partitions past llm_usage.event_retention, prune history past llm_usage.history_retention.';

------------------------------------------------------------------------
-- Privileges, row-level security, pg_dump
------------------------------------------------------------------------
GRANT SELECT ON llm_usage.usage_events TO llm_usage_app, llm_usage_reader;
GRANT SELECT, INSERT, UPDATE, DELETE ON llm_usage.usage_events, llm_usage.usage_requests TO llm_usage_admin;
GRANT USAGE ON SEQUENCE llm_usage.usage_events_id_seq TO llm_usage_admin;
REVOKE ALL ON FUNCTION llm_usage._partition_name(date), llm_usage._ensure_partitions(date, date),
                       llm_usage._partition_indexes(text),
                       llm_usage._drop_old_partitions(), llm_usage._prune_history()
    FROM PUBLIC;
REVOKE ALL ON FUNCTION llm_usage._alert_rules_read_only(), llm_usage._alert_rule(text, text),
                       llm_usage.set_alert_rule(text, numeric, integer, boolean, text),
                       llm_usage.alert_rules_for(text), llm_usage.acknowledge_alert(bigint),
                       llm_usage.check_alerts(), llm_usage._maintenance()
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llm_usage.set_alert_rule(text, numeric, integer, boolean, text),
                          llm_usage.check_alerts()
    TO llm_usage_admin;
GRANT EXECUTE ON FUNCTION llm_usage.alert_rules_for(text), llm_usage.acknowledge_alert(bigint)
    TO llm_usage_reader;
GRANT SELECT ON llm_usage.alert_rules TO llm_usage_app, llm_usage_reader, llm_usage_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON llm_usage.alert_rule_overrides TO llm_usage_admin;
GRANT SELECT ON llm_usage.alert_state, llm_usage.alert_quota_marks TO llm_usage_admin;

DO $rls$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['alert_rule_overrides', 'alert_quota_marks', 'usage_events', 'usage_requests']
    LOOP
        EXECUTE format('ALTER TABLE llm_usage.%I ENABLE ROW LEVEL SECURITY', tbl);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON llm_usage.%I
                            USING ((SELECT llm_usage._is_admin())
                                   OR tenant_id IN (SELECT unnest(llm_usage._my_tenants())))
                            WITH CHECK ((SELECT llm_usage._is_admin()))$p$, tbl);
        EXECUTE format('COMMENT ON POLICY tenant_isolation ON llm_usage.%I IS %L', tbl,
                       'Non-admin roles see only the rows of tenants granted to them; only admins write directly.');
    END LOOP;
END
$rls$;

SELECT pg_catalog.pg_extension_config_dump('llm_usage.alert_rule_overrides', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_events_default', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_events_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_requests', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.alert_state', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.alert_quota_marks', '');
