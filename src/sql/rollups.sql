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

/*
 * _visibility_bound(current): an instant before which every call (and
 * audit event) that will ever be committed is already committed and
 * visible to a snapshot taken from now on: the clock, read first, or the
 * start of the oldest transaction still open in this database if earlier
 * (a call's recorded_at is never before its transaction's start; one that
 * starts after the clock was read records later still).  A prepared
 * transaction has no session, so its start is unknown: while one exists
 * in this database the bound does not move past "current".
 */
CREATE OR REPLACE FUNCTION llm_usage._visibility_bound(p_current timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_clock timestamptz := clock_timestamp();
    v_bound timestamptz;
BEGIN
    PERFORM pg_stat_clear_snapshot();
    SELECT least(v_clock, min(a.xact_start)) INTO v_bound
      FROM pg_catalog.pg_stat_activity a
     WHERE a.datname OPERATOR(pg_catalog.=) current_database() AND a.pid OPERATOR(pg_catalog.<>) pg_backend_pid()
       AND a.xact_start IS NOT NULL;
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xacts x WHERE x.database OPERATOR(pg_catalog.=) current_database()) THEN
        v_bound := least(v_bound, p_current);
    END IF;
    RETURN v_bound;
END
$$;
COMMENT ON FUNCTION llm_usage._visibility_bound(timestamptz) IS
'Internal: the instant before which every call that will be committed is committed (the clock, or the oldest open transaction''s start; "current" while a prepared transaction exists in the database).';

/*
 * _next_watermark(current, pending): how far a run that reads with its
 * snapshot may move a watermark, and the bound to keep for the next run.
 * Under READ COMMITTED every statement after this one takes a fresh
 * snapshot, so the bound read now is safe for the run.  Under REPEATABLE
 * READ or SERIALIZABLE the run reads with its transaction's snapshot,
 * which may predate commits the bound assumes visible; it moves only to
 * the bound the previous run read (that run committed before this
 * snapshot was taken, or this one would have failed to lock the state
 * row), and keeps today's for the next.
 */
CREATE OR REPLACE FUNCTION llm_usage._next_watermark(p_current timestamptz, p_pending timestamptz,
                                                     OUT watermark timestamptz, OUT pending timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    pending := llm_usage._visibility_bound(p_current);
    IF current_setting('transaction_isolation') = 'read committed' THEN
        watermark := pending;
    ELSIF p_pending IS NOT NULL THEN
        watermark := least(p_pending, pending);
    END IF;
    -- never back: a watermark already stored was safe when it was stored
    watermark := greatest(watermark, p_current);
END
$$;
COMMENT ON FUNCTION llm_usage._next_watermark(timestamptz, timestamptz) IS
'Internal: the new watermark of a run (a visibility bound, one run behind under REPEATABLE READ and SERIALIZABLE) and the bound to keep for the next run.';

/*
 * The INSERT that writes roll-ups, over a source of calls with their
 * period_start: $6 period type, $3 "since" (periods holding a call at or
 * after it; NULL for all).  A row is written only when a figure changed.
 */
CREATE OR REPLACE FUNCTION llm_usage._rollup_upsert_sql(p_source text, p_additive boolean DEFAULT false)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $q$
    SELECT format($ins$
    INSERT INTO llm_usage.tenant_usage_metrics AS m
        (tenant_id, period_type, period_start, api_calls_total, api_calls_failed, rate_limited_count,
         chat_messages_sent, embeddings_generated, input_tokens, output_tokens, cached_input_tokens,
         total_tokens_used, estimated_cost_usd, unpriced_calls, api_latency_p50_ms, api_latency_p95_ms,
         api_latency_p99_ms, error_rate, latency_sum_ms, latency_count, updated_at)
    SELECT e.tenant_id, $6, e.period_start,
           count(*),
           count(*) FILTER (WHERE e.result = 'failure'),
           count(*) FILTER (WHERE e.result = 'rate_limited'),
           count(*) FILTER (WHERE k.counts_as = 'chat_messages'),
           count(*) FILTER (WHERE k.counts_as = 'embeddings'),
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
      LEFT JOIN llm_usage.event_type_counters k ON k.event_type = e.event_type
     GROUP BY e.tenant_id, e.period_start
    HAVING $3::timestamptz IS NULL OR max(e.occurred_at) >= $3
    %s$ins$, p_source,
    CASE WHEN p_additive THEN $add$
    ON CONFLICT (tenant_id, period_type, period_start) DO UPDATE
       SET api_calls_total = m.api_calls_total + EXCLUDED.api_calls_total,
           api_calls_failed = m.api_calls_failed + EXCLUDED.api_calls_failed,
           rate_limited_count = m.rate_limited_count + EXCLUDED.rate_limited_count,
           chat_messages_sent = m.chat_messages_sent + EXCLUDED.chat_messages_sent,
           embeddings_generated = m.embeddings_generated + EXCLUDED.embeddings_generated,
           input_tokens = m.input_tokens + EXCLUDED.input_tokens,
           output_tokens = m.output_tokens + EXCLUDED.output_tokens,
           cached_input_tokens = m.cached_input_tokens + EXCLUDED.cached_input_tokens,
           total_tokens_used = m.total_tokens_used + EXCLUDED.total_tokens_used,
           estimated_cost_usd = m.estimated_cost_usd + EXCLUDED.estimated_cost_usd,
           unpriced_calls = m.unpriced_calls + EXCLUDED.unpriced_calls,
           error_rate = round((m.api_calls_failed + m.rate_limited_count + EXCLUDED.api_calls_failed + EXCLUDED.rate_limited_count)::numeric
                              / (m.api_calls_total + EXCLUDED.api_calls_total), 4),
           latency_sum_ms = m.latency_sum_ms + EXCLUDED.latency_sum_ms,
           latency_count = m.latency_count + EXCLUDED.latency_count,
           updated_at = EXCLUDED.updated_at$add$
    ELSE $rep$
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
            EXCLUDED.latency_sum_ms, EXCLUDED.latency_count)$rep$ END)
$q$;
COMMENT ON FUNCTION llm_usage._rollup_upsert_sql(text, boolean) IS
'Internal: the roll-up INSERT over a source query of calls with their period_start (replacing changed rows, or adding to existing ones).';

/*
 * _rollup_scan_sql(tenant filter): calls from a lower bound ($2) with the
 * period each falls in ($1 unit): calls are reduced to (tenant, quarter
 * hour) -- since 1972 every zone's period boundaries fall on UTC quarter
 * hours -- whose period is computed once; a call in a quarter hour that a
 * period boundary cuts (never, so far) gets its own.  $8 restricts to one
 * tenant (NULL: all).
 */
CREATE OR REPLACE FUNCTION llm_usage._rollup_scan_sql()
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $q$
    SELECT $src$
        SELECT e.*, CASE WHEN e.occurred_at < p.period_end THEN p.period_start
                         ELSE (llm_usage._period_bounds($1, e.occurred_at, p.timezone)).period_start END AS period_start
          FROM llm_usage.usage_events e
          JOIN (SELECT b.tenant_id, b.bin, x.period_start, x.period_end, t.timezone
                  FROM (SELECT DISTINCT x.tenant_id, date_bin('15 minutes', x.occurred_at, 'epoch') AS bin
                          FROM llm_usage.usage_events x
                         WHERE x.occurred_at >= $2 AND ($8::text IS NULL OR x.tenant_id = $8)) b
                  JOIN llm_usage.tenants t ON t.tenant_id = b.tenant_id
                 CROSS JOIN LATERAL llm_usage._period_bounds($1, b.bin, t.timezone) x) p
            ON p.tenant_id = e.tenant_id AND p.bin = date_bin('15 minutes', e.occurred_at, 'epoch')
         WHERE e.occurred_at >= $2 AND ($8::text IS NULL OR e.tenant_id = $8) $src$
$q$;
COMMENT ON FUNCTION llm_usage._rollup_scan_sql() IS
'Internal: the source query of a roll-up scan: calls from a lower bound with their period (computed once per tenant and quarter hour).';

CREATE OR REPLACE FUNCTION llm_usage.aggregate_usage_metrics(period_type text DEFAULT 'daily', since timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.aggregate_usage_metrics(text, timestamptz) IS
'Upserts tenant_usage_metrics (hourly, daily or monthly, in each tenant''s zone) for the periods that got events since the last run, or that have events since "since".  Idempotent: a re-run changes nothing.  No call is skipped, whenever it commits (the watermark never passes an open or prepared transaction, nor, under REPEATABLE READ or SERIALIZABLE, the run''s snapshot).  Returns the rows written.  Admin only.';

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
    v_state  llm_usage.aggregation_state;
    v_next   record;
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
    SELECT * INTO v_state
      FROM llm_usage.aggregation_state s
     WHERE s.period_type = p_type
       FOR UPDATE;
    -- before any statement that reads calls (a fresh snapshot each, under READ COMMITTED)
    v_next := llm_usage._next_watermark(v_state.watermark, v_state.pending_watermark);

    /*
     * The calls to aggregate, with the period each falls in ($1 unit,
     * $2 scan start, $4/$5/$7 incremental periods: tenant, start, end).
     */
    IF p_since IS NOT NULL OR v_state.watermark IS NULL THEN
        /*
         * Scan: one pass over the calls from a lower bound (none on a first
         * run).  It starts a day before the UTC start of since's period,
         * which covers that period in every time zone; HAVING below keeps
         * the periods that really hold a call at or after since.
         */
        v_lo := coalesce(date_trunc(v_unit, p_since, 'UTC') - interval '1 day', '-infinity');
        v_source := llm_usage._rollup_scan_sql();
    ELSE
        /*
         * Incremental: whole periods of the calls written since the
         * watermark.  Calls are first reduced to (tenant, quarter hour);
         * the periods holding a quarter hour's first and last instant are
         * recomputed (one, unless a boundary cuts it); each tenant's zone
         * is looked up by key, whatever the estimates.
         */
        SELECT array_agg(p.tenant_id), array_agg(p.period_start), array_agg(p.period_end)
          INTO v_tenants, v_starts, v_ends
          FROM (SELECT DISTINCT q.tenant_id, b.period_start, b.period_end
                  FROM (SELECT d.tenant_id, d.bin,
                               (SELECT t.timezone FROM llm_usage.tenants t WHERE t.tenant_id = d.tenant_id) AS timezone
                          FROM (SELECT DISTINCT e.tenant_id, date_bin('15 minutes', e.occurred_at, 'epoch') AS bin
                                  FROM llm_usage.usage_events e
                                 WHERE e.recorded_at >= v_state.watermark) d) q
                 CROSS JOIN LATERAL (VALUES (q.bin), (q.bin + interval '15 minutes' - interval '1 microsecond')) i(at)
                 CROSS JOIN LATERAL llm_usage._period_bounds(v_unit, i.at, q.timezone) b
                 WHERE q.timezone IS NOT NULL) p;
        v_source := $src$
            SELECT e.*, p.period_start
              FROM unnest($4::text[], $5::timestamptz[], $7::timestamptz[]) AS p(tenant_id, period_start, period_end)
             CROSS JOIN LATERAL (SELECT * FROM llm_usage.usage_events x
                                  WHERE x.tenant_id = p.tenant_id AND x.occurred_at >= p.period_start
                                    AND x.occurred_at < p.period_end
                                 OFFSET 0) e $src$;     -- OFFSET 0: an index scan per period
    END IF;
    EXECUTE llm_usage._rollup_upsert_sql(v_source)
    USING v_unit, v_lo, p_since, v_tenants, v_starts, p_type, v_ends, NULL::text;
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    IF p_since IS NULL THEN
        UPDATE llm_usage.aggregation_state s
           SET watermark = v_next.watermark, pending_watermark = v_next.pending, last_run_at = now()
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

/*
 * A tenant's time zone changed: its roll-ups are keyed by the periods of
 * the old zone.  Every roll-up row from the first old-zone period that
 * starts at or after the retention edge (where the calls are still kept:
 * llm_usage.event_retention UTC months, as the partitions are dropped) is
 * recomputed from the calls in the new zone; older rows keep their keys
 * (their calls are gone).  The first new-zone period may begin before that
 * edge, inside the last kept row's period: it counts only the calls from
 * the edge on, added to a kept row that has the same start, so no call is
 * counted twice or lost.  Runs as the owner: an admin may change a zone
 * with UPDATE, and the roll-ups follow.
 */
CREATE OR REPLACE FUNCTION llm_usage._rollups_rekey()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_cut  timestamptz := date_trunc('month', now(), 'UTC')
                          - make_interval(months => coalesce(current_setting('llm_usage.event_retention', true), '13')::integer);
    v_type text;
    v_unit text;
    v_edge timestamptz;
    b      record;
BEGIN
    FOREACH v_type IN ARRAY ARRAY['hourly', 'daily', 'monthly'] LOOP
        v_unit := llm_usage._rollup_unit(v_type);
        b := llm_usage._period_bounds(v_unit, v_cut, OLD.timezone);
        v_edge := CASE WHEN b.period_start >= v_cut THEN b.period_start ELSE b.period_end END;
        DELETE FROM llm_usage.tenant_usage_metrics m
         WHERE m.tenant_id = NEW.tenant_id AND m.period_type = v_type AND m.period_start >= v_edge;
        EXECUTE llm_usage._rollup_upsert_sql(llm_usage._rollup_scan_sql(), true)
        USING v_unit, v_edge, NULL::timestamptz, NULL::text[], NULL::timestamptz[], v_type, NULL::timestamptz[], NEW.tenant_id;
    END LOOP;
    RETURN NULL;
END
$$;
COMMENT ON FUNCTION llm_usage._rollups_rekey() IS
'Internal: trigger recomputing a tenant''s roll-ups in its new time zone (from the retention edge on) when the zone changes, so that no call is counted in two periods.';

CREATE OR REPLACE TRIGGER rollups_rekey
    AFTER UPDATE OF timezone ON llm_usage.tenants
    FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone)
    EXECUTE FUNCTION llm_usage._rollups_rekey();

CREATE OR REPLACE VIEW llm_usage.rollup_status AS
SELECT s.period_type,
       s.last_run_at,
       s.watermark,
       clock_timestamp() - s.watermark AS behind,
       s.pending_watermark
  FROM llm_usage.aggregation_state s;
COMMENT ON VIEW llm_usage.rollup_status IS
'The roll-ups per period type: when aggregate_usage_metrics() last ran, its watermark (every call recorded before it is in the roll-ups; later ones may not be yet), how far behind the clock that is, and the bound the next run may move it to under REPEATABLE READ or SERIALIZABLE.';
