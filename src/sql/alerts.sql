/*
 * src/sql/alerts.sql — alerts
 *
 * Alert rules (shipped defaults, overridden globally or per tenant),
 * raising with throttling and NOTIFY, check_alerts(); delivery by webhook
 * and e-mail is C (src/delivery.c).
 */

------------------------------------------------------------------------
-- Alert rules
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._alert_rules_read_only()
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

CREATE OR REPLACE TRIGGER alert_rules_read_only
    BEFORE INSERT OR UPDATE OR DELETE ON llm_usage.alert_rules
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._alert_rules_read_only();

CREATE OR REPLACE FUNCTION llm_usage._alert_rule(p_tenant text, p_kind text,
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

CREATE OR REPLACE FUNCTION llm_usage.set_alert_rule(kind text, threshold numeric DEFAULT NULL, min_calls integer DEFAULT NULL,
                                                    enabled boolean DEFAULT true, tenant_id text DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.set_alert_rule(text, numeric, integer, boolean, text) IS
'Changes an alert rule (threshold, min_calls, enabled) for every tenant (tenant_id NULL) or for one; unset values keep the shipped default.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._set_alert_rule_impl(kind text, threshold numeric DEFAULT NULL, min_calls integer DEFAULT NULL,
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
COMMENT ON FUNCTION llm_usage._set_alert_rule_impl(text, numeric, integer, boolean, text) IS
'Internal: the body of llm_usage.set_alert_rule(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.alert_rules_for(tenant_id text)
RETURNS TABLE (kind text, enabled boolean, threshold numeric, min_calls integer, severity text, source text, description text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.alert_rules_for(text) IS 'The alert rules in force for a tenant, and where each comes from (default, global, tenant).';

CREATE OR REPLACE FUNCTION llm_usage._alert_rules_for_impl(tenant_id text)
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
COMMENT ON FUNCTION llm_usage._alert_rules_for_impl(text) IS
'Internal: the body of llm_usage.alert_rules_for(), run as the owner by its entry point, which records the caller (src/caller.c).';

------------------------------------------------------------------------
-- Raising alerts: rules, throttling, NOTIFY
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._raise_alert(p_tenant text, p_kind text, p_severity text, p_message text, p_details jsonb,
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
                WHERE x.tenant_id = p_tenant AND x.kind = p_kind AND x.subject = left(p_subject, 500)
                  AND x.created_at > now() - v_throttle) THEN
        RETURN NULL;            -- throttled
    END IF;
    INSERT INTO llm_usage.alerts (tenant_id, kind, severity, message, details, subject, webhook_status, email_status)
    VALUES (p_tenant, p_kind, p_severity, left(p_message, 2000), p_details, left(p_subject, 500),
            CASE WHEN coalesce(current_setting('llm_usage.alert_webhook_url', true), '') <> '' THEN 'pending' END,
            CASE WHEN coalesce(current_setting('llm_usage.alert_smtp_url', true), '') <> ''
                  AND coalesce(current_setting('llm_usage.alert_email_to', true), '') <> '' THEN 'pending' END)
    RETURNING * INTO a;
    IF a.webhook_status IS NOT NULL OR a.email_status IS NOT NULL THEN
        PERFORM llm_usage._wake_worker();       -- deliver soon after commit
    END IF;
    -- any role that can connect may LISTEN: the payload says only that an
    -- alert exists; listeners read it through the row-level-secured table
    PERFORM pg_notify('llm_usage_alerts', jsonb_build_object('id', a.id, 'kind', a.kind)::text);
    RETURN a.id;
END
$$;
COMMENT ON FUNCTION llm_usage._raise_alert(text, text, text, text, jsonb, text) IS
'Internal: store an alert and NOTIFY llm_usage_alerts with {"id", "kind"} (sent at commit), unless its rule is disabled for the tenant or the same tenant, kind and subject alerted within llm_usage.alert_throttle.  Tenant ''*'' is the system.';

/*
 * _maintenance_failed(step, sqlstate, message): a maintenance step (or an
 * alert rule) failed: raise a maintenance_failed alert for tenant '*'
 * (admins only) with the reason, throttled per step, and log it.  Never
 * raises itself: if even the alert cannot be written, a WARNING says so.
 * Returns the alerts raised (0 or 1).
 */
CREATE OR REPLACE FUNCTION llm_usage._maintenance_failed(p_step text, p_sqlstate text, p_message text)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE WARNING 'llm_usage: maintenance step % failed: % (SQLSTATE %)', p_step, p_message, p_sqlstate;
    BEGIN
        RETURN (llm_usage._raise_alert('*', 'maintenance_failed', 'error',
                    format('maintenance step %s failed: %s (SQLSTATE %s)', p_step, p_message, p_sqlstate),
                    jsonb_build_object('step', p_step, 'sqlstate', p_sqlstate, 'error', left(p_message, 2000)),
                    'maintenance/' || p_step) IS NOT NULL)::integer;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'llm_usage: could not raise the maintenance_failed alert of step %: %', p_step, SQLERRM;
        RETURN 0;
    END;
END
$$;
COMMENT ON FUNCTION llm_usage._maintenance_failed(text, text, text) IS
'Internal: report a failed maintenance step or alert rule as a maintenance_failed alert (tenant ''*'') and a WARNING; never raises.';

CREATE OR REPLACE FUNCTION llm_usage.acknowledge_alert(alert_id bigint)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.acknowledge_alert(bigint) IS
'Marks an alert acknowledged (once).  Admins, and readers for their tenants'' alerts.';

CREATE OR REPLACE FUNCTION llm_usage._acknowledge_alert_impl(alert_id bigint)
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
COMMENT ON FUNCTION llm_usage._acknowledge_alert_impl(bigint) IS
'Internal: the body of llm_usage.acknowledge_alert(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * alerts_for(tenant_id, days): what readers read instead of the alerts
 * table (they have no privilege on it, so no EXPLAIN ANALYZE oracle on
 * other tenants' alerts): a tenant's alerts, or (NULL) those of every
 * tenant the caller may see; system alerts (tenant '*') for admins only.
 * What a LISTEN llm_usage_alerts client reads after a notification.
 */
CREATE OR REPLACE FUNCTION llm_usage.alerts_for(tenant_id text DEFAULT NULL, days integer DEFAULT 30)
RETURNS TABLE (id bigint, tenant text, kind text, severity text, message text, details jsonb, subject text,
               created_at timestamptz, acknowledged_at timestamptz)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.alerts_for(text, integer) IS
'Alerts of the last N days (default 30), newest first: of one tenant, or (tenant_id NULL) of every tenant the caller may see (system alerts, tenant *, for admins only).';

CREATE OR REPLACE FUNCTION llm_usage._alerts_for_impl(tenant_id text DEFAULT NULL, days integer DEFAULT 30)
RETURNS TABLE (id bigint, tenant text, kind text, severity text, message text, details jsonb, subject text,
               created_at timestamptz, acknowledged_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_tenants text[];
BEGIN
    PERFORM llm_usage._check_days($2);
    IF $1 IS NOT NULL THEN
        v_tenants := ARRAY[(llm_usage._tenant($1)).tenant_id];
    ELSIF llm_usage._is_admin() THEN
        v_tenants := NULL;          -- every alert, system ones included
    ELSE
        v_tenants := llm_usage._my_tenants();
    END IF;
    RETURN QUERY
    SELECT a.id, a.tenant_id, a.kind, a.severity, a.message, a.details, a.subject, a.created_at, a.acknowledged_at
      FROM llm_usage.alerts a
     WHERE (v_tenants IS NULL OR a.tenant_id = ANY (v_tenants))
       AND a.created_at >= now() - make_interval(days => $2)
     ORDER BY a.created_at DESC, a.id DESC;
END
$$;
COMMENT ON FUNCTION llm_usage._alerts_for_impl(text, integer) IS
'Internal: the body of llm_usage.alerts_for(), run as the owner by its entry point, which records the caller (src/caller.c).';

------------------------------------------------------------------------
-- Evaluating the rules
------------------------------------------------------------------------

/*
 * check_alerts(): evaluate every rule once and raise what is due.  Windows:
 * quota_exceeded and unpriced_usage look at what happened since the last
 * check, up to a watermark that never passes a transaction that may still
 * commit (so a late commit is seen by the next check); quota_near at the
 * current periods; high_latency and
 * high_error_rate at the last hour of calls; cost_anomaly at yesterday
 * (daily roll-ups) and today so far (raw calls), each against the average of
 * the 7 days before it.  Concurrent calls are serialised.
 */
CREATE OR REPLACE FUNCTION llm_usage.check_alerts()
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.check_alerts() IS
'Evaluates every alert rule and raises what is due (each also NOTIFY llm_usage_alerts with its id and kind); returns the number of new alerts.  A rule that cannot be evaluated is reported as a maintenance_failed alert and the others still run.  The worker runs it after each roll-up.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._check_alerts_impl()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now   timestamptz := clock_timestamp();
    v_since timestamptz;
    v_pend  timestamptz;
    v_next  record;
    n       integer := 0;
    k       integer;
    r       record;
BEGIN
    PERFORM llm_usage._require_admin('check_alerts');
    -- denials still pending (aggregated in shared memory or the pending
    -- table, src/sql/quotas.sql) become audit events before they are read
    BEGIN
        PERFORM llm_usage._write_quota_denials(NULL, false);
    EXCEPTION WHEN OTHERS THEN
        n := n + llm_usage._maintenance_failed('check_alerts/quota_denials', SQLSTATE, SQLERRM);
    END;
    v_now := clock_timestamp();
    INSERT INTO llm_usage.alert_state (name, checked_at) VALUES ('check_alerts', v_now - interval '1 hour')
    ON CONFLICT DO NOTHING;
    SELECT checked_at, pending_at INTO v_since, v_pend FROM llm_usage.alert_state WHERE name = 'check_alerts' FOR UPDATE;
    -- what happened since the last check is read up to a watermark that
    -- never passes a transaction that may still commit (_next_watermark)
    v_next := llm_usage._next_watermark(v_since, v_pend);

    -- quota_exceeded: denials since the last check, one per quota type and
    -- period, from the extension's own records only (never from events an
    -- application wrote with audit()), read defensively; an event counts
    -- the denials it aggregates ("denials" of each quota; 1 before 1.3)
    BEGIN
        k := 0;
        FOR r IN SELECT a.tenant_id, d->>'quota_type' AS quota_type, d->>'period' AS period,
                        sum(CASE WHEN jsonb_typeof(d->'denials') = 'number' THEN (d->>'denials')::numeric ELSE 1 END) AS denials,
                        max(CASE WHEN jsonb_typeof(d->'quota_limit') = 'number' THEN (d->>'quota_limit')::numeric END) AS quota_limit
                   FROM llm_usage.audit_events a
                  CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(a.details->'denied') = 'array'
                                                               THEN a.details->'denied' ELSE '[]' END) d
                  WHERE a.origin = 'llm_usage' AND a.event_type = 'quota' AND a.action = 'quota_exceeded'
                    AND a.created_at >= v_since AND a.created_at < v_next.watermark
                    AND jsonb_typeof(d) = 'object'
                    AND d->>'quota_type' IN (SELECT q.quota_type FROM llm_usage.quota_types q)
                    AND d->>'period' IN ('minute', 'hour', 'day', 'month')
                  GROUP BY 1, 2, 3
        LOOP
            k := k + (llm_usage._raise_alert(r.tenant_id, 'quota_exceeded', (llm_usage._alert_rule(r.tenant_id, 'quota_exceeded')).severity,
                          format('tenant %s was denied %s time(s) by its %s quota per %s (limit %s)',
                                 r.tenant_id, r.denials, r.quota_type, r.period, r.quota_limit),
                          jsonb_build_object('quota_type', r.quota_type, 'period', r.period, 'denials', r.denials,
                                             'quota_limit', r.quota_limit),
                          r.quota_type || '/' || r.period) IS NOT NULL)::integer;
        END LOOP;
        n := n + k;
    EXCEPTION WHEN OTHERS THEN
        n := n + llm_usage._maintenance_failed('check_alerts/quota_exceeded', SQLSTATE, SQLERRM);
    END;

    -- quota_near: the current period of each limited quota crossed threshold % or 100 %
    BEGIN
        k := 0;
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
            k := k + (llm_usage._raise_alert(r.tenant_id, 'quota_near', (llm_usage._alert_rule(r.tenant_id, 'quota_near')).severity,
                          format('tenant %s used %s of its %s %s quota per %s (%s %%, alert at %s %%)',
                                 r.tenant_id, r.used, r.quota_limit, r.quota_type, r.period,
                                 round(100 * r.used / r.quota_limit, 1), r.level),
                          jsonb_build_object('quota_type', r.quota_type, 'period', r.period, 'period_start', r.period_start,
                                             'quota_limit', r.quota_limit, 'used', r.used, 'level', r.level),
                          format('%s/%s/%s/%s', r.quota_type, r.period, r.period_start, r.level)) IS NOT NULL)::integer;
        END LOOP;
        n := n + k;
    EXCEPTION WHEN OTHERS THEN
        n := n + llm_usage._maintenance_failed('check_alerts/quota_near', SQLSTATE, SQLERRM);
    END;

    -- high_latency and high_error_rate: the last hour of calls
    BEGIN
        k := 0;
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
                    k := k + (llm_usage._raise_alert(r.tenant_id, 'high_latency', l.severity,
                                  format('tenant %s: p99 latency over the last hour is %s ms (threshold %s ms, %s calls)',
                                         r.tenant_id, round(r.p99::numeric), l.threshold, r.timed),
                                  jsonb_build_object('p99_ms', round(r.p99::numeric, 2), 'threshold_ms', l.threshold,
                                                     'calls', r.timed)) IS NOT NULL)::integer;
                END IF;
                IF err.enabled AND r.calls >= err.min_calls AND 100.0 * r.failed / r.calls > err.threshold THEN
                    k := k + (llm_usage._raise_alert(r.tenant_id, 'high_error_rate', err.severity,
                                  format('tenant %s: %s of %s calls over the last hour did not succeed (%s %%, threshold %s %%)',
                                         r.tenant_id, r.failed, r.calls, round(100.0 * r.failed / r.calls, 1), err.threshold),
                                  jsonb_build_object('failed', r.failed, 'calls', r.calls,
                                                     'error_rate_pct', round(100.0 * r.failed / r.calls, 2),
                                                     'threshold_pct', err.threshold)) IS NOT NULL)::integer;
                END IF;
            END;
        END LOOP;
        n := n + k;
    EXCEPTION WHEN OTHERS THEN
        n := n + llm_usage._maintenance_failed('check_alerts/high_latency_error_rate', SQLSTATE, SQLERRM);
    END;

    -- cost_anomaly: yesterday (roll-ups) and today so far (raw calls) against the 7 days before each
    BEGIN
        k := 0;
        FOR r IN WITH days AS (
                     SELECT t.tenant_id, t.timezone, d.day,
                            CASE WHEN d.day = (v_now AT TIME ZONE t.timezone)::date
                                 THEN (SELECT coalesce(sum(e.cost_usd), 0) FROM llm_usage.usage_events e
                                        WHERE e.tenant_id = t.tenant_id
                                          AND e.occurred_at >= llm_usage._local_day_start(d.day, t.timezone)
                                          AND e.occurred_at < v_now)
                                 ELSE (SELECT coalesce(sum(m.estimated_cost_usd), 0) FROM llm_usage.tenant_usage_metrics m
                                        WHERE m.tenant_id = t.tenant_id AND m.period_type = 'daily'
                                          AND m.period_start = llm_usage._local_day_start(d.day, t.timezone)) END AS cost,
                            (SELECT avg(coalesce(m.estimated_cost_usd, 0))
                               FROM generate_series(d.day - 7, d.day - 1, interval '1 day') g(day)
                               LEFT JOIN llm_usage.tenant_usage_metrics m
                                 ON m.tenant_id = t.tenant_id AND m.period_type = 'daily'
                                AND m.period_start = llm_usage._local_day_start(g.day::date, t.timezone)) AS trailing_avg
                       FROM llm_usage.tenants t
                      CROSS JOIN LATERAL (VALUES ((v_now AT TIME ZONE t.timezone)::date - 1),
                                                 ((v_now AT TIME ZONE t.timezone)::date)) d(day))
                 SELECT * FROM days
                  WHERE trailing_avg > 0
                    AND (llm_usage._alert_rule(tenant_id, 'cost_anomaly')).enabled
                    AND cost > (llm_usage._alert_rule(tenant_id, 'cost_anomaly')).threshold * trailing_avg
                  ORDER BY tenant_id, day
        LOOP
            k := k + (llm_usage._raise_alert(r.tenant_id, 'cost_anomaly', (llm_usage._alert_rule(r.tenant_id, 'cost_anomaly')).severity,
                          format('tenant %s spent %s USD on %s, %s times the average of the 7 days before (%s USD)',
                                 r.tenant_id, r.cost, r.day, round(r.cost / r.trailing_avg, 2), round(r.trailing_avg, 6)),
                          jsonb_build_object('day', r.day, 'cost_usd', r.cost, 'trailing_avg_usd', round(r.trailing_avg, 6),
                                             'ratio', round(r.cost / r.trailing_avg, 2)),
                          'day ' || r.day) IS NOT NULL)::integer;
        END LOOP;
        n := n + k;
    EXCEPTION WHEN OTHERS THEN
        n := n + llm_usage._maintenance_failed('check_alerts/cost_anomaly', SQLSTATE, SQLERRM);
    END;

    -- unpriced_usage: calls of models without a price tracked since the
    -- last check; one alert per tenant, whatever the number of models (an
    -- application chooses model names: thousands of them must not flood
    -- delivery), naming at most 10 of them, quoted and marked as the
    -- application's words (a name such as "URGENT: rotate your keys at
    -- https://..." must not read as the extension's message)
    BEGIN
        k := 0;
        FOR r IN SELECT m.tenant_id, sum(m.calls) AS calls, sum(m.tokens) AS tokens, count(*) AS models,
                        (array_agg(m.model ORDER BY m.calls DESC, m.model))[1:10] AS named,
                        (array_agg(m.calls ORDER BY m.calls DESC, m.model))[1:10] AS named_calls
                   FROM (SELECT e.tenant_id, e.model, count(*) AS calls, sum(e.input_tokens + e.output_tokens) AS tokens
                           FROM llm_usage.usage_events e
                          WHERE e.cost_usd IS NULL AND e.model IS NOT NULL
                            AND e.recorded_at >= v_since AND e.recorded_at < v_next.watermark
                          GROUP BY 1, 2) m
                  GROUP BY 1
                  ORDER BY 1
        LOOP
            k := k + (llm_usage._raise_alert(r.tenant_id, 'unpriced_usage', (llm_usage._alert_rule(r.tenant_id, 'unpriced_usage')).severity,
                          format('tenant %s: %s call(s) of %s model(s) without a price, so their cost is unknown (not 0); model names as the application reported them (unverified, quoted): %s%s',
                                 r.tenant_id, r.calls, r.models,
                                 (SELECT string_agg(to_jsonb(CASE WHEN length(x.model) > 80 THEN left(x.model, 80) || '...'
                                                                  ELSE x.model END)::text, ', ' ORDER BY x.i)
                                    FROM unnest(r.named) WITH ORDINALITY x(model, i)),
                                 CASE WHEN r.models > 10 THEN format(' and %s more', r.models - 10) ELSE '' END),
                          jsonb_build_object('models', (SELECT jsonb_agg(jsonb_build_object('model', x.model, 'calls', x.calls) ORDER BY x.i)
                                                          FROM unnest(r.named, r.named_calls) WITH ORDINALITY x(model, calls, i)),
                                             'models_total', r.models, 'calls', r.calls, 'tokens', r.tokens,
                                             'model_names_from', 'application',
                                             'hint', 'llm_usage.set_model_price()'),
                          'unpriced models') IS NOT NULL)::integer;
        END LOOP;
        n := n + k;
    EXCEPTION WHEN OTHERS THEN
        n := n + llm_usage._maintenance_failed('check_alerts/unpriced_usage', SQLSTATE, SQLERRM);
    END;

    -- price_mismatch: UTC days of provider data collected since the last
    -- check, each model's provider-reported cost against its usage priced
    -- with the product's prices (price_reconciliation())
    BEGIN
        k := 0;
        FOR r IN WITH touched AS (
                     SELECT c.tenant_id, c.provider, (c.bucket_start AT TIME ZONE 'UTC')::date AS day
                       FROM llm_usage.provider_costs c
                      WHERE c.collected_at >= v_since AND c.collected_at < v_next.watermark
                     UNION
                     SELECT u.tenant_id, u.provider, (u.bucket_start AT TIME ZONE 'UTC')::date
                       FROM llm_usage.provider_usage u
                      WHERE u.collected_at >= v_since AND u.collected_at < v_next.watermark)
                 SELECT x.*, (llm_usage._alert_rule(x.tenant_id, 'price_mismatch')).threshold AS threshold
                   FROM touched t
                  CROSS JOIN LATERAL llm_usage._price_reconciliation_rows(t.day, t.day, ARRAY[t.tenant_id]) x
                  WHERE x.provider = t.provider AND x.model IS NOT NULL
                    AND x.estimated_usd IS NOT NULL AND x.reported_usd IS NOT NULL
                    AND (llm_usage._alert_rule(x.tenant_id, 'price_mismatch')).enabled
                    AND ((x.reported_usd = 0 AND x.estimated_usd > 0)
                         OR abs(x.difference_pct) > (llm_usage._alert_rule(x.tenant_id, 'price_mismatch')).threshold)
                  ORDER BY x.tenant_id, x.provider, x.day, x.model
        LOOP
            k := k + (llm_usage._raise_alert(r.tenant_id, 'price_mismatch', (llm_usage._alert_rule(r.tenant_id, 'price_mismatch')).severity,
                          format('tenant %s: %s reported %s USD for %s on %s, its usage at llm_usage''s prices costs %s USD (%s %%, threshold %s %%)',
                                 r.tenant_id, r.provider, r.reported_usd, r.model, r.day, round(r.estimated_usd, 6),
                                 coalesce(r.difference_pct::text, 'n/a'), r.threshold),
                          jsonb_build_object('provider', r.provider, 'day', r.day, 'model', r.model,
                                             'reported_usd', r.reported_usd, 'estimated_usd', r.estimated_usd,
                                             'difference_usd', r.difference_usd, 'difference_pct', r.difference_pct,
                                             'threshold_pct', r.threshold),
                          format('%s/%s/%s', r.provider, r.day, r.model)) IS NOT NULL)::integer;
        END LOOP;
        n := n + k;
    EXCEPTION WHEN OTHERS THEN
        n := n + llm_usage._maintenance_failed('check_alerts/price_mismatch', SQLSTATE, SQLERRM);
    END;

    UPDATE llm_usage.alert_state SET checked_at = v_next.watermark, pending_at = v_next.pending WHERE name = 'check_alerts';
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._check_alerts_impl() IS
'Internal: the body of llm_usage.check_alerts(), run as the owner by its entry point, which records the caller (src/caller.c).';
