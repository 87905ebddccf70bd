/*
 * src/sql/rollups.sql — roll-ups
 *
 * aggregate_usage_metrics(): incremental hourly, daily and monthly roll-ups
 * of usage_events into tenant_usage_metrics.
 */

CREATE OR REPLACE FUNCTION llm_usage._rollup_unit(p_period_type text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_period_type IS NULL THEN
        RAISE EXCEPTION 'period_type must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN CASE p_period_type
               WHEN 'hourly' THEN 'hour'
               WHEN 'daily' THEN 'day'
               WHEN 'monthly' THEN 'month'
           END;
END
$$;
COMMENT ON FUNCTION llm_usage._rollup_unit(text) IS 'Internal: date_trunc unit of a roll-up period type; NULL when the type is unknown.';

CREATE OR REPLACE FUNCTION llm_usage._require_rollup_unit(p_period_type text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_unit text := llm_usage._rollup_unit(p_period_type);
BEGIN
    IF v_unit IS NULL THEN
        RAISE EXCEPTION 'unknown period type "%"', p_period_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Period types are: hourly, daily, monthly.';
    END IF;
    RETURN v_unit;
END
$$;
COMMENT ON FUNCTION llm_usage._require_rollup_unit(text) IS 'Internal: date_trunc unit of a roll-up period type; raises 22004/22023 when it is missing or unknown.';

CREATE OR REPLACE FUNCTION llm_usage.aggregate_usage_metrics(period_type text DEFAULT 'daily', since timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.aggregate_usage_metrics(text, timestamptz) IS
'Upserts tenant_usage_metrics (hourly, daily or monthly, in each tenant''s zone) for the periods that got events since the last run, or that have events since "since".  Idempotent: a re-run changes nothing.  Returns the rows written.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._aggregate_usage_metrics_impl(period_type text DEFAULT 'daily', since timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET jit = off
SET work_mem = '64MB'
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
    v_ends   timestamptz[];
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
     * $2 scan start, $4/$5/$7 incremental periods: tenant, start, end).
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
        /*
         * Incremental: whole periods of the calls written since the
         * watermark.  Calls are first reduced to (tenant, quarter hour) —
         * every zone's period boundaries fall on quarter hours — and each
         * tenant's zone is looked up by key, whatever the estimates.
         */
        SELECT array_agg(p.tenant_id), array_agg(b.period_start), array_agg(b.period_end)
          INTO v_tenants, v_starts, v_ends
          FROM (SELECT DISTINCT q.tenant_id, date_trunc(v_unit, q.bin, q.timezone) AS period_start, q.timezone
                  FROM (SELECT d.tenant_id, d.bin,
                               (SELECT t.timezone FROM llm_usage.tenants t WHERE t.tenant_id = d.tenant_id) AS timezone
                          FROM (SELECT DISTINCT e.tenant_id, date_bin('15 minutes', e.occurred_at, 'epoch') AS bin
                                  FROM llm_usage.usage_events e
                                 WHERE e.recorded_at >= v_wm) d) q
                 WHERE q.timezone IS NOT NULL) p
         CROSS JOIN LATERAL llm_usage._period_bounds(v_unit, p.period_start, p.timezone) b;
        v_source := $src$
            SELECT e.*, p.period_start
              FROM unnest($4::text[], $5::timestamptz[], $7::timestamptz[]) AS p(tenant_id, period_start, period_end)
             CROSS JOIN LATERAL (SELECT * FROM llm_usage.usage_events x
                                  WHERE x.tenant_id = p.tenant_id AND x.occurred_at >= p.period_start
                                    AND x.occurred_at < p.period_end
                                 OFFSET 0) e $src$;     -- OFFSET 0: an index scan per period
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
    USING v_unit, v_lo, p_since, v_tenants, v_starts, p_type, v_ends;
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
COMMENT ON FUNCTION llm_usage._aggregate_usage_metrics_impl(text, timestamptz) IS
'Internal: the body of llm_usage.aggregate_usage_metrics(), run as the owner by its entry point, which records the caller (src/caller.c).';
