/*
 * src/sql/common.sql — helpers every area uses
 *
 * Argument checks that raise the SQLSTATEs every function documents
 * (22004 for a missing argument, 22023 for a bad one), and build_info().
 * Re-runnable: every object is CREATE OR REPLACE; the install script is
 * made from it with OR REPLACE stripped.
 */

CREATE OR REPLACE FUNCTION llm_usage.build_info()
RETURNS TABLE (component text, version text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_build_info';
COMMENT ON FUNCTION llm_usage.build_info() IS
'Versions of llm_usage, PostgreSQL, libcurl and OpenSSL as linked into the running server, and whether the library was preloaded.';

CREATE OR REPLACE FUNCTION llm_usage._require_arg(p_value anyelement, p_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._require_arg(anyelement, text) IS 'Internal: raise 22004 when an argument is NULL.';

CREATE OR REPLACE FUNCTION llm_usage._check_amount(p_value numeric, p_name text, p_allow_zero boolean)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_value = 'NaN'::numeric OR p_value < 0 OR (p_value = 0 AND NOT p_allow_zero)
       OR p_value > 1000000000000 THEN
        RAISE EXCEPTION '% must be % and at most 1000000000000, got %', p_name,
                CASE WHEN p_allow_zero THEN 'zero or more' ELSE 'greater than zero' END, p_value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_amount(numeric, text, boolean) IS 'Internal: raise 22004/22023 unless an amount is a number in [0 or >0, 10^12].';

CREATE OR REPLACE FUNCTION llm_usage._check_range(p_from timestamptz, p_to timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM llm_usage._require_arg(p_from, 'from_ts');
    PERFORM llm_usage._require_arg(p_to, 'to_ts');
    IF p_to < p_from THEN
        RAISE EXCEPTION 'to_ts (%) is before from_ts (%)', p_to, p_from
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_range(timestamptz, timestamptz) IS 'Internal: raise 22004/22023 unless [from_ts, to_ts] is a range.';

CREATE OR REPLACE FUNCTION llm_usage._check_max_rows(p_rows integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM llm_usage._require_arg(p_rows, 'max_rows');
    IF p_rows < 1 OR p_rows > 10000 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 10000, got %', p_rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_max_rows(integer) IS 'Internal: raise 22004/22023 unless max_rows is between 1 and 10000.';

CREATE OR REPLACE FUNCTION llm_usage._check_days(p_days integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM llm_usage._require_arg(p_days, 'days');
    IF p_days < 1 OR p_days > 3660 THEN
        RAISE EXCEPTION 'days must be between 1 and 3660, got %', p_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_days(integer) IS 'Internal: raise 22004/22023 unless days is between 1 and 3660.';

CREATE OR REPLACE FUNCTION llm_usage._check_object(p_value jsonb, p_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass ''{}'' for none.';
    END IF;
    IF jsonb_typeof(p_value) <> 'object' THEN
        RAISE EXCEPTION '% must be a JSON object, got a JSON %', p_name, jsonb_typeof(p_value)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(p_value::text) > 65536 THEN
        RAISE EXCEPTION '% is larger than 64 kB', p_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_object(jsonb, text) IS 'Internal: raise 22004/22023 unless the value is a JSON object of at most 64 kB.';

CREATE OR REPLACE FUNCTION llm_usage._check_text(p_value text, p_name text, p_max integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(p_value) = '' OR length(p_value) > p_max THEN
        RAISE EXCEPTION '% must be between 1 and % characters and not blank', p_name, p_max
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_text(text, text, integer) IS 'Internal: raise 22004/22023 unless the text is non-blank and at most p_max characters.';
