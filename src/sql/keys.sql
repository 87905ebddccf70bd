/*
 * src/sql/keys.sql — provider keys
 *
 * Provider admin keys are sealed by C (src/crypto.c: AES-256-GCM under a
 * data key wrapped by the master key) and stored as ciphertext that only the
 * owner reads; provider_keys shows everything but the key.
 */

CREATE OR REPLACE FUNCTION llm_usage._seal_key(api_key text, aad text,
                                               OUT key_ciphertext bytea, OUT wrapped_dek bytea, OUT master_key_version integer)
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_seal_key';
COMMENT ON FUNCTION llm_usage._seal_key(text, text) IS 'Internal: encrypt a provider key under a fresh data key wrapped by the current master key.';

CREATE OR REPLACE FUNCTION llm_usage._rewrap_key(wrapped_dek bytea, master_key_version integer, aad text,
                                                 OUT wrapped_dek bytea, OUT master_key_version integer)
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_rewrap_key';
COMMENT ON FUNCTION llm_usage._rewrap_key(bytea, integer, text) IS 'Internal: re-wrap a data key under the current master key version.';

CREATE OR REPLACE FUNCTION llm_usage._master_key_status(reload boolean DEFAULT false,
                                                        OUT loaded boolean, OUT current_version integer, OUT problem text)
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_master_key_status';
COMMENT ON FUNCTION llm_usage._master_key_status(boolean) IS 'Internal: whether the master key file is loaded, its newest version, or what is wrong with it.';

CREATE OR REPLACE FUNCTION llm_usage._probe_key(provider text, api_key text)
RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_probe_key';
COMMENT ON FUNCTION llm_usage._probe_key(text, text) IS 'Internal: one cheap authenticated request with a key; raises 28000 if the provider refuses it.';

CREATE OR REPLACE FUNCTION llm_usage._key_aad(p_key_id bigint, p_tenant text, p_provider text, p_version integer)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format('llm_usage/provider_key/%s/%s/%s/v%s', p_key_id, p_tenant, p_provider, p_version) $$;
COMMENT ON FUNCTION llm_usage._key_aad(bigint, text, text, integer) IS 'Internal: the associated data binding a key''s ciphertext to its row.';

CREATE OR REPLACE FUNCTION llm_usage._check_api_key(p_key text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_key IS NULL THEN
        RAISE EXCEPTION 'api_key must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF length(p_key) < 8 OR length(p_key) > 1024 OR p_key !~ '^[[:graph:]]+$' THEN
        RAISE EXCEPTION 'api_key must be 8 to 1024 printable characters without spaces'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the organization admin key exactly as the provider shows it.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_api_key(text) IS 'Internal: raise 22004/22023 unless a key looks like an API key (the message never shows it).';

/*
 * _check_key_logging(): refuse (55000) a key when this session's logging
 * settings make PostgreSQL write the bind parameters of the statement --
 * the key -- to the server log.  In PostgreSQL 15 they are logged (as
 * "DETAIL: parameters: $1 = '...'", up to log_parameter_max_length bytes;
 * -1, the default, means all) with every statement log_statement logs
 * ('all'; 'mod' when the call sits in a modifying statement) and with the
 * duration of every protocol message once log_min_duration_statement >= 0
 * (or log_min_duration_sample >= 0 with log_statement_sample_rate > 0, or
 * log_transaction_sample_rate > 0).  Both happen when the server receives
 * the statement, before this function runs: the refusal cannot keep the
 * key out of the log, it keeps a key that is in the log out of the store
 * and tells the admin to revoke it and fix the settings first.  Not
 * covered: log_parameter_max_length_on_error <> 0 (a client's own
 * setting, off by default) puts bind parameters into the context of any
 * error, this refusal's included; and a key written into the statement as
 * a literal is logged by all of these whatever log_parameter_max_length
 * says, and with any error by log_min_error_statement: pass keys as bind
 * parameters.
 */
CREATE OR REPLACE FUNCTION llm_usage._check_key_logging()
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_why text;
BEGIN
    IF current_setting('log_parameter_max_length')::integer = 0 THEN
        RETURN;
    END IF;
    v_why := CASE
        WHEN current_setting('log_statement') IN ('all', 'mod')
            THEN format('log_statement = %s', current_setting('log_statement'))
        WHEN current_setting('log_min_duration_statement')::integer >= 0
            THEN format('log_min_duration_statement = %s', current_setting('log_min_duration_statement'))
        WHEN current_setting('log_min_duration_sample')::integer >= 0
             AND current_setting('log_statement_sample_rate')::float8 > 0
            THEN format('log_min_duration_sample = %s', current_setting('log_min_duration_sample'))
        WHEN current_setting('log_transaction_sample_rate')::float8 > 0
            THEN format('log_transaction_sample_rate = %s', current_setting('log_transaction_sample_rate'))
    END;
    IF v_why IS NOT NULL THEN
        RAISE EXCEPTION 'the server log may hold this key: refused'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('With %s and log_parameter_max_length = %s this session logs the bind parameters of a statement when the server receives it, before the function runs.',
                                  v_why, current_setting('log_parameter_max_length')),
                  HINT = 'Revoke this key at the provider.  Then, as a superuser, ALTER ROLE <the admin role> SET log_parameter_max_length = 0, and in a new session add a new key, passed as a bind parameter (never as a literal).';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_key_logging() IS
'Internal: raise 55000 when the session''s logging settings write bind parameters (a provider key) to the server log.';

CREATE OR REPLACE FUNCTION llm_usage._key_row(p_key_id bigint)
RETURNS llm_usage.provider_key_store
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k llm_usage.provider_key_store;
BEGIN
    PERFORM llm_usage._require_arg(p_key_id, 'key_id');
    SELECT * INTO k FROM llm_usage.provider_key_store WHERE key_id = p_key_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'provider key % does not exist', p_key_id
            USING ERRCODE = 'undefined_object',
                  HINT = 'llm_usage.provider_keys lists the stored keys.';
    END IF;
    RETURN k;
END
$$;
COMMENT ON FUNCTION llm_usage._key_row(bigint) IS 'Internal: a stored key row, or 22004/42704.';

CREATE OR REPLACE FUNCTION llm_usage.add_provider_key(tenant_id text, provider text, api_key text, label text DEFAULT NULL,
                                                      validate boolean DEFAULT false)
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.add_provider_key(text, text, text, text, boolean) IS
'Stores a provider organization admin key (openai, anthropic or custom) encrypted, and returns its id; validate => true first makes one cheap authenticated request and refuses a key the provider rejects.  Pass the key as a bind parameter.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._add_provider_key_impl(tenant_id text, provider text, api_key text, label text DEFAULT NULL,
                                                            validate boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t      llm_usage.tenants;
    v_id   bigint;
    v_aad  text;
    s      record;
BEGIN
    PERFORM llm_usage._require_admin('add_provider_key');
    PERFORM llm_usage._check_key_logging();
    t := llm_usage._tenant($1);
    PERFORM llm_usage._require_arg($2, 'provider');
    IF $2 NOT IN ('openai', 'anthropic', 'custom') THEN
        RAISE EXCEPTION 'unknown provider "%"', $2
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Providers are: openai, anthropic, custom.';
    END IF;
    PERFORM llm_usage._check_api_key($3);
    IF $4 IS NOT NULL THEN
        PERFORM llm_usage._check_text($4, 'label', 200);
    END IF;
    PERFORM llm_usage._require_arg($5, 'validate');
    IF $5 THEN
        IF $2 = 'custom' THEN
            RAISE EXCEPTION 'keys of provider "custom" cannot be validated'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM llm_usage._probe_key($2, $3);
    END IF;
    -- before sealing: a rotate_master_key() running now finishes first (and
    -- this seals under its new version), or waits for this key to commit
    -- (and re-wraps it)
    LOCK TABLE llm_usage.provider_key_store IN ROW EXCLUSIVE MODE;
    v_id := nextval('llm_usage.provider_key_store_key_id_seq');
    v_aad := llm_usage._key_aad(v_id, t.tenant_id, $2, 1);
    SELECT * INTO s FROM llm_usage._seal_key($3, v_aad);
    INSERT INTO llm_usage.provider_key_store
        (key_id, tenant_id, provider, label, key_preview, key_ciphertext, wrapped_dek, master_key_version)
    VALUES (v_id, t.tenant_id, $2, $4, '…' || right($3, 4), s.key_ciphertext, s.wrapped_dek, s.master_key_version);
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'security', 'add_provider_key', llm_usage._caller()::regrole::text,
            jsonb_build_object('key_id', v_id, 'provider', $2, 'key_preview', '…' || right($3, 4), 'validated', $5));
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION llm_usage._add_provider_key_impl(text, text, text, text, boolean) IS
'Internal: the body of llm_usage.add_provider_key(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.rotate_provider_key(key_id bigint, api_key text, validate boolean DEFAULT false)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.rotate_provider_key(bigint, text, boolean) IS
'Replaces a stored key with a new one (new data key, new ciphertext) and reactivates it.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._rotate_provider_key_impl(key_id bigint, api_key text, validate boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    k     llm_usage.provider_key_store;
    s     record;
BEGIN
    PERFORM llm_usage._require_admin('rotate_provider_key');
    PERFORM llm_usage._check_key_logging();
    k := llm_usage._key_row($1);
    PERFORM llm_usage._check_api_key($2);
    PERFORM llm_usage._require_arg($3, 'validate');
    IF $3 THEN
        PERFORM llm_usage._probe_key(k.provider, $2);
    END IF;
    LOCK TABLE llm_usage.provider_key_store IN ROW EXCLUSIVE MODE;     -- see add_provider_key()
    SELECT * INTO s FROM llm_usage._seal_key($2, llm_usage._key_aad(k.key_id, k.tenant_id, k.provider, k.key_version + 1));
    UPDATE llm_usage.provider_key_store
       SET key_version = key_version + 1, key_ciphertext = s.key_ciphertext, wrapped_dek = s.wrapped_dek,
           master_key_version = s.master_key_version, key_preview = '…' || right($2, 4), rotated_at = now(),
           is_active = true
     WHERE key_id = k.key_id;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (k.tenant_id, 'security', 'rotate_provider_key', llm_usage._caller()::regrole::text,
            jsonb_build_object('key_id', k.key_id, 'provider', k.provider, 'key_preview', '…' || right($2, 4)));
END
$$;
COMMENT ON FUNCTION llm_usage._rotate_provider_key_impl(bigint, text, boolean) IS
'Internal: the body of llm_usage.rotate_provider_key(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.deactivate_provider_key(key_id bigint)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.deactivate_provider_key(bigint) IS
'Stops using a stored key (its queued runs are dropped); rotate_provider_key() reactivates it.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._deactivate_provider_key_impl(key_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    k llm_usage.provider_key_store;
BEGIN
    PERFORM llm_usage._require_admin('deactivate_provider_key');
    k := llm_usage._key_row($1);
    UPDATE llm_usage.provider_key_store SET is_active = false WHERE key_id = k.key_id;
    UPDATE llm_usage.collector_runs
       SET status = 'failed', finished_at = now(), error = 'key deactivated before the run started'
     WHERE key_id = k.key_id AND status = 'queued';
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (k.tenant_id, 'security', 'deactivate_provider_key', llm_usage._caller()::regrole::text,
            jsonb_build_object('key_id', k.key_id, 'provider', k.provider));
END
$$;
COMMENT ON FUNCTION llm_usage._deactivate_provider_key_impl(bigint) IS
'Internal: the body of llm_usage.deactivate_provider_key(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.rotate_master_key()
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.rotate_master_key() IS
'Re-wraps every stored key''s data key under the newest master key version in llm_usage.master_key_file (re-read now), in one transaction: keys stay readable throughout as long as the file keeps the old version until this commits.  Every session reads the file whenever it seals a key, so keys added afterwards, in any session, use the newest version too.  Returns the keys re-wrapped.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._rotate_master_key_impl()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st     record;
    k      llm_usage.provider_key_store;
    w      record;
    v_done integer := 0;
BEGIN
    PERFORM llm_usage._require_admin('rotate_master_key');
    -- no key is sealed while the file is read and the keys re-wrapped: a
    -- session sealing now commits first (its key is re-wrapped below), one
    -- sealing later reads the file after this commits (and uses the new
    -- version); every process reads the file for every seal (src/crypto.c)
    LOCK TABLE llm_usage.provider_key_store IN SHARE ROW EXCLUSIVE MODE;
    SELECT * INTO st FROM llm_usage._master_key_status(true);
    IF NOT st.loaded OR st.problem IS NOT NULL THEN
        RAISE EXCEPTION 'llm_usage master key file could not be read'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = st.problem || '.',
                  HINT = 'Fix llm_usage.master_key_file first; keys stay wrapped as they are.';
    END IF;
    FOR k IN SELECT * FROM llm_usage.provider_key_store
              WHERE master_key_version <> st.current_version ORDER BY key_id FOR UPDATE
    LOOP
        SELECT * INTO w FROM llm_usage._rewrap_key(k.wrapped_dek, k.master_key_version,
                                                   llm_usage._key_aad(k.key_id, k.tenant_id, k.provider, k.key_version));
        UPDATE llm_usage.provider_key_store
           SET wrapped_dek = w.wrapped_dek, master_key_version = w.master_key_version
         WHERE key_id = k.key_id;
        v_done := v_done + 1;
    END LOOP;
    IF v_done = 0 THEN
        RAISE NOTICE 'every stored key already uses master key version %', st.current_version
            USING HINT = 'To rotate, add a line "<version>:<new key>" with a higher version to llm_usage.master_key_file, keeping the old line until this function has run.';
    END IF;
    RETURN v_done;
END
$$;
COMMENT ON FUNCTION llm_usage._rotate_master_key_impl() IS
'Internal: the body of llm_usage.rotate_master_key(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * provider_keys: a view over an entry point and its body, not over the key
 * store: a condition of the caller's on a view of the table could become
 * an index condition below the tenant filter, and EXPLAIN ANALYZE would
 * count another tenant's keys ("Rows Removed by Filter").  A function's
 * rows are filtered before anything of the caller's sees them.
 */
CREATE OR REPLACE FUNCTION llm_usage._provider_keys()
RETURNS TABLE (id bigint, tenant_id text, provider text, label text, key_preview text, is_active boolean,
               created_at timestamptz, last_used_at timestamptz, last_synced_at timestamptz,
               last_sync_status text, last_error text, key_version integer, master_key_version integer,
               rotated_at timestamptz, collected_through date)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage._provider_keys() IS 'Internal: the rows of the provider_keys view (the keys of the tenants the caller may see).';

CREATE OR REPLACE FUNCTION llm_usage._provider_keys_impl()
RETURNS TABLE (id bigint, tenant_id text, provider text, label text, key_preview text, is_active boolean,
               created_at timestamptz, last_used_at timestamptz, last_synced_at timestamptz,
               last_sync_status text, last_error text, key_version integer, master_key_version integer,
               rotated_at timestamptz, collected_through date)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT k.key_id, k.tenant_id, k.provider, k.label, k.key_preview, k.is_active, k.created_at,
           k.last_used_at, k.last_synced_at, k.last_sync_status, k.last_error, k.key_version,
           k.master_key_version, k.rotated_at, k.collected_through
      FROM llm_usage.provider_key_store k
     WHERE (SELECT llm_usage._is_admin()) OR k.tenant_id IN (SELECT unnest(llm_usage._my_tenants()))
     ORDER BY k.key_id
$$;
COMMENT ON FUNCTION llm_usage._provider_keys_impl() IS
'Internal: the body of llm_usage._provider_keys(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE VIEW llm_usage.provider_keys WITH (security_barrier) AS
SELECT k.id, k.tenant_id, k.provider, k.label, k.key_preview, k.is_active, k.created_at,
       k.last_used_at, k.last_synced_at, k.last_sync_status, k.last_error, k.key_version,
       k.master_key_version, k.rotated_at, k.collected_through
  FROM llm_usage._provider_keys() k;
COMMENT ON VIEW llm_usage.provider_keys IS
'Stored provider keys of the tenants the caller may see: preview (last 4 characters), state and last sync; never ciphertext or plaintext.';
