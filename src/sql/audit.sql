/*
 * src/sql/audit.sql — the audit log
 *
 * audit_events is append-only (the trigger below refuses UPDATE, DELETE and
 * TRUNCATE for everyone, the owner included); reads by tenant and window.
 */

CREATE OR REPLACE FUNCTION llm_usage._audit_events_immutable()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit events cannot be changed or deleted'
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'llm_usage.audit_events is append-only.';
END
$$;
COMMENT ON FUNCTION llm_usage._audit_events_immutable() IS 'Internal: trigger keeping audit_events append-only.';

CREATE OR REPLACE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON llm_usage.audit_events
    FOR EACH ROW EXECUTE FUNCTION llm_usage._audit_events_immutable();

CREATE OR REPLACE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON llm_usage.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._audit_events_immutable();

CREATE OR REPLACE FUNCTION llm_usage.audit(tenant_id text, event_type text, action text, result text DEFAULT 'success',
                                           details jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.audit(text, text, text, text, jsonb) IS
'Appends an event to the tenant''s audit log (actor = session user, role_name = the calling role, origin = ''application'') and returns its id.  event_type is a lower-case name, action 1 to 200 characters without control characters, details a JSON object of at most 8 kB.  Events written here are shown as the application''s and never trusted by the extension (alerts are derived from its own records only).';

CREATE OR REPLACE FUNCTION llm_usage._audit_impl(tenant_id text, event_type text, action text, result text DEFAULT 'success',
                                                 details jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t    llm_usage.tenants := llm_usage._tenant($1);
    v_id bigint;
BEGIN
    PERFORM llm_usage._require_arg($2, 'event_type');
    IF $2 !~ '^[a-z][a-z0-9_.]{0,62}$' THEN
        RAISE EXCEPTION 'invalid audit event_type "%"', $2
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'An audit event type is a lower-case name such as security, quota, usage or admin.';
    END IF;
    PERFORM llm_usage._check_text($3, 'action', 200);
    IF $3 ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'audit action must not contain control characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM llm_usage._require_arg($4, 'result');
    IF $4 NOT IN ('success', 'failure', 'denied') THEN
        RAISE EXCEPTION 'unknown audit result "%"', $4
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'result is one of success, failure, denied.';
    END IF;
    PERFORM llm_usage._check_object($5, 'details');
    IF octet_length($5::text) > 8192 THEN
        RAISE EXCEPTION 'audit details are larger than 8 kB (% bytes as JSON text)', octet_length($5::text)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Keep audit details to what identifies the event; store bulk data elsewhere.';
    END IF;
    -- marked as written by an application: the extension never trusts it
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, result, role_name, details, origin)
    VALUES (t.tenant_id, $2, $3, $4, llm_usage._caller()::regrole::text, $5, 'application')
    RETURNING audit_id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION llm_usage._audit_impl(text, text, text, text, jsonb) IS
'Internal: the body of llm_usage.audit(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage._audit_window(p_tenant text, p_days integer, p_kind text)
RETURNS SETOF llm_usage.audit_events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t llm_usage.tenants := llm_usage._tenant(p_tenant);
BEGIN
    PERFORM llm_usage._check_days(p_days);
    RETURN QUERY
    SELECT a.* FROM llm_usage.audit_events a
     WHERE a.tenant_id = t.tenant_id AND a.created_at >= now() - make_interval(days => p_days)
       AND CASE p_kind
               WHEN 'failed' THEN a.result IN ('failure', 'denied')
               WHEN 'security' THEN a.event_type = 'security' OR a.event_type LIKE 'security.%'
               ELSE true
           END
     ORDER BY a.created_at DESC, a.audit_id DESC;
END
$$;
COMMENT ON FUNCTION llm_usage._audit_window(text, integer, text) IS
'Internal: a tenant''s audit events of the last p_days days, all, failed (failure or denied) or security ones, newest first.';

CREATE OR REPLACE FUNCTION llm_usage.audit_trail(tenant_id text, days integer DEFAULT 7)
RETURNS SETOF llm_usage.audit_events
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.audit_trail(text, integer) IS 'The tenant''s audit events of the last N days (default 7), newest first.';

CREATE OR REPLACE FUNCTION llm_usage._audit_trail_impl(tenant_id text, days integer DEFAULT 7)
RETURNS SETOF llm_usage.audit_events
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM llm_usage._audit_window($1, $2, 'all') $$;
COMMENT ON FUNCTION llm_usage._audit_trail_impl(text, integer) IS
'Internal: the body of llm_usage.audit_trail(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.failed_operations(tenant_id text, days integer DEFAULT 30)
RETURNS SETOF llm_usage.audit_events
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.failed_operations(text, integer) IS 'The tenant''s failed or denied audit events of the last N days (default 30), newest first.';

CREATE OR REPLACE FUNCTION llm_usage._failed_operations_impl(tenant_id text, days integer DEFAULT 30)
RETURNS SETOF llm_usage.audit_events
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM llm_usage._audit_window($1, $2, 'failed') $$;
COMMENT ON FUNCTION llm_usage._failed_operations_impl(text, integer) IS
'Internal: the body of llm_usage.failed_operations(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.security_events(tenant_id text, days integer DEFAULT 90)
RETURNS SETOF llm_usage.audit_events
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.security_events(text, integer) IS
'The tenant''s security audit events (event_type security or security.*: access grants, key changes) of the last N days (default 90), newest first.';

CREATE OR REPLACE FUNCTION llm_usage._security_events_impl(tenant_id text, days integer DEFAULT 90)
RETURNS SETOF llm_usage.audit_events
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM llm_usage._audit_window($1, $2, 'security') $$;
COMMENT ON FUNCTION llm_usage._security_events_impl(text, integer) IS
'Internal: the body of llm_usage.security_events(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.audit_report(tenant_id text, from_ts timestamptz, to_ts timestamptz)
RETURNS jsonb
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.audit_report(text, timestamptz, timestamptz) IS
'Summary of a tenant''s audit log in [from_ts, to_ts): counts by event type, result, actor, action and origin (llm_usage, application), and the 20 latest failures or denials.';

CREATE OR REPLACE FUNCTION llm_usage._audit_report_impl(tenant_id text, from_ts timestamptz, to_ts timestamptz)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants := llm_usage._tenant($1);
BEGIN
    PERFORM llm_usage._check_range($2, $3);
    RETURN (
        WITH a AS (
            SELECT * FROM llm_usage.audit_events a
             WHERE a.tenant_id = t.tenant_id AND a.created_at >= $2 AND a.created_at < $3)
        SELECT jsonb_build_object(
                   'tenant_id', t.tenant_id,
                   'from', $2,
                   'to', $3,
                   'total', (SELECT count(*) FROM a),
                   'by_event_type', (SELECT coalesce(jsonb_object_agg(x.event_type, x.n), '{}')
                                       FROM (SELECT event_type, count(*) AS n FROM a GROUP BY 1) x),
                   'by_result', (SELECT coalesce(jsonb_object_agg(x.result, x.n), '{}')
                                   FROM (SELECT result, count(*) AS n FROM a GROUP BY 1) x),
                   'by_actor', (SELECT coalesce(jsonb_object_agg(x.actor, x.n), '{}')
                                  FROM (SELECT actor, count(*) AS n FROM a GROUP BY 1) x),
                   'by_action', (SELECT coalesce(jsonb_object_agg(x.action, x.n), '{}')
                                   FROM (SELECT action, count(*) AS n FROM a GROUP BY 1) x),
                   'by_origin', (SELECT coalesce(jsonb_object_agg(x.origin, x.n), '{}')
                                   FROM (SELECT origin, count(*) AS n FROM a GROUP BY 1) x),
                   'failures', (SELECT coalesce(jsonb_agg(to_jsonb(f) - 'tenant_id' ORDER BY f.created_at DESC, f.audit_id DESC), '[]')
                                  FROM (SELECT * FROM a WHERE a.result IN ('failure', 'denied')
                                         ORDER BY a.created_at DESC, a.audit_id DESC LIMIT 20) f))
    );
END
$$;
COMMENT ON FUNCTION llm_usage._audit_report_impl(text, timestamptz, timestamptz) IS
'Internal: the body of llm_usage.audit_report(), run as the owner by its entry point, which records the caller (src/caller.c).';
