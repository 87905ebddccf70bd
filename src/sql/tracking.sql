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
 * How a call is priced (README "Prices"; src/cost.c computes the same in
 * C, in the same order of numeric operations, so that both give the same
 * digits).  A call has input tokens I (all input), of which R were read
 * from the prompt cache, W5 written with the 5-minute TTL and W1 with the
 * 1-hour TTL; output tokens O; a service tier.  Each kind of token is
 * billed at its own rate:
 *
 *   (I - R - W5 - W1) x input + R x cached + W5 x write5m + W1 x write1h + O x output
 *
 * The rates come from the price version valid at the call:
 *
 *   standard tier, normal band: the stored rate; a cached rate that is not
 *     stored is the input rate, a 5-minute write rate the input rate, a
 *     1-hour write rate the 5-minute write rate.
 *   long-context band (input tokens above long_context_threshold; all the
 *     call's tokens): the stored long-context rate; one not stored is the
 *     stored normal rate of that kind scaled by long-context input / input
 *     (the published multiplier), else that band's fallback as above.
 *   batch, flex, priority tiers: the stored tier rate; one not stored is
 *     the stored standard rate of that kind scaled by the tier's input rate
 *     / input rate, or, when the tier has no input rate, by 0.5 for batch
 *     (the Batch API is half price at both providers) and 1 for flex and
 *     priority (a model without such rates is billed at standard); then the
 *     tier's fallbacks as above.  In the long-context band a tier rate is
 *     scaled by that kind's long-context factor (long-context rate / normal
 *     rate, standard tier).
 *
 * Multiplications are exact; a scaling divides once, (rate x num) / den,
 * with numeric's division precision (16 significant digits at least).
 */

CREATE OR REPLACE FUNCTION llm_usage._rate_scaled(p_rate numeric, p_num numeric, p_den numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_rate IS NULL THEN NULL
                WHEN p_num IS NULL OR p_den IS NULL OR p_den = 0 THEN p_rate
                ELSE p_rate * p_num / p_den END
$$;
COMMENT ON FUNCTION llm_usage._rate_scaled(numeric, numeric, numeric) IS
'Internal: rate x num / den (one division), or the rate itself when num or den is missing or den is 0; NULL for a NULL rate.';

/*
 * _rates(price, tier, long_context): the five rates (USD per million
 * tokens) a call is billed at -- input, output, cached, 5-minute write,
 * 1-hour write -- by the rules above.  tier is standard, batch, flex or
 * priority.
 */
CREATE OR REPLACE FUNCTION llm_usage._rates(p llm_usage.model_price_versions, p_tier text, p_long_context boolean,
                                            OUT input numeric, OUT output numeric, OUT cached numeric,
                                            OUT write_5m numeric, OUT write_1h numeric)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s_in  numeric := p.input_usd_per_mtok;
    l_in  numeric := CASE WHEN p_long_context THEN p.input_long_context_usd_per_mtok END;
    -- the standard tier's rates: normal band (n_) and the call's band (b_)
    n_rd  numeric;
    n_w5  numeric;
    n_w1  numeric;
    b_in  numeric;
    b_out numeric;
    b_rd  numeric;
    b_w5  numeric;
    b_w1  numeric;
    -- the tier's stored rates and default factor
    t_in  numeric;
    t_out numeric;
    t_rd  numeric;
    t_w5  numeric;
    d     numeric;
BEGIN
    IF p.price_id IS NULL THEN
        RETURN;
    END IF;
    n_rd := coalesce(p.cached_input_usd_per_mtok, s_in);
    n_w5 := coalesce(p.cache_write_usd_per_mtok, s_in);
    n_w1 := coalesce(p.cache_write_1h_usd_per_mtok, n_w5);

    b_in := coalesce(l_in, s_in);
    b_out := coalesce(CASE WHEN p_long_context THEN p.output_long_context_usd_per_mtok END,
                      llm_usage._rate_scaled(p.output_usd_per_mtok, l_in, s_in));
    b_rd := coalesce(CASE WHEN p_long_context THEN p.cached_input_long_context_usd_per_mtok END,
                     llm_usage._rate_scaled(p.cached_input_usd_per_mtok, l_in, s_in), b_in);
    b_w5 := coalesce(CASE WHEN p_long_context THEN p.cache_write_long_context_usd_per_mtok END,
                     llm_usage._rate_scaled(p.cache_write_usd_per_mtok, l_in, s_in), b_in);
    b_w1 := coalesce(CASE WHEN p_long_context THEN p.cache_write_1h_long_context_usd_per_mtok END,
                     llm_usage._rate_scaled(p.cache_write_1h_usd_per_mtok, l_in, s_in), b_w5);

    IF p_tier IS NULL OR p_tier NOT IN ('batch', 'flex', 'priority') THEN
        input := b_in; output := b_out; cached := b_rd; write_5m := b_w5; write_1h := b_w1;
        RETURN;
    END IF;

    CASE p_tier
        WHEN 'batch' THEN
            t_in := p.batch_input_usd_per_mtok; t_out := p.batch_output_usd_per_mtok;
            t_rd := p.batch_cached_input_usd_per_mtok; t_w5 := p.batch_cache_write_usd_per_mtok; d := 0.5;
        WHEN 'flex' THEN
            t_in := p.flex_input_usd_per_mtok; t_out := p.flex_output_usd_per_mtok;
            t_rd := p.flex_cached_input_usd_per_mtok; t_w5 := p.flex_cache_write_usd_per_mtok; d := 1;
        ELSE
            t_in := p.priority_input_usd_per_mtok; t_out := p.priority_output_usd_per_mtok;
            t_rd := p.priority_cached_input_usd_per_mtok; t_w5 := p.priority_cache_write_usd_per_mtok; d := 1;
    END CASE;
    -- the tier's normal-band rates: stored, else the standard rate scaled
    -- by the tier's input factor (or its default), else the fallback
    IF t_in IS NULL OR s_in = 0 THEN
        input := coalesce(t_in, CASE WHEN d = 1 THEN s_in ELSE s_in * d END);
        output := coalesce(t_out, CASE WHEN d = 1 THEN p.output_usd_per_mtok ELSE p.output_usd_per_mtok * d END);
        cached := coalesce(t_rd, CASE WHEN d = 1 THEN p.cached_input_usd_per_mtok ELSE p.cached_input_usd_per_mtok * d END, input);
        write_5m := coalesce(t_w5, CASE WHEN d = 1 THEN p.cache_write_usd_per_mtok ELSE p.cache_write_usd_per_mtok * d END, input);
        write_1h := coalesce(CASE WHEN d = 1 THEN p.cache_write_1h_usd_per_mtok ELSE p.cache_write_1h_usd_per_mtok * d END, write_5m);
    ELSE
        input := t_in;
        output := coalesce(t_out, llm_usage._rate_scaled(p.output_usd_per_mtok, t_in, s_in));
        cached := coalesce(t_rd, llm_usage._rate_scaled(p.cached_input_usd_per_mtok, t_in, s_in), input);
        write_5m := coalesce(t_w5, llm_usage._rate_scaled(p.cache_write_usd_per_mtok, t_in, s_in), input);
        write_1h := coalesce(llm_usage._rate_scaled(p.cache_write_1h_usd_per_mtok, t_in, s_in), write_5m);
    END IF;
    IF p_long_context THEN
        -- each kind's long-context factor: band rate / normal rate, standard tier
        input := llm_usage._rate_scaled(input, b_in, s_in);
        output := llm_usage._rate_scaled(output, b_out, p.output_usd_per_mtok);
        cached := llm_usage._rate_scaled(cached, b_rd, n_rd);
        write_5m := llm_usage._rate_scaled(write_5m, b_w5, n_w5);
        write_1h := llm_usage._rate_scaled(write_1h, b_w1, n_w1);
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._rates(llm_usage.model_price_versions, text, boolean) IS
'Internal: the input, output, cached, 5-minute and 1-hour cache-write rates (USD per million tokens) of a call in a service tier, in the normal or long-context band, by the rules of README "Prices".';

/*
 * _cost: USD for one call, exact but for the scalings of _rates.  The
 * long-context band applies when the price has a threshold and the input
 * tokens exceed it (p_long_context overrides: false for usage whose
 * per-request size is unknown, e.g. the providers' daily totals).
 */
CREATE OR REPLACE FUNCTION llm_usage._cost(p llm_usage.model_price_versions, p_input bigint, p_output bigint,
                                           p_cached bigint, p_cache_write bigint, p_cache_write_1h bigint DEFAULT 0,
                                           p_tier text DEFAULT 'standard', p_long_context boolean DEFAULT NULL)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p.price_id IS NULL THEN NULL ELSE
           trim_scale((
                 (p_input - p_cached - p_cache_write - p_cache_write_1h) * r.input
               + p_cached * r.cached
               + p_cache_write * r.write_5m
               + p_cache_write_1h * r.write_1h
               + p_output * r.output
           ) * 0.000001) END
      FROM llm_usage._rates(p, p_tier,
                            coalesce(p_long_context,
                                     p.long_context_threshold IS NOT NULL AND p_input > p.long_context_threshold)) r
$$;
COMMENT ON FUNCTION llm_usage._cost(llm_usage.model_price_versions, bigint, bigint, bigint, bigint, bigint, text, boolean) IS
'Internal: USD cost of one call at a given price version: tokens (input including cached and cache writes, output, cache reads, 5-minute and 1-hour cache writes) in a service tier.';

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

CREATE OR REPLACE FUNCTION llm_usage._check_token_split(p_input bigint, p_cached bigint, p_cache_write bigint,
                                                        p_cache_write_1h bigint DEFAULT 0)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_cached + p_cache_write + p_cache_write_1h > p_input THEN
        RAISE EXCEPTION 'cached_input_tokens (%) plus cache_write_tokens (%) plus cache_write_1h_tokens (%) exceed input_tokens (%)',
                p_cached, p_cache_write, p_cache_write_1h, p_input
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'input_tokens counts all input, including tokens read from or written to the cache.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_token_split(bigint, bigint, bigint, bigint) IS
'Internal: raise 22023 when cached plus 5-minute and 1-hour cache-write tokens exceed the input tokens.';

/*
 * _service_tier(tier): the tier a call is billed in, normalised: standard
 * (OpenAI's "default" too), batch, flex or priority.
 */
CREATE OR REPLACE FUNCTION llm_usage._service_tier(p_tier text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_tier IS NULL THEN
        RAISE EXCEPTION 'service_tier must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass ''standard'' for a call in no particular tier.';
    END IF;
    IF p_tier IN ('standard', 'batch', 'flex', 'priority') THEN
        RETURN p_tier;
    ELSIF p_tier = 'default' THEN
        RETURN 'standard';
    END IF;
    RAISE EXCEPTION 'unknown service_tier "%"', left(p_tier, 100)
        USING ERRCODE = 'invalid_parameter_value',
              HINT = 'Service tiers are: standard (or default), batch, flex, priority.';
END
$$;
COMMENT ON FUNCTION llm_usage._service_tier(text) IS
'Internal: the normalised service tier (standard, batch, flex, priority; "default" is standard); raises 22004/22023 otherwise.';

CREATE OR REPLACE FUNCTION llm_usage.calculate_cost(model text, input_tokens bigint, output_tokens bigint,
                                                    cached_input_tokens bigint DEFAULT 0, at timestamptz DEFAULT now(),
                                                    cache_write_tokens bigint DEFAULT 0,
                                                    cache_write_1h_tokens bigint DEFAULT 0,
                                                    service_tier text DEFAULT 'standard')
RETURNS numeric
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.calculate_cost(text, bigint, bigint, bigint, timestamptz, bigint, bigint, text) IS
'USD cost of one call at the price valid at "at": input_tokens counts all input, of which cached_input_tokens were read from the cache and cache_write_tokens / cache_write_1h_tokens written with the 5-minute / 1-hour TTL, each kind billed at its own rate; long-context rates above the model''s threshold; service_tier standard, batch, flex or priority.  Errors on an unknown model or bad counts.';

CREATE OR REPLACE FUNCTION llm_usage._calculate_cost_impl(model text, input_tokens bigint, output_tokens bigint,
                                                          cached_input_tokens bigint DEFAULT 0, at timestamptz DEFAULT now(),
                                                          cache_write_tokens bigint DEFAULT 0,
                                                          cache_write_1h_tokens bigint DEFAULT 0,
                                                          service_tier text DEFAULT 'standard')
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p      llm_usage.model_price_versions;
    v_tier text;
BEGIN
    PERFORM llm_usage._require_arg($1, 'model');
    PERFORM llm_usage._check_count($2, 'input_tokens');
    PERFORM llm_usage._check_count($3, 'output_tokens');
    PERFORM llm_usage._check_count($4, 'cached_input_tokens');
    PERFORM llm_usage._check_count($6, 'cache_write_tokens');
    PERFORM llm_usage._check_count($7, 'cache_write_1h_tokens');
    PERFORM llm_usage._check_token_split($2, $4, $6, $7);
    PERFORM llm_usage._require_arg($5, 'at');
    v_tier := llm_usage._service_tier($8);
    p := llm_usage._price_at($1, $5);
    IF p.price_id IS NULL THEN
        RAISE EXCEPTION 'no price for model "%" at %', $1, $5
            USING ERRCODE = 'undefined_object',
                  HINT = CASE WHEN EXISTS (SELECT 1 FROM llm_usage.model_price_versions v WHERE v.model = $1)
                              THEN 'The model''s first price starts later; see llm_usage.model_prices.'
                              ELSE 'Add one with llm_usage.set_model_price(); llm_usage.model_prices lists the known models.' END;
    END IF;
    RETURN llm_usage._cost(p, $2, $3, $4, $6, $7, v_tier);
END
$$;
COMMENT ON FUNCTION llm_usage._calculate_cost_impl(text, bigint, bigint, bigint, timestamptz, bigint, bigint, text) IS
'Internal: the body of llm_usage.calculate_cost(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * _price_dimensions(price): every billed dimension of a price version as
 * (name, value) rows, NULL values included: the rates and the long-context
 * threshold, in the order of README "Prices".
 */
CREATE OR REPLACE FUNCTION llm_usage._price_dimensions(p llm_usage.model_price_versions)
RETURNS TABLE (name text, value numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT d.name, d.value
      FROM (VALUES
                ('input_usd_per_mtok', p.input_usd_per_mtok),
                ('output_usd_per_mtok', p.output_usd_per_mtok),
                ('cached_input_usd_per_mtok', p.cached_input_usd_per_mtok),
                ('cache_write_usd_per_mtok', p.cache_write_usd_per_mtok),
                ('cache_write_1h_usd_per_mtok', p.cache_write_1h_usd_per_mtok),
                ('long_context_threshold', p.long_context_threshold::numeric),
                ('input_long_context_usd_per_mtok', p.input_long_context_usd_per_mtok),
                ('output_long_context_usd_per_mtok', p.output_long_context_usd_per_mtok),
                ('cached_input_long_context_usd_per_mtok', p.cached_input_long_context_usd_per_mtok),
                ('cache_write_long_context_usd_per_mtok', p.cache_write_long_context_usd_per_mtok),
                ('cache_write_1h_long_context_usd_per_mtok', p.cache_write_1h_long_context_usd_per_mtok),
                ('batch_input_usd_per_mtok', p.batch_input_usd_per_mtok),
                ('batch_output_usd_per_mtok', p.batch_output_usd_per_mtok),
                ('batch_cached_input_usd_per_mtok', p.batch_cached_input_usd_per_mtok),
                ('batch_cache_write_usd_per_mtok', p.batch_cache_write_usd_per_mtok),
                ('flex_input_usd_per_mtok', p.flex_input_usd_per_mtok),
                ('flex_output_usd_per_mtok', p.flex_output_usd_per_mtok),
                ('flex_cached_input_usd_per_mtok', p.flex_cached_input_usd_per_mtok),
                ('flex_cache_write_usd_per_mtok', p.flex_cache_write_usd_per_mtok),
                ('priority_input_usd_per_mtok', p.priority_input_usd_per_mtok),
                ('priority_output_usd_per_mtok', p.priority_output_usd_per_mtok),
                ('priority_cached_input_usd_per_mtok', p.priority_cached_input_usd_per_mtok),
                ('priority_cache_write_usd_per_mtok', p.priority_cache_write_usd_per_mtok)) d(name, value)
$$;
COMMENT ON FUNCTION llm_usage._price_dimensions(llm_usage.model_price_versions) IS
'Internal: the rates and long-context threshold of a price version as (name, value) rows.';

/*
 * _add_price_version(row): the one way a price version is added, for
 * set_model_price() and import_price_map().  Serialises price changes
 * with a lock on model_price_versions that only its owner can take (an
 * advisory lock could be held forever by any role that can connect);
 * refuses a version that would rewrite history or change the
 * model's provider; inserts; prices the model's unpriced calls that the
 * new version covers.  Returns the stored row.
 */
CREATE OR REPLACE FUNCTION llm_usage._add_price_version(p_new llm_usage.model_price_versions)
RETURNS llm_usage.model_price_versions
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_first  llm_usage.model_price_versions;
    v_last   llm_usage.model_price_versions;
    v_row    llm_usage.model_price_versions;
    v_next   timestamptz;
    v_priced bigint;
    v_lost   text[];
BEGIN
    LOCK TABLE llm_usage.model_price_versions IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO v_first FROM llm_usage.model_price_versions v WHERE v.model = p_new.model ORDER BY v.valid_from LIMIT 1;
    SELECT * INTO v_last FROM llm_usage.model_price_versions v WHERE v.model = p_new.model ORDER BY v.valid_from DESC LIMIT 1;

    IF v_last.price_id IS NOT NULL THEN
        IF v_last.provider <> p_new.provider THEN
            RAISE EXCEPTION 'model "%" is priced under provider "%", not "%"', p_new.model, v_last.provider, p_new.provider
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_new.valid_from >= v_first.valid_from AND (p_new.valid_from <= v_last.valid_from OR p_new.valid_from < now()) THEN
            RAISE EXCEPTION 'a price for "%" valid from % would rewrite history', p_new.model, p_new.valid_from
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Its current price is valid from %s; costs already computed must keep their price.', v_last.valid_from),
                      HINT = 'Use a valid_from of now() or later (and after the latest version), or one before the model''s first price to fill a period it had none.';
        END IF;
        -- rates the version in force had and the new one leaves to the rules
        SELECT array_agg(o.name ORDER BY o.ord) INTO v_lost
          FROM llm_usage._price_dimensions(v_last) WITH ORDINALITY o(name, value, ord)
          JOIN llm_usage._price_dimensions(p_new) n USING (name)
         WHERE o.value IS NOT NULL AND n.value IS NULL;
        IF v_lost IS NOT NULL THEN
            RAISE NOTICE 'the new price of "%" has no %, which its previous version had', p_new.model, array_to_string(v_lost, ', ')
                USING HINT = 'Pass them to set_model_price() to keep them; without them the rules of README "Prices" derive those rates.';
        END IF;
    END IF;

    p_new.price_id := nextval('llm_usage.model_price_versions_price_id_seq');
    p_new.mode := coalesce(p_new.mode, v_last.mode);
    p_new.is_shipped := false;
    p_new.created_by := session_user;
    p_new.created_at := now();
    INSERT INTO llm_usage.model_price_versions SELECT p_new.* RETURNING * INTO v_row;

    -- Calls tracked while the model had no price get one now, where this
    -- version covers them; calls that already have a cost are never touched.
    SELECT min(v.valid_from) INTO v_next
      FROM llm_usage.model_price_versions v
     WHERE v.model = v_row.model AND v.valid_from > v_row.valid_from;
    UPDATE llm_usage.usage_events e
       SET cost_usd = llm_usage._cost(v_row, e.input_tokens, e.output_tokens, e.cached_input_tokens, e.cache_write_tokens,
                                      e.cache_write_1h_tokens, e.service_tier),
           price_id = v_row.price_id,
           provider = v_row.provider,
           recorded_at = clock_timestamp()
     WHERE e.model = v_row.model AND e.cost_usd IS NULL
       AND e.occurred_at >= v_row.valid_from AND (v_next IS NULL OR e.occurred_at < v_next);
    GET DIAGNOSTICS v_priced = ROW_COUNT;
    IF v_priced > 0 THEN
        RAISE NOTICE 'priced % earlier call(s) of model "%" that had no price', v_priced, v_row.model;
    END IF;
    RETURN v_row;
END
$$;
COMMENT ON FUNCTION llm_usage._add_price_version(llm_usage.model_price_versions) IS
'Internal: add a price version (history and provider checks, model lock) and price the model''s unpriced calls it covers.';

/*
 * _check_price(row): every rate a number in [0, 10^12], a threshold with
 * long-context rates and none without, as set_model_price() and
 * import_price_map() accept them.  p_what names the source in messages.
 */
CREATE OR REPLACE FUNCTION llm_usage._check_price(p llm_usage.model_price_versions, p_what text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    v_long boolean := false;
BEGIN
    IF p.provider !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION '%invalid provider "%"', p_what, left(p.provider, 100)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A provider is a lower-case name such as openai, anthropic or custom.';
    END IF;
    IF p.model !~ '^[[:graph:]]{1,200}$' THEN
        RAISE EXCEPTION '%invalid model name "%"', p_what, left(p.model, 250)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A model name has 1 to 200 printable characters and no spaces, as sent to the provider.';
    END IF;
    PERFORM llm_usage._check_amount(p.input_usd_per_mtok, p_what || 'input_usd_per_mtok', true);
    PERFORM llm_usage._check_amount(p.output_usd_per_mtok, p_what || 'output_usd_per_mtok', true);
    FOR r IN SELECT d.name, d.value FROM llm_usage._price_dimensions(p) d
              WHERE d.value IS NOT NULL AND d.name LIKE '%usd_per_mtok'
    LOOP
        PERFORM llm_usage._check_amount(r.value, p_what || r.name, true);
        v_long := v_long OR r.name LIKE '%long_context%';
    END LOOP;
    IF v_long AND p.long_context_threshold IS NULL THEN
        RAISE EXCEPTION '%long-context rates need long_context_threshold', p_what
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the number of input tokens above which they apply, e.g. 200000 for Anthropic, 272000 for OpenAI''s GPT-5.4.';
    END IF;
    IF p.long_context_threshold IS NOT NULL AND NOT v_long THEN
        RAISE EXCEPTION '%long_context_threshold without a long-context rate', p_what
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass input_long_context_usd_per_mtok (and the other long-context rates), or no threshold.';
    END IF;
    IF p.long_context_threshold IS NOT NULL AND (p.long_context_threshold < 1 OR p.long_context_threshold > 1000000000) THEN
        RAISE EXCEPTION '%long_context_threshold must be between 1 and 1000000000 tokens, got %', p_what, p.long_context_threshold
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_price(llm_usage.model_price_versions, text) IS
'Internal: raise 22004/22023 unless a price version''s provider, model name, rates and long-context threshold are valid.';

CREATE OR REPLACE FUNCTION llm_usage.set_model_price(provider text, model text,
                                                     input_usd_per_mtok numeric, output_usd_per_mtok numeric,
                                                     cached_input_usd_per_mtok numeric DEFAULT NULL,
                                                     cache_write_usd_per_mtok numeric DEFAULT NULL,
                                                     valid_from timestamptz DEFAULT now(),
                                                     cache_write_1h_usd_per_mtok numeric DEFAULT NULL,
                                                     long_context_threshold bigint DEFAULT NULL,
                                                     input_long_context_usd_per_mtok numeric DEFAULT NULL,
                                                     output_long_context_usd_per_mtok numeric DEFAULT NULL,
                                                     cached_input_long_context_usd_per_mtok numeric DEFAULT NULL,
                                                     cache_write_long_context_usd_per_mtok numeric DEFAULT NULL,
                                                     cache_write_1h_long_context_usd_per_mtok numeric DEFAULT NULL,
                                                     batch_input_usd_per_mtok numeric DEFAULT NULL,
                                                     batch_output_usd_per_mtok numeric DEFAULT NULL,
                                                     batch_cached_input_usd_per_mtok numeric DEFAULT NULL,
                                                     batch_cache_write_usd_per_mtok numeric DEFAULT NULL,
                                                     flex_input_usd_per_mtok numeric DEFAULT NULL,
                                                     flex_output_usd_per_mtok numeric DEFAULT NULL,
                                                     flex_cached_input_usd_per_mtok numeric DEFAULT NULL,
                                                     flex_cache_write_usd_per_mtok numeric DEFAULT NULL,
                                                     priority_input_usd_per_mtok numeric DEFAULT NULL,
                                                     priority_output_usd_per_mtok numeric DEFAULT NULL,
                                                     priority_cached_input_usd_per_mtok numeric DEFAULT NULL,
                                                     priority_cache_write_usd_per_mtok numeric DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.set_model_price(text, text, numeric, numeric, numeric, numeric, timestamptz, numeric, bigint,
                                              numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric,
                                              numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric) IS
'Adds a price version (USD per million tokens) valid from valid_from (default now); the previous version ends there, so costs already computed keep their price.  Every billed dimension: input, output, cache reads, 5-minute and 1-hour cache writes, the same above long_context_threshold input tokens, and batch, flex and priority rates; a rate left NULL is derived by the rules of README "Prices".  Calls tracked while the model had no price are priced.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._set_model_price_impl(provider text, model text,
                                                           input_usd_per_mtok numeric, output_usd_per_mtok numeric,
                                                           cached_input_usd_per_mtok numeric DEFAULT NULL,
                                                           cache_write_usd_per_mtok numeric DEFAULT NULL,
                                                           valid_from timestamptz DEFAULT now(),
                                                           cache_write_1h_usd_per_mtok numeric DEFAULT NULL,
                                                           long_context_threshold bigint DEFAULT NULL,
                                                           input_long_context_usd_per_mtok numeric DEFAULT NULL,
                                                           output_long_context_usd_per_mtok numeric DEFAULT NULL,
                                                           cached_input_long_context_usd_per_mtok numeric DEFAULT NULL,
                                                           cache_write_long_context_usd_per_mtok numeric DEFAULT NULL,
                                                           cache_write_1h_long_context_usd_per_mtok numeric DEFAULT NULL,
                                                           batch_input_usd_per_mtok numeric DEFAULT NULL,
                                                           batch_output_usd_per_mtok numeric DEFAULT NULL,
                                                           batch_cached_input_usd_per_mtok numeric DEFAULT NULL,
                                                           batch_cache_write_usd_per_mtok numeric DEFAULT NULL,
                                                           flex_input_usd_per_mtok numeric DEFAULT NULL,
                                                           flex_output_usd_per_mtok numeric DEFAULT NULL,
                                                           flex_cached_input_usd_per_mtok numeric DEFAULT NULL,
                                                           flex_cache_write_usd_per_mtok numeric DEFAULT NULL,
                                                           priority_input_usd_per_mtok numeric DEFAULT NULL,
                                                           priority_output_usd_per_mtok numeric DEFAULT NULL,
                                                           priority_cached_input_usd_per_mtok numeric DEFAULT NULL,
                                                           priority_cache_write_usd_per_mtok numeric DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v llm_usage.model_price_versions;
BEGIN
    PERFORM llm_usage._require_admin('set_model_price');
    PERFORM llm_usage._require_arg($1, 'provider');
    PERFORM llm_usage._require_arg($2, 'model');
    PERFORM llm_usage._require_arg($3, 'input_usd_per_mtok');
    PERFORM llm_usage._require_arg($4, 'output_usd_per_mtok');
    PERFORM llm_usage._require_arg($7, 'valid_from');
    v.provider := $1;
    v.model := $2;
    v.input_usd_per_mtok := $3;
    v.output_usd_per_mtok := $4;
    v.cached_input_usd_per_mtok := $5;
    v.cache_write_usd_per_mtok := $6;
    v.valid_from := $7;
    v.cache_write_1h_usd_per_mtok := $8;
    v.long_context_threshold := $9;
    v.input_long_context_usd_per_mtok := $10;
    v.output_long_context_usd_per_mtok := $11;
    v.cached_input_long_context_usd_per_mtok := $12;
    v.cache_write_long_context_usd_per_mtok := $13;
    v.cache_write_1h_long_context_usd_per_mtok := $14;
    v.batch_input_usd_per_mtok := $15;
    v.batch_output_usd_per_mtok := $16;
    v.batch_cached_input_usd_per_mtok := $17;
    v.batch_cache_write_usd_per_mtok := $18;
    v.flex_input_usd_per_mtok := $19;
    v.flex_output_usd_per_mtok := $20;
    v.flex_cached_input_usd_per_mtok := $21;
    v.flex_cache_write_usd_per_mtok := $22;
    v.priority_input_usd_per_mtok := $23;
    v.priority_output_usd_per_mtok := $24;
    v.priority_cached_input_usd_per_mtok := $25;
    v.priority_cache_write_usd_per_mtok := $26;
    v.source := 'set_model_price';
    PERFORM llm_usage._check_price(v, '');
    RETURN (llm_usage._add_price_version(v)).price_id;
END
$$;
COMMENT ON FUNCTION llm_usage._set_model_price_impl(text, text, numeric, numeric, numeric, numeric, timestamptz, numeric, bigint,
                                                    numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric,
                                                    numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric, numeric) IS
'Internal: the body of llm_usage.set_model_price(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * _price_from_litellm(key, entry): a price version (no id, no valid_from)
 * from one entry of a LiteLLM price map (model_prices_and_context_window
 * .json): per-token costs become USD per million tokens, exactly as
 * written (jsonb numbers are numeric).  The long-context threshold is the
 * N of the entry's *_above_Nk_tokens keys (all must agree).  Raises 22023
 * on a cost that is not a non-negative number.
 */
CREATE OR REPLACE FUNCTION llm_usage._price_from_litellm(p_key text, p_entry jsonb)
RETURNS llm_usage.model_price_versions
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v       llm_usage.model_price_versions;
    v_n     text[];
    v_sfx   text;
    f       record;
BEGIN
    FOR f IN SELECT e.key, e.value FROM jsonb_each(p_entry) e
              WHERE (e.key LIKE '%cost_per_token%' OR e.key LIKE '%token_cost%') AND e.value <> 'null'
    LOOP
        IF jsonb_typeof(f.value) <> 'number' OR f.value::text::numeric < 0 THEN
            RAISE EXCEPTION 'price map entry "%": % must be a non-negative number, got %', left(p_key, 200), f.key, left(f.value::text, 100)
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'A LiteLLM price map gives costs in USD per token as JSON numbers.';
        END IF;
    END LOOP;
    SELECT array_agg(DISTINCT m[1] ORDER BY m[1]) INTO v_n
      FROM jsonb_object_keys(p_entry) k
     CROSS JOIN LATERAL regexp_matches(k, '^(?:input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)_above_([0-9]+k?)_tokens$') m
     WHERE p_entry->k <> 'null';
    IF cardinality(v_n) > 1 THEN
        RAISE EXCEPTION 'price map entry "%" has more than one long-context threshold (%)', left(p_key, 200), array_to_string(v_n, ', ')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'llm_usage stores one long-context band per price version.';
    END IF;
    v_sfx := '_above_' || v_n[1] || '_tokens';
    v.model := p_key;
    v.provider := CASE p_entry->>'litellm_provider' WHEN 'text-completion-openai' THEN 'openai' ELSE p_entry->>'litellm_provider' END;
    v.mode := p_entry->>'mode';
    v.input_usd_per_mtok := trim_scale((p_entry->>'input_cost_per_token')::numeric * 1000000);
    v.output_usd_per_mtok := trim_scale((p_entry->>'output_cost_per_token')::numeric * 1000000);
    v.cached_input_usd_per_mtok := trim_scale((p_entry->>'cache_read_input_token_cost')::numeric * 1000000);
    v.cache_write_usd_per_mtok := trim_scale((p_entry->>'cache_creation_input_token_cost')::numeric * 1000000);
    v.cache_write_1h_usd_per_mtok := trim_scale((p_entry->>'cache_creation_input_token_cost_above_1hr')::numeric * 1000000);
    v.batch_input_usd_per_mtok := trim_scale((p_entry->>'input_cost_per_token_batches')::numeric * 1000000);
    v.batch_output_usd_per_mtok := trim_scale((p_entry->>'output_cost_per_token_batches')::numeric * 1000000);
    v.batch_cached_input_usd_per_mtok := trim_scale((p_entry->>'cache_read_input_token_cost_batches')::numeric * 1000000);
    v.batch_cache_write_usd_per_mtok := trim_scale((p_entry->>'cache_creation_input_token_cost_batches')::numeric * 1000000);
    v.flex_input_usd_per_mtok := trim_scale((p_entry->>'input_cost_per_token_flex')::numeric * 1000000);
    v.flex_output_usd_per_mtok := trim_scale((p_entry->>'output_cost_per_token_flex')::numeric * 1000000);
    v.flex_cached_input_usd_per_mtok := trim_scale((p_entry->>'cache_read_input_token_cost_flex')::numeric * 1000000);
    v.flex_cache_write_usd_per_mtok := trim_scale((p_entry->>'cache_creation_input_token_cost_flex')::numeric * 1000000);
    v.priority_input_usd_per_mtok := trim_scale((p_entry->>'input_cost_per_token_priority')::numeric * 1000000);
    v.priority_output_usd_per_mtok := trim_scale((p_entry->>'output_cost_per_token_priority')::numeric * 1000000);
    v.priority_cached_input_usd_per_mtok := trim_scale((p_entry->>'cache_read_input_token_cost_priority')::numeric * 1000000);
    v.priority_cache_write_usd_per_mtok := trim_scale((p_entry->>'cache_creation_input_token_cost_priority')::numeric * 1000000);
    IF v_n[1] IS NOT NULL THEN
        v.long_context_threshold := CASE WHEN v_n[1] LIKE '%k' THEN left(v_n[1], -1)::bigint * 1000 ELSE v_n[1]::bigint END;
        v.input_long_context_usd_per_mtok := trim_scale((p_entry->>('input_cost_per_token' || v_sfx))::numeric * 1000000);
        v.output_long_context_usd_per_mtok := trim_scale((p_entry->>('output_cost_per_token' || v_sfx))::numeric * 1000000);
        v.cached_input_long_context_usd_per_mtok := trim_scale((p_entry->>('cache_read_input_token_cost' || v_sfx))::numeric * 1000000);
        v.cache_write_long_context_usd_per_mtok := trim_scale((p_entry->>('cache_creation_input_token_cost' || v_sfx))::numeric * 1000000);
        v.cache_write_1h_long_context_usd_per_mtok := trim_scale((p_entry->>('cache_creation_input_token_cost_above_1hr' || v_sfx))::numeric * 1000000);
    END IF;
    IF p_entry->>'deprecation_date' ~ '^\d{4}-\d{2}-\d{2}$' THEN
        BEGIN
            v.deprecation_date := (p_entry->>'deprecation_date')::date;
        EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
            v.deprecation_date := NULL;
        END;
    END IF;
    RETURN v;
END
$$;
COMMENT ON FUNCTION llm_usage._price_from_litellm(text, jsonb) IS
'Internal: the price version (rates in USD per million tokens, long-context threshold, mode, deprecation date) of one LiteLLM price map entry; raises 22023 on a malformed cost.';

CREATE OR REPLACE FUNCTION llm_usage.import_price_map(price_map jsonb, valid_from timestamptz DEFAULT now(),
                                                      providers text[] DEFAULT ARRAY['openai', 'anthropic'])
RETURNS TABLE (model text, provider text, action text, price_id bigint, changed text[])
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.import_price_map(jsonb, timestamptz, text[]) IS
'Loads a LiteLLM-format price map (model_prices_and_context_window.json): for every chat, completion, responses and embedding entry of the given providers (default openai, with text-completion-openai, and anthropic; NULL for all) whose rates differ from the model''s current version, adds a version valid from valid_from, with every dimension.  Returns what it added (action added or changed, and the dimensions that changed); unchanged models add nothing.  All or nothing: a malformed entry or a version that would rewrite history changes nothing.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._import_price_map_impl(price_map jsonb, valid_from timestamptz DEFAULT now(),
                                                            providers text[] DEFAULT ARRAY['openai', 'anthropic'])
RETURNS TABLE (model text, provider text, action text, price_id bigint, changed text[])
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    e         record;
    v         llm_usage.model_price_versions;
    v_cur     llm_usage.model_price_versions;
    v_row     llm_usage.model_price_versions;
    v_changed text[];
    v_source  text;
    v_same    integer := 0;
BEGIN
    PERFORM llm_usage._require_admin('import_price_map');
    PERFORM llm_usage._require_arg($1, 'price_map');
    PERFORM llm_usage._require_arg($2, 'valid_from');
    IF jsonb_typeof($1) <> 'object' THEN
        RAISE EXCEPTION 'price_map must be a JSON object, got %', jsonb_typeof($1)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass LiteLLM''s model_prices_and_context_window.json: an object of model name -> entry.';
    END IF;
    IF $3 IS NOT NULL AND (cardinality($3) = 0 OR array_position($3, NULL) IS NOT NULL) THEN
        RAISE EXCEPTION 'providers must be NULL (every provider) or a non-empty list of names'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    v_source := 'import_price_map' || coalesce(' ' || left($1->>'last_updated', 40), '');
    FOR e IN SELECT k.key, k.value FROM jsonb_each($1) k
              WHERE jsonb_typeof(k.value) = 'object'
                AND k.key NOT IN ('sample_spec', 'fallback_generalizations')
                AND k.value->>'mode' IN ('chat', 'completion', 'responses', 'embedding')
                AND ($3 IS NULL
                     OR CASE k.value->>'litellm_provider' WHEN 'text-completion-openai' THEN 'openai'
                             ELSE k.value->>'litellm_provider' END = ANY ($3))
                AND k.value ? 'input_cost_per_token' AND k.value ? 'output_cost_per_token'
              ORDER BY k.key
    LOOP
        v := llm_usage._price_from_litellm(e.key, e.value);
        PERFORM llm_usage._check_price(v, format('price map entry "%s": ', left(e.key, 200)));
        v.valid_from := $2;
        v.source := v_source;
        SELECT * INTO v_cur FROM llm_usage.model_price_versions x WHERE x.model = v.model ORDER BY x.valid_from DESC LIMIT 1;
        IF v_cur.price_id IS NOT NULL THEN
            SELECT array_agg(n.name ORDER BY n.ord) INTO v_changed
              FROM llm_usage._price_dimensions(v) WITH ORDINALITY n(name, value, ord)
              JOIN llm_usage._price_dimensions(v_cur) o USING (name)
             WHERE n.value IS DISTINCT FROM o.value;
            IF v_changed IS NULL THEN
                v_same := v_same + 1;
                CONTINUE;
            END IF;
        END IF;
        v_row := llm_usage._add_price_version(v);
        model := v_row.model;
        provider := v_row.provider;
        action := CASE WHEN v_cur.price_id IS NULL THEN 'added' ELSE 'changed' END;
        price_id := v_row.price_id;
        changed := CASE WHEN v_cur.price_id IS NOT NULL THEN v_changed END;
        RETURN NEXT;
    END LOOP;
    RAISE NOTICE '% model(s) of the map already had these prices', v_same;
END
$$;
COMMENT ON FUNCTION llm_usage._import_price_map_impl(jsonb, timestamptz, text[]) IS
'Internal: the body of llm_usage.import_price_map(), run as the owner by its entry point, which records the caller (src/caller.c).';

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
       v.long_context_threshold,
       v.input_long_context_usd_per_mtok,
       v.output_long_context_usd_per_mtok,
       v.cached_input_long_context_usd_per_mtok,
       v.cache_write_long_context_usd_per_mtok,
       v.cache_write_1h_long_context_usd_per_mtok,
       v.batch_input_usd_per_mtok,
       v.batch_output_usd_per_mtok,
       v.batch_cached_input_usd_per_mtok,
       v.batch_cache_write_usd_per_mtok,
       v.flex_input_usd_per_mtok,
       v.flex_output_usd_per_mtok,
       v.flex_cached_input_usd_per_mtok,
       v.flex_cache_write_usd_per_mtok,
       v.priority_input_usd_per_mtok,
       v.priority_output_usd_per_mtok,
       v.priority_cached_input_usd_per_mtok,
       v.priority_cache_write_usd_per_mtok,
       v.valid_from,
       lead(v.valid_from) OVER (PARTITION BY v.model ORDER BY v.valid_from) AS valid_to,
       v.deprecation_date,
       v.source
  FROM llm_usage.model_price_versions v;
COMMENT ON VIEW llm_usage.model_prices IS
'Model prices with their validity range [valid_from, valid_to); valid_to is NULL for the price in force.  Every billed dimension, NULL where the rules of README "Prices" derive the rate.  Change prices with set_model_price() or import_price_map().';

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

-- an event-type change reaches every session (read with the plans) at commit
CREATE OR REPLACE TRIGGER quota_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON llm_usage.event_types
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._quota_config_changed();

-- a price change reaches every session's price cache at commit
CREATE OR REPLACE TRIGGER quota_config_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON llm_usage.model_price_versions
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._quota_config_changed();

------------------------------------------------------------------------
-- Tracking
------------------------------------------------------------------------

/*
 * Event types.  An event type is the application's own name for a call:
 * 1 to 64 characters, none of them a control character (U+0000 to U+001F,
 * U+007F to U+009F), not blank (not only spaces).  llm_usage.event_types
 * maps names to the counters they feed; the mapping in force is
 * event_type_counters (an admin's row before the shipped one).
 */
CREATE OR REPLACE FUNCTION llm_usage._check_event_type(p_event_type text, p_name text DEFAULT 'event_type')
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_event_type IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF length(p_event_type) NOT BETWEEN 1 AND 64 OR p_event_type !~ '[^ ]'
       OR p_event_type ~ '[\u0001-\u001f\u007f-\u009f]' THEN
        RAISE EXCEPTION 'invalid % "%"', p_name, left(regexp_replace(p_event_type, '[\u0001-\u001f\u007f-\u009f]', '?', 'g'), 80)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'An event type is the application''s name for the call: 1 to 64 characters, no control characters, not blank (for example chat_message, embedding, search).';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_event_type(text, text) IS
'Internal: raise 22004/22023 unless the text is a valid event type name (1 to 64 characters, no control characters, not blank).';

CREATE OR REPLACE VIEW llm_usage.event_type_counters AS
SELECT DISTINCT ON (t.event_type) t.event_type, t.counts_as,
       CASE WHEN t.is_shipped THEN 'shipped' ELSE 'admin' END AS source
  FROM llm_usage.event_types t
 ORDER BY t.event_type, t.is_shipped;
COMMENT ON VIEW llm_usage.event_type_counters IS
'The event-type mapping in force: per event type, the counter it feeds (chat_messages, embeddings, or NULL for none) and whether the mapping is shipped or an admin''s (set_event_type).  Event types not listed feed no counter.';

CREATE OR REPLACE FUNCTION llm_usage.set_event_type(event_type text, counts_as text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.set_event_type(text, text) IS
'Maps an event type to the counter it feeds from now on: ''chat_messages'', ''embeddings'', or NULL (or ''none'') for none, replacing the shipped mapping of that name if there is one.  Quotas count calls tracked from then on; roll-ups count by the mapping when they compute a period (aggregate_usage_metrics(since => ...) recomputes past ones).  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._set_event_type_impl(event_type text, counts_as text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_counter text := CASE WHEN $2 = 'none' THEN NULL ELSE $2 END;
BEGIN
    PERFORM llm_usage._require_admin('set_event_type');
    PERFORM llm_usage._check_event_type($1);
    IF v_counter IS NOT NULL AND v_counter NOT IN ('chat_messages', 'embeddings') THEN
        RAISE EXCEPTION 'unknown counter "%" for an event type', left($2, 100)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'An event type feeds chat_messages, embeddings, or none (NULL).';
    END IF;
    INSERT INTO llm_usage.event_types AS t (event_type, counts_as, is_shipped)
    VALUES ($1, v_counter, false)
    ON CONFLICT (event_type, is_shipped) DO UPDATE
       SET counts_as = EXCLUDED.counts_as, updated_at = now();
END
$$;
COMMENT ON FUNCTION llm_usage._set_event_type_impl(text, text) IS
'Internal: the body of llm_usage.set_event_type(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.remove_event_type(event_type text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.remove_event_type(text) IS
'Removes an admin''s mapping of an event type (set_event_type): the type feeds what the shipped mapping says again, or, for a name not shipped, no counter.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._remove_event_type_impl(event_type text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM llm_usage._require_admin('remove_event_type');
    PERFORM llm_usage._check_event_type($1);
    DELETE FROM llm_usage.event_types t WHERE t.event_type = $1 AND NOT t.is_shipped;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'event type "%" has no mapping set by an admin', $1
            USING ERRCODE = 'undefined_object',
                  HINT = CASE WHEN EXISTS (SELECT 1 FROM llm_usage.event_types t WHERE t.event_type = $1)
                              THEN 'Its shipped mapping cannot be removed; set_event_type(' || quote_literal($1) || ', NULL) makes it feed no counter.'
                              ELSE 'llm_usage.event_type_counters lists the mappings in force.' END;
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._remove_event_type_impl(text) IS
'Internal: the body of llm_usage.remove_event_type(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage._track_usage_sql(tenant_id text, event_type text, model text DEFAULT NULL,
                                                      input_tokens bigint DEFAULT 0, output_tokens bigint DEFAULT 0,
                                                      cached_input_tokens bigint DEFAULT 0, latency_ms integer DEFAULT NULL,
                                                      status_code integer DEFAULT 200, result text DEFAULT 'success',
                                                      metadata jsonb DEFAULT '{}', request_id text DEFAULT NULL,
                                                      occurred_at timestamptz DEFAULT now(),
                                                      cache_write_tokens bigint DEFAULT 0,
                                                      cache_write_1h_tokens bigint DEFAULT 0,
                                                      service_tier text DEFAULT 'standard')
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage._track_usage_sql(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint, bigint, text) IS
'Internal: track_usage() in SQL; the C track_usage() hands it bad arguments, repeated request ids and calls more than 28 days old.';

CREATE OR REPLACE FUNCTION llm_usage._track_usage_sql_impl(tenant_id text, event_type text, model text DEFAULT NULL,
                                                           input_tokens bigint DEFAULT 0, output_tokens bigint DEFAULT 0,
                                                           cached_input_tokens bigint DEFAULT 0, latency_ms integer DEFAULT NULL,
                                                           status_code integer DEFAULT 200, result text DEFAULT 'success',
                                                           metadata jsonb DEFAULT '{}', request_id text DEFAULT NULL,
                                                           occurred_at timestamptz DEFAULT now(),
                                                           cache_write_tokens bigint DEFAULT 0,
                                                           cache_write_1h_tokens bigint DEFAULT 0,
                                                           service_tier text DEFAULT 'standard')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t       llm_usage.tenants := llm_usage._tenant($1);
    p       llm_usage.model_price_versions;
    v_id    bigint;
    v_tier  text;
    v_cost  numeric;
BEGIN
    PERFORM llm_usage._check_event_type($2);
    IF $3 IS NOT NULL AND $3 !~ '^[[:graph:]]{1,200}$' THEN
        RAISE EXCEPTION 'invalid model name "%"', $3
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the model name as sent to the provider, or NULL.';
    END IF;
    PERFORM llm_usage._check_count($4, 'input_tokens');
    PERFORM llm_usage._check_count($5, 'output_tokens');
    PERFORM llm_usage._check_count($6, 'cached_input_tokens');
    PERFORM llm_usage._check_count($13, 'cache_write_tokens');
    PERFORM llm_usage._check_count($14, 'cache_write_1h_tokens');
    PERFORM llm_usage._check_token_split($4, $6, $13, $14);
    v_tier := llm_usage._service_tier($15);
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
    v_cost := llm_usage._cost(p, $4, $5, $6, $13, $14, v_tier);

    -- retention drops whole UTC months, as the partitions are cut
    IF $12 < date_trunc('month', now(), 'UTC') - make_interval(months => coalesce(current_setting('llm_usage.event_retention', true), '13')::integer) THEN
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
             occurred_at, cache_write_1h_tokens, service_tier)
        VALUES (t.tenant_id, v_id, $2, $3, p.provider, $4, $5, $6, $13,
                v_cost, p.price_id, $7, $8, $9, $10, $11, $12, $14, v_tier);
    ELSE
        INSERT INTO llm_usage.usage_events
            (tenant_id, event_type, model, provider, input_tokens, output_tokens, cached_input_tokens,
             cache_write_tokens, cost_usd, price_id, latency_ms, status_code, result, metadata, request_id,
             occurred_at, cache_write_1h_tokens, service_tier)
        VALUES (t.tenant_id, $2, $3, p.provider, $4, $5, $6, $13,
                v_cost, p.price_id, $7, $8, $9, $10, $11, $12, $14, v_tier)
        RETURNING event_id INTO v_id;
    END IF;
    -- the quotas count what was recorded; the request's reservation is released
    PERFORM llm_usage._settle(t, $11, $4 + $5, v_cost,
                              (SELECT k.counts_as FROM llm_usage.event_type_counters k WHERE k.event_type = $2), $12);
    -- a prepaid tenant pays for the call now, once per event (src/sql/credits.sql)
    IF t.prepaid THEN
        PERFORM llm_usage._credit_burn(t, v_cost, 'tracked_call', 'tracked call', v_id, $11);
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION llm_usage._track_usage_sql_impl(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint, bigint, text) IS
'Internal: the body of llm_usage._track_usage_sql(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.track_usage(tenant_id text, event_type text, model text DEFAULT NULL,
                                                 input_tokens bigint DEFAULT 0, output_tokens bigint DEFAULT 0,
                                                 cached_input_tokens bigint DEFAULT 0, latency_ms integer DEFAULT NULL,
                                                 status_code integer DEFAULT 200, result text DEFAULT 'success',
                                                 metadata jsonb DEFAULT '{}', request_id text DEFAULT NULL,
                                                 occurred_at timestamptz DEFAULT now(),
                                                 cache_write_tokens bigint DEFAULT 0,
                                                 cache_write_1h_tokens bigint DEFAULT 0,
                                                 service_tier text DEFAULT 'standard')
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_track_usage';
COMMENT ON FUNCTION llm_usage.track_usage(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint, bigint, text) IS
'Records one LLM call after it happened and returns its event id; cost_usd from the price valid at occurred_at (NULL for an unpriced model), for its tokens (input including cache reads and 5-minute / 1-hour cache writes) and service_tier (standard, batch, flex, priority).  Settles the quotas: the call counts 1 api call, its tokens, its cost and 1 chat message or embedding by its event type, and the reservation enforce_quota() made for the same request_id is released (when the transaction commits).  Idempotent on (tenant_id, request_id).';

------------------------------------------------------------------------
-- Tracking from the provider's own usage object
------------------------------------------------------------------------

/*
 * _usage_count(usage, path, required): the token count at a path of a
 * provider's usage object: NULL when absent or JSON null (22023 if
 * required), 22023 unless a whole number from 0 to 10^9.
 */
CREATE OR REPLACE FUNCTION llm_usage._usage_count(p_usage jsonb, p_path text[], p_required boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v jsonb := p_usage #> p_path;
    n numeric;
BEGIN
    IF v IS NULL OR v = 'null' THEN
        IF p_required THEN
            RAISE EXCEPTION 'usage object has no %', array_to_string(p_path, '.')
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass the "usage" object of the response exactly as the provider returned it.';
        END IF;
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) = 'number' THEN
        n := v::text::numeric;
    END IF;
    IF n IS NULL OR n <> trunc(n) OR n < 0 OR n > 1000000000 THEN
        RAISE EXCEPTION 'usage.% must be a token count (a whole number from 0 to 1000000000), got %',
                array_to_string(p_path, '.'), left(v::text, 100)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN n::bigint;
END
$$;
COMMENT ON FUNCTION llm_usage._usage_count(jsonb, text[], boolean) IS
'Internal: a token count of a provider''s usage object (NULL when absent); raises 22023 when required and absent, or not a whole number from 0 to 10^9.';

/*
 * track_response_usage(): track_usage() from the "usage" object of one
 * response, as the provider returned it, so that the application never
 * decides which counts overlap:
 *
 *   OpenAI Chat Completions (also Completions, Embeddings): prompt_tokens
 *     is all input, prompt_tokens_details.cached_tokens (cache reads) and
 *     .cache_write_tokens are part of it; completion_tokens is all output,
 *     reasoning, audio and predicted tokens included.
 *   OpenAI Responses: input_tokens / input_tokens_details, output_tokens /
 *     output_tokens_details, the same way.
 *   Anthropic Messages: input_tokens is only the input after the last cache
 *     breakpoint; cache_read_input_tokens and cache_creation_input_tokens
 *     come on top (total input = their sum); cache_creation splits the
 *     writes into ephemeral_5m_input_tokens and ephemeral_1h_input_tokens
 *     (without it all writes are 5-minute ones); usage.service_tier.
 *
 * The whole response object is accepted too (its "usage", and its "model"
 * and "service_tier" where the arguments leave them out).  service_tier:
 * standard, batch, flex, priority, or the provider's own name (OpenAI
 * "default" and "auto" are standard); OpenAI reports it beside the usage
 * object, Anthropic inside it; the Batch API reports nothing, so pass
 * 'batch' for batch results.  The tenant check is track_usage()'s, for the
 * caller the entry point recorded.
 */
CREATE OR REPLACE FUNCTION llm_usage.track_response_usage(tenant_id text, provider text, model text, usage jsonb,
                                                          event_type text DEFAULT 'chat', latency_ms integer DEFAULT NULL,
                                                          status_code integer DEFAULT 200, result text DEFAULT 'success',
                                                          metadata jsonb DEFAULT '{}', request_id text DEFAULT NULL,
                                                          occurred_at timestamptz DEFAULT now(),
                                                          service_tier text DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.track_response_usage(text, text, text, jsonb, text, integer, integer, text, jsonb, text, timestamptz, text) IS
'track_usage() from the usage object of one response exactly as the provider returned it (OpenAI Chat Completions or Responses, Anthropic Messages; or the whole response): input including cache reads, 5-minute and 1-hour cache writes, output including reasoning, and the service tier, each as that provider counts them.  Returns the event id.';

CREATE OR REPLACE FUNCTION llm_usage._track_response_usage_impl(tenant_id text, provider text, model text, usage jsonb,
                                                                event_type text DEFAULT 'chat', latency_ms integer DEFAULT NULL,
                                                                status_code integer DEFAULT 200, result text DEFAULT 'success',
                                                                metadata jsonb DEFAULT '{}', request_id text DEFAULT NULL,
                                                                occurred_at timestamptz DEFAULT now(),
                                                                service_tier text DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_resp   jsonb;
    v_usage  jsonb := $4;
    v_model  text := $3;
    v_tier   text := $12;
    v_in     bigint;
    v_out    bigint;
    v_read   bigint;
    v_w5     bigint;
    v_w1     bigint;
    v_cw     bigint;
    v_reason bigint;
BEGIN
    PERFORM llm_usage._require_arg($2, 'provider');
    PERFORM llm_usage._require_arg($4, 'usage');
    IF jsonb_typeof($4) <> 'object' THEN
        RAISE EXCEPTION 'usage must be a JSON object, got %', jsonb_typeof($4)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the "usage" object of the response (or the whole response).';
    END IF;
    IF jsonb_typeof($4->'usage') = 'object' THEN
        v_resp := $4;           -- a whole response
        v_usage := $4->'usage';
        v_model := coalesce(v_model, v_resp->>'model');
    END IF;

    IF $2 = 'openai' THEN
        IF v_usage ?| ARRAY['cache_read_input_tokens', 'cache_creation_input_tokens', 'cache_creation'] THEN
            RAISE EXCEPTION 'usage object is Anthropic''s, not OpenAI''s'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass provider => ''anthropic'': its input_tokens exclude the cache reads and writes, OpenAI''s include them.';
        END IF;
        IF v_usage ? 'prompt_tokens' THEN
            -- Chat Completions, Completions, Embeddings
            v_in := llm_usage._usage_count(v_usage, '{prompt_tokens}', true);
            v_out := coalesce(llm_usage._usage_count(v_usage, '{completion_tokens}'), 0);
            v_read := coalesce(llm_usage._usage_count(v_usage, '{prompt_tokens_details,cached_tokens}'), 0);
            v_w5 := coalesce(llm_usage._usage_count(v_usage, '{prompt_tokens_details,cache_write_tokens}'), 0);
            v_reason := llm_usage._usage_count(v_usage, '{completion_tokens_details,reasoning_tokens}');
            IF v_reason > v_out THEN
                RAISE EXCEPTION 'usage.completion_tokens_details.reasoning_tokens (%) exceed usage.completion_tokens (%)', v_reason, v_out
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Reasoning tokens are part of completion_tokens; pass the usage object unchanged.';
            END IF;
        ELSIF v_usage ? 'input_tokens' THEN
            -- Responses
            v_in := llm_usage._usage_count(v_usage, '{input_tokens}', true);
            v_out := llm_usage._usage_count(v_usage, '{output_tokens}', true);
            v_read := coalesce(llm_usage._usage_count(v_usage, '{input_tokens_details,cached_tokens}'), 0);
            v_w5 := coalesce(llm_usage._usage_count(v_usage, '{input_tokens_details,cache_write_tokens}'), 0);
            v_reason := llm_usage._usage_count(v_usage, '{output_tokens_details,reasoning_tokens}');
            IF v_reason > v_out THEN
                RAISE EXCEPTION 'usage.output_tokens_details.reasoning_tokens (%) exceed usage.output_tokens (%)', v_reason, v_out
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Reasoning tokens are part of output_tokens; pass the usage object unchanged.';
            END IF;
        ELSE
            RAISE EXCEPTION 'usage object has neither prompt_tokens (Chat Completions) nor input_tokens (Responses)'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass the "usage" object of the response exactly as OpenAI returned it.';
        END IF;
        IF v_read + v_w5 > v_in THEN
            RAISE EXCEPTION 'usage reports % cached and % cache-write tokens of % input tokens', v_read, v_w5, v_in
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'OpenAI''s input token count includes the cached tokens; pass the usage object unchanged.';
        END IF;
        v_w1 := 0;
        v_tier := coalesce(v_tier, v_resp->>'service_tier', 'standard');
        IF v_tier IN ('default', 'auto') THEN
            v_tier := 'standard';
        END IF;
    ELSIF $2 = 'anthropic' THEN
        IF v_usage ? 'prompt_tokens' THEN
            RAISE EXCEPTION 'usage object is OpenAI''s, not Anthropic''s'
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Pass provider => ''openai'': its prompt_tokens include the cached tokens, Anthropic''s input_tokens do not.';
        END IF;
        v_in := llm_usage._usage_count(v_usage, '{input_tokens}', true);
        v_out := llm_usage._usage_count(v_usage, '{output_tokens}', true);
        v_read := coalesce(llm_usage._usage_count(v_usage, '{cache_read_input_tokens}'), 0);
        v_cw := llm_usage._usage_count(v_usage, '{cache_creation_input_tokens}');
        IF jsonb_typeof(v_usage->'cache_creation') = 'object' THEN
            v_w5 := coalesce(llm_usage._usage_count(v_usage, '{cache_creation,ephemeral_5m_input_tokens}'), 0);
            v_w1 := coalesce(llm_usage._usage_count(v_usage, '{cache_creation,ephemeral_1h_input_tokens}'), 0);
            IF v_cw IS NOT NULL AND v_cw <> v_w5 + v_w1 THEN
                RAISE EXCEPTION 'usage.cache_creation_input_tokens (%) is not the sum of cache_creation.ephemeral_5m_input_tokens (%) and ephemeral_1h_input_tokens (%)',
                        v_cw, v_w5, v_w1
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'Pass the usage object unchanged.';
            END IF;
        ELSIF v_usage ? 'cache_creation' AND v_usage->'cache_creation' <> 'null' THEN
            RAISE EXCEPTION 'usage.cache_creation must be a JSON object, got %', jsonb_typeof(v_usage->'cache_creation')
                USING ERRCODE = 'invalid_parameter_value';
        ELSE
            v_w5 := coalesce(v_cw, 0);          -- the default TTL
            v_w1 := 0;
        END IF;
        v_in := v_in + v_read + v_w5 + v_w1;
        v_tier := coalesce(v_tier, v_usage->>'service_tier', 'standard');
    ELSE
        RAISE EXCEPTION 'unknown provider "%" for a usage object', left($2, 100)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Providers whose usage objects are understood: openai, anthropic.  Use track_usage() for others.';
    END IF;

    RETURN llm_usage.track_usage(tenant_id => $1, event_type => $5, model => v_model, input_tokens => v_in,
                                 output_tokens => v_out, cached_input_tokens => v_read, latency_ms => $6,
                                 status_code => $7, result => $8, metadata => $9, request_id => $10,
                                 occurred_at => $11, cache_write_tokens => v_w5, cache_write_1h_tokens => v_w1,
                                 service_tier => v_tier);
END
$$;
COMMENT ON FUNCTION llm_usage._track_response_usage_impl(text, text, text, jsonb, text, integer, integer, text, jsonb, text, timestamptz, text) IS
'Internal: the body of llm_usage.track_response_usage(), run as the owner by its entry point, which records the caller (src/caller.c); track_usage() checks the caller''s tenant.';
