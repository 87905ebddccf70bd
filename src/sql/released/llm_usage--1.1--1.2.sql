-- llm_usage 1.1 -> 1.2: quota counters in shared memory, a C enforce_quota()
\echo Use "ALTER EXTENSION llm_usage UPDATE TO '1.2'" to load this file. \quit

------------------------------------------------------------------------
-- The counters' table stays, for a server without the library preloaded
-- and for tenants beyond llm_usage.quota_max_tenants; quota_counters is
-- now a view of the live counters, wherever they are kept.
------------------------------------------------------------------------
ALTER TABLE llm_usage.quota_counters RENAME TO quota_counters_table;
COMMENT ON TABLE llm_usage.quota_counters_table IS
'Quota counters kept in a table: used when llm_usage is not in shared_preload_libraries, or for tenants beyond llm_usage.quota_max_tenants.  Read llm_usage.quota_counters instead.';

/* _audit_quota_denial(tenant, checks): the quota_exceeded audit event of a denied call (if audit_quota_denials is on) */
CREATE FUNCTION llm_usage._audit_quota_denial(p_tenant text, p_checks llm_usage._quota_check[])
RETURNS void
LANGUAGE sql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, result, role_name, details)
    SELECT p_tenant, 'quota', 'quota_exceeded', 'denied', llm_usage._caller()::regrole::text,
           jsonb_build_object('requested', jsonb_object_agg(r.quota_type || '/' || r.period, r.requested),
                              'denied', jsonb_agg(jsonb_build_object('quota_type', r.quota_type,
                                                                     'period', r.period,
                                                                     'quota_limit', r.quota_limit,
                                                                     'used', r.used,
                                                                     'period_start', r.period_start))
                                        FILTER (WHERE NOT r.fits))
      FROM unnest(p_checks) r
    HAVING coalesce(current_setting('llm_usage.audit_quota_denials', true), 'on') = 'on'
$$;
COMMENT ON FUNCTION llm_usage._audit_quota_denial(text, llm_usage._quota_check[]) IS
'Internal: writes the quota_exceeded audit event of a denied enforce_quota()/enforce_quotas() call, unless llm_usage.audit_quota_denials is off.';

ALTER FUNCTION llm_usage._consume(llm_usage.tenants, text[], numeric[]) RENAME TO _consume_table;
CREATE OR REPLACE FUNCTION llm_usage._consume_table(t llm_usage.tenants, p_types text[], p_amounts numeric[])
RETURNS SETOF llm_usage._quota_check
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now    timestamptz := clock_timestamp();
    v_req    llm_usage._quota_check[];
    v_chk    llm_usage._quota_check[];
    v_ok     boolean;
BEGIN
    SELECT array_agg(ROW(q.quota_type, q.period, q.quota_limit, a.amount,
                         b.period_start, b.period_end, NULL, NULL)::llm_usage._quota_check
                     ORDER BY q.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], q.period))
      INTO v_req
      FROM llm_usage._effective_quotas(t.tenant_id, t.plan) q
      JOIN unnest(p_types, p_amounts) AS a(quota_type, amount) ON a.quota_type = q.quota_type
      CROSS JOIN LATERAL llm_usage._period_bounds(q.period, v_now, t.timezone) b;

    IF v_req IS NULL THEN
        RETURN;                 -- no quota in force for these types
    END IF;

    FOR i IN 1..2 LOOP
        SELECT array_agg(ROW(x.quota_type, x.period, x.quota_limit, x.requested, x.period_start, x.period_end,
                             x.used, NULL)::llm_usage._quota_check
                         ORDER BY x.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], x.period))
          INTO v_chk
          FROM (SELECT r.quota_type, r.period, r.quota_limit, r.requested,
                       -- a counter already in a newer period (a session whose clock moved on
                       -- first) is consumed in that period, and that period is reported
                       greatest(c.period_start, r.period_start) AS period_start,
                       CASE WHEN c.period_start > r.period_start
                            THEN (SELECT n.period_end FROM llm_usage._period_bounds(r.period, c.period_start, t.timezone) n)
                            ELSE r.period_end END AS period_end,
                       CASE WHEN c.period_start < r.period_start THEN 0 ELSE c.used END AS used
                  FROM unnest(v_req) r
                  JOIN llm_usage.quota_counters_table c
                    ON c.tenant_id = t.tenant_id AND c.quota_type = r.quota_type AND c.period = r.period
                 ORDER BY r.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], r.period)
                   FOR UPDATE OF c) x;
        EXIT WHEN cardinality(v_chk) = cardinality(v_req);
        IF i = 2 THEN
            RAISE EXCEPTION 'quota counters of tenant "%" disappeared while being locked', t.tenant_id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        -- first use of some counter: create it, then lock again (in order)
        INSERT INTO llm_usage.quota_counters_table (tenant_id, quota_type, period, period_start, used)
        SELECT t.tenant_id, r.quota_type, r.period, r.period_start, 0
          FROM unnest(v_req) r
        ON CONFLICT DO NOTHING;
    END LOOP;

    SELECT array_agg(ROW(c.quota_type, c.period, c.quota_limit, c.requested, c.period_start, c.period_end, c.used,
                         c.quota_limit IS NULL OR c.used + c.requested <= c.quota_limit)::llm_usage._quota_check
                     ORDER BY c.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], c.period)),
           bool_and(c.quota_limit IS NULL OR c.used + c.requested <= c.quota_limit)
      INTO v_chk, v_ok
      FROM unnest(v_chk) c;

    IF v_ok THEN
        UPDATE llm_usage.quota_counters_table c
           SET used = r.used + r.requested,
               period_start = r.period_start,     -- the newer of the two, under the row lock
               updated_at = v_now
          FROM unnest(v_chk) r
         WHERE c.tenant_id = t.tenant_id AND c.quota_type = r.quota_type AND c.period = r.period;
        RETURN QUERY
            SELECT r.quota_type, r.period, r.quota_limit, r.requested, r.period_start, r.period_end,
                   r.used + r.requested, r.fits
              FROM unnest(v_chk) r;
        RETURN;
    END IF;

    PERFORM llm_usage._audit_quota_denial(t.tenant_id, v_chk);
    RETURN QUERY SELECT * FROM unnest(v_chk);
END
$$;
COMMENT ON FUNCTION llm_usage._consume_table(llm_usage.tenants, text[], numeric[]) IS
'Internal: check-and-consume in llm_usage.quota_counters_table, row locks in a global order (the path without shared memory).';

------------------------------------------------------------------------
-- Shared-memory counters (C)
------------------------------------------------------------------------
CREATE FUNCTION llm_usage._shm_usable(tenant_id text)
RETURNS boolean
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_shm_usable';
COMMENT ON FUNCTION llm_usage._shm_usable(text) IS
'Internal: whether the tenant''s quotas are counted in shared memory (library preloaded, room in llm_usage.quota_max_tenants).';

CREATE FUNCTION llm_usage._shm_consume(tenant_id text, quota_types text[], amounts numeric[])
RETURNS SETOF llm_usage._quota_check
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_shm_consume';
COMMENT ON FUNCTION llm_usage._shm_consume(text, text[], numeric[]) IS
'Internal: atomic all-or-nothing check-and-consume in shared memory, under the tenant''s spinlock.';

CREATE FUNCTION llm_usage._shm_counters(tenant_id text DEFAULT NULL)
RETURNS TABLE (tenant_id text, quota_type text, period text, period_start timestamptz, used numeric, updated_at timestamptz)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_counters';
COMMENT ON FUNCTION llm_usage._shm_counters(text) IS
'Internal: the shared-memory counters of this database (of one tenant if given), unfiltered.';

CREATE FUNCTION llm_usage._shm_set_counter(tenant_id text, quota_type text, period text, period_start timestamptz, used numeric)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_set_counter';
COMMENT ON FUNCTION llm_usage._shm_set_counter(text, text, text, timestamptz, numeric) IS
'Internal: set one shared-memory counter (an admin''s UPDATE of llm_usage.quota_counters).';

CREATE FUNCTION llm_usage._quota_config_changed()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'llm_usage_quota_config_changed';
COMMENT ON FUNCTION llm_usage._quota_config_changed() IS
'Internal: statement trigger; every backend drops its cached quota limits and tenant access when the transaction commits.';

DO $trg$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['tenants', 'plans', 'plan_quotas', 'tenant_quota_overrides', 'tenant_access']
    LOOP
        EXECUTE format('CREATE TRIGGER quota_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON llm_usage.%I
                            FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._quota_config_changed()', tbl);
    END LOOP;
END
$trg$;

/*
 * _quota_configs(): what enforce_quota() caches per session, in one query:
 * for every tenant the calling role may act on, its time zone and the
 * quotas in force.
 */
CREATE FUNCTION llm_usage._quota_configs()
RETURNS TABLE (tenant_id text, timezone text, quota_types text[], periods text[], limits numeric[])
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH visible AS MATERIALIZED (
        SELECT t.* FROM llm_usage.tenants t
         WHERE (SELECT llm_usage._is_admin()) OR t.tenant_id IN (SELECT unnest(llm_usage._my_tenants())))
    SELECT v.tenant_id, v.timezone,
           coalesce(array_agg(q.quota_type ORDER BY q.quota_type, q.period) FILTER (WHERE q.quota_type IS NOT NULL), '{}'),
           coalesce(array_agg(q.period ORDER BY q.quota_type, q.period) FILTER (WHERE q.quota_type IS NOT NULL), '{}'),
           coalesce(array_agg(q.quota_limit ORDER BY q.quota_type, q.period) FILTER (WHERE q.quota_type IS NOT NULL), '{}')
      FROM visible v
      LEFT JOIN LATERAL llm_usage._effective_quotas(v.tenant_id, v.plan) q ON true
     GROUP BY v.tenant_id, v.timezone
$$;
COMMENT ON FUNCTION llm_usage._quota_configs() IS
'Internal: time zone and quotas in force of every tenant the caller may act on (cached by enforce_quota() until a plan, quota, tenant or access changes).';

/* _quota_table_counters(tenant): the table's counters of a tenant, carried into a new shared entry */
CREATE FUNCTION llm_usage._quota_table_counters(p_tenant text,
    OUT counter_types text[], OUT counter_periods text[], OUT counter_starts timestamptz[], OUT counter_used numeric[])
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(c.quota_type), array_agg(c.period), array_agg(c.period_start), array_agg(c.used)
      FROM llm_usage.quota_counters_table c
     WHERE c.tenant_id = p_tenant AND llm_usage._can_access(p_tenant)
$$;
COMMENT ON FUNCTION llm_usage._quota_table_counters(text) IS
'Internal: a tenant''s counters in llm_usage.quota_counters_table, added to its shared-memory entry when that is created (so counting carries on across the upgrade and a restore).';

/*
 * _quota_counters(tenant): the live counters the caller may see: from
 * shared memory when in use, else (or for tenants without a shared
 * entry) from the table.
 */
CREATE FUNCTION llm_usage._quota_counters(p_tenant text DEFAULT NULL)
RETURNS TABLE (tenant_id text, quota_type text, period text, period_start timestamptz, used numeric, updated_at timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH shm AS MATERIALIZED (SELECT * FROM llm_usage._shm_counters(p_tenant))
    SELECT c.tenant_id, c.quota_type, c.period, c.period_start, c.used, c.updated_at
      FROM (SELECT * FROM shm
            UNION ALL
            SELECT x.tenant_id, x.quota_type, x.period, x.period_start, x.used, x.updated_at
              FROM llm_usage.quota_counters_table x
             WHERE (p_tenant IS NULL OR x.tenant_id = p_tenant)
               AND NOT EXISTS (SELECT 1 FROM shm WHERE shm.tenant_id = x.tenant_id)) c
     WHERE (SELECT llm_usage._is_admin()) OR c.tenant_id IN (SELECT unnest(llm_usage._my_tenants()))
$$;
COMMENT ON FUNCTION llm_usage._quota_counters(text) IS
'Internal: the live quota counters (shared memory, else table) of the tenants the caller may see.';

CREATE VIEW llm_usage.quota_counters WITH (security_barrier) AS
    SELECT tenant_id, quota_type, period, period_start, used, updated_at
      FROM llm_usage._quota_counters();
COMMENT ON VIEW llm_usage.quota_counters IS
'Consumption in the current period of each quota, live: one row per tenant, type and period (only the caller''s tenants for non-admins).  An admin may UPDATE used or period_start to correct a counter.';

CREATE FUNCTION llm_usage._quota_counters_update()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NEW.tenant_id IS DISTINCT FROM OLD.tenant_id OR NEW.quota_type IS DISTINCT FROM OLD.quota_type
       OR NEW.period IS DISTINCT FROM OLD.period THEN
        RAISE EXCEPTION 'only used and period_start of a quota counter can be changed'
            USING ERRCODE = 'feature_not_supported';
    END IF;
    IF llm_usage._shm_usable(OLD.tenant_id) THEN
        PERFORM llm_usage._shm_set_counter(OLD.tenant_id, OLD.quota_type, OLD.period, NEW.period_start, NEW.used);
    ELSE
        UPDATE llm_usage.quota_counters_table c
           SET used = NEW.used, period_start = NEW.period_start, updated_at = now()
         WHERE c.tenant_id = OLD.tenant_id AND c.quota_type = OLD.quota_type AND c.period = OLD.period;
    END IF;
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION llm_usage._quota_counters_update() IS 'Internal: INSTEAD OF UPDATE trigger of the quota_counters view.';
CREATE TRIGGER quota_counters_update INSTEAD OF UPDATE ON llm_usage.quota_counters
    FOR EACH ROW EXECUTE FUNCTION llm_usage._quota_counters_update();

------------------------------------------------------------------------
-- Consuming: shared memory when in use, else the table
------------------------------------------------------------------------
CREATE FUNCTION llm_usage._consume(t llm_usage.tenants, p_types text[], p_amounts numeric[])
RETURNS SETOF llm_usage._quota_check
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_chk llm_usage._quota_check[];
BEGIN
    IF NOT llm_usage._shm_usable(t.tenant_id) THEN
        RETURN QUERY SELECT * FROM llm_usage._consume_table(t, p_types, p_amounts);
        RETURN;
    END IF;
    SELECT array_agg(c) INTO v_chk FROM llm_usage._shm_consume(t.tenant_id, p_types, p_amounts) c;
    IF v_chk IS NULL THEN
        RETURN;
    END IF;
    IF NOT (SELECT bool_and(r.fits) FROM unnest(v_chk) r) THEN
        PERFORM llm_usage._audit_quota_denial(t.tenant_id, v_chk);
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_chk);
END
$$;
COMMENT ON FUNCTION llm_usage._consume(llm_usage.tenants, text[], numeric[]) IS
'Internal: atomic all-or-nothing check-and-consume of the quotas in force for some types, in shared memory when in use (else the table); audits a denial.';

-- enforce_quota: the SQL version stays for what the C one hands over
ALTER FUNCTION llm_usage.enforce_quota(text, text, numeric) RENAME TO _enforce_quota_sql;
COMMENT ON FUNCTION llm_usage._enforce_quota_sql(text, text, numeric) IS
'Internal: enforce_quota() in SQL; the C enforce_quota() hands it bad arguments, denials and the path without shared memory.';

CREATE FUNCTION llm_usage.enforce_quota(tenant_id text, quota_type text, amount numeric DEFAULT 1)
RETURNS TABLE (allowed boolean, quota_limit numeric, used numeric, remaining numeric, resets_at timestamptz)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_enforce_quota';
COMMENT ON FUNCTION llm_usage.enforce_quota(text, text, numeric) IS
'Atomic check-and-consume before an LLM call: when allowed, the amount is counted against every period of that quota type; when not, nothing is.  Returns the binding quota.  NULL limit = unlimited.  Counted in shared memory when the library is preloaded.';

CREATE OR REPLACE FUNCTION llm_usage.quota_status(tenant_id text)
RETURNS TABLE (quota_type text, period text, quota_limit numeric, used numeric, remaining numeric,
               percentage numeric, resets_at timestamptz, source text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t     llm_usage.tenants := llm_usage._tenant($1);
    v_now timestamptz := clock_timestamp();
BEGIN
    RETURN QUERY
    SELECT s.quota_type, s.period, s.quota_limit, s.used,
           llm_usage._remaining(s.quota_limit, s.used),
           CASE WHEN s.quota_limit IS NULL THEN NULL
                WHEN s.quota_limit = 0 THEN 100::numeric
                ELSE round(100 * s.used / s.quota_limit, 2) END,
           s.period_end, s.source
      FROM (SELECT q.quota_type, q.period, q.quota_limit, q.source, b.period_end,
                   coalesce(CASE WHEN c.period_start >= b.period_start THEN c.used END, 0) AS used
              FROM llm_usage._effective_quotas(t.tenant_id, t.plan) q
             CROSS JOIN LATERAL llm_usage._period_bounds(q.period, v_now, t.timezone) b
              LEFT JOIN llm_usage._quota_counters(t.tenant_id) c
                ON c.quota_type = q.quota_type AND c.period = q.period) s
     ORDER BY s.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], s.period);
END
$$;

------------------------------------------------------------------------
-- track_usage in C; the SQL version stays for what the C one hands over
------------------------------------------------------------------------
ALTER FUNCTION llm_usage.track_usage(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint)
    RENAME TO _track_usage_sql;
COMMENT ON FUNCTION llm_usage._track_usage_sql(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint) IS
'Internal: track_usage() in SQL; the C track_usage() hands it bad arguments, repeated request ids and calls more than 28 days old.';

CREATE FUNCTION llm_usage.track_usage(tenant_id text, event_type text, model text DEFAULT NULL,
                                      input_tokens bigint DEFAULT 0, output_tokens bigint DEFAULT 0,
                                      cached_input_tokens bigint DEFAULT 0, latency_ms integer DEFAULT NULL,
                                      status_code integer DEFAULT 200, result text DEFAULT 'success',
                                      metadata jsonb DEFAULT '{}', request_id text DEFAULT NULL,
                                      occurred_at timestamptz DEFAULT now(),
                                      cache_write_tokens bigint DEFAULT 0)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_track_usage';
COMMENT ON FUNCTION llm_usage.track_usage(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint) IS
'Records one LLM call after it happened and returns its event id; cost_usd from the price valid at occurred_at (NULL for an unpriced model).  Idempotent on (tenant_id, request_id).';

-- a price change reaches every session's price cache at commit
CREATE TRIGGER quota_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON llm_usage.model_price_versions
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._quota_config_changed();

------------------------------------------------------------------------
-- The table copy of the counters, for pg_dump and for a server started
-- without the library
------------------------------------------------------------------------
CREATE FUNCTION llm_usage.save_quota_counters()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    PERFORM llm_usage._require_admin('save_quota_counters');
    INSERT INTO llm_usage.quota_counters_table AS c (tenant_id, quota_type, period, period_start, used, updated_at)
    SELECT s.tenant_id, s.quota_type, s.period, s.period_start, s.used, s.updated_at
      FROM llm_usage._shm_counters() s
      JOIN llm_usage.tenants t ON t.tenant_id = s.tenant_id
    ON CONFLICT (tenant_id, quota_type, period) DO UPDATE
       SET period_start = EXCLUDED.period_start, used = EXCLUDED.used, updated_at = EXCLUDED.updated_at
     WHERE (c.period_start, c.used) IS DISTINCT FROM (EXCLUDED.period_start, EXCLUDED.used);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage.save_quota_counters() IS
'Copies the shared-memory quota counters of this database into llm_usage.quota_counters_table (what pg_dump carries); returns the rows changed.  The worker does it every llm_usage.aggregate_interval in llm_usage.database.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._maintenance()
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
    q integer;
BEGIN
    p := llm_usage._ensure_partitions((now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + 62);
    h := llm_usage.aggregate_usage_metrics('hourly');
    d := llm_usage.aggregate_usage_metrics('daily');
    m := llm_usage.aggregate_usage_metrics('monthly');
    a := llm_usage.check_alerts();
    x := llm_usage._drop_old_partitions();
    y := llm_usage._prune_history();
    q := llm_usage.save_quota_counters();
    RETURN jsonb_build_object('partitions_created', p, 'hourly', h, 'daily', d, 'monthly', m, 'alerts', a,
                              'partitions_dropped', x, 'history_pruned', y, 'quota_counters_saved', q);
END
$$;
COMMENT ON FUNCTION llm_usage._maintenance() IS
'Internal (worker, every llm_usage.aggregate_interval), in one transaction: make usage_events partitions two months ahead, roll up hourly, daily and monthly, check alerts, drop partitions past llm_usage.event_retention, prune history past llm_usage.history_retention, copy the quota counters to their table.';

------------------------------------------------------------------------
-- Roll-ups: touched periods found by key lookups whatever the estimates,
-- read with an index scan each; no JIT, room to sort in memory
------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION llm_usage.aggregate_usage_metrics(period_type text DEFAULT 'daily', since timestamptz DEFAULT NULL)
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


------------------------------------------------------------------------
-- top_consumers: an index range scan per tenant
------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION llm_usage.top_consumers(metric text, period_type text DEFAULT 'daily', max_rows integer DEFAULT 10)
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

------------------------------------------------------------------------
-- usage_overview: the window's days and calls read once each
------------------------------------------------------------------------
CREATE OR REPLACE FUNCTION llm_usage.usage_overview(tenant_id text, period text DEFAULT '30d')
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
        SELECT e.event_id, e.request_id, e.model, e.total_tokens, e.cost_usd, e.occurred_at
          FROM llm_usage.usage_events e
         WHERE e.tenant_id = t.tenant_id
           AND e.occurred_at >= v_from::timestamp AT TIME ZONE t.timezone)
    SELECT (SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'model', m.model, 'runs', m.runs, 'tokens', m.tokens, 'cost_usd', m.cost,
                       'unpriced_runs', m.unpriced, 'share_of_cost', m.share)
                       ORDER BY m.cost DESC, m.runs DESC, m.model), '[]')
              FROM (SELECT e.model, count(*) AS runs, sum(e.total_tokens) AS tokens,
                           coalesce(sum(e.cost_usd), 0) AS cost,
                           count(*) FILTER (WHERE e.cost_usd IS NULL) AS unpriced,
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

------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------
REVOKE ALL ON FUNCTION llm_usage._shm_usable(text), llm_usage._shm_consume(text, text[], numeric[]),
                       llm_usage._shm_counters(text), llm_usage._shm_set_counter(text, text, text, timestamptz, numeric),
                       llm_usage._quota_config_changed(), llm_usage._quota_configs(), llm_usage._quota_table_counters(text),
                       llm_usage._quota_counters(text), llm_usage._quota_counters_update(),
                       llm_usage._consume(llm_usage.tenants, text[], numeric[]), llm_usage._audit_quota_denial(text, llm_usage._quota_check[]),
                       llm_usage.enforce_quota(text, text, numeric), llm_usage.save_quota_counters(),
                       llm_usage.track_usage(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION llm_usage.track_usage(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint)
    TO llm_usage_app;
-- enforce_quota() runs as its caller and reads its configuration through these
GRANT EXECUTE ON FUNCTION llm_usage.enforce_quota(text, text, numeric),
                          llm_usage._quota_configs(), llm_usage._quota_table_counters(text)
    TO llm_usage_app;
GRANT EXECUTE ON FUNCTION llm_usage._quota_counters(text) TO llm_usage_app, llm_usage_reader;
-- an admin's correction through the view
GRANT EXECUTE ON FUNCTION llm_usage._shm_usable(text), llm_usage._shm_set_counter(text, text, text, timestamptz, numeric),
                          llm_usage._quota_counters_update()
    TO llm_usage_admin;
GRANT EXECUTE ON FUNCTION llm_usage.save_quota_counters() TO llm_usage_admin;
GRANT SELECT ON llm_usage.quota_counters TO llm_usage_app, llm_usage_reader;
GRANT UPDATE ON llm_usage.quota_counters TO llm_usage_admin;
