/*
 * src/sql/quotas.sql — quotas: limits in force, periods, check-and-consume
 *
 * enforce_quota() and enforce_quotas() are C (src/quota.c) and count in
 * shared memory (src/quota_shmem.c); the SQL here is the table path
 * (_consume_table) for a server without the library preloaded or tenants
 * beyond llm_usage.quota_max_tenants, the SQL enforce_quota that the C one
 * falls back to for bad input (_enforce_quota_sql), the aggregated audit of
 * denials, the live counters view, the queries that fill the per-session
 * caches and the helpers both paths share.
 */

------------------------------------------------------------------------
-- Quota types, periods and the limits in force
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._check_quota_type(p_type text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_type IS NULL THEN
        RAISE EXCEPTION 'quota_type must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM llm_usage.quota_types WHERE quota_type = p_type) THEN
        RAISE EXCEPTION 'unknown quota type "%"', p_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Quota types are: ' || (SELECT string_agg(quota_type, ', ' ORDER BY quota_type) FROM llm_usage.quota_types) || '.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_quota_type(text) IS 'Internal: raise 22004/22023 unless the quota type is known.';

CREATE OR REPLACE FUNCTION llm_usage._check_period(p_period text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_period IS NULL THEN
        RAISE EXCEPTION 'period must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_period NOT IN ('minute', 'hour', 'day', 'month') THEN
        RAISE EXCEPTION 'unknown quota period "%"', p_period
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Quota periods are: minute, hour, day, month.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_period(text) IS 'Internal: raise 22004/22023 unless the quota period is minute, hour, day or month.';

/* _period_bounds(period, at, tz): src/sql/periods.sql */

CREATE OR REPLACE FUNCTION llm_usage._remaining(p_limit numeric, p_used numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_limit IS NOT NULL THEN greatest(p_limit - p_used, 0) END
$$;
COMMENT ON FUNCTION llm_usage._remaining(numeric, numeric) IS 'Internal: what is left of a limit (never negative); NULL for an unlimited quota.';

CREATE OR REPLACE FUNCTION llm_usage._effective_quotas(p_tenant text, p_plan text)
RETURNS TABLE (quota_type text, period text, quota_limit numeric, source text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(o.quota_type, p.quota_type),
           coalesce(o.period, p.period),
           CASE WHEN o.tenant_id IS NOT NULL THEN o.quota_limit ELSE p.quota_limit END,
           CASE WHEN o.tenant_id IS NOT NULL THEN 'override' ELSE 'plan' END
      FROM (SELECT * FROM llm_usage.plan_quotas WHERE plan = p_plan) p
      FULL JOIN (SELECT * FROM llm_usage.tenant_quota_overrides WHERE tenant_id = p_tenant) o
        ON o.quota_type = p.quota_type AND o.period = p.period
$$;
COMMENT ON FUNCTION llm_usage._effective_quotas(text, text) IS
'Internal: the quotas in force for a tenant: its plan''s, replaced or extended by its overrides.';

------------------------------------------------------------------------
-- The table path
------------------------------------------------------------------------

/*
 * Denials are audited aggregated: a tenant's denied calls collect in one
 * pending window (shared memory for tenants counted there, kept by
 * src/quota.c; table quota_denials_pending for the table path), written as
 * one quota_exceeded audit event when a denial comes in a later minute, or
 * by _write_quota_denials() (check_alerts(), the worker's maintenance,
 * flush_quota_denials()).  The event's details: denied_calls, first_at,
 * last_at, roles (the first four roles denied; "..." when there were more)
 * and denied, one element per quota that denied (quota_type, period,
 * denials, and the last denial's quota_limit, used, requested,
 * period_start).
 */
CREATE OR REPLACE FUNCTION llm_usage._write_quota_denials(p_tenant text DEFAULT NULL, p_closed_only boolean DEFAULT false)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    WITH table_windows AS (
        DELETE FROM llm_usage.quota_denials_pending p
         WHERE (p_tenant IS NULL OR p.tenant_id = p_tenant)
           AND (NOT p_closed_only OR date_trunc('minute', p.first_at) < date_trunc('minute', clock_timestamp()))
        RETURNING p.*),
    windows AS (
        SELECT d.tenant_id, d.first_at, d.last_at, d.calls, d.roles,
               jsonb_agg(jsonb_build_object('quota_type', d.quota_type, 'period', d.period, 'denials', d.denials,
                                            'quota_limit', d.quota_limit, 'used', d.used, 'requested', d.requested,
                                            'period_start', d.period_start)
                         ORDER BY d.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], d.period)) AS denied
          FROM llm_usage._shm_take_denials(p_tenant, p_closed_only) d
         GROUP BY d.tenant_id, d.first_at, d.last_at, d.calls, d.roles
        UNION ALL
        SELECT w.tenant_id, w.first_at, w.last_at, w.calls, w.roles,
               (SELECT jsonb_agg(e.value ORDER BY e.value->>'quota_type',
                                 array_position(ARRAY['minute', 'hour', 'day', 'month'], e.value->>'period'))
                  FROM jsonb_each(w.denied) e)
          FROM table_windows w)
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, result, role_name, details)
    SELECT w.tenant_id, 'quota', 'quota_exceeded', 'denied', w.roles[1],
           jsonb_build_object('denied_calls', w.calls, 'first_at', w.first_at, 'last_at', w.last_at,
                              'roles', to_jsonb(w.roles), 'denied', w.denied)
      FROM windows w
     ORDER BY w.first_at, w.tenant_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._write_quota_denials(text, boolean) IS
'Internal: writes pending denial windows (of one tenant, or all of this database; only those begun in an earlier minute if p_closed_only) as quota_exceeded audit events, one per tenant and window; returns how many.';

/* _audit_quota_denial(tenant, checks): a denied call of the table path joins the tenant's pending window */
CREATE OR REPLACE FUNCTION llm_usage._audit_quota_denial(p_tenant text, p_checks llm_usage._quota_check[])
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now    timestamptz := clock_timestamp();
    v_role   text := llm_usage._caller()::regrole::text;
    v_denied jsonb;
BEGIN
    IF coalesce(current_setting('llm_usage.audit_quota_denials', true), 'on') <> 'on' THEN
        RETURN;
    END IF;
    SELECT jsonb_object_agg(r.quota_type || '/' || r.period,
                            jsonb_build_object('quota_type', r.quota_type, 'period', r.period, 'denials', 1,
                                               'quota_limit', r.quota_limit, 'used', r.used,
                                               'requested', r.requested, 'period_start', r.period_start))
      INTO v_denied
      FROM unnest(p_checks) r
     WHERE NOT r.fits;
    IF v_denied IS NULL THEN
        RETURN;
    END IF;
    -- a window begun in an earlier minute is written first
    PERFORM llm_usage._write_quota_denials(p_tenant, true);
    INSERT INTO llm_usage.quota_denials_pending AS p (tenant_id, first_at, last_at, calls, roles, denied)
    VALUES (p_tenant, v_now, v_now, 1, ARRAY[v_role], v_denied)
    ON CONFLICT (tenant_id) DO UPDATE
       SET last_at = greatest(p.last_at, EXCLUDED.last_at),
           calls = p.calls + 1,
           roles = CASE WHEN v_role = ANY (p.roles) THEN p.roles
                        WHEN cardinality(array_remove(p.roles, '...')) >= 4 THEN array_remove(p.roles, '...') || '...'::text
                        ELSE p.roles || v_role END,
           denied = (SELECT jsonb_object_agg(coalesce(n.key, o.key),
                                             CASE WHEN n.key IS NULL THEN o.value
                                                  WHEN o.key IS NULL THEN n.value
                                                  ELSE n.value || jsonb_build_object('denials', (o.value->>'denials')::bigint + 1) END)
                       FROM jsonb_each(p.denied) o
                       FULL JOIN jsonb_each(EXCLUDED.denied) n ON n.key = o.key);
END
$$;
COMMENT ON FUNCTION llm_usage._audit_quota_denial(text, llm_usage._quota_check[]) IS
'Internal: adds a denied call of the table path to the tenant''s pending denial window (quota_denials_pending), writing an earlier minute''s window first; nothing if llm_usage.audit_quota_denials is off.';

/* _check_quota_args(types, amounts): what _consume_table and _shm_consume rely on */
CREATE OR REPLACE FUNCTION llm_usage._check_quota_args(p_types text[], p_amounts numeric[])
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF coalesce(cardinality(p_types), 0) <> coalesce(cardinality(p_amounts), 0) THEN
        RAISE EXCEPTION 'quota_types and amounts differ in length'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- in order, as _shm_consume checks them
    FOR i IN 1..coalesce(cardinality(p_types), 0) LOOP
        IF p_types[i] IS NULL THEN
            RAISE EXCEPTION 'quota_type must not be NULL'
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM llm_usage.quota_types q WHERE q.quota_type = p_types[i]) THEN
            RAISE EXCEPTION 'unknown quota type "%"', p_types[i]
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_types[i] = ANY (p_types[1:i - 1]) THEN
            RAISE EXCEPTION 'quota type "%" is given more than once', p_types[i]
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Give each quota type once, with the sum of its amounts.';
        END IF;
        IF p_amounts[i] IS NULL THEN
            RAISE EXCEPTION 'amount for "%" must not be NULL', p_types[i]
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
    END LOOP;
END
$$;
COMMENT ON FUNCTION llm_usage._check_quota_args(text[], numeric[]) IS
'Internal: raise 22004/22023 unless there are as many amounts as quota types, each type known, not NULL and given once, each amount not NULL (what _shm_consume checks, in the same order).';

CREATE OR REPLACE FUNCTION llm_usage._consume_table(t llm_usage.tenants, p_types text[], p_amounts numeric[],
                                                    p_request_id text DEFAULT NULL)
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
    PERFORM llm_usage._check_quota_args(p_types, p_amounts);
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

    -- shared memory had no room when this call began; if it has now, the
    -- tenant's entry was taken (its table counters, locked here, imported
    -- once this transaction ends) and the consumption goes there
    IF llm_usage._shm_usable(t.tenant_id) THEN
        RETURN QUERY SELECT * FROM llm_usage._shm_consume(t.tenant_id, p_types, p_amounts, p_request_id);
        RETURN;
    END IF;

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
        IF p_request_id IS NOT NULL THEN
            -- the reservation of the request (track_usage settles it); an
            -- expired one stays counted and a new one starts
            DELETE FROM llm_usage.quota_reservations x
             WHERE x.tenant_id = t.tenant_id AND x.expires_at <= v_now;
            INSERT INTO llm_usage.quota_reservations AS x (tenant_id, request_id, quota_type, period, period_start, amount, expires_at)
            SELECT t.tenant_id, p_request_id, r.quota_type, r.period, r.period_start, r.requested, v_now + llm_usage._reservation_ttl()
              FROM unnest(v_chk) r
            ON CONFLICT (tenant_id, request_id, quota_type, period) DO UPDATE
               SET amount = CASE WHEN x.period_start = EXCLUDED.period_start THEN x.amount + EXCLUDED.amount ELSE EXCLUDED.amount END,
                   period_start = EXCLUDED.period_start;
            UPDATE llm_usage.quota_reservations x SET expires_at = v_now + llm_usage._reservation_ttl()
             WHERE x.tenant_id = t.tenant_id AND x.request_id = p_request_id;
        END IF;
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
COMMENT ON FUNCTION llm_usage._consume_table(llm_usage.tenants, text[], numeric[], text) IS
'Internal: check-and-consume in llm_usage.quota_counters_table, row locks in a global order (the path without shared memory); with a request id what is counted is that request''s reservation (quota_reservations); a denial joins the tenant''s pending denial window.';

CREATE OR REPLACE FUNCTION llm_usage._reservation_ttl()
RETURNS interval
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- shown with its unit ('15min', '1s'); a bare number is seconds
    SELECT CASE WHEN v ~ '^[0-9]+$' THEN v || 's' ELSE v END::interval
      FROM coalesce(nullif(current_setting('llm_usage.reservation_ttl', true), ''), '900') v
$$;
COMMENT ON FUNCTION llm_usage._reservation_ttl() IS 'Internal: llm_usage.reservation_ttl (default 15 minutes) as an interval.';

/*
 * Settlement (README "Reserve, then settle"): track_usage() of a call
 * takes its request's reservation out of the counters (unless it expired:
 * then what it counted stays) and counts what the call used -- 1 api call,
 * its tokens, its cost, 1 chat message or 1 embedding by its event type --
 * in the period of each quota in force that occurred_at falls in (nothing
 * when that period is over), with no limit check.  In shared memory at
 * commit (src/quota.c); in the table within the tracking transaction.
 */
CREATE OR REPLACE FUNCTION llm_usage._settle_table(t llm_usage.tenants, p_request_id text, p_tokens bigint, p_cost numeric,
                                                   p_counts_as text, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now timestamptz := clock_timestamp();
BEGIN
    -- every counter this settles made first, holding no counter lock (a
    -- row another transaction is making is waited for here), then all of
    -- the tenant's counters locked in the global order of _consume_table:
    -- no row is locked out of that order below
    INSERT INTO llm_usage.quota_counters_table (tenant_id, quota_type, period, period_start, used)
    SELECT t.tenant_id, q.quota_type, q.period, b.period_start, 0
      FROM llm_usage._effective_quotas(t.tenant_id, t.plan) q
     CROSS JOIN LATERAL llm_usage._period_bounds(q.period, p_at, t.timezone) b
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM llm_usage.quota_counters_table c
      WHERE c.tenant_id = t.tenant_id
      ORDER BY c.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], c.period)
        FOR UPDATE;
    IF p_request_id IS NOT NULL THEN
        WITH gone AS (
            DELETE FROM llm_usage.quota_reservations x
             WHERE x.tenant_id = t.tenant_id AND x.request_id = p_request_id
            RETURNING x.*)
        UPDATE llm_usage.quota_counters_table c
           SET used = greatest(c.used - g.amount, 0), updated_at = v_now
          FROM gone g
         WHERE g.expires_at > v_now AND c.tenant_id = t.tenant_id AND c.quota_type = g.quota_type
           AND c.period = g.period AND c.period_start = g.period_start;
    END IF;
    INSERT INTO llm_usage.quota_counters_table AS c (tenant_id, quota_type, period, period_start, used, updated_at)
    SELECT t.tenant_id, q.quota_type, q.period, b.period_start, a.amount, v_now
      FROM llm_usage._effective_quotas(t.tenant_id, t.plan) q
      -- the cost in millionths of a dollar, rounded up, as shared memory counts it
      JOIN (VALUES ('api_calls', 1::numeric), ('tokens', p_tokens::numeric), ('cost_usd', ceil(coalesce(p_cost, 0) * 1000000) / 1000000),
                   ('chat_messages', CASE WHEN p_counts_as = 'chat_messages' THEN 1 ELSE 0 END::numeric),
                   ('embeddings', CASE WHEN p_counts_as = 'embeddings' THEN 1 ELSE 0 END::numeric)) a(quota_type, amount)
        ON a.quota_type = q.quota_type
     CROSS JOIN LATERAL llm_usage._period_bounds(q.period, p_at, t.timezone) b
     WHERE a.amount > 0
    ON CONFLICT (tenant_id, quota_type, period) DO UPDATE
       SET used = CASE WHEN c.period_start = EXCLUDED.period_start THEN c.used + EXCLUDED.used
                       WHEN c.period_start < EXCLUDED.period_start THEN EXCLUDED.used
                       ELSE c.used END,
           period_start = greatest(c.period_start, EXCLUDED.period_start),
           updated_at = EXCLUDED.updated_at;
END
$$;
COMMENT ON FUNCTION llm_usage._settle_table(llm_usage.tenants, text, bigint, numeric, text, timestamptz) IS
'Internal: settles a tracked call in llm_usage.quota_counters_table (the path without shared memory), within the tracking transaction: releases the request''s reservation unless it expired, counts the call''s use in the periods occurred_at falls in.';

CREATE OR REPLACE FUNCTION llm_usage._settle(t llm_usage.tenants, p_request_id text, p_tokens bigint, p_cost numeric,
                                             p_counts_as text, p_at timestamptz)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT llm_usage._shm_settle(t.tenant_id, p_request_id, p_tokens, p_cost, p_counts_as, p_at) THEN
        PERFORM llm_usage._settle_table(t, p_request_id, p_tokens, p_cost, p_counts_as, p_at);
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._settle(llm_usage.tenants, text, bigint, numeric, text, timestamptz) IS
'Internal: settles a tracked call: in shared memory at commit when the tenant is counted there, else in the table now.';

CREATE OR REPLACE FUNCTION llm_usage._shm_settle(tenant_id text, request_id text, tokens bigint, cost_usd numeric,
                                                 counts_as text, occurred_at timestamptz)
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_settle';
COMMENT ON FUNCTION llm_usage._shm_settle(text, text, bigint, numeric, text, timestamptz) IS
'Internal: settles a tracked call in shared memory when the tracking transaction commits; false (nothing done) when the tenant is not counted there.';

------------------------------------------------------------------------
-- Shared-memory counters (C) and the per-session limit cache
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._shm_usable(tenant_id text)
RETURNS boolean
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_shm_usable';
COMMENT ON FUNCTION llm_usage._shm_usable(text) IS
'Internal: whether the tenant''s quotas are counted in shared memory (library preloaded, room in llm_usage.quota_max_tenants).';

CREATE OR REPLACE FUNCTION llm_usage._shm_consume(tenant_id text, quota_types text[], amounts numeric[],
                                                  request_id text DEFAULT NULL)
RETURNS SETOF llm_usage._quota_check
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_consume';
COMMENT ON FUNCTION llm_usage._shm_consume(text, text[], numeric[], text) IS
'Internal: atomic all-or-nothing check-and-consume in shared memory, under the tenant''s spinlock; with a request id what is counted is that request''s reservation; a denial joins the tenant''s pending denial window.  Each quota type at most once.';

CREATE OR REPLACE FUNCTION llm_usage._shm_take_denials(p_tenant text, p_closed_only boolean)
RETURNS TABLE (tenant_id text, first_at timestamptz, last_at timestamptz, calls bigint, roles text[],
               quota_type text, period text, quota_limit numeric, used numeric, requested numeric,
               period_start timestamptz, denials bigint)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_take_denials';
COMMENT ON FUNCTION llm_usage._shm_take_denials(text, boolean) IS
'Internal: takes the pending denial windows of this database''s tenants from shared memory, one row per quota denied; given back if the transaction aborts.  For _write_quota_denials().';

CREATE OR REPLACE FUNCTION llm_usage._shm_reclaim(p_idle interval DEFAULT '10 minutes')
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_reclaim';
COMMENT ON FUNCTION llm_usage._shm_reclaim(interval) IS
'Internal (worker): gives back the shared quota entries of dropped databases, of this database''s dropped extensions and of its deleted tenants (unused for p_idle); returns how many.';

CREATE OR REPLACE FUNCTION llm_usage._session_cache_stats(OUT directory_loads bigint, OUT tenant_reads bigint,
                                                          OUT plan_loads bigint, OUT resets bigint, OUT tenants bigint,
                                                          OUT merges bigint)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_session_cache_stats';
COMMENT ON FUNCTION llm_usage._session_cache_stats() IS
'Internal: what this session read into its configuration caches since it started (full directory loads, single tenants, plan loads, full resets), the tenants it caches now, and how many times a tenant''s quotas were merged from its plan and overrides; for tests and diagnosis.';

CREATE OR REPLACE FUNCTION llm_usage._shm_status(OUT entries integer, OUT max_entries integer, OUT this_database integer)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_status';
COMMENT ON FUNCTION llm_usage._shm_status() IS
'Internal: shared quota entries in use (all databases), llm_usage.quota_max_tenants, and entries of this database.';

CREATE OR REPLACE FUNCTION llm_usage._shm_counters(tenant_id text DEFAULT NULL)
RETURNS TABLE (tenant_id text, quota_type text, period text, period_start timestamptz, used numeric, updated_at timestamptz)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_counters';
COMMENT ON FUNCTION llm_usage._shm_counters(text) IS
'Internal: the shared-memory counters of this database (of one tenant if given), unfiltered.';

CREATE OR REPLACE FUNCTION llm_usage._shm_set_counter(tenant_id text, quota_type text, period text, period_start timestamptz, used numeric)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_set_counter';
COMMENT ON FUNCTION llm_usage._shm_set_counter(text, text, text, timestamptz, numeric) IS
'Internal: set one shared-memory counter (an admin''s UPDATE of llm_usage.quota_counters).';

CREATE OR REPLACE FUNCTION llm_usage._quota_config_changed()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'llm_usage_quota_config_changed';
COMMENT ON FUNCTION llm_usage._quota_config_changed() IS
'Internal: trigger on the tables the configuration comes from; every session reads again what changed (a tenant, the plans, the prices) once the transaction commits, and a deleted tenant''s shared quota entry is reclaimed.';

-- a change to a tenant, override or grant (row triggers: which tenant), to
-- a plan or plan quota (the plans), reaches every session's caches at
-- commit (prices: tracking.sql); TRUNCATE of a tenant table, everything
CREATE OR REPLACE TRIGGER quota_config_changed AFTER INSERT OR UPDATE OR DELETE ON llm_usage.tenants
    FOR EACH ROW EXECUTE FUNCTION llm_usage._quota_config_changed();
CREATE OR REPLACE TRIGGER quota_config_truncated AFTER TRUNCATE ON llm_usage.tenants
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._quota_config_changed();
CREATE OR REPLACE TRIGGER quota_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON llm_usage.plans
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._quota_config_changed();
CREATE OR REPLACE TRIGGER quota_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON llm_usage.plan_quotas
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._quota_config_changed();
CREATE OR REPLACE TRIGGER quota_config_changed AFTER INSERT OR UPDATE OR DELETE ON llm_usage.tenant_quota_overrides
    FOR EACH ROW EXECUTE FUNCTION llm_usage._quota_config_changed();
CREATE OR REPLACE TRIGGER quota_config_truncated AFTER TRUNCATE ON llm_usage.tenant_quota_overrides
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._quota_config_changed();
CREATE OR REPLACE TRIGGER quota_config_changed AFTER INSERT OR UPDATE OR DELETE ON llm_usage.tenant_access
    FOR EACH ROW EXECUTE FUNCTION llm_usage._quota_config_changed();
CREATE OR REPLACE TRIGGER quota_config_truncated AFTER TRUNCATE ON llm_usage.tenant_access
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._quota_config_changed();

/*
 * _quota_configs(tenant, max_rows): what the sessions cache about tenants
 * (src/session_cache.c): for the tenant given, if the caller may act on
 * it, or else for up to max_rows tenants the caller may act on, the time
 * zone, the plan and the tenant's own overrides (the plans' quotas come
 * from _plan_quotas()).
 */
CREATE OR REPLACE FUNCTION llm_usage._quota_configs(p_tenant text, p_max_rows integer)
RETURNS TABLE (tenant_id text, timezone text, plan text, quota_types text[], periods text[], limits numeric[],
               prepaid boolean)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage._quota_configs(text, integer) IS
'Internal: time zone, plan and overrides of a tenant the caller may act on (or of up to p_max_rows of them), for the per-session caches of enforce_quota() and track_usage().';

CREATE OR REPLACE FUNCTION llm_usage._quota_configs_impl(p_tenant text, p_max_rows integer)
RETURNS TABLE (tenant_id text, timezone text, plan text, quota_types text[], periods text[], limits numeric[],
               prepaid boolean)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH visible AS MATERIALIZED (
        SELECT t.* FROM llm_usage.tenants t
         WHERE p_tenant IS NOT NULL AND t.tenant_id = p_tenant
           AND ((SELECT llm_usage._is_admin())
                OR EXISTS (SELECT 1 FROM llm_usage.tenant_access a JOIN pg_catalog.pg_roles r ON r.oid = a.role_name
                            WHERE a.tenant_id = t.tenant_id
                              AND pg_catalog.pg_has_role(llm_usage._caller(), r.oid, 'USAGE')))
        UNION ALL
        (SELECT t.* FROM llm_usage.tenants t
          WHERE p_tenant IS NULL
            AND ((SELECT llm_usage._is_admin()) OR t.tenant_id IN (SELECT unnest(llm_usage._my_tenants())))
          ORDER BY t.tenant_id
          LIMIT p_max_rows))
    SELECT v.tenant_id, v.timezone, v.plan,
           coalesce(array_agg(o.quota_type ORDER BY o.quota_type, o.period) FILTER (WHERE o.quota_type IS NOT NULL), '{}'),
           coalesce(array_agg(o.period ORDER BY o.quota_type, o.period) FILTER (WHERE o.quota_type IS NOT NULL), '{}'),
           coalesce(array_agg(o.quota_limit ORDER BY o.quota_type, o.period) FILTER (WHERE o.quota_type IS NOT NULL), '{}'),
           v.prepaid
      FROM visible v
      LEFT JOIN llm_usage.tenant_quota_overrides o ON o.tenant_id = v.tenant_id
     GROUP BY v.tenant_id, v.timezone, v.plan, v.prepaid
$$;
COMMENT ON FUNCTION llm_usage._quota_configs_impl(text, integer) IS
'Internal: the body of llm_usage._quota_configs(), run as the owner by its entry point, which records the caller (src/caller.c).';

/* _plan_quotas(): every plan's quotas, cached by the sessions apart from the tenants */
CREATE OR REPLACE FUNCTION llm_usage._plan_quotas()
RETURNS TABLE (plan text, quota_types text[], periods text[], limits numeric[])
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p.plan,
           coalesce(array_agg(q.quota_type ORDER BY q.quota_type, q.period) FILTER (WHERE q.quota_type IS NOT NULL), '{}'),
           coalesce(array_agg(q.period ORDER BY q.quota_type, q.period) FILTER (WHERE q.quota_type IS NOT NULL), '{}'),
           coalesce(array_agg(q.quota_limit ORDER BY q.quota_type, q.period) FILTER (WHERE q.quota_type IS NOT NULL), '{}')
      FROM llm_usage.plans p
      LEFT JOIN llm_usage.plan_quotas q ON q.plan = p.plan
     GROUP BY p.plan
$$;
COMMENT ON FUNCTION llm_usage._plan_quotas() IS
'Internal: the quotas of every plan (read with the caller''s rights), for the per-session caches of enforce_quota() and track_usage().';

/* _quota_table_counters(tenant): the table's counters of a tenant, carried into a new shared entry */
CREATE OR REPLACE FUNCTION llm_usage._quota_table_counters(p_tenant text,
                                                           OUT counter_types text[], OUT counter_periods text[], OUT counter_starts timestamptz[], OUT counter_used numeric[])
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage._quota_table_counters(text) IS
'Internal: a tenant''s counters in llm_usage.quota_counters_table, locked, added to its shared-memory entry when that is created (so counting carries on across the upgrade, a restore, and a time without room in shared memory).';

CREATE OR REPLACE FUNCTION llm_usage._quota_table_counters_impl(p_tenant text,
                                                                OUT counter_types text[], OUT counter_periods text[], OUT counter_starts timestamptz[], OUT counter_used numeric[])
LANGUAGE sql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT array_agg(c.quota_type), array_agg(c.period), array_agg(c.period_start), array_agg(c.used)
      FROM (SELECT x.quota_type, x.period, x.period_start, x.used
              FROM llm_usage.quota_counters_table x
             WHERE x.tenant_id = p_tenant COLLATE pg_catalog."default" AND llm_usage._can_access(p_tenant)
               FOR UPDATE) c
$$;
COMMENT ON FUNCTION llm_usage._quota_table_counters_impl(text) IS
'Internal: the body of llm_usage._quota_table_counters(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * _quota_counters(tenant): the live counters the caller may see: from
 * shared memory when in use, else (or for tenants without a shared
 * entry) from the table.
 */
CREATE OR REPLACE FUNCTION llm_usage._quota_counters(p_tenant text DEFAULT NULL)
RETURNS TABLE (tenant_id text, quota_type text, period text, period_start timestamptz, used numeric, updated_at timestamptz)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage._quota_counters(text) IS
'Internal: the live quota counters (shared memory, else table) of the tenants the caller may see.';

CREATE OR REPLACE FUNCTION llm_usage._quota_counters_impl(p_tenant text DEFAULT NULL)
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
             WHERE (p_tenant IS NULL OR x.tenant_id = p_tenant COLLATE pg_catalog."default")
               AND NOT EXISTS (SELECT 1 FROM shm WHERE shm.tenant_id = x.tenant_id)) c
     WHERE (SELECT llm_usage._is_admin()) OR c.tenant_id IN (SELECT unnest(llm_usage._my_tenants()))
$$;
COMMENT ON FUNCTION llm_usage._quota_counters_impl(text) IS
'Internal: the body of llm_usage._quota_counters(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE VIEW llm_usage.quota_counters WITH (security_barrier) AS
    SELECT tenant_id, quota_type, period, period_start, used, updated_at
      FROM llm_usage._quota_counters();
COMMENT ON VIEW llm_usage.quota_counters IS
'Consumption in the current period of each quota, live: one row per tenant, type and period (only the caller''s tenants for non-admins).  An admin may UPDATE used or period_start to correct a counter.';

CREATE OR REPLACE FUNCTION llm_usage._quota_counters_update()
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

CREATE OR REPLACE TRIGGER quota_counters_update INSTEAD OF UPDATE ON llm_usage.quota_counters
    FOR EACH ROW EXECUTE FUNCTION llm_usage._quota_counters_update();

------------------------------------------------------------------------
-- Consuming: shared memory when in use, else the table
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._consume(t llm_usage.tenants, p_types text[], p_amounts numeric[],
                                              p_request_id text DEFAULT NULL)
RETURNS SETOF llm_usage._quota_check
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT llm_usage._shm_usable(t.tenant_id) THEN
        RETURN QUERY SELECT * FROM llm_usage._consume_table(t, p_types, p_amounts, p_request_id);
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM llm_usage._shm_consume(t.tenant_id, p_types, p_amounts, p_request_id);
END
$$;
COMMENT ON FUNCTION llm_usage._consume(llm_usage.tenants, text[], numeric[], text) IS
'Internal: atomic all-or-nothing check-and-consume of the quotas in force for some types, in shared memory when in use (else the table), as the reservation of a request when one is given; a denial joins the tenant''s pending denial window.';

CREATE OR REPLACE FUNCTION llm_usage._enforce_quota_sql(tenant_id text, quota_type text, amount numeric DEFAULT 1,
                                                        request_id text DEFAULT NULL)
RETURNS TABLE (allowed boolean, quota_limit numeric, used numeric, remaining numeric, resets_at timestamptz)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage._enforce_quota_sql(text, text, numeric, text) IS
'Internal: enforce_quota() in SQL; the C enforce_quota() hands it bad arguments and the path without shared memory.';

CREATE OR REPLACE FUNCTION llm_usage._enforce_quota_sql_impl(tenant_id text, quota_type text, amount numeric DEFAULT 1,
                                                             request_id text DEFAULT NULL)
RETURNS TABLE (allowed boolean, quota_limit numeric, used numeric, remaining numeric, resets_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t     llm_usage.tenants := llm_usage._tenant($1);
    v_res llm_usage._quota_check[];
    v_ok  boolean;
    b     llm_usage._quota_check;
BEGIN
    IF $2 = 'credits' THEN
        -- prepaid credits: admitted against the balance (src/sql/credits.sql)
        PERFORM llm_usage._check_amount($3, 'amount', true);
        IF $4 IS NOT NULL THEN
            PERFORM llm_usage._check_text($4, 'request_id', 255);
        END IF;
        RETURN QUERY SELECT * FROM llm_usage._enforce_credits(t, $3, $4);
        RETURN;
    END IF;
    PERFORM llm_usage._check_quota_type($2);
    PERFORM llm_usage._check_amount($3, 'amount', true);
    IF $4 IS NOT NULL THEN
        PERFORM llm_usage._check_text($4, 'request_id', 255);
    END IF;

    SELECT array_agg(c), bool_and(c.fits) INTO v_res, v_ok
      FROM llm_usage._consume(t, ARRAY[$2], ARRAY[$3], $4) c;
    IF v_res IS NULL THEN
        RETURN QUERY SELECT true, NULL::numeric, NULL::numeric, NULL::numeric, NULL::timestamptz;
        RETURN;
    END IF;
    -- the binding quota: the one that denied, else the one with least left
    SELECT r.* INTO b
      FROM unnest(v_res) r
     ORDER BY r.fits, r.quota_limit - r.used NULLS LAST,
              array_position(ARRAY['minute', 'hour', 'day', 'month'], r.period)
     LIMIT 1;
    RETURN QUERY SELECT v_ok, b.quota_limit, b.used, llm_usage._remaining(b.quota_limit, b.used), b.period_end;
END
$$;
COMMENT ON FUNCTION llm_usage._enforce_quota_sql_impl(text, text, numeric, text) IS
'Internal: the body of llm_usage._enforce_quota_sql(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.enforce_quota(tenant_id text, quota_type text, amount numeric DEFAULT 1,
                                                   request_id text DEFAULT NULL)
RETURNS TABLE (allowed boolean, quota_limit numeric, used numeric, remaining numeric, resets_at timestamptz)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_enforce_quota';
COMMENT ON FUNCTION llm_usage.enforce_quota(text, text, numeric, text) IS
'Atomic check-and-reserve before an LLM call: when allowed, the amount is counted against every period of that quota type; when not, nothing is.  With a request_id the amount is that request''s reservation: track_usage() of the same request_id releases it and counts what the call used instead (unless llm_usage.reservation_ttl passed first: then it stays counted).  Returns the binding quota.  NULL limit = unlimited.  Counted in shared memory when the library is preloaded.';

CREATE OR REPLACE FUNCTION llm_usage.enforce_quotas(tenant_id text, amounts jsonb, request_id text DEFAULT NULL)
RETURNS TABLE (allowed boolean, results jsonb)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.enforce_quotas(text, jsonb, text) IS
'All-or-nothing check-and-reserve over several quota types, e.g. ''{"tokens":500,"api_calls":1}'': either every amount is counted or none is; with a request_id, as that request''s reservation (settled by track_usage(), as for enforce_quota()).  results has the binding quota per type.';

CREATE OR REPLACE FUNCTION llm_usage._enforce_quotas_impl(tenant_id text, amounts jsonb, request_id text DEFAULT NULL)
RETURNS TABLE (allowed boolean, results jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t         llm_usage.tenants := llm_usage._tenant($1);
    p_amounts jsonb := $2;
    v_types   text[];
    v_values  numeric[];
    v_res     llm_usage._quota_check[];
    v_ok      boolean;
    k         text;
    v         jsonb;
BEGIN
    -- it counts, so it writes: not in a read-only transaction (as enforce_quota)
    IF pg_catalog.current_setting('transaction_read_only')::boolean THEN
        RAISE EXCEPTION 'cannot execute enforce_quotas() in a read-only transaction'
            USING ERRCODE = 'read_only_sql_transaction';
    END IF;
    IF p_amounts IS NULL THEN
        RAISE EXCEPTION 'amounts must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF jsonb_typeof(p_amounts) <> 'object' OR p_amounts = '{}' THEN
        RAISE EXCEPTION 'amounts must be a non-empty JSON object of quota type to amount'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example ''{"tokens": 500, "api_calls": 1}''.';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(p_amounts) LOOP
        IF k = 'credits' THEN
            RAISE EXCEPTION 'credits are checked with enforce_quota(), not enforce_quotas()'
                USING ERRCODE = 'feature_not_supported',
                      HINT = 'Call llm_usage.enforce_quota(tenant_id, ''credits'', estimated_usd, request_id) before or after enforce_quotas().';
        END IF;
        PERFORM llm_usage._check_quota_type(k);
        IF jsonb_typeof(v) <> 'number' THEN
            RAISE EXCEPTION 'amount for "%" must be a JSON number, got %', k, v
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM llm_usage._check_amount(v::text::numeric, 'amount for "' || k || '"', true);
        v_types := v_types || k;
        v_values := v_values || v::text::numeric;
    END LOOP;
    IF $3 IS NOT NULL THEN
        PERFORM llm_usage._check_text($3, 'request_id', 255);
    END IF;

    SELECT array_agg(c), coalesce(bool_and(c.fits), true) INTO v_res, v_ok
      FROM llm_usage._consume(t, v_types, v_values, $3) c;

    RETURN QUERY
    SELECT v_ok,
           jsonb_object_agg(a.quota_type,
               CASE WHEN b.quota_type IS NULL THEN
                   jsonb_build_object('allowed', true, 'requested', a.amount, 'period', NULL,
                                      'quota_limit', NULL, 'used', NULL, 'remaining', NULL, 'resets_at', NULL)
               ELSE
                   jsonb_build_object('allowed', b.all_fit, 'requested', a.amount, 'period', b.period,
                                      'quota_limit', b.quota_limit, 'used', b.used,
                                      'remaining', llm_usage._remaining(b.quota_limit, b.used), 'resets_at', b.period_end)
               END)
      FROM unnest(v_types, v_values) AS a(quota_type, amount)
      LEFT JOIN LATERAL (
            SELECT r.*, bool_and(r.fits) OVER () AS all_fit
              FROM unnest(v_res) r
             WHERE r.quota_type = a.quota_type
             ORDER BY r.fits, r.quota_limit - r.used NULLS LAST,
                      array_position(ARRAY['minute', 'hour', 'day', 'month'], r.period)
             LIMIT 1) b ON true;
END
$$;
COMMENT ON FUNCTION llm_usage._enforce_quotas_impl(text, jsonb, text) IS
'Internal: the body of llm_usage.enforce_quotas(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.quota_status(tenant_id text)
RETURNS TABLE (quota_type text, period text, quota_limit numeric, used numeric, remaining numeric,
               percentage numeric, resets_at timestamptz, source text, plan text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.quota_status(text) IS
'Every quota in force for a tenant with its use in the current period (tenant''s zone), what is left, percent used, when it resets, where the limit comes from (plan or override) and the tenant''s plan.';

CREATE OR REPLACE FUNCTION llm_usage._quota_status_impl(tenant_id text)
RETURNS TABLE (quota_type text, period text, quota_limit numeric, used numeric, remaining numeric,
               percentage numeric, resets_at timestamptz, source text, plan text)
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
           s.period_end, s.source, t.plan
      FROM (SELECT q.quota_type, q.period, q.quota_limit, q.source, b.period_end,
                   coalesce(CASE WHEN c.period_start >= b.period_start THEN c.used END, 0) AS used
              FROM llm_usage._effective_quotas(t.tenant_id, t.plan) q
             CROSS JOIN LATERAL llm_usage._period_bounds(q.period, v_now, t.timezone) b
              LEFT JOIN llm_usage._quota_counters(t.tenant_id) c
                ON c.quota_type = q.quota_type AND c.period = q.period) s
     ORDER BY s.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], s.period);
END
$$;
COMMENT ON FUNCTION llm_usage._quota_status_impl(text) IS
'Internal: the body of llm_usage.quota_status(), run as the owner by its entry point, which records the caller (src/caller.c).';

------------------------------------------------------------------------
-- Per-tenant overrides and the table copy of the counters
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage.set_custom_quota(tenant_id text, quota_type text, quota_limit numeric, period text DEFAULT 'day')
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.set_custom_quota(text, text, numeric, text) IS
'Per-tenant override of the plan''s limit for a quota type and period (default day); NULL = unlimited.  Takes effect on the next call.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._set_custom_quota_impl(tenant_id text, quota_type text, quota_limit numeric, period text DEFAULT 'day')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('set_custom_quota');
    t := llm_usage._tenant($1);
    PERFORM llm_usage._check_quota_type($2);
    IF $3 IS NOT NULL THEN
        PERFORM llm_usage._check_amount($3, 'quota_limit', true);
    END IF;
    PERFORM llm_usage._check_period($4);
    INSERT INTO llm_usage.tenant_quota_overrides AS o (tenant_id, quota_type, period, quota_limit)
    VALUES (t.tenant_id, $2, $4, $3)
    ON CONFLICT (tenant_id, quota_type, period)
    DO UPDATE SET quota_limit = EXCLUDED.quota_limit, updated_at = now();
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'quota', 'set_custom_quota', llm_usage._caller()::regrole::text,
            jsonb_build_object('quota_type', $2, 'period', $4, 'quota_limit', $3));
END
$$;
COMMENT ON FUNCTION llm_usage._set_custom_quota_impl(text, text, numeric, text) IS
'Internal: the body of llm_usage.set_custom_quota(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.clear_custom_quota(tenant_id text, quota_type text, period text DEFAULT 'day')
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.clear_custom_quota(text, text, text) IS
'Removes a per-tenant override so the plan''s limit applies again.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._clear_custom_quota_impl(tenant_id text, quota_type text, period text DEFAULT 'day')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('clear_custom_quota');
    t := llm_usage._tenant($1);
    PERFORM llm_usage._check_quota_type($2);
    PERFORM llm_usage._check_period($3);
    DELETE FROM llm_usage.tenant_quota_overrides o
     WHERE o.tenant_id = t.tenant_id AND o.quota_type = $2 AND o.period = $3;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no custom % quota per %', t.tenant_id, $2, $3
            USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'quota', 'clear_custom_quota', llm_usage._caller()::regrole::text,
            jsonb_build_object('quota_type', $2, 'period', $3));
END
$$;
COMMENT ON FUNCTION llm_usage._clear_custom_quota_impl(text, text, text) IS
'Internal: the body of llm_usage.clear_custom_quota(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.save_quota_counters()
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.save_quota_counters() IS
'Copies the shared-memory quota counters of this database into llm_usage.quota_counters_table (what pg_dump carries); returns the rows changed.  The worker does it every llm_usage.aggregate_interval in llm_usage.database.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._save_quota_counters_impl()
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
COMMENT ON FUNCTION llm_usage._save_quota_counters_impl() IS
'Internal: the body of llm_usage.save_quota_counters(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.flush_quota_denials()
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.flush_quota_denials() IS
'Writes the pending quota denials of this database (aggregated per tenant; written anyway when a denial comes in a later minute, by check_alerts() and by the worker) to the audit log now; returns the events written.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._flush_quota_denials_impl()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM llm_usage._require_admin('flush_quota_denials');
    RETURN llm_usage._write_quota_denials(NULL, false);
END
$$;
COMMENT ON FUNCTION llm_usage._flush_quota_denials_impl() IS
'Internal: the body of llm_usage.flush_quota_denials(), run as the owner by its entry point, which records the caller (src/caller.c).';
