/*
 * src/sql/sources.sql — custom usage sources
 *
 * An admin registers a usage API that is neither OpenAI nor Anthropic:
 * base URL, path template with {from} and {to}, authentication (its secret
 * sealed in provider_key_store like a provider key), pagination, and a
 * mapping function (page jsonb, source_id bigint) RETURNS SETOF
 * llm_usage.usage_source_row that the collector calls, as a role the admin
 * names, for every page (src/collector.c, src/provider_custom.c).  The
 * rows are checked and upserted into custom_usage on their natural key in
 * the run's one write transaction (_ingest_source_rows).
 *
 * The mapping function never runs as a superuser: its role is checked here
 * at registration and again before every run (_source_mapping_for_run),
 * and the collector calls it with that role as the current user inside a
 * security-restricted operation, with search_path = pg_catalog, pg_temp.
 */

------------------------------------------------------------------------
-- Checks shared by registration and every run
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._check_source_role(p_role text, p_admin text)
RETURNS oid
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The role a mapping function may run as: it exists; it is not a
-- superuser, has no BYPASSRLS, CREATEROLE or REPLICATION, is not a member
-- of a role that has, nor of the predefined roles that reach files,
-- programs, every table, every setting or every session's statement; and p_admin (the registering admin) may SET
-- ROLE to it, so naming it gives the admin nothing it did not have.
DECLARE
    r       pg_catalog.pg_roles;
    v_admin oid;
    v_bad   text;
BEGIN
    SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname = p_role;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'role "%" does not exist', p_role
            USING ERRCODE = 'undefined_object';
    END IF;
    v_bad := concat_ws(', ',
                       CASE WHEN r.rolsuper THEN 'SUPERUSER' END,
                       CASE WHEN r.rolbypassrls THEN 'BYPASSRLS' END,
                       CASE WHEN r.rolcreaterole THEN 'CREATEROLE' END,
                       CASE WHEN r.rolreplication THEN 'REPLICATION' END);
    IF v_bad <> '' THEN
        RAISE EXCEPTION 'role "%" may not run a mapping function: it has %', p_role, v_bad
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Create a role for it with none of these: CREATE ROLE usage_mapper NOLOGIN; and grant it EXECUTE on the function.';
    END IF;
    SELECT string_agg(quote_ident(g.rolname), ', ' ORDER BY g.rolname) INTO v_bad
      FROM pg_catalog.pg_roles g
     WHERE g.oid <> r.oid
       AND (g.rolsuper OR g.rolbypassrls OR g.rolcreaterole OR g.rolreplication
            OR g.rolname IN ('pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files',
                             'pg_read_all_data', 'pg_write_all_data', 'pg_signal_backend',
                             -- the worker's session holds the secret settings
                             -- (webhook, SMTP), and other sessions' statements
                             'pg_read_all_settings', 'pg_read_all_stats', 'pg_monitor'))
       AND pg_catalog.pg_has_role(r.oid, g.oid, 'MEMBER');
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION 'role "%" may not run a mapping function: it is a member of %', p_role, v_bad
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Use a role that is a member of none of these.';
    END IF;
    SELECT oid INTO v_admin FROM pg_catalog.pg_roles WHERE rolname = p_admin;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the role that registered the source ("%") no longer exists', p_admin
            USING ERRCODE = 'undefined_object',
                  HINT = 'Register the mapping again with llm_usage.set_usage_source_mapping().';
    END IF;
    IF NOT pg_catalog.pg_has_role(v_admin, r.oid, 'MEMBER') THEN
        RAISE EXCEPTION 'role "%" may not name role "%" to run a mapping function', p_admin, p_role
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'The admin that registers a source must be able to SET ROLE to the role its mapping function runs as.',
                  HINT = format('GRANT %I TO %I;', p_role, p_admin);
    END IF;
    RETURN r.oid;
END
$$;
COMMENT ON FUNCTION llm_usage._check_source_role(text, text) IS
'Internal: the oid of the role a mapping function may run as, or 42704/42501: no superuser, BYPASSRLS, CREATEROLE or REPLICATION role, no member of one or of the file, program and all-data predefined roles, and one the registering admin may SET ROLE to.';

CREATE OR REPLACE FUNCTION llm_usage._check_mapping_function(p_fn oid, p_role oid)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- A mapping function: (jsonb, bigint) RETURNS SETOF llm_usage.usage_source_row,
-- a plain function (not SECURITY DEFINER: it would run as its owner), owned
-- by the role, a role that may act as it or a superuser, not in a temporary
-- schema, executable by the role.  Returns its
-- schema-qualified signature.
DECLARE
    p pg_catalog.pg_proc;
BEGIN
    SELECT * INTO p FROM pg_catalog.pg_proc WHERE oid = p_fn;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'the mapping function (oid %) does not exist', p_fn
            USING ERRCODE = 'undefined_function';
    END IF;
    IF p.prokind <> 'f' OR p.pronargs <> 2
       OR p.proargtypes[0] <> 'jsonb'::regtype OR p.proargtypes[1] <> 'bigint'::regtype
       OR NOT p.proretset OR p.prorettype <> 'llm_usage.usage_source_row'::regtype THEN
        RAISE EXCEPTION 'function % is not a mapping function', p_fn::regprocedure
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A mapping function is (page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row.';
    END IF;
    IF p.prosecdef THEN
        RAISE EXCEPTION 'mapping function % must not be SECURITY DEFINER', p_fn::regprocedure
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'It would run as its owner instead of the role named for it.';
    END IF;
    -- its owner can change what it does at any time (CREATE OR REPLACE keeps
    -- it registered): it must be a role that may act as p_role anyway (p_role
    -- itself, a role that may SET ROLE to it) or a superuser, else the
    -- worker would run the owner's code with p_role's rights
    IF NOT pg_catalog.pg_has_role(p.proowner, p_role, 'MEMBER')
       AND NOT (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.oid = p.proowner) THEN
        RAISE EXCEPTION 'mapping function % is owned by role "%", which may not act as role "%"',
                        p_fn::regprocedure, p.proowner::regrole, p_role::regrole
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'Its owner can change what the function does, and the worker runs it as the mapping role.',
                  HINT = format('Let the mapping role own it: ALTER FUNCTION %s OWNER TO %I;', p_fn::regprocedure, p_role::regrole::text);
    END IF;
    IF pg_catalog.pg_is_other_temp_schema(p.pronamespace) OR p.pronamespace = pg_catalog.pg_my_temp_schema() THEN
        RAISE EXCEPTION 'mapping function % is in a temporary schema', p_fn::regprocedure
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_catalog.has_schema_privilege(p_role, p.pronamespace, 'USAGE')
       OR NOT pg_catalog.has_function_privilege(p_role, p_fn, 'EXECUTE') THEN
        RAISE EXCEPTION 'role "%" may not execute mapping function %', p_role::regrole, p_fn::regprocedure
            USING ERRCODE = 'insufficient_privilege',
                  HINT = format('GRANT USAGE ON SCHEMA %I TO %I; GRANT EXECUTE ON FUNCTION %s TO %I;',
                                (SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = p.pronamespace),
                                p_role::regrole::text, p_fn::regprocedure, p_role::regrole::text);
    END IF;
    RETURN p_fn::regprocedure::text;
END
$$;
COMMENT ON FUNCTION llm_usage._check_mapping_function(oid, oid) IS
'Internal: the schema-qualified signature of a mapping function, or 22023/42501/42883 unless it is (jsonb, bigint) RETURNS SETOF llm_usage.usage_source_row, not SECURITY DEFINER, owned by the role, a role that may act as it or a superuser, not temporary, executable by the role.';

CREATE OR REPLACE FUNCTION llm_usage._check_pagination(p jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The pagination rule with its defaults filled in, or 22023.
DECLARE
    v_type    text;
    v_allowed text[];
    v_out     jsonb;
    k         text;
BEGIN
    IF p IS NULL THEN
        RETURN '{"type": "none"}';
    END IF;
    IF jsonb_typeof(p) <> 'object' OR jsonb_typeof(p->'type') IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION 'pagination must be a JSON object with a "type"'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Types: none, cursor, has_more, page_number.';
    END IF;
    v_type := p->>'type';
    v_allowed := CASE v_type
        WHEN 'none' THEN ARRAY['type']
        WHEN 'cursor' THEN ARRAY['type', 'cursor_path', 'param']
        WHEN 'has_more' THEN ARRAY['type', 'has_more_path', 'next_path', 'param']
        WHEN 'page_number' THEN ARRAY['type', 'items_path', 'param', 'first'] END;
    IF v_allowed IS NULL THEN
        RAISE EXCEPTION 'unknown pagination type "%"', v_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Types: none, cursor, has_more, page_number.';
    END IF;
    FOR k IN SELECT jsonb_object_keys(p) LOOP
        IF NOT k = ANY (v_allowed) THEN
            RAISE EXCEPTION 'pagination of type "%" has no setting "%"', v_type, k
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('Its settings are: %s.', array_to_string(v_allowed, ', '));
        END IF;
    END LOOP;
    v_out := jsonb_build_object('type', v_type);
    IF v_type = 'cursor' THEN
        v_out := v_out || jsonb_build_object('cursor_path', p->'cursor_path', 'param', coalesce(p->'param', '"cursor"'));
    ELSIF v_type = 'has_more' THEN
        v_out := v_out || jsonb_build_object('has_more_path', coalesce(p->'has_more_path', '"has_more"'),
                                             'next_path', coalesce(p->'next_path', '"next_page"'),
                                             'param', coalesce(p->'param', '"page"'));
    ELSIF v_type = 'page_number' THEN
        v_out := v_out || jsonb_build_object('items_path', p->'items_path', 'param', coalesce(p->'param', '"page"'),
                                             'first', coalesce(p->'first', '1'));
        IF jsonb_typeof(v_out->'first') IS DISTINCT FROM 'number' OR (v_out->>'first') NOT IN ('0', '1') THEN
            RAISE EXCEPTION 'pagination "first" must be 0 or 1'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    FOR k IN SELECT unnest(ARRAY['cursor_path', 'has_more_path', 'next_path', 'items_path']) LOOP
        IF v_out ? k AND (jsonb_typeof(v_out->k) IS DISTINCT FROM 'string' OR length(v_out->>k) > 200
                          OR (v_out->>k) !~ '^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+){0,7}$') THEN
            RAISE EXCEPTION 'pagination "%" must be a JSON path of keys: key or key.key (letters, digits, _ and -; up to 8 keys)', k
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END LOOP;
    IF v_out ? 'param' AND (jsonb_typeof(v_out->'param') IS DISTINCT FROM 'string'
                            OR (v_out->>'param') !~ '^[A-Za-z0-9_.~-]{1,64}$') THEN
        RAISE EXCEPTION 'pagination "param" must be a query parameter name of 1 to 64 letters, digits, _ . ~ or -'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN v_out;
END
$$;
COMMENT ON FUNCTION llm_usage._check_pagination(jsonb) IS
'Internal: a pagination rule with its defaults, or 22023: none; cursor (cursor_path, param "cursor"); has_more (has_more_path "has_more", next_path "next_page", param "page"); page_number (items_path, param "page", first 1).';

/*
 * _source_url_allowed(base_url): whether a superuser allowed custom sources
 * at this base URL, in llm_usage.source_url_prefixes (a comma-separated
 * list of URL prefixes).  The worker runs as a superuser, so without such a
 * list an llm_usage admin could make it fetch any address the server can
 * reach (loopback, link-local, internal services) and send a source's
 * secret there.  A prefix matches a base URL equal to it or continuing it
 * after "/"; one that ends in "/" or ":" matches every base URL starting
 * with it ("http://127.0.0.1:" allows every port of the loopback address).
 * A base URL with a "." or ".." path segment (also percent-encoded) is
 * never allowed: libcurl and servers resolve them, so "/v2/.." would
 * climb out of a prefix "/v2".
 * Read at registration in the admin's session and by the worker before
 * every run, each with its own value of the setting.
 */
CREATE OR REPLACE FUNCTION llm_usage._source_url_allowed(p_base_url text)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT p_base_url !~ '/(\.|%2[eE]){1,2}(/|$)'
       AND coalesce(bool_or(p_base_url = x.prefix
                            OR left(p_base_url, length(x.prefix) + 1) = x.prefix || '/'
                            OR (right(x.prefix, 1) IN ('/', ':') AND left(p_base_url, length(x.prefix)) = x.prefix)), false)
      FROM (SELECT btrim(p) AS prefix
              FROM unnest(string_to_array(coalesce(current_setting('llm_usage.source_url_prefixes', true), ''), ',')) p) x
     WHERE x.prefix <> ''
$$;
COMMENT ON FUNCTION llm_usage._source_url_allowed(text) IS
'Internal: whether llm_usage.source_url_prefixes (a superuser setting) allows a custom source at this base URL.';

CREATE OR REPLACE FUNCTION llm_usage._check_source_endpoint(p_base_url text, p_path text, p_time_format text,
                                                            p_auth text, p_auth_name text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_rest text;
BEGIN
    PERFORM llm_usage._check_text(p_base_url, 'base_url', 512);
    IF p_base_url !~ '^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~!$&''()*+,;=:@%/-]*)?$'
       OR right(p_base_url, 1) = '/' THEN
        RAISE EXCEPTION 'base_url must be an http or https URL without user, query or trailing slash'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example https://api.example.com or https://api.example.com/v2.';
    END IF;
    IF p_base_url ~ '/(\.|%2[eE]){1,2}(/|$)' THEN
        RAISE EXCEPTION 'base_url must not have a "." or ".." path segment'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'The worker would leave the path llm_usage.source_url_prefixes allows; write the path it resolves to.';
    END IF;
    IF NOT llm_usage._source_url_allowed(p_base_url) THEN
        RAISE EXCEPTION 'base_url "%" is not allowed by llm_usage.source_url_prefixes', p_base_url
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'A superuser lists the URL prefixes custom sources may use in llm_usage.source_url_prefixes (postgresql.conf or ALTER SYSTEM), e.g. ''https://api.example.com''.';
    END IF;
    PERFORM llm_usage._check_text(p_path, 'path_template', 1000);
    v_rest := replace(replace(p_path, '{from}', ''), '{to}', '');
    IF left(p_path, 1) <> '/' OR v_rest !~ '^/[A-Za-z0-9._~!$&''()*+,;=:@%/?-]*$'
       OR v_rest ~ '%($|[^0-9A-Fa-f]|.$|.[^0-9A-Fa-f])'
       -- a "." or ".." segment (also percent-encoded) would climb out of the base URL's path
       OR v_rest ~ '/(\.|%2[eE]){1,2}([/?#]|$)'
       OR length(p_path) - length(replace(p_path, '{from}', '')) <> 6
       OR length(p_path) - length(replace(p_path, '{to}', '')) <> 4 THEN
        RAISE EXCEPTION 'path_template must start with "/", hold {from} and {to} once each and otherwise only URL characters, and no "." or ".." segment'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example /metrics/api-usage?from={from}&to={to}.';
    END IF;
    PERFORM llm_usage._require_arg(p_time_format, 'time_format');
    IF p_time_format NOT IN ('rfc3339', 'unix') THEN
        RAISE EXCEPTION 'unknown time_format "%"', p_time_format
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Time formats are: rfc3339, unix.';
    END IF;
    PERFORM llm_usage._require_arg(p_auth, 'auth');
    IF p_auth NOT IN ('none', 'bearer', 'header', 'query') THEN
        RAISE EXCEPTION 'unknown auth "%"', p_auth
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Authentications are: none, bearer, header, query.';
    END IF;
    IF p_auth IN ('none', 'bearer') AND p_auth_name IS NOT NULL THEN
        RAISE EXCEPTION 'auth_name is only for auth header or query'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_auth = 'header' AND (p_auth_name IS NULL OR p_auth_name !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,64}$'
                              OR lower(p_auth_name) IN ('host', 'content-length', 'transfer-encoding', 'connection',
                                                        'content-type', 'accept', 'accept-encoding', 'cookie')) THEN
        RAISE EXCEPTION 'auth header needs auth_name: an HTTP header name (1 to 64 token characters, not a framing header)'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example X-Api-Key.';
    END IF;
    IF p_auth = 'query' AND (p_auth_name IS NULL OR p_auth_name !~ '^[A-Za-z0-9_.~-]{1,64}$') THEN
        RAISE EXCEPTION 'auth query needs auth_name: a query parameter name of 1 to 64 letters, digits, _ . ~ or -'
            USING ERRCODE = 'invalid_parameter_value', HINT = 'For example api_key.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_source_endpoint(text, text, text, text, text) IS
'Internal: raise 22004/22023 unless base URL, path template, time format and authentication of a custom source are well formed, 42501 unless llm_usage.source_url_prefixes allows the base URL.';

CREATE OR REPLACE FUNCTION llm_usage._check_source_secret(p_secret text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_secret IS NULL THEN
        RAISE EXCEPTION 'secret must not be NULL'
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Authentication bearer, header and query need the secret the service issued.';
    END IF;
    IF length(p_secret) < 8 OR length(p_secret) > 1024 OR p_secret !~ '^[[:graph:]]+$' THEN
        RAISE EXCEPTION 'secret must be 8 to 1024 printable characters without spaces'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_source_secret(text) IS 'Internal: raise 22004/22023 unless a source''s secret looks like a token (the message never shows it).';

CREATE OR REPLACE FUNCTION llm_usage._source_row(p_source_id bigint)
RETURNS llm_usage.usage_source_store
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s llm_usage.usage_source_store;
BEGIN
    PERFORM llm_usage._require_arg(p_source_id, 'source_id');
    SELECT * INTO s FROM llm_usage.usage_source_store WHERE source_id = p_source_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'usage source % does not exist', p_source_id
            USING ERRCODE = 'undefined_object',
                  HINT = 'llm_usage.usage_sources lists the registered sources.';
    END IF;
    RETURN s;
END
$$;
COMMENT ON FUNCTION llm_usage._source_row(bigint) IS 'Internal: a registered source, or 22004/42704.';

------------------------------------------------------------------------
-- Registering and changing sources (admin only)
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage.add_usage_source(name text, tenant_id text, base_url text, path_template text,
                                                      mapping_function regprocedure, run_as regrole,
                                                      time_format text DEFAULT 'rfc3339', auth text DEFAULT 'none',
                                                      auth_name text DEFAULT NULL, secret text DEFAULT NULL,
                                                      pagination jsonb DEFAULT NULL, per_day boolean DEFAULT false)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.add_usage_source(text, text, text, text, regprocedure, regrole, text, text, text, text, jsonb, boolean) IS
'Registers a custom usage source and returns its id: base_url + path_template ({from} and {to} replaced by the window as rfc3339 or unix), auth none, bearer, header (auth_name) or query (auth_name) with the secret stored encrypted (pass it as a bind parameter), pagination (see README), per_day (fetch the window a UTC day at a time), and the mapping function (page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row, run as role run_as (never a superuser; you must be a member of it).  Rows land on tenant_id unless attributed.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._add_usage_source_impl(name text, tenant_id text, base_url text, path_template text,
                                                            mapping_function regprocedure, run_as regrole,
                                                            time_format text DEFAULT 'rfc3339', auth text DEFAULT 'none',
                                                            auth_name text DEFAULT NULL, secret text DEFAULT NULL,
                                                            pagination jsonb DEFAULT NULL, per_day boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t       llm_usage.tenants;
    v_admin text := llm_usage._caller()::regrole::text;
    v_role  oid;
    v_fn    text;
    v_pag   jsonb;
    v_id    bigint;
    v_key   bigint;
BEGIN
    PERFORM llm_usage._require_admin('add_usage_source');
    PERFORM llm_usage._check_text($1, 'name', 100);
    IF $1 !~ '^[A-Za-z0-9_.-]+$' THEN
        RAISE EXCEPTION 'name must be letters, digits, _ . or -'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF EXISTS (SELECT 1 FROM llm_usage.usage_source_store s WHERE s.name = $1) THEN
        RAISE EXCEPTION 'usage source "%" already exists', $1
            USING ERRCODE = 'duplicate_object';
    END IF;
    t := llm_usage._tenant($2);
    PERFORM llm_usage._check_source_endpoint($3, $4, $7, $8, $9);
    PERFORM llm_usage._require_arg($5, 'mapping_function');
    PERFORM llm_usage._require_arg($6, 'run_as');
    v_role := llm_usage._check_source_role($6::text, v_admin);
    v_fn := llm_usage._check_mapping_function($5, v_role);
    v_pag := llm_usage._check_pagination($11);
    PERFORM llm_usage._require_arg($12, 'per_day');
    IF $8 = 'none' AND $10 IS NOT NULL THEN
        RAISE EXCEPTION 'a secret needs auth bearer, header or query'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $8 <> 'none' THEN
        PERFORM llm_usage._check_source_secret($10);
    END IF;
    INSERT INTO llm_usage.usage_source_store AS s
        (name, tenant_id, base_url, path_template, time_format, per_day, auth, auth_name, pagination,
         mapping_function, run_as, registered_by)
    VALUES ($1, t.tenant_id, $3, $4, $7, $12, $8, $9, v_pag, v_fn, $6::text, v_admin)
    RETURNING s.source_id INTO v_id;
    IF $8 <> 'none' THEN
        v_key := llm_usage._add_provider_key_impl(t.tenant_id, 'custom', $10, format('usage source %s', $1), false);
        UPDATE llm_usage.usage_source_store s SET secret_key_id = v_key WHERE s.source_id = v_id;
    END IF;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'security', 'add_usage_source', v_admin,
            jsonb_build_object('source_id', v_id, 'name', $1, 'base_url', $3, 'path_template', $4, 'auth', $8,
                               'secret_key_id', v_key, 'mapping_function', v_fn, 'run_as', $6::text));
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION llm_usage._add_usage_source_impl(text, text, text, text, regprocedure, regrole, text, text, text, text, jsonb, boolean) IS
'Internal: the body of llm_usage.add_usage_source(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.set_usage_source_secret(source_id bigint, secret text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.set_usage_source_secret(bigint, text) IS
'Replaces the secret of a custom usage source (sealed like a provider key: new data key, new ciphertext).  Pass it as a bind parameter.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._set_usage_source_secret_impl(source_id bigint, secret text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s     llm_usage.usage_source_store;
    v_key bigint;
BEGIN
    PERFORM llm_usage._require_admin('set_usage_source_secret');
    s := llm_usage._source_row($1);
    IF s.auth = 'none' THEN
        RAISE EXCEPTION 'usage source % has auth none: it has no secret', s.source_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM llm_usage._check_source_secret($2);
    IF s.secret_key_id IS NOT NULL AND EXISTS (SELECT 1 FROM llm_usage.provider_key_store k WHERE k.key_id = s.secret_key_id) THEN
        PERFORM llm_usage._rotate_provider_key_impl(s.secret_key_id, $2, false);
    ELSE
        v_key := llm_usage._add_provider_key_impl(s.tenant_id, 'custom', $2, format('usage source %s', s.name), false);
        UPDATE llm_usage.usage_source_store u SET secret_key_id = v_key WHERE u.source_id = s.source_id;
    END IF;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (s.tenant_id, 'security', 'set_usage_source_secret', llm_usage._caller()::regrole::text,
            jsonb_build_object('source_id', s.source_id, 'name', s.name, 'key_preview', '…' || right($2, 4)));
END
$$;
COMMENT ON FUNCTION llm_usage._set_usage_source_secret_impl(bigint, text) IS
'Internal: the body of llm_usage.set_usage_source_secret(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.set_usage_source_mapping(source_id bigint, mapping_function regprocedure, run_as regrole)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.set_usage_source_mapping(bigint, regprocedure, regrole) IS
'Changes the mapping function of a custom usage source and the role it runs as (checked as at registration; you become the registering admin).  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._set_usage_source_mapping_impl(source_id bigint, mapping_function regprocedure, run_as regrole)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s       llm_usage.usage_source_store;
    v_admin text := llm_usage._caller()::regrole::text;
    v_fn    text;
BEGIN
    PERFORM llm_usage._require_admin('set_usage_source_mapping');
    s := llm_usage._source_row($1);
    PERFORM llm_usage._require_arg($2, 'mapping_function');
    PERFORM llm_usage._require_arg($3, 'run_as');
    v_fn := llm_usage._check_mapping_function($2, llm_usage._check_source_role($3::text, v_admin));
    UPDATE llm_usage.usage_source_store u
       SET mapping_function = v_fn, run_as = $3::text, registered_by = v_admin
     WHERE u.source_id = s.source_id;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (s.tenant_id, 'security', 'set_usage_source_mapping', v_admin,
            jsonb_build_object('source_id', s.source_id, 'name', s.name, 'mapping_function', v_fn, 'run_as', $3::text));
END
$$;
COMMENT ON FUNCTION llm_usage._set_usage_source_mapping_impl(bigint, regprocedure, regrole) IS
'Internal: the body of llm_usage.set_usage_source_mapping(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.deactivate_usage_source(source_id bigint)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.deactivate_usage_source(bigint) IS
'Stops collecting a custom usage source (its queued runs are dropped; its rows stay); activate_usage_source() resumes it.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._deactivate_usage_source_impl(source_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s llm_usage.usage_source_store;
BEGIN
    PERFORM llm_usage._require_admin('deactivate_usage_source');
    s := llm_usage._source_row($1);
    UPDATE llm_usage.usage_source_store u SET is_active = false WHERE u.source_id = s.source_id;
    UPDATE llm_usage.collector_runs r
       SET status = 'failed', finished_at = now(), error = 'source deactivated before the run started'
     WHERE r.source_id = s.source_id AND r.status = 'queued';
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (s.tenant_id, 'admin', 'deactivate_usage_source', llm_usage._caller()::regrole::text,
            jsonb_build_object('source_id', s.source_id, 'name', s.name));
END
$$;
COMMENT ON FUNCTION llm_usage._deactivate_usage_source_impl(bigint) IS
'Internal: the body of llm_usage.deactivate_usage_source(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.activate_usage_source(source_id bigint)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.activate_usage_source(bigint) IS
'Resumes collecting a deactivated custom usage source, after checking its mapping function and role again.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._activate_usage_source_impl(source_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s llm_usage.usage_source_store;
BEGIN
    PERFORM llm_usage._require_admin('activate_usage_source');
    s := llm_usage._source_row($1);
    PERFORM * FROM llm_usage._source_mapping_for_run(s.source_id);
    UPDATE llm_usage.usage_source_store u SET is_active = true WHERE u.source_id = s.source_id;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (s.tenant_id, 'admin', 'activate_usage_source', llm_usage._caller()::regrole::text,
            jsonb_build_object('source_id', s.source_id, 'name', s.name));
END
$$;
COMMENT ON FUNCTION llm_usage._activate_usage_source_impl(bigint) IS
'Internal: the body of llm_usage.activate_usage_source(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.attribute_source_usage(source_id bigint, value text, tenant_id text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.attribute_source_usage(bigint, text, text) IS
'Maps an attribution value of a custom source''s rows to a tenant: rows carrying it (already collected and later) belong to that tenant.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._attribute_source_usage_impl(source_id bigint, value text, tenant_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s llm_usage.usage_source_store;
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('attribute_source_usage');
    s := llm_usage._source_row($1);
    PERFORM llm_usage._check_text($2, 'value', 512);
    t := llm_usage._tenant($3);
    INSERT INTO llm_usage.usage_source_attributions AS a (source_id, value, tenant_id)
    VALUES (s.source_id, $2, t.tenant_id)
    ON CONFLICT (source_id, value) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, created_at = now();
    UPDATE llm_usage.custom_usage u
       SET tenant_id = t.tenant_id, attributed_by = 'mapping'
     WHERE u.source_id = s.source_id AND u.attribution = $2
       AND (u.tenant_id, u.attributed_by) IS DISTINCT FROM (t.tenant_id, 'mapping');
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'admin', 'attribute_source_usage', llm_usage._caller()::regrole::text,
            jsonb_build_object('source_id', s.source_id, 'value', $2));
END
$$;
COMMENT ON FUNCTION llm_usage._attribute_source_usage_impl(bigint, text, text) IS
'Internal: the body of llm_usage.attribute_source_usage(), run as the owner by its entry point, which records the caller (src/caller.c).';

------------------------------------------------------------------------
-- Collecting
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage._source_window(p_collected_through date, OUT window_from timestamptz, OUT window_to timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- as _default_window() for keys: the previous full day in
    -- llm_usage.timezone and the day before, plus every earlier day not
    -- collected yet, at most 31 days back; a new source starts a week back
    SELECT (greatest(d.last_day - 30, least(coalesce(p_collected_through + 1, d.last_day - 6), d.last_day - 1))
              ::timestamp AT TIME ZONE 'UTC'),
           ((d.last_day + 1)::timestamp AT TIME ZONE 'UTC')
      FROM (SELECT (now() AT TIME ZONE coalesce(current_setting('llm_usage.timezone', true), 'UTC'))::date - 1 AS last_day) d
$$;
COMMENT ON FUNCTION llm_usage._source_window(date) IS
'Internal: the window a scheduled run of a custom source collects (UTC days up to the previous full day in llm_usage.timezone).';

CREATE OR REPLACE FUNCTION llm_usage.collect_source_now(source_id bigint DEFAULT NULL, from_date date DEFAULT NULL,
                                                        to_date date DEFAULT NULL)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.collect_source_now(bigint, date, date) IS
'Queues a collection run now for one custom usage source (or every active one) over [from_date, to_date] (UTC days; default: the scheduled window) and wakes the collector at commit; returns the first run id.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._collect_source_now_impl(source_id bigint DEFAULT NULL, from_date date DEFAULT NULL,
                                                              to_date date DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    s       llm_usage.usage_source_store;
    v_first bigint;
    v_id    bigint;
    w       record;
BEGIN
    PERFORM llm_usage._require_admin('collect_source_now');
    IF $1 IS NOT NULL THEN
        s := llm_usage._source_row($1);
        IF NOT s.is_active THEN
            RAISE EXCEPTION 'usage source % is deactivated', $1
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Resume it with llm_usage.activate_usage_source().';
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
    FOR s IN SELECT * FROM llm_usage.usage_source_store u
              WHERE ($1 IS NULL OR u.source_id = $1) AND u.is_active ORDER BY u.source_id
    LOOP
        w := llm_usage._source_window(s.collected_through);
        INSERT INTO llm_usage.collector_runs (source_id, tenant_id, provider, trigger, window_from, window_to)
        VALUES (s.source_id, s.tenant_id, 'custom', 'manual',
                coalesce($2::timestamp AT TIME ZONE 'UTC', w.window_from),
                coalesce(($3 + 1)::timestamp AT TIME ZONE 'UTC', greatest(w.window_to, ($2 + 1)::timestamp AT TIME ZONE 'UTC')))
        RETURNING run_id INTO v_id;
        v_first := coalesce(v_first, v_id);
    END LOOP;
    IF v_first IS NULL THEN
        RAISE EXCEPTION 'no active usage source to collect'
            USING ERRCODE = 'undefined_object',
                  HINT = 'Register one with llm_usage.add_usage_source().';
    END IF;
    PERFORM llm_usage._wake_worker_for_runs('Register sources and call collect_source_now() in the database named by llm_usage.database.');
    RETURN v_first;
END
$$;
COMMENT ON FUNCTION llm_usage._collect_source_now_impl(bigint, date, date) IS
'Internal: the body of llm_usage.collect_source_now(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage._source_for_run(p_source_id bigint,
    OUT base_url text, OUT path_template text, OUT time_format text, OUT per_day boolean, OUT auth text,
    OUT auth_name text, OUT pagination text, OUT page_param text, OUT cursor_path text, OUT has_more_path text,
    OUT next_path text, OUT items_path text, OUT first_page integer, OUT url_allowed boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s.base_url, s.path_template, s.time_format, s.per_day, s.auth, s.auth_name,
           s.pagination->>'type', s.pagination->>'param', s.pagination->>'cursor_path',
           s.pagination->>'has_more_path', s.pagination->>'next_path', s.pagination->>'items_path',
           (s.pagination->>'first')::integer, llm_usage._source_url_allowed(s.base_url)
      FROM llm_usage.usage_source_store s
     WHERE s.source_id = p_source_id
$$;
COMMENT ON FUNCTION llm_usage._source_for_run(bigint) IS 'Internal (worker): how to fetch a custom source, for the collector, and whether the worker''s llm_usage.source_url_prefixes still allows its base URL.';

CREATE OR REPLACE FUNCTION llm_usage._source_mapping_for_run(p_source_id bigint, OUT fn oid, OUT role_id oid)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Before every run (and at activation): the mapping function and its role,
-- checked as at registration, whatever changed since (a role made
-- superuser, a function replaced or made SECURITY DEFINER, the admin
-- dropped or no longer a member of the role).
DECLARE
    s llm_usage.usage_source_store;
BEGIN
    s := llm_usage._source_row(p_source_id);
    fn := pg_catalog.to_regprocedure(s.mapping_function);
    IF fn IS NULL THEN
        RAISE EXCEPTION 'mapping function % does not exist', s.mapping_function
            USING ERRCODE = 'undefined_function',
                  HINT = 'Create it again, or name another with llm_usage.set_usage_source_mapping().';
    END IF;
    role_id := llm_usage._check_source_role(s.run_as, s.registered_by);
    PERFORM llm_usage._check_mapping_function(fn, role_id);
END
$$;
COMMENT ON FUNCTION llm_usage._source_mapping_for_run(bigint) IS
'Internal (worker, activate_usage_source): the mapping function and the role it runs as, checked again; raises what the registration checks raise.';

CREATE OR REPLACE FUNCTION llm_usage._ingest_source_rows(p_run_id bigint, p_page integer, p_rows llm_usage.usage_source_row[])
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
-- The rows the mapping function made of page p_page of run p_run_id: each
-- checked (a bad one fails the run, naming its page, row and fault),
-- attributed (a mapped value, else a tenant of that id, else the source's
-- tenant) and upserted on (source, bucket_start, metric, attribution).  A
-- row this run already wrote (the same natural key twice in a run) fails
-- the run.  Returns the rows inserted or updated.
DECLARE
    r         llm_usage.collector_runs;
    v_problem record;
    v_rows    integer;
    n         integer;
BEGIN
    SELECT * INTO r FROM llm_usage.collector_runs WHERE run_id = p_run_id;
    v_rows := coalesce(cardinality(p_rows), 0);
    IF v_rows = 0 THEN
        RETURN 0;
    END IF;
    SELECT x.n, CASE
             WHEN x.bucket_start IS NULL OR x.bucket_end IS NULL THEN 'bucket_start and bucket_end must not be NULL'
             WHEN NOT isfinite(x.bucket_start) OR NOT isfinite(x.bucket_end) THEN 'the bucket is not finite'
             WHEN x.bucket_end <= x.bucket_start THEN 'bucket_end is not after bucket_start'
             WHEN x.bucket_start < r.window_from OR x.bucket_end > r.window_to THEN
                 format('the bucket [%s, %s) is outside the collected window [%s, %s)',
                        x.bucket_start, x.bucket_end, r.window_from, r.window_to)
             WHEN x.metric IS NULL OR btrim(x.metric) = '' OR length(x.metric) > 200 OR x.metric ~ '[[:cntrl:]]' THEN
                 'metric must be 1 to 200 characters without control characters'
             WHEN x.quantity IS NULL OR NOT (x.quantity >= 0 AND x.quantity <= 1e15) THEN
                 'quantity must be a number from 0 to 10^15'
             WHEN x.unit IS NOT NULL AND (btrim(x.unit) = '' OR length(x.unit) > 50 OR x.unit ~ '[[:cntrl:]]') THEN
                 'unit must be NULL or 1 to 50 characters without control characters'
             WHEN x.cost_usd IS NOT NULL AND NOT (abs(x.cost_usd) <= 1e12) THEN
                 'cost_usd must be NULL or a number within ±10^12'
             WHEN x.attribution IS NOT NULL AND (x.attribution = '' OR length(x.attribution) > 512
                                                 OR x.attribution ~ '[[:cntrl:]]') THEN
                 'attribution must be NULL or 1 to 512 characters without control characters'
           END AS problem
      INTO v_problem
      FROM unnest(p_rows) WITH ORDINALITY AS x(attribution, bucket_start, bucket_end, metric, quantity, unit, cost_usd, n)
     ORDER BY (CASE
             WHEN x.bucket_start IS NULL OR x.bucket_end IS NULL OR NOT isfinite(x.bucket_start)
                  OR NOT isfinite(x.bucket_end) OR x.bucket_end <= x.bucket_start
                  OR x.bucket_start < r.window_from OR x.bucket_end > r.window_to
                  OR x.metric IS NULL OR btrim(x.metric) = '' OR length(x.metric) > 200 OR x.metric ~ '[[:cntrl:]]'
                  OR x.quantity IS NULL OR NOT (x.quantity >= 0 AND x.quantity <= 1e15)
                  OR (x.unit IS NOT NULL AND (btrim(x.unit) = '' OR length(x.unit) > 50 OR x.unit ~ '[[:cntrl:]]'))
                  OR (x.cost_usd IS NOT NULL AND NOT (abs(x.cost_usd) <= 1e12))
                  OR (x.attribution IS NOT NULL AND (x.attribution = '' OR length(x.attribution) > 512
                                                     OR x.attribution ~ '[[:cntrl:]]'))
             THEN 0 ELSE 1 END), x.n
     LIMIT 1;
    IF v_problem.problem IS NOT NULL THEN
        RAISE EXCEPTION 'the mapping function returned a bad row (page %, row %): %', p_page, v_problem.n, v_problem.problem
            USING ERRCODE = 'data_exception';
    END IF;
    SELECT x.bucket_start, x.metric, x.attribution, count(*) AS times INTO v_problem
      FROM unnest(p_rows) x
     GROUP BY x.bucket_start, x.metric, x.attribution
    HAVING count(*) > 1
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'the mapping function returned the row (bucket %, metric "%", attribution %) % times on page %',
                v_problem.bucket_start, v_problem.metric, coalesce(quote_literal(v_problem.attribution), 'NULL'),
                v_problem.times, p_page
            USING ERRCODE = 'cardinality_violation';
    END IF;

    INSERT INTO llm_usage.custom_usage AS u
        (tenant_id, attributed_by, source_id, run_id, attribution, bucket_start, bucket_end, metric, quantity, unit, cost_usd)
    SELECT coalesce(m.tenant_id, t.tenant_id, s.tenant_id),
           CASE WHEN m.tenant_id IS NOT NULL THEN 'mapping' WHEN t.tenant_id IS NOT NULL THEN 'tenant' ELSE 'source' END,
           s.source_id, r.run_id, x.attribution, x.bucket_start, x.bucket_end, x.metric, x.quantity, x.unit, x.cost_usd
      FROM unnest(p_rows) x
     CROSS JOIN llm_usage.usage_source_store s
      LEFT JOIN llm_usage.usage_source_attributions m ON m.source_id = s.source_id AND m.value = x.attribution
      LEFT JOIN llm_usage.tenants t ON t.tenant_id = x.attribution
     WHERE s.source_id = r.source_id
    ON CONFLICT ON CONSTRAINT custom_usage_natural_key DO UPDATE
       SET tenant_id = EXCLUDED.tenant_id, attributed_by = EXCLUDED.attributed_by, run_id = EXCLUDED.run_id,
           bucket_end = EXCLUDED.bucket_end, quantity = EXCLUDED.quantity, unit = EXCLUDED.unit,
           cost_usd = EXCLUDED.cost_usd, collected_at = now()
     WHERE u.run_id IS DISTINCT FROM EXCLUDED.run_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n < v_rows THEN
        RAISE EXCEPTION 'the mapping function returned % row(s) on page % that an earlier page of the run already returned',
                v_rows - n, p_page
            USING ERRCODE = 'cardinality_violation';
    END IF;
    -- Prepaid credits: here, and only here, every row of this page is
    -- written, in the run's one write transaction: the rows of
    -- custom_usage WHERE run_id = p_run_id (inserted, or updated in place by
    -- a re-collection, run_id then changes to this run).  Each is charged
    -- to a prepaid tenant once, keyed on the row (usage_id): its cost_usd
    -- less what the ledger charged for that row before.
    PERFORM llm_usage._credit_burn_source_rows(p_run_id);
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._ingest_source_rows(bigint, integer, llm_usage.usage_source_row[]) IS
'Internal (worker): check, attribute and upsert the rows a custom source''s mapping function made of one page; a bad row or a row the run already wrote fails the run.  Returns the rows written.';

------------------------------------------------------------------------
-- Reading
------------------------------------------------------------------------

CREATE OR REPLACE VIEW llm_usage.usage_sources WITH (security_barrier) AS
SELECT s.source_id AS id, s.name, s.tenant_id, s.base_url, s.path_template, s.time_format, s.per_day, s.auth,
       s.auth_name, k.key_preview AS secret_preview, s.pagination, s.mapping_function, s.run_as, s.registered_by,
       s.is_active, s.created_at, s.last_synced_at, s.last_sync_status, s.last_error, s.collected_through
  FROM llm_usage.usage_source_store s
  LEFT JOIN llm_usage.provider_key_store k ON k.key_id = s.secret_key_id
 WHERE llm_usage._can_access(s.tenant_id);
COMMENT ON VIEW llm_usage.usage_sources IS
'Registered custom usage sources of the tenants the caller may see: endpoint, authentication kind and secret preview (last 4 characters, never the secret), pagination, mapping function and role, state and last sync.';

CREATE OR REPLACE FUNCTION llm_usage.source_usage(tenant_id text DEFAULT NULL, from_ts timestamptz DEFAULT NULL,
                                                  to_ts timestamptz DEFAULT NULL)
RETURNS TABLE (tenant text, source_id bigint, source_name text, bucket_start timestamptz, bucket_end timestamptz,
               metric text, attribution text, quantity numeric, unit text, cost_usd numeric, attributed_by text,
               collected_at timestamptz)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.source_usage(text, timestamptz, timestamptz) IS
'Usage collected from custom sources for one tenant (or every tenant the caller may see), buckets starting in [from_ts, to_ts) (NULL: unbounded).';

CREATE OR REPLACE FUNCTION llm_usage._source_usage_impl(tenant_id text DEFAULT NULL, from_ts timestamptz DEFAULT NULL,
                                                        to_ts timestamptz DEFAULT NULL)
RETURNS TABLE (tenant text, source_id bigint, source_name text, bucket_start timestamptz, bucket_end timestamptz,
               metric text, attribution text, quantity numeric, unit text, cost_usd numeric, attributed_by text,
               collected_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_tenant text;
BEGIN
    IF $1 IS NOT NULL THEN
        v_tenant := (llm_usage._tenant($1)).tenant_id;
    END IF;
    IF $2 IS NOT NULL AND $3 IS NOT NULL THEN
        PERFORM llm_usage._check_range($2, $3);
    END IF;
    RETURN QUERY
    SELECT u.tenant_id, u.source_id, s.name, u.bucket_start, u.bucket_end, u.metric, u.attribution, u.quantity,
           u.unit, u.cost_usd, u.attributed_by, u.collected_at
      FROM llm_usage.custom_usage u
      JOIN llm_usage.usage_source_store s ON s.source_id = u.source_id
     WHERE llm_usage._can_access(u.tenant_id)
       AND (v_tenant IS NULL OR u.tenant_id = v_tenant)
       AND ($2 IS NULL OR u.bucket_start >= $2)
       AND ($3 IS NULL OR u.bucket_start < $3)
     ORDER BY u.bucket_start, u.tenant_id, s.name, u.metric, u.attribution;
END
$$;
COMMENT ON FUNCTION llm_usage._source_usage_impl(text, timestamptz, timestamptz) IS
'Internal: the body of llm_usage.source_usage(), run as the owner by its entry point, which records the caller (src/caller.c).';
