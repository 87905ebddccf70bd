/*
 * src/sql/collection.sql — collection runs, attribution, ingest and reconciliation
 *
 * The worker (src/worker.c, src/collector.c) claims queued runs, fetches
 * each window and ingests its pages here, in one transaction per run;
 * collected rows are attributed to tenants by project, workspace or API
 * key.
 */

------------------------------------------------------------------------
-- Collection runs
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._wake_worker()
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_wake_worker';
COMMENT ON FUNCTION llm_usage._wake_worker() IS 'Internal: wake the collector when the calling transaction commits; whether a collector runs.';

CREATE OR REPLACE FUNCTION llm_usage._wake_worker_for_runs(p_hint text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- After runs were queued: wake the collector, or warn that the runs stay
-- queued (this is not the collector's database; no collector runs).
-- p_hint says where to queue runs instead.
BEGIN
    IF current_database() <> coalesce(current_setting('llm_usage.database', true), 'postgres') THEN
        RAISE WARNING 'the llm_usage collector works in database "%", not in this one; these runs stay queued',
                coalesce(current_setting('llm_usage.database', true), 'postgres')
            USING HINT = p_hint;
    ELSIF NOT llm_usage._wake_worker() THEN
        RAISE WARNING 'the llm_usage collector is not running; the run will start when it does'
            USING HINT = 'Check llm_usage.enabled, llm_usage.database and the server log.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._wake_worker_for_runs(text) IS
'Internal: after runs were queued, wake the collector, or warn that they stay queued (another database than llm_usage.database, or no collector running).';

CREATE OR REPLACE FUNCTION llm_usage._worker_pid()
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_worker_pid';
COMMENT ON FUNCTION llm_usage._worker_pid() IS 'Internal: process id of the collector worker, NULL when none runs.';

CREATE OR REPLACE FUNCTION llm_usage._default_window(p_key llm_usage.provider_key_store, OUT window_from timestamptz, OUT window_to timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The previous full day in llm_usage.timezone, re-fetching the day before
    -- (providers keep filling recent buckets), plus every earlier day not
    -- collected yet, at most 31 days back; a new key starts a week back.
    SELECT (greatest(d.last_day - 30, least(coalesce(p_key.collected_through + 1, d.last_day - 6), d.last_day - 1))
              ::timestamp AT TIME ZONE 'UTC'),
           ((d.last_day + 1)::timestamp AT TIME ZONE 'UTC')
      FROM (SELECT (now() AT TIME ZONE coalesce(current_setting('llm_usage.timezone', true), 'UTC'))::date - 1 AS last_day) d
$$;
COMMENT ON FUNCTION llm_usage._default_window(llm_usage.provider_key_store) IS
'Internal: the window a scheduled run of a key collects (UTC days up to the previous full day in llm_usage.timezone).';

CREATE OR REPLACE FUNCTION llm_usage.collect_now(key_id bigint DEFAULT NULL, from_date date DEFAULT NULL, to_date date DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.collect_now(bigint, date, date) IS
'Queues a collection run now for one key (or every active key) over [from_date, to_date] (UTC days; default: the scheduled window) and wakes the collector at commit; returns the first run id (one run per key, consecutive ids).  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._collect_now_impl(key_id bigint DEFAULT NULL, from_date date DEFAULT NULL, to_date date DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    k       llm_usage.provider_key_store;
    v_first bigint;
    v_id    bigint;
    w       record;
BEGIN
    PERFORM llm_usage._require_admin('collect_now');
    IF $1 IS NOT NULL THEN
        k := llm_usage._key_row($1);
        IF NOT k.is_active THEN
            RAISE EXCEPTION 'provider key % is deactivated', $1
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Reactivate it with llm_usage.rotate_provider_key().';
        END IF;
        IF k.provider = 'custom' THEN
            RAISE EXCEPTION 'provider key % is of provider "custom", which has no usage API to collect from', $1
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF $2 IS NOT NULL AND $3 IS NOT NULL AND $3 < $2 THEN
        RAISE EXCEPTION 'to_date (%) is before from_date (%)', $3, $2
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $3 IS NOT NULL AND $3 > (now() AT TIME ZONE 'UTC')::date THEN
        RAISE EXCEPTION 'to_date (%) is in the future', $3
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $2 IS NOT NULL AND $2 < (now() AT TIME ZONE 'UTC')::date - 366 * 3 THEN
        RAISE EXCEPTION 'from_date (%) is more than three years ago', $2
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    FOR k IN SELECT * FROM llm_usage.provider_key_store s
              WHERE ($1 IS NULL OR s.key_id = $1) AND s.is_active AND s.provider <> 'custom'
              ORDER BY s.key_id
    LOOP
        w := llm_usage._default_window(k);
        INSERT INTO llm_usage.collector_runs (key_id, tenant_id, provider, trigger, window_from, window_to)
        VALUES (k.key_id, k.tenant_id, k.provider, 'manual',
                coalesce($2::timestamp AT TIME ZONE 'UTC', w.window_from),
                coalesce(($3 + 1)::timestamp AT TIME ZONE 'UTC', greatest(w.window_to, ($2 + 1)::timestamp AT TIME ZONE 'UTC')))
        RETURNING run_id INTO v_id;
        v_first := coalesce(v_first, v_id);
    END LOOP;
    IF v_first IS NULL THEN
        RAISE EXCEPTION 'no active provider key to collect'
            USING ERRCODE = 'undefined_object',
                  HINT = 'Store one with llm_usage.add_provider_key().';
    END IF;
    PERFORM llm_usage._wake_worker_for_runs('Store keys and call collect_now() in the database named by llm_usage.database.');
    RETURN v_first;
END
$$;
COMMENT ON FUNCTION llm_usage._collect_now_impl(bigint, date, date) IS
'Internal: the body of llm_usage.collect_now(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage._queue_scheduled_runs()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
    m integer;
BEGIN
    INSERT INTO llm_usage.collector_runs (key_id, tenant_id, provider, trigger, window_from, window_to, requested_by)
    SELECT k.key_id, k.tenant_id, k.provider, 'schedule', w.window_from, w.window_to, 'llm_usage collector'
      FROM llm_usage.provider_key_store k
     CROSS JOIN LATERAL llm_usage._default_window(k) w
     WHERE k.is_active AND k.provider <> 'custom'
       AND NOT EXISTS (SELECT 1 FROM llm_usage.collector_runs r
                        WHERE r.key_id = k.key_id AND r.status IN ('queued', 'running'))
     ORDER BY k.key_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- and one per active custom usage source (src/sql/sources.sql)
    INSERT INTO llm_usage.collector_runs (source_id, tenant_id, provider, trigger, window_from, window_to, requested_by)
    SELECT s.source_id, s.tenant_id, 'custom', 'schedule', w.window_from, w.window_to, 'llm_usage collector'
      FROM llm_usage.usage_source_store s
     CROSS JOIN LATERAL llm_usage._source_window(s.collected_through) w
     WHERE s.is_active
       AND NOT EXISTS (SELECT 1 FROM llm_usage.collector_runs r
                        WHERE r.source_id = s.source_id AND r.status IN ('queued', 'running'))
     ORDER BY s.source_id;
    GET DIAGNOSTICS m = ROW_COUNT;
    RETURN n + m;
END
$$;
COMMENT ON FUNCTION llm_usage._queue_scheduled_runs() IS 'Internal (worker): queue one run per active key and per active custom usage source that has none pending.';

CREATE OR REPLACE FUNCTION llm_usage._claim_next_run()
RETURNS TABLE (run_id bigint, key_id bigint, provider text, window_from timestamptz, window_to timestamptz,
               key_ciphertext bytea, wrapped_dek bytea, master_key_version integer, aad text, source_id bigint)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    r llm_usage.collector_runs;
    k llm_usage.provider_key_store;
    s llm_usage.usage_source_store;
BEGIN
    LOOP
        SELECT * INTO r FROM llm_usage.collector_runs c
         WHERE c.status = 'queued' ORDER BY c.run_id LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        k := NULL;
        IF r.source_id IS NOT NULL THEN
            -- a custom usage source: its secret (if any) is a provider_key_store row
            SELECT * INTO s FROM llm_usage.usage_source_store u WHERE u.source_id = r.source_id;
            IF NOT FOUND OR NOT s.is_active THEN
                UPDATE llm_usage.collector_runs c SET status = 'failed', finished_at = now(),
                       error = 'source deactivated or removed before the run started'
                 WHERE c.run_id = r.run_id;
                CONTINUE;
            END IF;
            IF s.auth <> 'none' THEN
                SELECT * INTO k FROM llm_usage.provider_key_store x WHERE x.key_id = s.secret_key_id;
                IF NOT FOUND OR NOT k.is_active THEN
                    PERFORM llm_usage._finish_run(r.run_id, 'failed', 0, 0, 0,
                                format('the source''s secret (provider key %s) is deactivated or removed', s.secret_key_id));
                    CONTINUE;
                END IF;
                UPDATE llm_usage.provider_key_store x SET last_used_at = now() WHERE x.key_id = k.key_id;
            END IF;
            UPDATE llm_usage.collector_runs c SET status = 'running', started_at = now() WHERE c.run_id = r.run_id;
            RETURN QUERY SELECT r.run_id, k.key_id, 'custom'::text, r.window_from, r.window_to, k.key_ciphertext,
                                k.wrapped_dek, k.master_key_version,
                                CASE WHEN k.key_id IS NOT NULL
                                     THEN llm_usage._key_aad(k.key_id, k.tenant_id, k.provider, k.key_version) END,
                                s.source_id;
            RETURN;
        END IF;
        SELECT * INTO k FROM llm_usage.provider_key_store x WHERE x.key_id = r.key_id;
        IF NOT FOUND OR NOT k.is_active THEN
            UPDATE llm_usage.collector_runs c SET status = 'failed', finished_at = now(),
                   error = 'key deactivated or removed before the run started'
             WHERE c.run_id = r.run_id;
            CONTINUE;
        END IF;
        UPDATE llm_usage.collector_runs c SET status = 'running', started_at = now() WHERE c.run_id = r.run_id;
        UPDATE llm_usage.provider_key_store x SET last_used_at = now() WHERE x.key_id = k.key_id;
        RETURN QUERY SELECT r.run_id, k.key_id, k.provider, r.window_from, r.window_to, k.key_ciphertext,
                            k.wrapped_dek, k.master_key_version,
                            llm_usage._key_aad(k.key_id, k.tenant_id, k.provider, k.key_version), NULL::bigint;
        RETURN;
    END LOOP;
END
$$;
COMMENT ON FUNCTION llm_usage._claim_next_run() IS 'Internal (worker): mark the oldest queued run running and hand over its key''s (or its custom source''s secret''s) ciphertext.';

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
    IF r.source_id IS NOT NULL THEN
        UPDATE llm_usage.usage_source_store
           SET last_synced_at = now(), last_sync_status = p_status, last_error = p_error,
               collected_through = CASE WHEN p_status = 'succeeded'
                                        THEN greatest(collected_through, (r.window_to AT TIME ZONE 'UTC')::date - 1)
                                        ELSE collected_through END
         WHERE source_id = r.source_id;
        IF p_status = 'failed' THEN
            PERFORM llm_usage._raise_alert(r.tenant_id, 'collection_failed', 'error',
                        format('collection of custom source %s failed: %s', r.source_id, p_error),
                        jsonb_build_object('run_id', r.run_id, 'source_id', r.source_id, 'provider', r.provider,
                                           'window_from', r.window_from, 'window_to', r.window_to,
                                           'http_attempts', p_attempts, 'error', p_error),
                        'source ' || r.source_id);
        END IF;
        RETURN;
    END IF;
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
COMMENT ON FUNCTION llm_usage._finish_run(bigint, text, integer, bigint, integer, text) IS
'Internal (worker): record how a run ended; a failure raises a collection_failed alert.';

CREATE OR REPLACE FUNCTION llm_usage._recover_interrupted_runs()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT run_id, pages, http_attempts FROM llm_usage.collector_runs WHERE status = 'running' ORDER BY run_id
    LOOP
        PERFORM llm_usage._finish_run(r.run_id, 'failed', r.pages, 0, r.http_attempts,
                                      'interrupted: the server or the collector stopped during the run; nothing of it was written');
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._recover_interrupted_runs() IS 'Internal (worker, at start): runs a crash left running are failed (their writes were rolled back).';

------------------------------------------------------------------------
-- Attribution of provider usage to tenants
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._attribute(p_provider text, p_key_tenant text, p_project text, p_workspace text,
                                                p_api_key text, OUT tenant_id text, OUT attributed_by text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(a.tenant_id, p_key_tenant), coalesce(a.dimension, 'key')
      FROM (SELECT 1) one
      LEFT JOIN LATERAL (
            SELECT m.tenant_id, m.dimension
              FROM llm_usage.provider_attributions m
             WHERE m.provider = p_provider
               AND ((m.dimension = 'api_key_id' AND m.value = p_api_key)
                 OR (m.dimension = 'project_id' AND m.value = p_project)
                 OR (m.dimension = 'workspace_id' AND m.value = p_workspace))
             ORDER BY array_position(ARRAY['api_key_id', 'project_id', 'workspace_id'], m.dimension)
             LIMIT 1) a ON true
$$;
COMMENT ON FUNCTION llm_usage._attribute(text, text, text, text, text) IS
'Internal: the tenant a collected row belongs to and why (a mapped dimension, or "key": the key''s own tenant).';

CREATE OR REPLACE FUNCTION llm_usage.attribute_provider_usage(provider text, dimension text, value text, tenant_id text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.attribute_provider_usage(text, text, text, text) IS
'Maps a provider project_id, workspace_id or api_key_id to a tenant: usage and costs collected with that value (already or later) belong to it.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._attribute_provider_usage_impl(provider text, dimension text, value text, tenant_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('attribute_provider_usage');
    PERFORM llm_usage._require_arg($1, 'provider');
    IF $1 NOT IN ('openai', 'anthropic') THEN
        RAISE EXCEPTION 'unknown provider "%"', $1
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Providers are: openai, anthropic.';
    END IF;
    PERFORM llm_usage._require_arg($2, 'dimension');
    IF $2 NOT IN ('project_id', 'workspace_id', 'api_key_id') THEN
        RAISE EXCEPTION 'unknown dimension "%"', $2
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Dimensions are: project_id, workspace_id, api_key_id.';
    END IF;
    PERFORM llm_usage._check_text($3, 'value', 200);
    t := llm_usage._tenant($4);
    INSERT INTO llm_usage.provider_attributions AS a (provider, dimension, value, tenant_id)
    VALUES ($1, $2, $3, t.tenant_id)
    ON CONFLICT (provider, dimension, value) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, created_at = now();
    -- re-attribute what was already collected
    UPDATE llm_usage.provider_usage u
       SET (tenant_id, attributed_by) =
           (SELECT x.tenant_id, x.attributed_by
              FROM llm_usage._attribute(u.provider, k.tenant_id, u.project_id, u.workspace_id, u.provider_api_key_id) x)
      FROM llm_usage.provider_key_store k
     WHERE k.key_id = u.key_id AND u.provider = $1
       AND ROW(u.tenant_id, u.attributed_by) IS DISTINCT FROM
           (SELECT ROW(x.tenant_id, x.attributed_by)
              FROM llm_usage._attribute(u.provider, k.tenant_id, u.project_id, u.workspace_id, u.provider_api_key_id) x);
    UPDATE llm_usage.provider_costs c
       SET (tenant_id, attributed_by) =
           (SELECT x.tenant_id, x.attributed_by
              FROM llm_usage._attribute(c.provider, k.tenant_id, c.project_id, c.workspace_id, c.provider_api_key_id) x)
      FROM llm_usage.provider_key_store k
     WHERE k.key_id = c.key_id AND c.provider = $1
       AND ROW(c.tenant_id, c.attributed_by) IS DISTINCT FROM
           (SELECT ROW(x.tenant_id, x.attributed_by)
              FROM llm_usage._attribute(c.provider, k.tenant_id, c.project_id, c.workspace_id, c.provider_api_key_id) x);
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'admin', 'attribute_provider_usage', llm_usage._caller()::regrole::text,
            jsonb_build_object('provider', $1, 'dimension', $2, 'value', $3));
END
$$;
COMMENT ON FUNCTION llm_usage._attribute_provider_usage_impl(text, text, text, text) IS
'Internal: the body of llm_usage.attribute_provider_usage(), run as the owner by its entry point, which records the caller (src/caller.c).';

------------------------------------------------------------------------
-- Ingesting provider pages (called by the collector in its write transaction)
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._ingest_rows(p_run_id bigint, p_endpoint text, p_page jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- p_page is what the collector kept of one provider page after checking it
-- (src/provider.c): {"data": [{"start": <Unix s>, "end": <Unix s>,
-- "results": [{<declared field>: <value>, ...}]}]}, nested fields flattened
-- as "object.key".  Each result is one row; a row this run already wrote
-- (the same natural key twice in a run) fails the run instead of being
-- summed or overwritten.
DECLARE
    r      llm_usage.collector_runs;
    v_kt   text;
    n      integer;
    v_rows integer;
BEGIN
    SELECT * INTO r FROM llm_usage.collector_runs WHERE run_id = p_run_id;
    SELECT tenant_id INTO v_kt FROM llm_usage.provider_key_store WHERE key_id = r.key_id;
    SELECT count(*) INTO v_rows
      FROM jsonb_array_elements(p_page->'data') b CROSS JOIN LATERAL jsonb_array_elements(b->'results') x;

    IF r.provider = 'openai' AND p_endpoint IN ('completions', 'embeddings') THEN
        INSERT INTO llm_usage.provider_usage AS u
            (tenant_id, attributed_by, key_id, run_id, provider, endpoint, bucket_start, bucket_end, model,
             project_id, workspace_id, provider_api_key_id, service_tier, batch, input_tokens,
             cached_input_tokens, cache_write_tokens, output_tokens, requests)
        SELECT a.tenant_id, a.attributed_by, r.key_id, r.run_id, 'openai', p_endpoint,
               to_timestamp((b->>'start')::bigint), to_timestamp((b->>'end')::bigint),
               x->>'model', x->>'project_id', NULL, x->>'api_key_id', x->>'service_tier', (x->>'batch')::boolean,
               coalesce((x->>'input_tokens')::bigint, 0), coalesce((x->>'input_cached_tokens')::bigint, 0),
               coalesce((x->>'input_cache_write_tokens')::bigint, 0), coalesce((x->>'output_tokens')::bigint, 0),
               coalesce((x->>'num_model_requests')::bigint, 0)
          FROM jsonb_array_elements(p_page->'data') b
         CROSS JOIN LATERAL jsonb_array_elements(b->'results') x
         CROSS JOIN LATERAL llm_usage._attribute('openai', v_kt, x->>'project_id', NULL, x->>'api_key_id') a
        ON CONFLICT ON CONSTRAINT provider_usage_natural_key DO UPDATE
           SET tenant_id = EXCLUDED.tenant_id, attributed_by = EXCLUDED.attributed_by, run_id = EXCLUDED.run_id,
               bucket_end = EXCLUDED.bucket_end, input_tokens = EXCLUDED.input_tokens,
               cached_input_tokens = EXCLUDED.cached_input_tokens, cache_write_tokens = EXCLUDED.cache_write_tokens,
               output_tokens = EXCLUDED.output_tokens, requests = EXCLUDED.requests, collected_at = now()
         WHERE u.run_id IS DISTINCT FROM EXCLUDED.run_id;
    ELSIF r.provider = 'anthropic' AND p_endpoint = 'messages' THEN
        INSERT INTO llm_usage.provider_usage AS u
            (tenant_id, attributed_by, key_id, run_id, provider, endpoint, bucket_start, bucket_end, model,
             project_id, workspace_id, provider_api_key_id, service_tier, batch, input_tokens,
             cached_input_tokens, cache_write_tokens, output_tokens, requests, cache_write_1h_tokens)
        SELECT a.tenant_id, a.attributed_by, r.key_id, r.run_id, 'anthropic', 'messages', g.bs, g.be, g.model,
               NULL, g.workspace_id, g.api_key_id, g.service_tier, NULL,
               g.uncached + g.cache_read + g.cache_write, g.cache_read, g.cache_write, g.output, 0, g.cache_write_1h
          FROM (SELECT to_timestamp((b->>'start')::bigint) AS bs, to_timestamp((b->>'end')::bigint) AS be,
                       x->>'model' AS model, x->>'workspace_id' AS workspace_id, x->>'api_key_id' AS api_key_id,
                       x->>'service_tier' AS service_tier,
                       coalesce((x->>'uncached_input_tokens')::bigint, 0) AS uncached,
                       coalesce((x->>'cache_read_input_tokens')::bigint, 0) AS cache_read,
                       coalesce((x->>'cache_creation.ephemeral_5m_input_tokens')::bigint, 0)
                         + coalesce((x->>'cache_creation.ephemeral_1h_input_tokens')::bigint, 0) AS cache_write,
                       coalesce((x->>'cache_creation.ephemeral_1h_input_tokens')::bigint, 0) AS cache_write_1h,
                       coalesce((x->>'output_tokens')::bigint, 0) AS output
                  FROM jsonb_array_elements(p_page->'data') b
                 CROSS JOIN LATERAL jsonb_array_elements(b->'results') x) g
         CROSS JOIN LATERAL llm_usage._attribute('anthropic', v_kt, NULL, g.workspace_id, g.api_key_id) a
        ON CONFLICT ON CONSTRAINT provider_usage_natural_key DO UPDATE
           SET tenant_id = EXCLUDED.tenant_id, attributed_by = EXCLUDED.attributed_by, run_id = EXCLUDED.run_id,
               bucket_end = EXCLUDED.bucket_end, input_tokens = EXCLUDED.input_tokens,
               cached_input_tokens = EXCLUDED.cached_input_tokens, cache_write_tokens = EXCLUDED.cache_write_tokens,
               cache_write_1h_tokens = EXCLUDED.cache_write_1h_tokens,
               output_tokens = EXCLUDED.output_tokens, requests = EXCLUDED.requests, collected_at = now()
         WHERE u.run_id IS DISTINCT FROM EXCLUDED.run_id;
    ELSIF p_endpoint = 'costs' AND r.provider IN ('openai', 'anthropic') THEN
        INSERT INTO llm_usage.provider_costs AS c
            (tenant_id, attributed_by, key_id, run_id, provider, bucket_start, bucket_end, line_item, model,
             project_id, workspace_id, provider_api_key_id, token_type, service_tier, context_window, amount_usd)
        SELECT a.tenant_id, a.attributed_by, r.key_id, r.run_id, r.provider, g.bs, g.be, g.line_item, g.model,
               g.project_id, g.workspace_id, g.api_key_id, g.token_type, g.service_tier, g.context_window, g.amount
          FROM (SELECT to_timestamp((b->>'start')::bigint) AS bs, to_timestamp((b->>'end')::bigint) AS be,
                       CASE r.provider WHEN 'openai' THEN x->>'line_item' ELSE x->>'description' END AS line_item,
                       x->>'model' AS model, x->>'project_id' AS project_id, x->>'workspace_id' AS workspace_id,
                       x->>'api_key_id' AS api_key_id, x->>'token_type' AS token_type,
                       x->>'service_tier' AS service_tier, x->>'context_window' AS context_window,
                       CASE r.provider WHEN 'openai' THEN (x->>'amount.value')::numeric
                                       ELSE (x->>'amount')::numeric * 0.01 END AS amount
                  FROM jsonb_array_elements(p_page->'data') b
                 CROSS JOIN LATERAL jsonb_array_elements(b->'results') x) g
         CROSS JOIN LATERAL llm_usage._attribute(r.provider, v_kt, g.project_id, g.workspace_id, g.api_key_id) a
        ON CONFLICT ON CONSTRAINT provider_costs_natural_key DO UPDATE
           SET tenant_id = EXCLUDED.tenant_id, attributed_by = EXCLUDED.attributed_by, run_id = EXCLUDED.run_id,
               bucket_end = EXCLUDED.bucket_end, amount_usd = EXCLUDED.amount_usd, collected_at = now()
         WHERE c.run_id IS DISTINCT FROM EXCLUDED.run_id;
    ELSE
        RAISE EXCEPTION 'no ingest for % endpoint "%"', r.provider, p_endpoint
            USING ERRCODE = 'feature_not_supported';
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n < v_rows THEN
        RAISE EXCEPTION 'the provider sent % row(s) of % twice within the run', v_rows - n, p_endpoint
            USING ERRCODE = 'cardinality_violation';
    END IF;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._ingest_rows(bigint, text, jsonb) IS
'Internal (worker): upsert the checked rows of one provider page (as kept by the collector) on their natural keys, attributed to tenants; a row the same run already wrote fails the run.  Returns the rows written.';

------------------------------------------------------------------------
-- Schedule
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage.next_collection(schedule text DEFAULT NULL, after timestamptz DEFAULT now(),
                                                     timezone text DEFAULT NULL)
RETURNS timestamptz
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_next_collection';
COMMENT ON FUNCTION llm_usage.next_collection(text, timestamptz, text) IS
'When a cron schedule (default: llm_usage.collect_schedule) fires next after an instant (default: now), read in a time zone (default: llm_usage.timezone), as the worker computes it: Vixie cron syntax and day rules, @daily and the like; a wall-clock time skipped by a DST change never fires, a repeated one fires once.  22023 for a schedule that is invalid or can never fire.  Admin only.';

------------------------------------------------------------------------
-- Reconciliation
------------------------------------------------------------------------

/*
 * reconciliation: a view over an entry point and its body (see
 * provider_keys in keys.sql): the body keeps to the caller's tenants before
 * it aggregates, and nothing of the caller's reaches the tables.
 */
CREATE OR REPLACE FUNCTION llm_usage._reconciliation()
RETURNS TABLE (tenant_id text, provider text, day date, tracked_usd numeric, reported_usd numeric,
               difference_usd numeric, difference_pct numeric)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage._reconciliation() IS 'Internal: the rows of the reconciliation view (the tenants the caller may see).';

CREATE OR REPLACE FUNCTION llm_usage._reconciliation_impl()
RETURNS TABLE (tenant_id text, provider text, day date, tracked_usd numeric, reported_usd numeric,
               difference_usd numeric, difference_pct numeric)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    WITH visible AS MATERIALIZED (
        SELECT (SELECT llm_usage._is_admin()) AS all_tenants, llm_usage._my_tenants() AS tenants),
    tracked AS (
        SELECT e.tenant_id, e.provider, (e.occurred_at AT TIME ZONE 'UTC')::date AS day, sum(e.cost_usd) AS usd
          FROM llm_usage.usage_events e, visible v
         WHERE e.provider IN ('openai', 'anthropic') AND (v.all_tenants OR e.tenant_id = ANY (v.tenants))
         GROUP BY 1, 2, 3),
    reported AS (
        SELECT c.tenant_id, c.provider, (c.bucket_start AT TIME ZONE 'UTC')::date AS day, sum(c.amount_usd) AS usd
          FROM llm_usage.provider_costs c, visible v
         WHERE v.all_tenants OR c.tenant_id = ANY (v.tenants)
         GROUP BY 1, 2, 3)
    SELECT tenant_id, provider, day,
           coalesce(t.usd, 0) AS tracked_usd,
           r.usd AS reported_usd,
           r.usd - coalesce(t.usd, 0) AS difference_usd,
           round(100 * (r.usd - coalesce(t.usd, 0)) / nullif(r.usd, 0), 2) AS difference_pct
      FROM tracked t
      FULL JOIN reported r USING (tenant_id, provider, day)
$$;
COMMENT ON FUNCTION llm_usage._reconciliation_impl() IS
'Internal: the body of llm_usage._reconciliation(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE VIEW llm_usage.reconciliation WITH (security_barrier) AS
SELECT r.tenant_id, r.provider, r.day, r.tracked_usd, r.reported_usd, r.difference_usd, r.difference_pct
  FROM llm_usage._reconciliation() r;
COMMENT ON VIEW llm_usage.reconciliation IS
'Per tenant, provider and UTC day: cost tracked with track_usage() against cost the provider reported (NULL until collected), the difference in USD (reported minus tracked) and in percent of reported.';

/*
 * collector_runs_for(tenant_id, days): what readers read instead of the
 * collector_runs table (no privilege on it, as for every tenant table).
 */
CREATE OR REPLACE FUNCTION llm_usage.collector_runs_for(tenant_id text DEFAULT NULL, days integer DEFAULT 30)
RETURNS TABLE (run_id bigint, key_id bigint, tenant text, provider text, trigger text, status text,
               window_from timestamptz, window_to timestamptz, queued_at timestamptz, started_at timestamptz,
               finished_at timestamptz, pages integer, rows_written bigint, http_attempts integer, error text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.collector_runs_for(text, integer) IS
'Collection runs queued in the last N days (default 30), newest first: of one tenant''s keys, or (tenant_id NULL) of every tenant the caller may see; status, rows written and error of each.';

CREATE OR REPLACE FUNCTION llm_usage._collector_runs_for_impl(tenant_id text DEFAULT NULL, days integer DEFAULT 30)
RETURNS TABLE (run_id bigint, key_id bigint, tenant text, provider text, trigger text, status text,
               window_from timestamptz, window_to timestamptz, queued_at timestamptz, started_at timestamptz,
               finished_at timestamptz, pages integer, rows_written bigint, http_attempts integer, error text)
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
    ELSIF NOT llm_usage._is_admin() THEN
        v_tenants := llm_usage._my_tenants();
    END IF;
    RETURN QUERY
    SELECT r.run_id, r.key_id, r.tenant_id, r.provider, r.trigger, r.status, r.window_from, r.window_to,
           r.queued_at, r.started_at, r.finished_at, r.pages, r.rows_written, r.http_attempts, r.error
      FROM llm_usage.collector_runs r
     WHERE (v_tenants IS NULL OR r.tenant_id = ANY (v_tenants))
       AND r.queued_at >= now() - make_interval(days => $2)
     ORDER BY r.run_id DESC;
END
$$;
COMMENT ON FUNCTION llm_usage._collector_runs_for_impl(text, integer) IS
'Internal: the body of llm_usage.collector_runs_for(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * Price reconciliation: the provider's collected usage priced with the
 * product's own price table, against what the provider says it cost, per
 * tenant, provider, UTC day and model -- a stale or wrong price shows as a
 * difference.  Usage rows are daily totals, so whether a request passed a
 * long-context threshold is unknown: they are priced at the normal band's
 * rates (heavy long-context use shows as a difference).  The tier comes
 * from the row: batch, or the provider's service_tier (OpenAI default,
 * Anthropic standard, priority_on_demand as priority, flex_discount as
 * flex).  A cost row belongs to a model by its model (Anthropic), else by
 * the part of its line item before the first comma (OpenAI "gpt-4o,
 * input"); other line items (tools, images) have no model.
 */
CREATE OR REPLACE FUNCTION llm_usage._usage_tier(p_service_tier text, p_batch boolean)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_batch OR p_service_tier = 'batch' THEN 'batch'
                WHEN p_service_tier IN ('flex', 'flex_discount') THEN 'flex'
                WHEN p_service_tier IN ('priority', 'priority_on_demand') THEN 'priority'
                ELSE 'standard' END
$$;
COMMENT ON FUNCTION llm_usage._usage_tier(text, boolean) IS
'Internal: the service tier a collected usage row is priced in (batch, flex, priority, else standard).';

CREATE OR REPLACE FUNCTION llm_usage._price_reconciliation_rows(p_from date, p_to date, p_tenants text[])
RETURNS TABLE (tenant_id text, provider text, day date, model text, requests bigint, input_tokens bigint,
               output_tokens bigint, estimated_usd numeric, reported_usd numeric, difference_usd numeric,
               difference_pct numeric, unpriced_rows bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    WITH used AS (
        SELECT u.tenant_id, u.provider, (u.bucket_start AT TIME ZONE 'UTC')::date AS day, u.model,
               sum(u.requests)::bigint AS requests, sum(u.input_tokens)::bigint AS input_tokens,
               sum(u.output_tokens)::bigint AS output_tokens,
               sum(llm_usage._cost(p, u.input_tokens, u.output_tokens, u.cached_input_tokens,
                                   u.cache_write_tokens - u.cache_write_1h_tokens, u.cache_write_1h_tokens,
                                   llm_usage._usage_tier(u.service_tier, u.batch), false)) AS estimated_usd,
               count(*) FILTER (WHERE p.price_id IS NULL) AS unpriced_rows
          FROM llm_usage.provider_usage u
         CROSS JOIN LATERAL llm_usage._price_at(u.model, u.bucket_start) p
         WHERE u.bucket_start >= p_from::timestamp AT TIME ZONE 'UTC'
           AND u.bucket_start < (p_to + 1)::timestamp AT TIME ZONE 'UTC'
           AND (p_tenants IS NULL OR u.tenant_id = ANY (p_tenants))
         GROUP BY 1, 2, 3, 4),
    reported AS (
        SELECT c.tenant_id, c.provider, (c.bucket_start AT TIME ZONE 'UTC')::date AS day,
               coalesce(c.model, CASE WHEN c.line_item ~ '^[^,]+, ' THEN split_part(c.line_item, ',', 1) END) AS model,
               sum(c.amount_usd) AS reported_usd
          FROM llm_usage.provider_costs c
         WHERE c.bucket_start >= p_from::timestamp AT TIME ZONE 'UTC'
           AND c.bucket_start < (p_to + 1)::timestamp AT TIME ZONE 'UTC'
           AND (p_tenants IS NULL OR c.tenant_id = ANY (p_tenants))
         GROUP BY 1, 2, 3, 4)
    SELECT tenant_id, provider, day, model, requests, input_tokens, output_tokens,
           estimated_usd, reported_usd, reported_usd - estimated_usd,
           round(100 * (reported_usd - estimated_usd) / nullif(reported_usd, 0), 2),
           coalesce(unpriced_rows, 0)
      FROM used FULL JOIN reported USING (tenant_id, provider, day, model)
     ORDER BY tenant_id, provider, day, model
$$;
COMMENT ON FUNCTION llm_usage._price_reconciliation_rows(date, date, text[]) IS
'Internal: collected usage priced with the product''s prices against provider-reported cost, per tenant, provider, UTC day and model, for UTC days [p_from, p_to] and the given tenants (NULL: all).';

CREATE OR REPLACE FUNCTION llm_usage.price_reconciliation(from_day date DEFAULT NULL, to_day date DEFAULT NULL,
                                                          tenant_id text DEFAULT NULL)
RETURNS TABLE (tenant text, provider text, day date, model text, requests bigint, input_tokens bigint,
               output_tokens bigint, estimated_usd numeric, reported_usd numeric, difference_usd numeric,
               difference_pct numeric, unpriced_rows bigint)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.price_reconciliation(date, date, text) IS
'Per tenant, provider, UTC day and model in [from_day, to_day] (default: the last 30 days): the usage the provider reported, priced with llm_usage''s own prices (estimated_usd; normal band, the row''s service tier), against the cost the provider reported (reported_usd), the difference (reported minus estimated) in USD and percent of reported, and how many usage rows had no price.  A stale or wrong price shows as a difference; the price_mismatch alert fires above a set share.  NULL tenant_id: every tenant the caller may see.';

CREATE OR REPLACE FUNCTION llm_usage._price_reconciliation_impl(from_day date DEFAULT NULL, to_day date DEFAULT NULL,
                                                                tenant_id text DEFAULT NULL)
RETURNS TABLE (tenant text, provider text, day date, model text, requests bigint, input_tokens bigint,
               output_tokens bigint, estimated_usd numeric, reported_usd numeric, difference_usd numeric,
               difference_pct numeric, unpriced_rows bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_to      date := coalesce($2, (now() AT TIME ZONE 'UTC')::date);
    v_from    date := coalesce($1, v_to - 29);
    v_tenants text[];
BEGIN
    IF v_from > v_to THEN
        RAISE EXCEPTION 'from_day (%) is after to_day (%)', to_char(v_from, 'YYYY-MM-DD'), to_char(v_to, 'YYYY-MM-DD')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF v_to - v_from > 3660 THEN
        RAISE EXCEPTION 'at most 3660 days at a time, got %', v_to - v_from + 1
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $3 IS NOT NULL THEN
        v_tenants := ARRAY[(llm_usage._tenant($3)).tenant_id];
    ELSIF NOT llm_usage._is_admin() THEN
        v_tenants := coalesce(llm_usage._my_tenants(), '{}');
    END IF;
    RETURN QUERY SELECT * FROM llm_usage._price_reconciliation_rows(v_from, v_to, v_tenants);
END
$$;
COMMENT ON FUNCTION llm_usage._price_reconciliation_impl(date, date, text) IS
'Internal: the body of llm_usage.price_reconciliation(), run as the owner by its entry point, which records the caller (src/caller.c).';
