/*
 * src/sql/dashboards.sql — dashboards
 *
 * What applications and readers ask: a tenant's roll-ups, today so far, top
 * consumers, raw calls, the overview document and the cost summary.
 */

CREATE OR REPLACE FUNCTION llm_usage.tenant_usage(tenant_id text, from_ts timestamptz, to_ts timestamptz,
                                                  period_type text DEFAULT 'daily')
RETURNS SETOF llm_usage.tenant_usage_metrics
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.tenant_usage(text, timestamptz, timestamptz, text) IS
'A tenant''s roll-ups (hourly, daily or monthly) whose period starts in [from_ts, to_ts), oldest first.  As fresh as the last aggregate_usage_metrics() run.';

CREATE OR REPLACE FUNCTION llm_usage._tenant_usage_impl(tenant_id text, from_ts timestamptz, to_ts timestamptz,
                                                        period_type text DEFAULT 'daily')
RETURNS SETOF llm_usage.tenant_usage_metrics
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants := llm_usage._tenant($1);
BEGIN
    PERFORM llm_usage._check_range($2, $3);
    PERFORM llm_usage._require_rollup_unit($4);
    RETURN QUERY
    SELECT m.*
      FROM llm_usage.tenant_usage_metrics m
     WHERE m.tenant_id = t.tenant_id AND m.period_type = $4
       AND m.period_start >= $2 AND m.period_start < $3
     ORDER BY m.period_start;
END
$$;
COMMENT ON FUNCTION llm_usage._tenant_usage_impl(text, timestamptz, timestamptz, text) IS
'Internal: the body of llm_usage.tenant_usage(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.today_usage(tenant_id text)
RETURNS TABLE (tenant text, day date, api_calls bigint, failed_calls bigint, input_tokens bigint,
               output_tokens bigint, total_tokens bigint, cost_usd numeric, unpriced_calls bigint,
               tightest_quota_type text, tightest_quota_period text, tightest_quota_remaining numeric,
               tightest_quota_percentage numeric)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.today_usage(text) IS
'Calls, tokens and cost of the tenant''s current day (in its zone) from the raw events, and its tightest quota (highest percent used).';

CREATE OR REPLACE FUNCTION llm_usage._today_usage_impl(tenant_id text)
RETURNS TABLE (tenant text, day date, api_calls bigint, failed_calls bigint, input_tokens bigint,
               output_tokens bigint, total_tokens bigint, cost_usd numeric, unpriced_calls bigint,
               tightest_quota_type text, tightest_quota_period text, tightest_quota_remaining numeric,
               tightest_quota_percentage numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t     llm_usage.tenants := llm_usage._tenant($1);
    v_day llm_usage._quota_check;
    b     record;
BEGIN
    SELECT * INTO b FROM llm_usage._period_bounds('day', clock_timestamp(), t.timezone);
    RETURN QUERY
    SELECT t.tenant_id,
           (b.period_start AT TIME ZONE t.timezone)::date,
           coalesce(u.calls, 0), coalesce(u.failed, 0), coalesce(u.input, 0), coalesce(u.output, 0),
           coalesce(u.total, 0), coalesce(u.cost, 0), coalesce(u.unpriced, 0),
           q.quota_type, q.period, q.remaining, q.percentage
      FROM (SELECT count(*) AS calls,
                   count(*) FILTER (WHERE e.result <> 'success') AS failed,
                   sum(e.input_tokens)::bigint AS input,
                   sum(e.output_tokens)::bigint AS output,
                   sum(e.total_tokens)::bigint AS total,
                   sum(e.cost_usd) AS cost,
                   count(*) FILTER (WHERE e.cost_usd IS NULL) AS unpriced
              FROM llm_usage.usage_events e
             WHERE e.tenant_id = t.tenant_id
               AND e.occurred_at >= b.period_start AND e.occurred_at < b.period_end) u
      LEFT JOIN LATERAL (
            SELECT s.quota_type, s.period, s.remaining, s.percentage
              FROM llm_usage.quota_status(t.tenant_id) s
             WHERE s.quota_limit IS NOT NULL
             ORDER BY s.percentage DESC, s.remaining
             LIMIT 1) q ON true;
END
$$;
COMMENT ON FUNCTION llm_usage._today_usage_impl(text) IS
'Internal: the body of llm_usage.today_usage(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.top_consumers(metric text, period_type text DEFAULT 'daily', max_rows integer DEFAULT 10)
RETURNS TABLE (rank bigint, tenant_id text, value numeric, period_start timestamptz)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.top_consumers(text, text, integer) IS
'Tenants ranked by tokens, cost or api_calls in their current hour, day or month (each in its own zone), from the raw events.  Non-admins see only their tenants.';

CREATE OR REPLACE FUNCTION llm_usage._top_consumers_impl(metric text, period_type text DEFAULT 'daily', max_rows integer DEFAULT 10)
RETURNS TABLE (rank bigint, tenant_id text, value numeric, period_start timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    p_metric text := $1;
    v_unit   text;
    v_now    timestamptz := clock_timestamp();
    v_mine   text[];
    v_admin  boolean := llm_usage._is_admin();
BEGIN
    PERFORM llm_usage._require_arg(p_metric, 'metric');
    IF p_metric NOT IN ('tokens', 'cost', 'api_calls') THEN
        RAISE EXCEPTION 'unknown metric "%"', p_metric
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Metrics are: tokens, cost, api_calls.';
    END IF;
    v_unit := llm_usage._require_rollup_unit($2);
    PERFORM llm_usage._check_max_rows($3);
    IF NOT v_admin THEN
        v_mine := llm_usage._my_tenants();
    END IF;
    RETURN QUERY
    SELECT rank() OVER (ORDER BY x.value DESC, x.tenant_id), x.tenant_id, x.value, x.period_start
      FROM (SELECT t.tenant_id, b.period_start, s.value
              FROM llm_usage.tenants t
             CROSS JOIN LATERAL llm_usage._period_bounds(v_unit, v_now, t.timezone) b
             -- one index range scan per tenant, never a scan of every call
             CROSS JOIN LATERAL (
                   SELECT count(*) AS calls,
                          CASE p_metric
                              WHEN 'tokens' THEN coalesce(sum(e.total_tokens), 0)::numeric
                              WHEN 'cost' THEN coalesce(sum(e.cost_usd), 0)
                              ELSE count(e.event_id)::numeric
                          END AS value
                     FROM llm_usage.usage_events e
                    WHERE e.tenant_id = t.tenant_id AND e.occurred_at >= b.period_start
                      AND e.occurred_at < b.period_end) s
             WHERE (v_admin OR t.tenant_id = ANY (v_mine)) AND s.calls > 0) x
     ORDER BY 1, 2
     LIMIT $3;
END
$$;
COMMENT ON FUNCTION llm_usage._top_consumers_impl(text, text, integer) IS
'Internal: the body of llm_usage.top_consumers(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.tenant_events(tenant_id text, from_ts timestamptz, to_ts timestamptz,
                                                   event_type text DEFAULT NULL, max_rows integer DEFAULT 100)
RETURNS SETOF llm_usage.usage_events
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.tenant_events(text, timestamptz, timestamptz, text, integer) IS
'A tenant''s tracked calls in [from_ts, to_ts), newest first, optionally of one event type (by its own name, any valid one).';

CREATE OR REPLACE FUNCTION llm_usage._tenant_events_impl(tenant_id text, from_ts timestamptz, to_ts timestamptz,
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
    IF $4 IS NOT NULL THEN
        PERFORM llm_usage._check_event_type($4);
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
COMMENT ON FUNCTION llm_usage._tenant_events_impl(text, timestamptz, timestamptz, text, integer) IS
'Internal: the body of llm_usage.tenant_events(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * _usage_days(tenant, from_day, to_day): per local day in [from_day,
 * to_day] (tenant's zone) the calls, failures, tokens, cost, unpriced calls
 * and latency sum/count.  Days before the cut (today's start, or the start
 * of the day of the daily roll-up's watermark if that is earlier) come
 * from the daily roll-ups; the rest from the raw calls.  A call that
 * arrives late for a closed day shows at the next roll-up.
 */
CREATE OR REPLACE FUNCTION llm_usage._usage_days(t llm_usage.tenants, p_from date, p_to date)
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
       AND m.period_start >= llm_usage._local_day_start(p_from, t.timezone)
       AND m.period_start < llm_usage._local_day_start(least(p_to + 1, v_cut), t.timezone)
    UNION ALL
    SELECT (e.occurred_at AT TIME ZONE t.timezone)::date, count(*),
           count(*) FILTER (WHERE e.result <> 'success'), coalesce(sum(e.total_tokens), 0)::bigint,
           coalesce(sum(e.cost_usd), 0), count(*) FILTER (WHERE e.cost_usd IS NULL),
           coalesce(sum(e.latency_ms), 0)::numeric, count(e.latency_ms)
      FROM llm_usage.usage_events e
     WHERE e.tenant_id = t.tenant_id
       AND e.occurred_at >= llm_usage._local_day_start(greatest(p_from, v_cut), t.timezone)
       AND e.occurred_at < llm_usage._local_day_start(p_to + 1, t.timezone)
     GROUP BY 1;
END
$$;
COMMENT ON FUNCTION llm_usage._usage_days(llm_usage.tenants, date, date) IS
'Internal: per-day usage of a tenant, closed days from the daily roll-ups, the open part from the raw calls.';

CREATE OR REPLACE FUNCTION llm_usage.usage_overview(tenant_id text, period text DEFAULT '30d')
RETURNS jsonb
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.usage_overview(text, text) IS
'Dashboard of one tenant over its last 7, 30, 90 or 365 local days (today included): totals and change against the days before, per-model breakdown (runs, tokens, cost, share of cost, failures, rate-limited calls, success rate), time series (daily, weekly for 90d, monthly for 1y) and the 10 most expensive calls.  Closed days come from the daily roll-ups.';

CREATE OR REPLACE FUNCTION llm_usage._usage_overview_impl(tenant_id text, period text DEFAULT '30d')
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
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
    v_series jsonb;
    v_models jsonb;
    v_top    jsonb;
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

    -- the window's days once, for the totals and the time series
    WITH d AS MATERIALIZED (SELECT * FROM llm_usage._usage_days(t, v_from, v_today))
    SELECT jsonb_build_object(
               'runs', coalesce(sum(d.calls), 0),
               'cost_usd', coalesce(sum(d.cost), 0),
               'tokens', coalesce(sum(d.tokens), 0),
               'avg_cost_per_run_usd', round(coalesce(sum(d.cost), 0) / nullif(sum(d.calls), 0), 8),
               'success_rate', round(1 - sum(d.failed)::numeric / nullif(sum(d.calls), 0), 4),
               'avg_latency_ms', round(sum(d.latency_sum) / nullif(sum(d.latency_count), 0), 1),
               'unpriced_runs', coalesce(sum(d.unpriced), 0)),
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'bucket', s.bucket, 'runs', s.runs, 'tokens', s.tokens, 'cost_usd', s.cost)
                       ORDER BY s.bucket), '[]')
              FROM (SELECT date_trunc(v_bucket, d2.day)::date AS bucket, sum(d2.calls) AS runs,
                           sum(d2.tokens) AS tokens, sum(d2.cost) AS cost
                      FROM d d2
                     GROUP BY 1) s)
      INTO v_cur, v_series
      FROM d;

    -- the window's calls once, for the models and the most expensive calls
    WITH e AS MATERIALIZED (
        SELECT e.event_id, e.request_id, e.model, e.total_tokens, e.cost_usd, e.occurred_at, e.result
          FROM llm_usage.usage_events e
         WHERE e.tenant_id = t.tenant_id
           AND e.occurred_at >= llm_usage._local_day_start(v_from, t.timezone))
    SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'model', m.model, 'runs', m.runs, 'tokens', m.tokens, 'cost_usd', m.cost,
                       'unpriced_runs', m.unpriced, 'share_of_cost', m.share,
                       'failures', m.failures, 'rate_limited', m.rate_limited,
                       'success_rate', round((m.runs - m.failures - m.rate_limited)::numeric / m.runs, 4))
                       ORDER BY m.cost DESC, m.runs DESC, m.model), '[]')
              FROM (SELECT e.model, count(*) AS runs, sum(e.total_tokens) AS tokens,
                           coalesce(sum(e.cost_usd), 0) AS cost,
                           count(*) FILTER (WHERE e.cost_usd IS NULL) AS unpriced,
                           count(*) FILTER (WHERE e.result = 'failure') AS failures,
                           count(*) FILTER (WHERE e.result = 'rate_limited') AS rate_limited,
                           round(coalesce(sum(e.cost_usd), 0) / nullif(sum(sum(e.cost_usd)) OVER (), 0), 4) AS share
                      FROM e
                     GROUP BY e.model) m),
           (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'event_id', x.event_id, 'request_id', x.request_id, 'model', x.model,
                       'tokens', x.total_tokens, 'cost_usd', x.cost_usd, 'occurred_at', x.occurred_at)
                       ORDER BY x.cost_usd DESC, x.event_id), '[]')
              FROM (SELECT * FROM e WHERE e.cost_usd IS NOT NULL
                     ORDER BY e.cost_usd DESC, e.event_id
                     LIMIT 10) x)
      INTO v_models, v_top;
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
        'models', v_models,
        'time_series', v_series,
        'most_expensive', v_top);
END
$$;
COMMENT ON FUNCTION llm_usage._usage_overview_impl(text, text) IS
'Internal: the body of llm_usage.usage_overview(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.cost_summary(tenant_id text DEFAULT NULL)
RETURNS TABLE (tenant text, yesterday date, yesterday_tracked_usd numeric, yesterday_provider_usd numeric,
               week_start date, week_tracked_usd numeric, week_provider_usd numeric)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.cost_summary(text) IS
'Yesterday''s and this week''s (Monday on, tenant''s zone) cost per tenant: tracked with track_usage() (closed days from the daily roll-ups) and reported by the provider (the provider''s UTC days of those dates; NULL until collected), side by side.  NULL tenant_id = every tenant the caller may see.';

CREATE OR REPLACE FUNCTION llm_usage._cost_summary_impl(tenant_id text DEFAULT NULL)
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
COMMENT ON FUNCTION llm_usage._cost_summary_impl(text) IS
'Internal: the body of llm_usage.cost_summary(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * admin_summary(from_ts, to_ts, max_rows): the whole installation over a
 * period, for the operator: tenants, calls (failed, rate-limited), tokens,
 * cost, average latency, the top consumers by cost, and the tenants that
 * exceeded a quota with how often.  Denials are the extension's own
 * quota_exceeded audit events (never an application's); an event stands
 * for one denial, or for as many as its details say ("count" or "denied"
 * as a number: denials aggregated per tenant, quota and minute); the
 * quotas are those named in its details ("denied" list of
 * quota_type/period, or quota_type and period).
 */
CREATE OR REPLACE FUNCTION llm_usage.admin_summary(from_ts timestamptz DEFAULT NULL, to_ts timestamptz DEFAULT NULL,
                                                   max_rows integer DEFAULT 10)
RETURNS jsonb
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.admin_summary(timestamptz, timestamptz, integer) IS
'The installation over [from_ts, to_ts) (default: the last 30 days): tenants (all, and with calls), calls, failed and rate-limited calls, success rate, input/output/total tokens, cost (and unpriced calls), average latency, the max_rows top consumers by cost, and the tenants that exceeded a quota with their denial counts and quotas.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._admin_summary_impl(from_ts timestamptz DEFAULT NULL, to_ts timestamptz DEFAULT NULL,
                                                         max_rows integer DEFAULT 10)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
AS $$
#variable_conflict use_column
DECLARE
    v_to    timestamptz := coalesce($2, now());
    v_from  timestamptz := coalesce($1, v_to - interval '30 days');
    v_tot   jsonb;
    v_top   jsonb;
    v_quota jsonb;
BEGIN
    PERFORM llm_usage._require_admin('admin_summary');
    PERFORM llm_usage._check_range(v_from, v_to);
    PERFORM llm_usage._check_max_rows($3);

    WITH e AS MATERIALIZED (
        SELECT e.tenant_id, e.result, e.input_tokens, e.output_tokens, e.total_tokens, e.cost_usd, e.latency_ms
          FROM llm_usage.usage_events e
         WHERE e.occurred_at >= v_from AND e.occurred_at < v_to),
    per_tenant AS (
        SELECT e.tenant_id, count(*) AS calls, sum(e.total_tokens) AS tokens, coalesce(sum(e.cost_usd), 0) AS cost,
               count(*) FILTER (WHERE e.cost_usd IS NULL) AS unpriced
          FROM e GROUP BY e.tenant_id)
    SELECT jsonb_build_object(
               'tenants', jsonb_build_object('total', (SELECT count(*) FROM llm_usage.tenants),
                                             'with_calls', (SELECT count(*) FROM per_tenant)),
               'calls', count(*),
               'failed_calls', count(*) FILTER (WHERE e.result = 'failure'),
               'rate_limited_calls', count(*) FILTER (WHERE e.result = 'rate_limited'),
               'success_rate', round(count(*) FILTER (WHERE e.result = 'success')::numeric / nullif(count(*), 0), 4),
               'tokens', jsonb_build_object('input', coalesce(sum(e.input_tokens), 0),
                                            'output', coalesce(sum(e.output_tokens), 0),
                                            'total', coalesce(sum(e.total_tokens), 0)),
               'cost_usd', coalesce(sum(e.cost_usd), 0),
               'unpriced_calls', count(*) FILTER (WHERE e.cost_usd IS NULL),
               'avg_latency_ms', round(avg(e.latency_ms), 1)),
           (SELECT coalesce(jsonb_agg(jsonb_build_object('rank', x.rank, 'tenant_id', x.tenant_id, 'calls', x.calls,
                                                         'tokens', x.tokens, 'cost_usd', x.cost, 'unpriced_calls', x.unpriced)
                                      ORDER BY x.rank, x.tenant_id), '[]')
              FROM (SELECT p.*, rank() OVER (ORDER BY p.cost DESC, p.tokens DESC) AS rank
                      FROM per_tenant p
                     ORDER BY p.cost DESC, p.tokens DESC, p.tenant_id
                     LIMIT $3) x)
      INTO v_tot, v_top
      FROM e;

    SELECT coalesce(jsonb_agg(jsonb_build_object('tenant_id', d.tenant_id, 'plan', t.plan, 'denials', d.denials,
                                                 'quotas', d.quotas, 'first_at', d.first_at, 'last_at', d.last_at)
                              ORDER BY d.denials DESC, d.tenant_id), '[]')
      INTO v_quota
      FROM (SELECT a.tenant_id,
                   -- 1.3 aggregates a minute's denials into one event with
                   -- their number; before, an event was one denial
                   sum(CASE WHEN jsonb_typeof(a.details->'denied_calls') = 'number'
                            THEN (a.details->>'denied_calls')::numeric ELSE 1 END) AS denials,
                   (SELECT coalesce(jsonb_agg(DISTINCT q.name ORDER BY q.name), '[]')
                      FROM llm_usage.audit_events a2
                     CROSS JOIN LATERAL (
                           SELECT d->>'quota_type' || '/' || (d->>'period') AS name
                             FROM jsonb_array_elements(CASE WHEN jsonb_typeof(a2.details->'denied') = 'array'
                                                            THEN a2.details->'denied' ELSE '[]' END) d
                            WHERE jsonb_typeof(d) = 'object'
                           UNION ALL
                           SELECT (a2.details->>'quota_type') || '/' || (a2.details->>'period')) q
                     WHERE a2.tenant_id = a.tenant_id AND a2.origin = 'llm_usage' AND a2.event_type = 'quota'
                       AND a2.action = 'quota_exceeded' AND a2.created_at >= v_from AND a2.created_at < v_to
                       AND q.name IS NOT NULL) AS quotas,
                   min(CASE WHEN jsonb_typeof(a.details->'first_at') = 'string'
                            THEN (a.details->>'first_at')::timestamptz ELSE a.created_at END) AS first_at,
                   max(CASE WHEN jsonb_typeof(a.details->'last_at') = 'string'
                            THEN (a.details->>'last_at')::timestamptz ELSE a.created_at END) AS last_at
              FROM llm_usage.audit_events a
             WHERE a.origin = 'llm_usage' AND a.event_type = 'quota' AND a.action = 'quota_exceeded'
               AND a.created_at >= v_from AND a.created_at < v_to
             GROUP BY a.tenant_id
             ORDER BY denials DESC, a.tenant_id
             LIMIT $3) d
      LEFT JOIN llm_usage.tenants t ON t.tenant_id = d.tenant_id;

    RETURN jsonb_build_object('from', v_from, 'to', v_to) || v_tot
           || jsonb_build_object('top_consumers', v_top, 'quota_exceeded', v_quota);
END
$$;
COMMENT ON FUNCTION llm_usage._admin_summary_impl(timestamptz, timestamptz, integer) IS
'Internal: the body of llm_usage.admin_summary(), run as the owner by its entry point, which records the caller (src/caller.c).';
