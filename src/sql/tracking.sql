/*
 * src/sql/tracking.sql — tracking and prices
 *
 * Versioned model prices, the cost of a call, and track_usage(): C
 * (src/track.c) for the usual call, _track_usage_sql for bad input,
 * repeated request ids and old calls.
 */

------------------------------------------------------------------------
-- Prices and cost
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._price_at(p_model text, p_at timestamptz)
RETURNS llm_usage.model_price_versions
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT v.*
      FROM llm_usage.model_price_versions v
     WHERE v.model = p_model AND v.valid_from <= p_at
     ORDER BY v.valid_from DESC
     LIMIT 1
$$;
COMMENT ON FUNCTION llm_usage._price_at(text, timestamptz) IS 'Internal: the price version of a model valid at a time (NULL fields when there is none).';

/*
 * _cost: USD for one call.  Cached and cache-write tokens are part of the
 * input tokens and are billed at their own rates instead of the input rate
 * (the input rate where a model has no such rate).  Above 200k input tokens
 * the long-context input and output rates apply where the model has them.
 * numeric throughout, so the result is exact.
 */
CREATE OR REPLACE FUNCTION llm_usage._cost(p llm_usage.model_price_versions, p_input bigint, p_output bigint,
                                           p_cached bigint, p_cache_write bigint)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p.price_id IS NULL THEN NULL ELSE
           trim_scale((
                 (p_input - p_cached - p_cache_write)
                     * CASE WHEN p_input > 200000 AND p.input_above_200k_usd_per_mtok IS NOT NULL
                            THEN p.input_above_200k_usd_per_mtok ELSE p.input_usd_per_mtok END
               + p_cached * coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok)
               + p_cache_write * coalesce(p.cache_write_usd_per_mtok, p.input_usd_per_mtok)
               + p_output
                     * CASE WHEN p_input > 200000 AND p.output_above_200k_usd_per_mtok IS NOT NULL
                            THEN p.output_above_200k_usd_per_mtok ELSE p.output_usd_per_mtok END
           ) * 0.000001) END
$$;
COMMENT ON FUNCTION llm_usage._cost(llm_usage.model_price_versions, bigint, bigint, bigint, bigint) IS
'Internal: exact USD cost of one call at a given price version.';

CREATE OR REPLACE FUNCTION llm_usage._check_count(p_value bigint, p_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass 0 when there were none.';
    END IF;
    IF p_value < 0 OR p_value > 1000000000 THEN
        RAISE EXCEPTION '% must be between 0 and 1000000000, got %', p_name, p_value
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Token counts are per call; a single call of more than a billion tokens is taken to be a bug.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_count(bigint, text) IS 'Internal: raise 22004/22023 unless a token count is between 0 and 10^9.';

CREATE OR REPLACE FUNCTION llm_usage._check_token_split(p_input bigint, p_cached bigint, p_cache_write bigint)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_cached + p_cache_write > p_input THEN
        RAISE EXCEPTION 'cached_input_tokens (%) plus cache_write_tokens (%) exceed input_tokens (%)',
                p_cached, p_cache_write, p_input
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'input_tokens counts all input, including tokens read from or written to the cache.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_token_split(bigint, bigint, bigint) IS 'Internal: raise 22023 when cached plus cache-write tokens exceed the input tokens.';

CREATE OR REPLACE FUNCTION llm_usage.calculate_cost(model text, input_tokens bigint, output_tokens bigint,
                                                    cached_input_tokens bigint DEFAULT 0, at timestamptz DEFAULT now(),
                                                    cache_write_tokens bigint DEFAULT 0)
RETURNS numeric
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.calculate_cost(text, bigint, bigint, bigint, timestamptz, bigint) IS
'USD cost of one call at the price valid at "at".  Cached input (and cache-write) tokens are part of input_tokens and billed at their own rates.  Errors on an unknown model or bad counts.';

CREATE OR REPLACE FUNCTION llm_usage._calculate_cost_impl(model text, input_tokens bigint, output_tokens bigint,
                                                          cached_input_tokens bigint DEFAULT 0, at timestamptz DEFAULT now(),
                                                          cache_write_tokens bigint DEFAULT 0)
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p llm_usage.model_price_versions;
BEGIN
    PERFORM llm_usage._require_arg($1, 'model');
    PERFORM llm_usage._check_count($2, 'input_tokens');
    PERFORM llm_usage._check_count($3, 'output_tokens');
    PERFORM llm_usage._check_count($4, 'cached_input_tokens');
    PERFORM llm_usage._check_count($6, 'cache_write_tokens');
    PERFORM llm_usage._check_token_split($2, $4, $6);
    PERFORM llm_usage._require_arg($5, 'at');
    p := llm_usage._price_at($1, $5);
    IF p.price_id IS NULL THEN
        RAISE EXCEPTION 'no price for model "%" at %', $1, $5
            USING ERRCODE = 'undefined_object',
                  HINT = CASE WHEN EXISTS (SELECT 1 FROM llm_usage.model_price_versions v WHERE v.model = $1)
                              THEN 'The model''s first price starts later; see llm_usage.model_prices.'
                              ELSE 'Add one with llm_usage.set_model_price(); llm_usage.model_prices lists the known models.' END;
    END IF;
    RETURN llm_usage._cost(p, $2, $3, $4, $6);
END
$$;
COMMENT ON FUNCTION llm_usage._calculate_cost_impl(text, bigint, bigint, bigint, timestamptz, bigint) IS
'Internal: the body of llm_usage.calculate_cost(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.set_model_price(provider text, model text,
                                                     input_usd_per_mtok numeric, output_usd_per_mtok numeric,
                                                     cached_input_usd_per_mtok numeric DEFAULT NULL,
                                                     cache_write_usd_per_mtok numeric DEFAULT NULL,
                                                     valid_from timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.set_model_price(text, text, numeric, numeric, numeric, numeric, timestamptz) IS
'Adds a price version (USD per million tokens) valid from valid_from (default now); the previous version ends there, so costs already computed keep their price.  Calls tracked while the model had no price are priced.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._set_model_price_impl(provider text, model text,
                                                           input_usd_per_mtok numeric, output_usd_per_mtok numeric,
                                                           cached_input_usd_per_mtok numeric DEFAULT NULL,
                                                           cache_write_usd_per_mtok numeric DEFAULT NULL,
                                                           valid_from timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_provider text := $1;
    p_model    text := $2;
    p_from     timestamptz := $7;
    v_first    llm_usage.model_price_versions;
    v_last     llm_usage.model_price_versions;
    v_row      llm_usage.model_price_versions;
    v_next     timestamptz;
    v_priced   bigint;
BEGIN
    PERFORM llm_usage._require_admin('set_model_price');
    PERFORM llm_usage._require_arg(p_provider, 'provider');
    IF p_provider !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid provider "%"', p_provider
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A provider is a lower-case name such as openai, anthropic or custom.';
    END IF;
    PERFORM llm_usage._require_arg(p_model, 'model');
    IF p_model !~ '^[[:graph:]]{1,200}$' THEN
        RAISE EXCEPTION 'invalid model name "%"', p_model
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A model name has 1 to 200 printable characters and no spaces, as sent to the provider.';
    END IF;
    PERFORM llm_usage._check_amount($3, 'input_usd_per_mtok', true);
    PERFORM llm_usage._check_amount($4, 'output_usd_per_mtok', true);
    IF $5 IS NOT NULL THEN
        PERFORM llm_usage._check_amount($5, 'cached_input_usd_per_mtok', true);
    END IF;
    IF $6 IS NOT NULL THEN
        PERFORM llm_usage._check_amount($6, 'cache_write_usd_per_mtok', true);
    END IF;
    PERFORM llm_usage._require_arg(p_from, 'valid_from');

    PERFORM pg_advisory_xact_lock(hashtext('llm_usage.model_price'), hashtext(p_model));
    SELECT * INTO v_first FROM llm_usage.model_price_versions v WHERE v.model = p_model ORDER BY v.valid_from LIMIT 1;
    SELECT * INTO v_last FROM llm_usage.model_price_versions v WHERE v.model = p_model ORDER BY v.valid_from DESC LIMIT 1;

    IF v_last.price_id IS NOT NULL THEN
        IF v_last.provider <> p_provider THEN
            RAISE EXCEPTION 'model "%" is priced under provider "%", not "%"', p_model, v_last.provider, p_provider
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_from >= v_first.valid_from AND (p_from <= v_last.valid_from OR p_from < now()) THEN
            RAISE EXCEPTION 'a price for "%" valid from % would rewrite history', p_model, p_from
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Its current price is valid from %s; costs already computed must keep their price.', v_last.valid_from),
                      HINT = 'Use a valid_from of now() or later (and after the latest version), or one before the model''s first price to fill a period it had none.';
        END IF;
    END IF;

    INSERT INTO llm_usage.model_price_versions
        (provider, model, mode, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,
         cache_write_usd_per_mtok, valid_from)
    VALUES (p_provider, p_model, v_last.mode, $3, $4, $5, $6, p_from)
    RETURNING * INTO v_row;

    -- Calls tracked while the model had no price get one now, where this
    -- version covers them; calls that already have a cost are never touched.
    SELECT min(v.valid_from) INTO v_next
      FROM llm_usage.model_price_versions v
     WHERE v.model = p_model AND v.valid_from > p_from;
    UPDATE llm_usage.usage_events e
       SET cost_usd = llm_usage._cost(v_row, e.input_tokens, e.output_tokens, e.cached_input_tokens, e.cache_write_tokens),
           price_id = v_row.price_id,
           provider = v_row.provider,
           recorded_at = clock_timestamp()
     WHERE e.model = p_model AND e.cost_usd IS NULL
       AND e.occurred_at >= p_from AND (v_next IS NULL OR e.occurred_at < v_next);
    GET DIAGNOSTICS v_priced = ROW_COUNT;
    IF v_priced > 0 THEN
        RAISE NOTICE 'priced % earlier call(s) of model "%" that had no price', v_priced, p_model;
    END IF;
    RETURN v_row.price_id;
END
$$;
COMMENT ON FUNCTION llm_usage._set_model_price_impl(text, text, numeric, numeric, numeric, numeric, timestamptz) IS
'Internal: the body of llm_usage.set_model_price(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.unpriced_models()
RETURNS TABLE (model text, calls bigint, tenants bigint, input_tokens numeric, output_tokens numeric,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.unpriced_models() IS
'Models used in tracked calls that had no price at the time (their cost is NULL, not zero), with how much they were used.  Fix with set_model_price().';

CREATE OR REPLACE FUNCTION llm_usage._unpriced_models_impl()
RETURNS TABLE (model text, calls bigint, tenants bigint, input_tokens numeric, output_tokens numeric,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.model, count(*), count(DISTINCT e.tenant_id), sum(e.input_tokens), sum(e.output_tokens),
           min(e.occurred_at), max(e.occurred_at)
      FROM llm_usage.usage_events e
     WHERE e.cost_usd IS NULL AND e.model IS NOT NULL
       AND llm_usage._can_access(e.tenant_id)
     GROUP BY e.model
     ORDER BY count(*) DESC, e.model
$$;
COMMENT ON FUNCTION llm_usage._unpriced_models_impl() IS
'Internal: the body of llm_usage.unpriced_models(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE VIEW llm_usage.model_prices AS
SELECT v.price_id,
       v.provider,
       v.model,
       v.mode,
       v.input_usd_per_mtok,
       v.output_usd_per_mtok,
       v.cached_input_usd_per_mtok,
       v.cache_write_usd_per_mtok,
       v.cache_write_1h_usd_per_mtok,
       v.batch_input_usd_per_mtok,
       v.batch_output_usd_per_mtok,
       v.input_above_200k_usd_per_mtok,
       v.output_above_200k_usd_per_mtok,
       v.valid_from,
       lead(v.valid_from) OVER (PARTITION BY v.model ORDER BY v.valid_from) AS valid_to,
       v.deprecation_date,
       v.source
  FROM llm_usage.model_price_versions v;
COMMENT ON VIEW llm_usage.model_prices IS
'Model prices with their validity range [valid_from, valid_to); valid_to is NULL for the price in force.  Change prices with set_model_price().';

/*
 * Price versions are history: a cost computed with a version keeps it, so a
 * version is never changed or removed -- for the owner too, as for the
 * audit log.  A version ends where the next one (by valid_from) begins, so
 * set_model_price() only ever inserts; no role but the owner may insert
 * directly.
 */
CREATE OR REPLACE FUNCTION llm_usage._price_versions_immutable()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'model price versions cannot be changed or deleted'
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = 'Costs already computed keep the price version they were computed with.',
              HINT = 'Use llm_usage.set_model_price() to add a version; the previous one ends where it begins.';
END
$$;
COMMENT ON FUNCTION llm_usage._price_versions_immutable() IS 'Internal: trigger keeping model_price_versions append-only.';

CREATE OR REPLACE TRIGGER price_versions_append_only
    BEFORE UPDATE OR DELETE ON llm_usage.model_price_versions
    FOR EACH ROW EXECUTE FUNCTION llm_usage._price_versions_immutable();

CREATE OR REPLACE TRIGGER price_versions_no_truncate
    BEFORE TRUNCATE ON llm_usage.model_price_versions
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._price_versions_immutable();

-- a price change reaches every session's price cache at commit
CREATE OR REPLACE TRIGGER quota_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON llm_usage.model_price_versions
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._quota_config_changed();

------------------------------------------------------------------------
-- Tracking
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._track_usage_sql(tenant_id text, event_type text, model text DEFAULT NULL,
                                                      input_tokens bigint DEFAULT 0, output_tokens bigint DEFAULT 0,
                                                      cached_input_tokens bigint DEFAULT 0, latency_ms integer DEFAULT NULL,
                                                      status_code integer DEFAULT 200, result text DEFAULT 'success',
                                                      metadata jsonb DEFAULT '{}', request_id text DEFAULT NULL,
                                                      occurred_at timestamptz DEFAULT now(),
                                                      cache_write_tokens bigint DEFAULT 0)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage._track_usage_sql(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint) IS
'Internal: track_usage() in SQL; the C track_usage() hands it bad arguments, repeated request ids and calls more than 28 days old.';

CREATE OR REPLACE FUNCTION llm_usage._track_usage_sql_impl(tenant_id text, event_type text, model text DEFAULT NULL,
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
COMMENT ON FUNCTION llm_usage._track_usage_sql_impl(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint) IS
'Internal: the body of llm_usage._track_usage_sql(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.track_usage(tenant_id text, event_type text, model text DEFAULT NULL,
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
