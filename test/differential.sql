--
-- differential.sql: fixtures, input generators and runners of
-- t_differential.sh, which proves the C fast paths and their SQL twins give
-- the same answers.  Loaded into a database of its own, as a superuser.
--
-- The twins compared:
--   enforce_quota   C llm_usage.enforce_quota on a tenant counted in shared
--                   memory, against llm_usage._enforce_quota_sql on its twin
--                   counted in the table (_consume_table);
--   enforce_quotas  on the same pairs: _consume -> C _shm_consume, against
--                   _consume -> SQL _consume_table;
--   track_usage     C llm_usage.track_usage against llm_usage._track_usage_sql
--                   (SQL checks, SQL _cost), on a pair of tenants;
--   calculate_cost  SQL llm_usage.calculate_cost against the cost_usd the C
--                   track_usage writes (the C cost formula, src/cost.c): every
--                   price dimension, 1-hour cache writes, service tiers,
--                   long-context thresholds of 50 to 300,000 tokens;
--   period bounds   C period_bounds against SQL _period_bounds at instants
--                   in coming years (DST changes, month ends): a counter set
--                   in a future period is consumed there by both
--                   _shm_consume and _consume_table, which report its bounds;
--                   and the C computation itself (_period_bounds_c) at the
--                   instant, its periods' first and last microsecond.
--   settle          reserve, then settle: enforce_quota with request ids
--                   (C, shared memory) against _enforce_quota_sql (table)
--                   and track_usage of those requests (some never
--                   reserved, some tracked twice, some without an id) on
--                   the pair, each call committed (shared memory settles
--                   at commit); results, then counters and quota_status;
--   consume args    _shm_consume against _consume_table called directly with
--                   a fixed list of arrays: repeated, unknown and NULL types,
--                   NULL amounts, lengths that differ, every type at once, a
--                   denial (results, errors, counters and denial audit).
--
-- A twin is "the same tenant id plus 91 characters of three bytes each":
-- at most 128 characters, more than 255 bytes, so always counted in the
-- table although the server has shared memory.  Consumption in shared memory
-- is not transactional, so each side has its own tenant, configured alike.
--
-- Every input is generated up front from a fixed seed (setseed), so a run is
-- reproducible.  Each sequence of calls runs on fresh tenants within one
-- minute (all period boundaries are minute boundaries); a sequence that
-- crossed one is run again on new tenants with the same inputs.
--
-- What the comparison forgives, and why (see normalised()):
--   * amounts with more than 6 decimals: the C side counts in millionths,
--     rounding an amount up; the SQL twin is given the amount rounded up the
--     same way (documented rule, README "Counters live in shared memory");
--   * the twin's tenant id in error messages;
--   * a shared-memory counter saturates at 9223372036854.775807 units (int64
--     millionths); only an unlimited quota can get there.  Counted and
--     reported as a known divergence, not as a mismatch;
--   * numerically equal numbers with different display scales (C trims
--     trailing zeros): counted and reported, not a mismatch.
--
\set ON_ERROR_STOP 1
SET client_min_messages = warning;
CREATE SCHEMA difftest;

------------------------------------------------------------------------
-- Helpers
------------------------------------------------------------------------
CREATE FUNCTION difftest.rnd(n integer) RETURNS integer
LANGUAGE sql VOLATILE AS $$ SELECT floor(random() * n)::integer $$;

CREATE FUNCTION difftest.pick(a anyarray) RETURNS anyelement
LANGUAGE sql VOLATILE AS $$ SELECT a[1 + floor(random() * cardinality(a))::integer] $$;

-- the table-path twin of a tenant id
CREATE FUNCTION difftest.twin(a text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT a || '_' || repeat(chr(28450), 90) $$;

CREATE FUNCTION difftest.tenant_name(p_fn text, p_seq integer, p_att integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_fn WHEN 'enforce_quota' THEN 'q' WHEN 'enforce_quotas' THEN 'm'
                     WHEN 'track_usage' THEN 't' WHEN 'calculate_cost' THEN 'c'
                     WHEN 'consume_args' THEN 'a' WHEN 'settle' THEN 's' ELSE 'p' END
           || p_seq || '_' || p_att
$$;

-- the tenant argument of a call: the pair's own tenant, or a bad one (the same on both sides)
CREATE FUNCTION difftest.tenant_arg(p_kind text, p_tenant text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE p_kind WHEN 'T' THEN p_tenant WHEN 'NULL' THEN NULL WHEN 'EMPTY' THEN ''
                       WHEN 'UNKNOWN' THEN 'no-such-tenant'
                       WHEN 'UNKNOWN_LONG' THEN repeat(chr(28450), 100) END
$$;

-- the amount as the C side counts it: rounded up to millionths (only where that changes it)
CREATE FUNCTION difftest.ceil6(x numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN x >= 0 AND x <= 1000000000000 AND scale(x) > 6
                THEN round(ceil(x * 1000000) / 1000000, 6) ELSE x END
$$;

-- the same for every JSON number of an enforce_quotas amounts object
CREATE FUNCTION difftest.ceil6_amounts(j jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(j) = 'object' THEN
               (SELECT coalesce(jsonb_object_agg(key, CASE WHEN jsonb_typeof(value) = 'number'
                                                           THEN to_jsonb(difftest.ceil6(value::text::numeric))
                                                           ELSE value END), '{}')
                  FROM jsonb_each(j))
           ELSE j END
$$;

/*
 * normalised(j, saturate): a result as compared.  Under "requested" keys a
 * number is rounded up to millionths (the amount the C side counted); with
 * saturate, a "used" of 9223372036854.775807 or more becomes "saturated".
 */
CREATE FUNCTION difftest.normalised(j jsonb, saturate boolean, k text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    CASE jsonb_typeof(j)
    WHEN 'object' THEN
        RETURN (SELECT coalesce(jsonb_object_agg(e.key, difftest.normalised(e.value, saturate,
                                    CASE WHEN k = 'requested' THEN k ELSE e.key END)), '{}')
                  FROM jsonb_each(j) e
                 WHERE e.key NOT LIKE '\_%');
    WHEN 'array' THEN
        RETURN (SELECT coalesce(jsonb_agg(difftest.normalised(e.value, saturate, k) ORDER BY e.o), '[]')
                  FROM jsonb_array_elements(j) WITH ORDINALITY e(value, o));
    WHEN 'number' THEN
        IF saturate AND k = 'used' AND j::text::numeric >= 9223372036854.775807 THEN
            RETURN '"saturated"';
        END IF;
        IF k = 'requested' THEN
            RETURN to_jsonb(difftest.ceil6(j::text::numeric));
        END IF;
        RETURN j;
    ELSE
        RETURN j;
    END CASE;
END
$$;

-- calls of a function so far in this transaction (track_functions = all)
CREATE FUNCTION difftest.calls(f regprocedure) RETURNS bigint
LANGUAGE sql VOLATILE AS $$ SELECT coalesce(pg_stat_get_xact_function_calls(f), 0) $$;

-- sleep past the next minute boundary if it is nearer than p_need
CREATE FUNCTION difftest.clear_of_minute(p_need interval) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_left interval := date_trunc('minute', clock_timestamp()) + interval '1 minute' - clock_timestamp();
BEGIN
    IF v_left < p_need THEN
        PERFORM pg_sleep(extract(epoch FROM v_left) + 0.02);
    END IF;
END
$$;

------------------------------------------------------------------------
-- Fixtures: plans, zones, prices
------------------------------------------------------------------------
SELECT llm_usage.create_plan('dt_small');
SELECT llm_usage.set_plan_quota('dt_small', t, l, p)
  FROM (VALUES ('api_calls', 5, 'minute'), ('api_calls', 20, 'hour'), ('api_calls', 50, 'day'),
               ('api_calls', 100, 'month'), ('tokens', 1000, 'minute'), ('tokens', 5000, 'day'),
               ('cost_usd', 0.05, 'day'), ('cost_usd', 1.5, 'month'), ('chat_messages', NULL, 'day'),
               ('embeddings', 0, 'day')) v(t, l, p);
SELECT llm_usage.create_plan('dt_frac');
SELECT llm_usage.set_plan_quota('dt_frac', t, l, p)
  FROM (VALUES ('tokens', 12.5, 'minute'), ('tokens', 100.000001, 'hour'), ('cost_usd', 0.000123, 'minute'),
               ('cost_usd', 0.01, 'day'), ('api_calls', 3, 'minute'), ('chat_messages', 2.5, 'hour'),
               ('chat_messages', NULL, 'month'), ('embeddings', 7.25, 'month')) v(t, l, p);
SELECT llm_usage.create_plan('dt_huge');
SELECT llm_usage.set_plan_quota('dt_huge', t, l, p)
  FROM (VALUES ('tokens', 1000000000000, 'day'), ('tokens', NULL, 'month'),
               ('cost_usd', 1000000000000, 'month'), ('cost_usd', 999999999999.999999, 'day'),
               ('api_calls', NULL, 'minute'), ('embeddings', 1000000000, 'hour'),
               ('chat_messages', 1000000000000, 'minute')) v(t, l, p);
SELECT llm_usage.create_plan('dt_none');
SELECT llm_usage.create_plan('dt_unl');
SELECT llm_usage.set_plan_quota('dt_unl', t, NULL, p)
  FROM (VALUES ('tokens', 'minute'), ('tokens', 'hour'), ('tokens', 'day'), ('tokens', 'month'),
               ('api_calls', 'day'), ('cost_usd', 'month'), ('embeddings', 'minute')) v(t, p);
-- a day limit below the hour limit, a month limit that never binds: the binding quota is not the shortest
SELECT llm_usage.create_plan('dt_tight');
SELECT llm_usage.set_plan_quota('dt_tight', t, l, p)
  FROM (SELECT t, l, p
          FROM unnest(ARRAY['api_calls', 'chat_messages', 'cost_usd', 'embeddings', 'tokens']) t,
               (VALUES (10, 'minute'), (25, 'hour'), (7, 'day'), (1000000000000, 'month')) v(l, p)) x;
-- period-bound probes: every period of tokens
SELECT llm_usage.create_plan('dt_allper');
SELECT llm_usage.set_plan_quota('dt_allper', 'tokens', 1000000000000, p)
  FROM unnest(ARRAY['minute', 'hour', 'day', 'month']) p;

CREATE TABLE difftest.plans (plan text);
INSERT INTO difftest.plans VALUES ('dt_small'), ('dt_frac'), ('dt_huge'), ('dt_none'), ('dt_unl'), ('dt_tight'),
    ('trial'), ('starter'), ('pro'), ('enterprise');
CREATE TABLE difftest.zones (tz text);
INSERT INTO difftest.zones VALUES ('UTC'), ('Asia/Kolkata'), ('Asia/Kathmandu'), ('Australia/Lord_Howe'),
    ('America/New_York'), ('Europe/London'), ('Pacific/Chatham'), ('America/St_Johns'), ('Australia/Adelaide'),
    ('Pacific/Kiritimati'), ('Pacific/Pago_Pago'), ('Asia/Tehran'), ('America/Sao_Paulo'), ('Europe/Berlin'),
    ('America/Havana'), ('America/Santiago'), ('Asia/Beirut'), ('Africa/Cairo');

-- prices: every combination of optional rates (standard, long-context,
-- batch, flex, priority), odd rates whose derived rates need a division
-- that does not terminate, a zero input rate, a price history and a first
-- price to come
INSERT INTO llm_usage.model_price_versions
    (provider, model, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,
     cache_write_usd_per_mtok, input_long_context_usd_per_mtok, output_long_context_usd_per_mtok,
     long_context_threshold, valid_from)
VALUES ('difftest', 'dt-full', 3, 15, 0.3, 3.75, 6, 22.5, 200000, '-infinity'),
       ('difftest', 'dt-nocache', 0.15, 0.6, NULL, NULL, NULL, NULL, NULL, '-infinity'),
       ('difftest', 'dt-cachedonly', 1.1, 4.4, 0.275, NULL, NULL, NULL, NULL, '-infinity'),
       ('difftest', 'dt-writeonly', 2, 8, NULL, 2.5, NULL, NULL, NULL, '-infinity'),
       ('difftest', 'dt-200k-in', 1.25, 10, 0.125, NULL, 2.5, NULL, 200000, '-infinity'),
       ('difftest', 'dt-200k-out', 1.25, 10, NULL, NULL, NULL, 15, 200000, '-infinity'),
       ('difftest', 'dt-odd', 0.0000001, 123456.789012345, 0.00000003, 1000000000000, 0.333333333333, 7.0000001, 200000, '-infinity'),
       ('difftest', 'dt-zero', 0, 0, 0, 0, 0, 0, 200000, '-infinity');
INSERT INTO llm_usage.model_price_versions
    (provider, model, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok, cache_write_usd_per_mtok,
     cache_write_1h_usd_per_mtok, long_context_threshold, input_long_context_usd_per_mtok, output_long_context_usd_per_mtok,
     cached_input_long_context_usd_per_mtok, cache_write_long_context_usd_per_mtok, cache_write_1h_long_context_usd_per_mtok,
     batch_input_usd_per_mtok, batch_output_usd_per_mtok, batch_cached_input_usd_per_mtok, batch_cache_write_usd_per_mtok,
     flex_input_usd_per_mtok, flex_output_usd_per_mtok, flex_cached_input_usd_per_mtok, flex_cache_write_usd_per_mtok,
     priority_input_usd_per_mtok, priority_output_usd_per_mtok, priority_cached_input_usd_per_mtok,
     priority_cache_write_usd_per_mtok, valid_from)
VALUES ('difftest', 'dt-every', 3, 15, 0.3, 3.75, 6, 200000, 6, 22.5, 0.6, 7.5, 12, 1.5, 7.5, 0.15, 1.875,
        1.5, 7.5, 0.15, 1.875, 6, 30, 0.6, 7.5, '-infinity'),
       ('difftest', 'dt-272k', 2.5, 15, 0.25, NULL, NULL, 272000, 5, 22.5, 0.5, NULL, NULL, 1.25, 7.5, NULL, NULL,
        1.25, 7.5, 0.13, NULL, 5, 30, 0.5, NULL, '-infinity'),
       ('difftest', 'dt-thirds', 3, 7, 0.7, 1.1, 2.2, 1000, 7, 11, NULL, 2.9, NULL, 1, NULL, NULL, NULL,
        NULL, 2, 0.1, NULL, 1.7, NULL, NULL, 0.3, '-infinity'),
       ('difftest', 'dt-1h-only', 0.6, 2.2, NULL, NULL, 1.3, 50, NULL, 4.4, NULL, NULL, 2.6, NULL, NULL, NULL, NULL,
        NULL, NULL, NULL, NULL, 0.9, NULL, NULL, NULL, '-infinity'),
       ('difftest', 'dt-zero-in', 0, 2, 0.1, 0.3, 0.5, 100, 0.2, 3, NULL, NULL, NULL, 0.7, NULL, NULL, NULL,
        0.3, 1, NULL, NULL, NULL, NULL, NULL, NULL, '-infinity'),
       ('difftest', 'dt-odd-tiers', 0.0000007, 99999.999999, 0.00000003, 1000000000000, 0.1, 300000, 0.0000013, 7.0000001,
        NULL, 3, NULL, 0.0000003, NULL, 0.00000001, NULL, 0.0000009, 123456.7, NULL, 999999999999, 0.0000011,
        NULL, 0.333333333333, NULL, '-infinity');
SELECT llm_usage.set_model_price('difftest', 'dt-history', 3, 4, 0.5, NULL, now() - interval '10 days');
SELECT llm_usage.set_model_price('difftest', 'dt-history', 1, 2, NULL, NULL, now() - interval '20 days');
SELECT llm_usage.set_model_price('difftest', 'dt-history', 5, 6, 1, 7, now() + interval '30 minutes');
SELECT llm_usage.set_model_price('difftest', 'dt-future', 9, 9, NULL, NULL, now() + interval '30 minutes');

CREATE TABLE difftest.models (model text, kind text);
INSERT INTO difftest.models
SELECT model, 'fixture' FROM (SELECT DISTINCT model FROM llm_usage.model_price_versions WHERE provider = 'difftest') m;
INSERT INTO difftest.models
SELECT model, 'shipped' FROM (SELECT model FROM llm_usage.model_price_versions WHERE is_shipped ORDER BY model LIMIT 40) m;
-- and every shipped model with rates beyond input, output and cache
INSERT INTO difftest.models
SELECT model, 'shipped' FROM llm_usage.model_price_versions
 WHERE is_shipped AND model NOT IN (SELECT model FROM difftest.models WHERE model IS NOT NULL)
   AND (long_context_threshold IS NOT NULL OR flex_input_usd_per_mtok IS NOT NULL
        OR priority_input_usd_per_mtok IS NOT NULL OR cache_write_1h_usd_per_mtok IS NOT NULL);
INSERT INTO difftest.models VALUES ('dt-unpriced', 'unpriced'), ('gpt-9-nonexistent', 'unpriced'),
    (repeat('m', 200), 'unpriced'), ('mod' || chr(232) || 'le', 'unpriced'), (NULL, 'null'),
    (repeat('m', 201), 'bad'), ('', 'bad'), (' spaced', 'bad'), ('tab' || chr(9) || 'model', 'bad');

------------------------------------------------------------------------
-- Inputs, generated from the seed
------------------------------------------------------------------------
CREATE TABLE difftest.seqs (fn text, seq integer, plan text, tz text, overrides jsonb, PRIMARY KEY (fn, seq));
CREATE TABLE difftest.eq_in (seq integer, i integer, tenant_kind text, quota_type text, amount numeric);
CREATE TABLE difftest.eqs_in (seq integer, i integer, tenant_kind text, amounts jsonb);
CREATE TABLE difftest.tr_in (seq integer, i integer, tenant_kind text, event_type text, model text,
    input_tokens bigint, output_tokens bigint, cached_input_tokens bigint, cache_write_tokens bigint,
    latency_ms integer, status_code integer, result text, metadata jsonb, request_id text,
    at_kind text, at_rel interval, at_abs timestamptz, cache_write_1h_tokens bigint, service_tier text);
CREATE TABLE difftest.cost_in (seq integer, i integer, model text, input_tokens bigint, output_tokens bigint,
    cached_input_tokens bigint, cache_write_tokens bigint, at_kind text, at_rel interval, at_abs timestamptz,
    cache_write_1h_tokens bigint, service_tier text);
CREATE TABLE difftest.pb_in (seq integer, i integer, y_kind text, y_rel interval, y_local timestamp);
CREATE TABLE difftest.dst_days (tz text, day date);

-- outcomes: one row per call pair; state checks: one row per sequence and thing compared
CREATE TABLE difftest.st_in (seq integer, i integer, op text, quota_type text, amount numeric, rid text,
                             input_tokens bigint, output_tokens bigint, event_type text);
CREATE TABLE difftest.results (fn text, seq integer, att integer, i integer, input jsonb, c jsonb, s jsonb, c_path text);
CREATE TABLE difftest.state (fn text, seq integer, att integer, what text, c jsonb, s jsonb);
CREATE TABLE difftest.done (fn text, seq integer, att integer, a text, b text, seconds numeric);

CREATE FUNCTION difftest.gen_amount() RETURNS numeric
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k integer := difftest.rnd(100);
BEGIN
    RETURN CASE
        WHEN k < 25 THEN difftest.rnd(11)::numeric                                      -- small integers
        WHEN k < 32 THEN 0::numeric
        WHEN k < 45 THEN round((random() * 5)::numeric, 1 + difftest.rnd(6))            -- 1 to 6 decimals
        WHEN k < 50 THEN round((random() * 2)::numeric, 7 + difftest.rnd(4))            -- below a millionth
        WHEN k < 62 THEN (1 + difftest.rnd(1000))::numeric
        WHEN k < 70 THEN round((random() * 10 ^ (9 + difftest.rnd(4)))::numeric)        -- huge, up to 10^12
        WHEN k < 72 THEN 1000000000000::numeric
        WHEN k < 75 THEN difftest.pick(ARRAY[1000000000000.000001, 1000000000001, 1e15, 999999999999.9999999])
        WHEN k < 80 THEN difftest.pick(ARRAY[-1, -0.5, -0.0000001, -0.000001, -1e13, -0.0000000001])
        WHEN k < 84 THEN difftest.pick(ARRAY[NULL, 'NaN', 'Infinity', '-Infinity']::numeric[])
        ELSE (1 + difftest.rnd(100))::numeric
    END;
END
$$;

CREATE FUNCTION difftest.gen_tenant_kind(p_clean boolean DEFAULT false) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN p_clean OR random() < 0.94 THEN 'T'
                ELSE difftest.pick(ARRAY['NULL', 'EMPTY', 'UNKNOWN', 'UNKNOWN_LONG']) END
$$;

CREATE FUNCTION difftest.gen_quota_type() RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN random() < 0.92
                THEN difftest.pick(ARRAY['api_calls', 'chat_messages', 'cost_usd', 'embeddings', 'tokens'])
                ELSE difftest.pick(ARRAY[NULL, 'foo', '', 'Tokens', ' tokens']) END
$$;

CREATE FUNCTION difftest.gen_count(p_max bigint, p_clean boolean) RETURNS bigint
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k integer := difftest.rnd(100);
BEGIN
    IF p_clean AND k >= 88 AND k < 91 THEN
        k := 91;
    END IF;
    RETURN CASE
        WHEN k < 10 THEN 0
        WHEN k < 45 THEN difftest.rnd(5000)::bigint
        WHEN k < 55 THEN difftest.pick(ARRAY[199999, 200000, 200001]::bigint[])
        WHEN k < 75 THEN 200000 + (random() * 2000000)::bigint                          -- long context
        WHEN k < 85 THEN (random() * p_max)::bigint
        WHEN k < 88 THEN 1000000000
        WHEN k < 91 THEN difftest.pick(ARRAY[-1, 1000000001, NULL, -2147483649]::bigint[])
        ELSE difftest.rnd(100000)::bigint
    END;
END
$$;

CREATE FUNCTION difftest.gen_at(p_clean boolean, OUT at_kind text, OUT at_rel interval, OUT at_abs timestamptz)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k integer := difftest.rnd(100);
BEGIN
    IF p_clean AND k >= 75 AND k < 84 THEN
        k := 90;
    END IF;
    IF k < 45 THEN
        at_kind := 'rel'; at_rel := -(random() * interval '27 days');                   -- the C path's window
    ELSIF k < 55 THEN
        at_kind := 'rel'; at_rel := random() * interval '59 minutes';
    ELSIF k < 62 THEN
        at_kind := 'rel'; at_rel := interval '0';
    ELSIF k < 75 THEN
        at_kind := 'boundary'; at_rel := difftest.pick(ARRAY[interval '-1 microsecond', interval '0', interval '1 microsecond']);
        at_abs := NULL;
    ELSIF k < 80 THEN
        at_kind := 'rel'; at_rel := difftest.pick(ARRAY[interval '61 minutes', interval '-29 days', interval '-400 days',
                                                         interval '-28 days -1 second', interval '1 hour 1 second',
                                                         interval '-28 days', interval '-28 days 1 second', interval '1 hour',
                                                         interval '59 minutes 59 seconds']);
    ELSIF k < 84 THEN
        at_kind := 'abs'; at_abs := difftest.pick(ARRAY['1999-12-31 23:59:59+00', '2000-01-01 00:00:00+00', NULL,
                                                         '2010-06-01 12:00:00+00']::timestamptz[]);
    ELSE
        at_kind := 'rel'; at_rel := -(random() * interval '3 days');
    END IF;
END
$$;

-- occurred_at of a generated input, at run time
CREATE FUNCTION difftest.at_of(p_kind text, p_rel interval, p_abs timestamptz, p_i integer) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
    SELECT CASE p_kind
               WHEN 'rel' THEN now() + p_rel
               WHEN 'abs' THEN p_abs
               WHEN 'boundary' THEN (SELECT v.valid_from FROM llm_usage.model_price_versions v
                                      WHERE v.model IN ('dt-history', 'dt-future')
                                      ORDER BY v.model, v.valid_from OFFSET p_i % 4 LIMIT 1) + p_rel
           END
$$;

/* cached, 5-minute and 1-hour cache-write tokens for v_in input tokens: within it when clean, else anything */
CREATE FUNCTION difftest.gen_split(p_in bigint, p_clean boolean, OUT cached bigint, OUT cache_write bigint,
                                   OUT cache_write_1h bigint)
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF p_in IS NULL OR p_in <= 0 OR random() < 0.3 THEN
        cached := CASE WHEN p_clean THEN 0 ELSE difftest.pick(ARRAY[0, 0, 5, -1, NULL]::bigint[]) END;
        cache_write := CASE WHEN p_clean THEN 0 ELSE difftest.pick(ARRAY[0, 0, 3, -1, NULL, 1000000001]::bigint[]) END;
        cache_write_1h := CASE WHEN p_clean THEN 0 ELSE difftest.pick(ARRAY[0, 0, 2, -1, NULL, 1000000001]::bigint[]) END;
        RETURN;
    END IF;
    cached := CASE WHEN random() < 0.3 THEN 0 ELSE (random() * p_in)::bigint END;
    cache_write := CASE WHEN random() < 0.4 THEN 0
                        WHEN NOT p_clean AND random() < 0.2 THEN p_in - cached + 1           -- one too many
                        ELSE (random() * (p_in - cached))::bigint END;
    cache_write_1h := CASE WHEN random() < 0.4 OR p_in - cached - cache_write < 0 THEN 0
                           WHEN NOT p_clean AND random() < 0.2 THEN p_in - cached - cache_write + 1
                           ELSE (random() * (p_in - cached - cache_write))::bigint END;
END
$$;

CREATE FUNCTION difftest.gen_tier(p_clean boolean) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT CASE WHEN p_clean OR random() < 0.9
                THEN difftest.pick(ARRAY['standard', 'standard', 'batch', 'flex', 'priority', 'default'])
                ELSE difftest.pick(ARRAY[NULL, 'auto', 'Standard', '', 'scale', 'flex ']) END
$$;

CREATE FUNCTION difftest.gen_model(p_clean boolean) RETURNS text
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    k integer := difftest.rnd(100);
    v_kind text := CASE WHEN k < 45 THEN 'fixture' WHEN k < 70 THEN 'shipped' WHEN k < 82 THEN 'unpriced'
                        WHEN k < 90 OR p_clean THEN 'null' ELSE 'bad' END;
BEGIN
    RETURN (SELECT model FROM difftest.models WHERE kind = v_kind ORDER BY random() LIMIT 1);
END
$$;

/*
 * generate(seed, sequences, calls, probe sequences): every input of every
 * function, in a fixed order from the seed.
 */
CREATE FUNCTION difftest.generate(p_seed double precision, p_seqs integer, p_calls integer, p_pb_seqs integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_fn text;
    v_clean boolean;
    v_in bigint;
    v_split record;
    v_at record;
    v_day date;
    v_amounts jsonb;
    v_types text[];
BEGIN
    PERFORM setseed(p_seed);
    FOREACH v_fn IN ARRAY ARRAY['enforce_quota', 'enforce_quotas', 'track_usage', 'calculate_cost', 'period_bounds', 'settle'] LOOP
        FOR s IN 1..CASE WHEN v_fn = 'period_bounds' THEN p_pb_seqs ELSE p_seqs END LOOP
            INSERT INTO difftest.seqs
            SELECT v_fn, s,
                   CASE WHEN v_fn = 'period_bounds' THEN 'dt_allper' ELSE (SELECT plan FROM difftest.plans ORDER BY random() LIMIT 1) END,
                   (SELECT tz FROM difftest.zones ORDER BY random() LIMIT 1),
                   CASE WHEN v_fn IN ('enforce_quota', 'enforce_quotas', 'settle') THEN
                       (SELECT coalesce(jsonb_agg(jsonb_build_array(
                                   difftest.pick(ARRAY['api_calls', 'chat_messages', 'cost_usd', 'embeddings', 'tokens']),
                                   difftest.pick(ARRAY['minute', 'hour', 'day', 'month']),
                                   difftest.pick(ARRAY[NULL, 0, 1, 3, 5, 10, 12.5, 0.05, 0.000123, 100.000001, 1000,
                                                       1000000000, 1000000000000, 999999999999.999999]::numeric[]))), '[]')
                          FROM generate_series(1, difftest.rnd(3)))
                   ELSE '[]' END;
        END LOOP;
    END LOOP;

    PERFORM setseed(p_seed);     -- each function's inputs independent of the others' counts
    -- enforce_quota; sequence 1 is fixed: ten times 10^12 on unlimited quotas reach the
    -- shared counters' ceiling (a known divergence, reported), then the edges of
    -- the amounts the C side takes (negative ones once admitted as 0 or raising 22003)
    UPDATE difftest.seqs SET plan = 'dt_unl', overrides = '[]' WHERE fn IN ('enforce_quota', 'enforce_quotas') AND seq = 1;
    INSERT INTO difftest.eq_in SELECT 1, i, 'T', 'tokens', 1000000000000 FROM generate_series(1, 12) i;
    INSERT INTO difftest.eq_in SELECT 1, 12 + o, 'T', 'api_calls', a
      FROM unnest(ARRAY[-0.0000001, -0.0000000001, -0.000001, -10000000000000, -9223372036854.775808, 0.0000001,
                        0.0000005, 1000000000000.000001, 999999999999.9999999, 1000000000000]) WITH ORDINALITY u(a, o);
    FOR s IN 2..p_seqs LOOP
        FOR i IN 1..p_calls LOOP
            INSERT INTO difftest.eq_in VALUES (s, i, difftest.gen_tenant_kind(), difftest.gen_quota_type(), difftest.gen_amount());
        END LOOP;
    END LOOP;

    PERFORM setseed(p_seed);     -- each function's inputs independent of the others' counts
    -- settle: reservations of six request ids per sequence, tracked (or not,
    -- twice, or never reserved), and calls tracked without an id
    FOR s IN 1..p_seqs LOOP
        FOR i IN 1..p_calls LOOP
            INSERT INTO difftest.st_in VALUES (s, i,
                difftest.pick(ARRAY['reserve', 'reserve', 'track', 'track', 'track_without_id']),
                difftest.pick(ARRAY['tokens', 'tokens', 'api_calls', 'cost_usd', 'chat_messages', 'embeddings']),
                difftest.pick(ARRAY[1, 3, 10, 100, 1000, 0.05, 12.5]::numeric[]),
                'req-' || difftest.rnd(6),
                difftest.rnd(2000), difftest.rnd(500),
                difftest.pick(ARRAY['chat', 'chat_message', 'embedding', 'search', 'My Call']));
        END LOOP;
    END LOOP;

    PERFORM setseed(p_seed);     -- each function's inputs independent of the others' counts
    -- enforce_quotas
    INSERT INTO difftest.eqs_in SELECT 1, i, 'T', '{"tokens": 1000000000000, "api_calls": 1}' FROM generate_series(1, 12) i;
    INSERT INTO difftest.eqs_in SELECT 1, 12 + o, 'T', a
      FROM unnest(ARRAY['{"api_calls": -0.0000001}', '{"api_calls": -10000000000000}', '{"api_calls": 0.0000001, "cost_usd": 0.0000005}',
                        '{"api_calls": 1000000000000.000001}', '{"api_calls": 999999999999.9999999}']::jsonb[]) WITH ORDINALITY u(a, o);
    FOR s IN 2..p_seqs LOOP
        FOR i IN 1..p_calls LOOP
            IF random() < 0.12 THEN
                v_amounts := difftest.pick(ARRAY[NULL, '{}', '[]', '"x"', '5', '{"tokens": "5"}', '{"tokens": null}',
                                                 '{"tokens": true}', '{"bogus": 1}', '{"tokens": 1, "bogus": 1}',
                                                 '{"tokens": {"n": 1}}']::jsonb[]);
            ELSE
                v_types := ARRAY(SELECT t FROM unnest(ARRAY['api_calls', 'chat_messages', 'cost_usd', 'embeddings', 'tokens']) t
                                  ORDER BY random() LIMIT 1 + difftest.rnd(3));
                SELECT jsonb_object_agg(t, CASE WHEN a IS NULL THEN 'null'::jsonb
                                                WHEN a = 'NaN' OR a IN ('Infinity', '-Infinity') THEN to_jsonb(a::text)
                                                ELSE to_jsonb(a) END)
                  INTO v_amounts
                  FROM (SELECT t, difftest.gen_amount() AS a FROM unnest(v_types) WITH ORDINALITY u(t, o) ORDER BY o) x;
            END IF;
            INSERT INTO difftest.eqs_in VALUES (s, i, difftest.gen_tenant_kind(), v_amounts);
        END LOOP;
    END LOOP;

    PERFORM setseed(p_seed);     -- each function's inputs independent of the others' counts
    -- track_usage: about half the calls clean (every argument valid), the
    -- others with each argument drawn from valid and bad values
    FOR s IN 1..p_seqs LOOP
        FOR i IN 1..p_calls LOOP
            v_clean := random() < 0.5;
            v_in := difftest.gen_count(1000000000, v_clean);
            v_split := difftest.gen_split(v_in, v_clean);
            v_at := difftest.gen_at(v_clean);
            INSERT INTO difftest.tr_in VALUES (s, i, difftest.gen_tenant_kind(v_clean),
                CASE WHEN v_clean OR random() < 0.9 THEN difftest.pick(ARRAY['chat', 'chat_message', 'completion', 'embedding', 'embeddings',
                                                                              'search', 'image', 'tool', 'other', 'CHAT', 'My App Call',
                                                                              repeat('x', 64), 'ünïcode', '日本語'])
                     ELSE difftest.pick(ARRAY[NULL, '', '   ', repeat('x', 65), repeat('é', 65), E'tab\there', E'nl\n', E'c1\u0085']) END,
                difftest.gen_model(v_clean),
                v_in, difftest.gen_count(1000000000, v_clean), v_split.cached, v_split.cache_write,
                CASE WHEN v_clean OR random() < 0.85 THEN difftest.pick(ARRAY[NULL, 0, 1, 250, 86400000, difftest.rnd(100000)])
                     ELSE difftest.pick(ARRAY[-1, 86400001, -2147483648, 2147483647]) END,
                CASE WHEN v_clean OR random() < 0.85 THEN difftest.pick(ARRAY[200, 200, 200, 429, 500, NULL, 100, 599])
                     ELSE difftest.pick(ARRAY[99, 600, 0, -200]) END,
                CASE WHEN v_clean OR random() < 0.9 THEN difftest.pick(ARRAY['success', 'success', 'failure', 'rate_limited'])
                     ELSE difftest.pick(ARRAY[NULL, 'ok', '', 'SUCCESS']) END,
                CASE WHEN v_clean OR random() < 0.85 THEN difftest.pick(ARRAY['{}', '{"a": 1}', '{"route": "/chat", "n": [1, 2.50, null], "deep": {"x": true}}',
                                                                   '{"u": "\u00e9\u0001"}']::jsonb[])
                     ELSE difftest.pick(ARRAY['[]', '"s"', 'null', '1', NULL,
                                              jsonb_build_object('big', repeat('x', 9000)),                 -- over 8 kB: the SQL path
                                              jsonb_build_object('huge', repeat('x', 70000))]::jsonb[]) END,   -- over 64 kB: an error
                CASE WHEN random() < 0.6 THEN NULL
                     WHEN v_clean OR random() < 0.7 THEN difftest.pick(ARRAY['r1', 'r2', 'r3', 'r4', repeat('r', 255), repeat(chr(233), 200)])
                     ELSE difftest.pick(ARRAY['', '   ', ' r1', repeat('r', 256), repeat(chr(233), 256)]) END,
                v_at.at_kind, v_at.at_rel, v_at.at_abs, v_split.cache_write_1h, difftest.gen_tier(v_clean));
        END LOOP;
    END LOOP;

    PERFORM setseed(p_seed);     -- each function's inputs independent of the others' counts
    -- calculate_cost: arguments track_usage also takes (a model name, the window
    -- of the C path mostly), bad counts included
    FOR s IN 1..p_seqs LOOP
        FOR i IN 1..p_calls LOOP
            v_clean := random() < 0.7;
            v_in := difftest.gen_count(1000000000, v_clean);
            v_split := difftest.gen_split(v_in, v_clean);
            v_at := difftest.gen_at(true);
            INSERT INTO difftest.cost_in VALUES (s, i,
                (SELECT model FROM difftest.models WHERE kind IN ('fixture', 'shipped', 'unpriced')
                    AND model ~ '^[!-~]{1,200}$' ORDER BY random() LIMIT 1),
                v_in, difftest.gen_count(1000000000, v_clean), v_split.cached, v_split.cache_write,
                v_at.at_kind, v_at.at_rel, v_at.at_abs, v_split.cache_write_1h, difftest.gen_tier(v_clean));
        END LOOP;
    END LOOP;

    PERFORM setseed(p_seed);     -- each function's inputs independent of the others' counts
    -- period bounds: instants in the coming years, half of them on a day whose
    -- length is not 24 hours in the sequence's zone (a DST change), if it has any
    INSERT INTO difftest.dst_days
    SELECT z.tz, d::date
      FROM difftest.zones z,
           generate_series(date_trunc('year', now()) + interval '1 year', date_trunc('year', now()) + interval '6 years',
                           interval '1 day') d
     WHERE (((d + interval '1 day')::timestamp AT TIME ZONE z.tz) - (d::timestamp AT TIME ZONE z.tz)) <> interval '24 hours'
     ORDER BY z.tz, d;
    -- the argument probes: one fixed sequence on the dt_tight plan
    INSERT INTO difftest.seqs VALUES ('consume_args', 1, 'dt_tight', 'UTC', '[]');
    -- sequence 1 is fixed: the small hours of Lord Howe Island's half-hour DST
    -- changes, where date_trunc('hour') of an hour's start is not that start
    UPDATE difftest.seqs SET tz = 'Australia/Lord_Howe' WHERE fn = 'period_bounds' AND seq = 1;
    FOR s IN 1..p_pb_seqs LOOP
        FOR i IN 1..p_calls LOOP
            v_day := NULL;
            IF s = 1 OR random() < 0.5 THEN
                SELECT x.day INTO v_day FROM difftest.dst_days x
                 WHERE x.tz = (SELECT q.tz FROM difftest.seqs q WHERE q.fn = 'period_bounds' AND q.seq = s)
                 ORDER BY random() LIMIT 1;
            END IF;
            IF v_day IS NULL THEN
                INSERT INTO difftest.pb_in VALUES (s, i, 'rel', interval '62 days' + random() * interval '5 years', NULL);
            ELSE
                INSERT INTO difftest.pb_in VALUES (s, i, 'local', NULL,
                    v_day + CASE WHEN s = 1 THEN random() * interval '4 hours' ELSE random() * interval '1 day' END);
            END IF;
        END LOOP;
    END LOOP;
END
$$;

------------------------------------------------------------------------
-- Running
------------------------------------------------------------------------

/* make_pair(fn, seq, att): the tenants of one attempt at one sequence, configured alike */
CREATE FUNCTION difftest.make_pair(p_fn text, p_seq integer, p_att integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    c difftest.seqs;
    a text := difftest.tenant_name(p_fn, p_seq, p_att);
    o jsonb;
BEGIN
    SELECT * INTO c FROM difftest.seqs WHERE fn = p_fn AND seq = p_seq;
    -- one INSERT, not a create_tenant() call (and its audit event) per tenant
    INSERT INTO llm_usage.tenants (tenant_id, plan, timezone) VALUES (a, c.plan, c.tz), (difftest.twin(a), c.plan, c.tz);
    FOR o IN SELECT * FROM jsonb_array_elements(c.overrides) LOOP
        PERFORM llm_usage.set_custom_quota(x, o->>0, (o->>2)::numeric, o->>1) FROM unnest(ARRAY[a, difftest.twin(a)]) x;
    END LOOP;
END
$$;

/* one enforce_quota call, C (enforce_quota) or SQL (_enforce_quota_sql); an error as its SQLSTATE and message */
CREATE FUNCTION difftest.eq_call(p_sql boolean, p_tenant text, p_type text, p_amount numeric, p_rid text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_state text;
    v_msg text;
BEGIN
    IF p_sql THEN
        SELECT * INTO STRICT r FROM llm_usage._enforce_quota_sql(p_tenant, p_type, p_amount, p_rid);
    ELSE
        SELECT * INTO STRICT r FROM llm_usage.enforce_quota(p_tenant, p_type, p_amount, p_rid);
    END IF;
    RETURN to_jsonb(r);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
    RETURN jsonb_build_object('sqlstate', v_state, 'message', v_msg);
END
$$;

CREATE FUNCTION difftest.eqs_call(p_tenant text, p_amounts jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_state text;
    v_msg text;
BEGIN
    SELECT * INTO STRICT r FROM llm_usage.enforce_quotas(p_tenant, p_amounts);
    RETURN to_jsonb(r);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
    RETURN jsonb_build_object('sqlstate', v_state, 'message', v_msg);
END
$$;

/*
 * counters, quota_status and denial audit of one tenant: what enforce_quota(s)
 * wrote.  Denials are aggregated (pending in shared memory for the C side,
 * in quota_denials_pending for the table twin) until written: both are
 * written first, and the times of the first and last denial (each side's
 * own clock) are left out of the comparison.
 */
CREATE FUNCTION difftest.quota_state(p_tenant text) RETURNS TABLE (what text, j jsonb)
LANGUAGE sql AS $$
    SELECT llm_usage._write_quota_denials(p_tenant, false);
    SELECT 'counters', coalesce(jsonb_agg(jsonb_build_object('type', c.quota_type, 'period', c.period,
                                                             'period_start', c.period_start, 'used', c.used)
                                          ORDER BY c.quota_type, c.period), '[]')
      FROM llm_usage.quota_counters c WHERE c.tenant_id = p_tenant AND c.used > 0
    UNION ALL
    SELECT 'quota_status', coalesce(jsonb_agg(to_jsonb(q) ORDER BY q.quota_type, q.period), '[]')
      FROM llm_usage.quota_status(p_tenant) q
    UNION ALL
    SELECT 'audit', coalesce(jsonb_agg(jsonb_build_object('result', e.result, 'role', e.role_name, 'origin', e.origin,
                                                          'details', e.details - 'first_at' - 'last_at',
                                                          'times_ordered', (e.details->>'first_at')::timestamptz
                                                                           <= (e.details->>'last_at')::timestamptz)
                                       ORDER BY e.audit_id), '[]')
      FROM llm_usage.audit_events e WHERE e.tenant_id = p_tenant AND e.action = 'quota_exceeded'
$$;

/*
 * eq_seq / eqs_seq: one sequence of enforce_quota / enforce_quotas call
 * pairs; false when it did not all run within one minute.
 */
CREATE FUNCTION difftest.eq_seq(p_seq integer, p_att integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    a text := difftest.tenant_name('enforce_quota', p_seq, p_att);
    b text := difftest.twin(a);
    m0 timestamptz := date_trunc('minute', clock_timestamp());
    f_sql regprocedure := 'llm_usage._enforce_quota_sql(text, text, numeric, text)';
    r record;
    c jsonb;
    s jsonb;
    n bigint;
    v_path text;
BEGIN
    FOR r IN SELECT * FROM difftest.eq_in WHERE seq = p_seq ORDER BY i LOOP
        n := difftest.calls(f_sql);
        c := difftest.eq_call(false, difftest.tenant_arg(r.tenant_kind, a), r.quota_type, r.amount);
        v_path := CASE WHEN c ? 'sqlstate' THEN 'error' WHEN difftest.calls(f_sql) > n THEN 'sql' ELSE 'c' END;
        s := difftest.eq_call(true, difftest.tenant_arg(r.tenant_kind, b), r.quota_type, difftest.ceil6(r.amount));
        INSERT INTO difftest.results VALUES ('enforce_quota', p_seq, p_att, r.i, to_jsonb(r), c, s, v_path);
    END LOOP;
    INSERT INTO difftest.state
    SELECT 'enforce_quota', p_seq, p_att, x.what, x.j, y.j
      FROM difftest.quota_state(a) x JOIN difftest.quota_state(b) y USING (what);
    RETURN date_trunc('minute', clock_timestamp()) = m0;
END
$$;

CREATE FUNCTION difftest.eqs_seq(p_seq integer, p_att integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    a text := difftest.tenant_name('enforce_quotas', p_seq, p_att);
    b text := difftest.twin(a);
    m0 timestamptz := date_trunc('minute', clock_timestamp());
    f_shm regprocedure := 'llm_usage._shm_consume(text, text[], numeric[], text)';
    r record;
    c jsonb;
    s jsonb;
    n bigint;
    v_path text;
BEGIN
    FOR r IN SELECT * FROM difftest.eqs_in WHERE seq = p_seq ORDER BY i LOOP
        n := difftest.calls(f_shm);
        c := difftest.eqs_call(difftest.tenant_arg(r.tenant_kind, a), r.amounts);
        v_path := CASE WHEN c ? 'sqlstate' THEN 'error' WHEN difftest.calls(f_shm) > n THEN 'c' ELSE 'none' END;
        s := difftest.eqs_call(difftest.tenant_arg(r.tenant_kind, b), difftest.ceil6_amounts(r.amounts));
        INSERT INTO difftest.results VALUES ('enforce_quotas', p_seq, p_att, r.i, to_jsonb(r), c, s, v_path);
    END LOOP;
    INSERT INTO difftest.state
    SELECT 'enforce_quotas', p_seq, p_att, x.what, x.j, y.j
      FROM difftest.quota_state(a) x JOIN difftest.quota_state(b) y USING (what);
    RETURN date_trunc('minute', clock_timestamp()) = m0;
END
$$;

/* one track_usage call, C (track_usage) or SQL (_track_usage_sql): the event id, or the error */
CREATE FUNCTION difftest.tr_call(p_sql boolean, p_tenant text, r difftest.tr_in) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_at timestamptz := difftest.at_of(r.at_kind, r.at_rel, r.at_abs, r.i);
    v_state text;
    v_msg text;
BEGIN
    IF p_sql THEN
        v_id := llm_usage._track_usage_sql(p_tenant, r.event_type, r.model, r.input_tokens, r.output_tokens,
                                           r.cached_input_tokens, r.latency_ms, r.status_code, r.result, r.metadata,
                                           r.request_id, v_at, r.cache_write_tokens, r.cache_write_1h_tokens,
                                           r.service_tier);
    ELSE
        v_id := llm_usage.track_usage(p_tenant, r.event_type, r.model, r.input_tokens, r.output_tokens,
                                      r.cached_input_tokens, r.latency_ms, r.status_code, r.result, r.metadata,
                                      r.request_id, v_at, r.cache_write_tokens, r.cache_write_1h_tokens,
                                      r.service_tier);
    END IF;
    RETURN jsonb_build_object('id', v_id);
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
    RETURN jsonb_build_object('sqlstate', v_state, 'message', v_msg);
END
$$;

/* what a track_usage call did: the row it wrote, the earlier call whose event it returned, or its error */
CREATE FUNCTION difftest.tr_outcome(p_res jsonb, p_tenant text, INOUT p_ids bigint[], OUT outcome jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint := (p_res->>'id')::bigint;
BEGIN
    IF v_id IS NULL THEN
        outcome := p_res;
    ELSIF v_id = ANY (p_ids) THEN
        outcome := jsonb_build_object('same_event_as_call', array_position(p_ids, v_id));
        p_ids := p_ids || NULL::bigint;
    ELSE
        SELECT jsonb_build_object('row', to_jsonb(e) - 'event_id' - 'tenant_id' - 'recorded_at')
          INTO outcome
          FROM llm_usage.usage_events e WHERE e.tenant_id = p_tenant AND e.event_id = v_id;
        outcome := coalesce(outcome, jsonb_build_object('id_without_row', true));
        p_ids := p_ids || v_id;
    END IF;
END
$$;

CREATE FUNCTION difftest.tr_seq(p_seq integer, p_att integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    a text := difftest.tenant_name('track_usage', p_seq, p_att);
    b text := difftest.twin(a);
    f_sql regprocedure := 'llm_usage._track_usage_sql(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint, bigint, text)';
    r difftest.tr_in;
    c jsonb;
    s jsonb;
    n bigint;
    v_path text;
    ids_a bigint[] := '{}';
    ids_b bigint[] := '{}';
BEGIN
    FOR r IN SELECT * FROM difftest.tr_in WHERE seq = p_seq ORDER BY i LOOP
        n := difftest.calls(f_sql);
        c := difftest.tr_call(false, difftest.tenant_arg(r.tenant_kind, a), r);
        v_path := CASE WHEN c ? 'sqlstate' THEN 'error' WHEN difftest.calls(f_sql) > n THEN 'sql' ELSE 'c' END;
        s := difftest.tr_call(true, difftest.tenant_arg(r.tenant_kind, b), r);
        SELECT x.p_ids, x.outcome INTO ids_a, c FROM difftest.tr_outcome(c, a, ids_a) x;
        SELECT x.p_ids, x.outcome INTO ids_b, s FROM difftest.tr_outcome(s, b, ids_b) x;
        INSERT INTO difftest.results VALUES ('track_usage', p_seq, p_att, r.i,
            to_jsonb(r) || jsonb_build_object('metadata', left(r.metadata::text, 80)), c, s, v_path);
    END LOOP;
    INSERT INTO difftest.state VALUES ('track_usage', p_seq, p_att, 'rows',
        jsonb_build_object('events', (SELECT count(*) FROM llm_usage.usage_events WHERE tenant_id = a),
                           'requests', (SELECT count(*) FROM llm_usage.usage_requests WHERE tenant_id = a)),
        jsonb_build_object('events', (SELECT count(*) FROM llm_usage.usage_events WHERE tenant_id = b),
                           'requests', (SELECT count(*) FROM llm_usage.usage_requests WHERE tenant_id = b)));
    RETURN true;
END
$$;

/* calculate_cost (SQL _cost) against the cost_usd the C track_usage writes */
CREATE FUNCTION difftest.cost_seq(p_seq integer, p_att integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    a text := difftest.tenant_name('calculate_cost', p_seq, p_att);
    f_sql regprocedure := 'llm_usage._track_usage_sql(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint, bigint, text)';
    r record;
    v_at timestamptz;
    v_id bigint;
    c jsonb;
    s jsonb;
    n bigint;
    v_path text;
    v_state text;
    v_msg text;
BEGIN
    FOR r IN SELECT * FROM difftest.cost_in WHERE seq = p_seq ORDER BY i LOOP
        v_at := difftest.at_of(r.at_kind, r.at_rel, r.at_abs, r.i);
        BEGIN
            s := jsonb_build_object('cost', llm_usage.calculate_cost(r.model, r.input_tokens, r.output_tokens,
                                                                     r.cached_input_tokens, v_at, r.cache_write_tokens,
                                                                     r.cache_write_1h_tokens, r.service_tier));
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
            -- an unpriced call: calculate_cost refuses, track_usage keeps it with a NULL cost
            s := CASE WHEN v_state = '42704' AND v_msg LIKE 'no price for model %' THEN jsonb_build_object('cost', NULL)
                      ELSE jsonb_build_object('sqlstate', v_state, 'message', v_msg) END;
        END;
        n := difftest.calls(f_sql);
        BEGIN
            v_id := llm_usage.track_usage(a, 'chat', r.model, r.input_tokens, r.output_tokens,
                                          r.cached_input_tokens, NULL, 200, 'success', '{}', NULL,
                                          v_at, r.cache_write_tokens, r.cache_write_1h_tokens, r.service_tier);
            SELECT jsonb_build_object('cost', e.cost_usd) INTO STRICT c
              FROM llm_usage.usage_events e WHERE e.tenant_id = a AND e.event_id = v_id;
            v_path := CASE WHEN difftest.calls(f_sql) > n THEN 'sql' ELSE 'c' END;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
            c := jsonb_build_object('sqlstate', v_state, 'message', v_msg);
            v_path := 'error';
        END;
        INSERT INTO difftest.results VALUES ('calculate_cost', p_seq, p_att, r.i, to_jsonb(r), c, s, v_path);
    END LOOP;
    RETURN true;
END
$$;

/* period bounds: each period's counter set to a future period, then consumed in it by both paths */
CREATE FUNCTION difftest.pb_seq(p_seq integer, p_att integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    a text := difftest.tenant_name('period_bounds', p_seq, p_att);
    b text := difftest.twin(a);
    tb llm_usage.tenants;
    v_tz text := (SELECT tz FROM difftest.seqs WHERE fn = 'period_bounds' AND seq = p_seq);
    r record;
    y timestamptz;
    x timestamptz;
    per text;
    c jsonb;
    s jsonb;
BEGIN
    SELECT * INTO tb FROM llm_usage.tenants WHERE tenant_id = b;
    FOR r IN SELECT * FROM difftest.pb_in WHERE seq = p_seq ORDER BY i LOOP
        y := CASE r.y_kind WHEN 'rel' THEN now() + r.y_rel ELSE r.y_local AT TIME ZONE v_tz END;
        FOREACH per IN ARRAY ARRAY['minute', 'hour', 'day', 'month'] LOOP
            x := (llm_usage._period_bounds(per, y, v_tz)).period_start;
            PERFORM llm_usage._shm_set_counter(a, 'tokens', per, x, 0);
            INSERT INTO llm_usage.quota_counters_table AS q (tenant_id, quota_type, period, period_start, used)
            VALUES (b, 'tokens', per, x, 0)
            ON CONFLICT (tenant_id, quota_type, period) DO UPDATE SET period_start = EXCLUDED.period_start, used = 0;
        END LOOP;
        SELECT jsonb_agg(to_jsonb(k) ORDER BY array_position(ARRAY['minute', 'hour', 'day', 'month'], k.period)) INTO c
          FROM llm_usage._shm_consume(a, ARRAY['tokens'], ARRAY[1::numeric]) k;
        SELECT jsonb_agg(to_jsonb(k) ORDER BY array_position(ARRAY['minute', 'hour', 'day', 'month'], k.period)) INTO s
          FROM llm_usage._consume_table(tb, ARRAY['tokens'], ARRAY[1::numeric]) k;
        -- and the bounds at the instant itself, and at its period's start and a
        -- microsecond before its end, C (src/period.c) against SQL
        c := jsonb_build_object('consumed', c, 'bounds',
                 (SELECT jsonb_agg(to_jsonb(llm_usage._period_bounds_c(u, w, v_tz)) ORDER BY o, u)
                    FROM unnest(ARRAY['minute', 'hour', 'day', 'month']) u
                   CROSS JOIN LATERAL (SELECT x.period_start, x.period_end FROM llm_usage._period_bounds(u, y, v_tz) x) b
                   CROSS JOIN LATERAL unnest(ARRAY[y, b.period_start, b.period_end - interval '1 microsecond']) WITH ORDINALITY w(w, o)));
        s := jsonb_build_object('consumed', s, 'bounds',
                 (SELECT jsonb_agg(to_jsonb(llm_usage._period_bounds(u, w, v_tz)) ORDER BY o, u)
                    FROM unnest(ARRAY['minute', 'hour', 'day', 'month']) u
                   CROSS JOIN LATERAL (SELECT x.period_start, x.period_end FROM llm_usage._period_bounds(u, y, v_tz) x) b
                   CROSS JOIN LATERAL unnest(ARRAY[y, b.period_start, b.period_end - interval '1 microsecond']) WITH ORDINALITY w(w, o)));
        INSERT INTO difftest.results VALUES ('period_bounds', p_seq, p_att, r.i,
            to_jsonb(r) || jsonb_build_object('at', y, 'tz', v_tz), c, s, 'c');
    END LOOP;
    RETURN true;
END
$$;

/* one direct call of _shm_consume (C) or _consume_table (SQL): its rows, or the error */
CREATE FUNCTION difftest.args_call(p_sql boolean, p_tenant text, p_types text[], p_amounts numeric[]) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
    v_state text;
    v_msg text;
BEGIN
    IF p_sql THEN
        SELECT jsonb_agg(to_jsonb(k) ORDER BY k.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], k.period)) INTO r
          FROM llm_usage._consume_table((SELECT t FROM llm_usage.tenants t WHERE t.tenant_id = p_tenant), p_types, p_amounts) k;
    ELSE
        SELECT jsonb_agg(to_jsonb(k) ORDER BY k.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], k.period)) INTO r
          FROM llm_usage._shm_consume(p_tenant, p_types, p_amounts) k;
    END IF;
    RETURN coalesce(r, '[]');
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_msg = MESSAGE_TEXT;
    RETURN jsonb_build_object('sqlstate', v_state, 'message', v_msg);
END
$$;

/* the fixed argument probes of _shm_consume and _consume_table, on the dt_tight plan; false if a minute ended meanwhile */
CREATE FUNCTION difftest.args_seq(p_seq integer, p_att integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    a text := difftest.tenant_name('consume_args', p_seq, p_att);
    b text := difftest.twin(a);
    m0 timestamptz := date_trunc('minute', clock_timestamp());
    r record;
BEGIN
    FOR r IN SELECT * FROM (VALUES
            (1, ARRAY['api_calls'], ARRAY[1]::numeric[]),
            (2, ARRAY['api_calls', 'tokens'], ARRAY[1, 5]::numeric[]),
            (3, ARRAY['tokens', 'api_calls'], ARRAY[5, 1]::numeric[]),
            (4, array_fill('api_calls'::text, ARRAY[12]), array_fill(1::numeric, ARRAY[12])),
            (5, ARRAY['tokens', 'api_calls', 'tokens'], ARRAY[1, 1, 1]::numeric[]),
            (6, ARRAY['api_calls', 'tokens'], ARRAY[1]::numeric[]),
            (7, ARRAY[NULL, 'tokens'], ARRAY[1, 1]::numeric[]),
            (8, ARRAY['widgets'], ARRAY[1]::numeric[]),
            (9, ARRAY['tokens', 'widgets', 'tokens'], ARRAY[1, 1, 1]::numeric[]),
            (10, ARRAY['tokens'], ARRAY[NULL]::numeric[]),
            (11, ARRAY['tokens', 'tokens'], ARRAY[NULL, 1]::numeric[]),
            (12, ARRAY['api_calls', 'chat_messages', 'cost_usd', 'embeddings', 'tokens'], ARRAY[0, 0, 0, 0, 0]::numeric[]),
            (13, ARRAY[]::text[], ARRAY[]::numeric[]),
            (14, ARRAY['cost_usd', 'embeddings'], ARRAY[3, 8]::numeric[]),          -- embeddings per day (7) denies
            (15, ARRAY['embeddings'], ARRAY[7]::numeric[]),
            (16, ARRAY['embeddings', 'tokens'], ARRAY[1, 1]::numeric[])) v(i, types, amounts)
    LOOP
        INSERT INTO difftest.results VALUES ('consume_args', p_seq, p_att, r.i,
            jsonb_build_object('types', r.types, 'amounts', r.amounts),
            difftest.args_call(false, a, r.types, r.amounts), difftest.args_call(true, b, r.types, r.amounts), 'c');
    END LOOP;
    INSERT INTO difftest.state
    SELECT 'consume_args', p_seq, p_att, x.what, x.j, y.j
      FROM difftest.quota_state(a) x JOIN difftest.quota_state(b) y USING (what);
    RETURN date_trunc('minute', clock_timestamp()) = m0;
END
$$;

/*
 * run(fn): every sequence of one function, each on fresh tenants in
 * transactions of its own; a sequence of enforce_quota(s) that crossed a
 * minute boundary is run again (same inputs, new tenants).
 */
/* one call pair of a settle sequence (committed by run(): shared memory settles at commit) */
CREATE FUNCTION difftest.st_step(p_seq integer, p_att integer, p_i integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    a text := difftest.tenant_name('settle', p_seq, p_att);
    b text := difftest.twin(a);
    r difftest.st_in;
    c jsonb;
    s jsonb;
BEGIN
    SELECT * INTO STRICT r FROM difftest.st_in WHERE seq = p_seq AND i = p_i;
    IF r.op = 'reserve' THEN
        c := difftest.eq_call(false, a, r.quota_type, r.amount, r.rid);
        s := difftest.eq_call(true, b, r.quota_type, r.amount, r.rid);
    ELSE
        c := to_jsonb(llm_usage.track_usage(a, r.event_type, 'gpt-4o', r.input_tokens, r.output_tokens,
                                            request_id => CASE WHEN r.op = 'track' THEN r.rid END) > 0);
        s := to_jsonb(llm_usage.track_usage(b, r.event_type, 'gpt-4o', r.input_tokens, r.output_tokens,
                                            request_id => CASE WHEN r.op = 'track' THEN r.rid END) > 0);
    END IF;
    INSERT INTO difftest.results VALUES ('settle', p_seq, p_att, r.i, to_jsonb(r), c, s, 'c');
END
$$;

/* the counters and quota_status of a settle pair, once every call was committed */
CREATE FUNCTION difftest.st_finish(p_seq integer, p_att integer, p_m0 timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    a text := difftest.tenant_name('settle', p_seq, p_att);
BEGIN
    INSERT INTO difftest.state
    SELECT 'settle', p_seq, p_att, x.what, x.j, y.j
      FROM difftest.quota_state(a) x JOIN difftest.quota_state(difftest.twin(a)) y USING (what);
    RETURN date_trunc('minute', clock_timestamp()) = p_m0;
END
$$;

CREATE PROCEDURE difftest.run(p_fn text)
LANGUAGE plpgsql AS $$
DECLARE
    s record;
    st record;
    att integer;
    ok boolean;
    t0 timestamptz;
    dur interval := interval '0.3 seconds';
BEGIN
    FOR s IN SELECT seq FROM difftest.seqs WHERE fn = p_fn ORDER BY seq LOOP
        att := 0;
        LOOP
            att := att + 1;
            IF att > 5 THEN
                RAISE EXCEPTION 'sequence % of % crossed a minute boundary five times', s.seq, p_fn;
            END IF;
            PERFORM difftest.make_pair(p_fn, s.seq, att);
            COMMIT;
            IF p_fn IN ('enforce_quota', 'enforce_quotas', 'consume_args', 'settle') THEN
                PERFORM difftest.clear_of_minute(greatest(3 * dur, interval '0.3 seconds'));
            END IF;
            t0 := clock_timestamp();
            IF p_fn = 'settle' THEN
                FOR st IN SELECT i FROM difftest.st_in WHERE seq = s.seq ORDER BY i LOOP
                    PERFORM difftest.st_step(s.seq, att, st.i);
                    COMMIT;
                END LOOP;
                ok := difftest.st_finish(s.seq, att, date_trunc('minute', t0));
                IF NOT ok THEN
                    DELETE FROM difftest.results WHERE fn = p_fn AND seq = s.seq AND results.att = run.att;
                    DELETE FROM difftest.state WHERE fn = p_fn AND seq = s.seq AND state.att = run.att;
                END IF;
            ELSE
            ok := CASE p_fn WHEN 'enforce_quota' THEN difftest.eq_seq(s.seq, att)
                            WHEN 'enforce_quotas' THEN difftest.eqs_seq(s.seq, att)
                            WHEN 'track_usage' THEN difftest.tr_seq(s.seq, att)
                            WHEN 'calculate_cost' THEN difftest.cost_seq(s.seq, att)
                            WHEN 'period_bounds' THEN difftest.pb_seq(s.seq, att)
                            WHEN 'consume_args' THEN difftest.args_seq(s.seq, att) END;
            END IF;
            dur := clock_timestamp() - t0;
            IF ok THEN
                INSERT INTO difftest.done VALUES (p_fn, s.seq, att, difftest.tenant_name(p_fn, s.seq, att),
                                                  difftest.twin(difftest.tenant_name(p_fn, s.seq, att)),
                                                  extract(epoch FROM dur));
            END IF;
            COMMIT;
            EXIT WHEN ok;
        END LOOP;
    END LOOP;
END
$$;

------------------------------------------------------------------------
-- Comparing
------------------------------------------------------------------------

/* every compared pair of the final attempts, normalised both ways (filled by compare()) */
CREATE VIEW difftest.comparing AS
SELECT r.fn, r.seq, r.i, r.input, r.c, r.s, r.c_path, 'call' AS what,
       difftest.normalised(replace(r.c::text, d.b, d.a)::jsonb, true) AS nc,
       difftest.normalised(replace(r.s::text, d.b, d.a)::jsonb, true) AS ns,
       difftest.normalised(replace(r.c::text, d.b, d.a)::jsonb, false) AS uc,
       difftest.normalised(replace(r.s::text, d.b, d.a)::jsonb, false) AS us
  FROM difftest.results r JOIN difftest.done d USING (fn, seq, att)
UNION ALL
SELECT t.fn, t.seq, NULL, NULL, t.c, t.s, NULL, t.what,
       difftest.normalised(replace(t.c::text, d.b, d.a)::jsonb, true),
       difftest.normalised(replace(t.s::text, d.b, d.a)::jsonb, true),
       difftest.normalised(replace(t.c::text, d.b, d.a)::jsonb, false),
       difftest.normalised(replace(t.s::text, d.b, d.a)::jsonb, false)
  FROM difftest.state t JOIN difftest.done d USING (fn, seq, att);

CREATE TABLE difftest.compared AS SELECT * FROM difftest.comparing WHERE false;

CREATE FUNCTION difftest.compare() RETURNS void
LANGUAGE sql AS $$
    TRUNCATE difftest.compared;
    INSERT INTO difftest.compared SELECT * FROM difftest.comparing;
$$;

CREATE VIEW difftest.mismatches AS
SELECT fn, seq, i, what, input, nc AS c_side, ns AS sql_side
  FROM difftest.compared WHERE nc IS DISTINCT FROM ns;
