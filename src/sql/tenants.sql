/*
 * src/sql/tenants.sql — tenants and plans
 *
 * Plans with their quota limits (the shipped ones read-only), tenants on a
 * plan in a time zone.
 */

CREATE OR REPLACE FUNCTION llm_usage._zone_known(name text)
RETURNS boolean
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_zone_known';
COMMENT ON FUNCTION llm_usage._zone_known(text) IS
'Internal: whether name is exactly a name of pg_timezone_names, from a set of the names read once per session (src/zone_names.c).';

CREATE OR REPLACE FUNCTION llm_usage._check_timezone(p_tz text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_tz IS NULL THEN
        RAISE EXCEPTION 'timezone must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT llm_usage._zone_known(p_tz) THEN
        RAISE EXCEPTION 'unknown time zone "%"', p_tz
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use a name from pg_timezone_names, such as UTC or Europe/Berlin.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_timezone(text) IS 'Internal: raise 22004/22023 unless the zone is in pg_timezone_names.';

/*
 * An admin may fix tenant rows directly (UPDATE llm_usage.tenants), so the
 * time zone is checked on the table too: a zone PostgreSQL does not know
 * would make every period computation of the tenant, and check_alerts() at
 * every maintenance run, fail.
 */
CREATE OR REPLACE FUNCTION llm_usage._tenants_check_timezone()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM llm_usage._check_timezone(NEW.timezone);
    RETURN NEW;
END
$$;
COMMENT ON FUNCTION llm_usage._tenants_check_timezone() IS
'Internal: BEFORE INSERT/UPDATE trigger of tenants: raise 22004/22023 unless the time zone is in pg_timezone_names.';

CREATE OR REPLACE TRIGGER tenants_check_timezone
    BEFORE INSERT OR UPDATE OF timezone ON llm_usage.tenants
    FOR EACH ROW EXECUTE FUNCTION llm_usage._tenants_check_timezone();

CREATE OR REPLACE FUNCTION llm_usage._check_plan(p_plan text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_plan IS NULL THEN
        RAISE EXCEPTION 'plan must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM llm_usage.plans WHERE plan = p_plan) THEN
        RAISE EXCEPTION 'plan "%" does not exist', p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Plans are: ' || (SELECT string_agg(plan, ', ' ORDER BY plan) FROM llm_usage.plans) || '.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_plan(text) IS 'Internal: raise 22004/42704 unless the plan exists.';

CREATE OR REPLACE FUNCTION llm_usage._shipped_rows_read_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF OLD.is_shipped THEN
        RAISE EXCEPTION 'shipped plan "%" is read-only', OLD.plan
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Make a plan of your own with llm_usage.create_plan(''my_plan'', copy_from => ''' || OLD.plan || ''') and move tenants to it.';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION llm_usage._shipped_rows_read_only() IS 'Internal: trigger keeping the shipped plans and their quotas unchanged (they are recreated, not dumped).';

CREATE OR REPLACE TRIGGER plans_shipped_read_only
    BEFORE UPDATE OR DELETE ON llm_usage.plans
    FOR EACH ROW EXECUTE FUNCTION llm_usage._shipped_rows_read_only();

CREATE OR REPLACE TRIGGER plan_quotas_shipped_read_only
    BEFORE UPDATE OR DELETE ON llm_usage.plan_quotas
    FOR EACH ROW EXECUTE FUNCTION llm_usage._shipped_rows_read_only();

CREATE OR REPLACE FUNCTION llm_usage.create_plan(plan text, description text DEFAULT NULL, copy_from text DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.create_plan(text, text, text) IS
'Creates a plan, optionally with a copy of another plan''s quotas.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._create_plan_impl(plan text, description text DEFAULT NULL, copy_from text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_plan text := $1;
    p_copy text := $3;
BEGIN
    PERFORM llm_usage._require_admin('create_plan');
    PERFORM llm_usage._require_arg(p_plan, 'plan');
    IF p_plan !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid plan name "%"', p_plan
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A plan name starts with a lower-case letter and has at most 63 lower-case letters, digits, _ or -.';
    END IF;
    IF EXISTS (SELECT 1 FROM llm_usage.plans WHERE plan = p_plan) THEN
        RAISE EXCEPTION 'plan "%" already exists', p_plan
            USING ERRCODE = 'duplicate_object';
    END IF;
    IF p_copy IS NOT NULL THEN
        PERFORM llm_usage._check_plan(p_copy);
    END IF;
    INSERT INTO llm_usage.plans (plan, description) VALUES (p_plan, $2);
    INSERT INTO llm_usage.plan_quotas (plan, quota_type, period, quota_limit)
    SELECT p_plan, q.quota_type, q.period, q.quota_limit
      FROM llm_usage.plan_quotas q
     WHERE q.plan = p_copy;
END
$$;
COMMENT ON FUNCTION llm_usage._create_plan_impl(text, text, text) IS
'Internal: the body of llm_usage.create_plan(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.set_plan_quota(plan text, quota_type text, quota_limit numeric, period text DEFAULT 'day')
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.set_plan_quota(text, text, numeric, text) IS
'Sets a plan''s limit for a quota type and period (NULL = unlimited but counted).  Shipped plans are read-only.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._set_plan_quota_impl(plan text, quota_type text, quota_limit numeric, period text DEFAULT 'day')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM llm_usage._require_admin('set_plan_quota');
    PERFORM llm_usage._check_plan($1);
    PERFORM llm_usage._check_quota_type($2);
    IF $3 IS NOT NULL THEN
        PERFORM llm_usage._check_amount($3, 'quota_limit', true);
    END IF;
    PERFORM llm_usage._check_period($4);
    INSERT INTO llm_usage.plan_quotas AS q (plan, quota_type, period, quota_limit)
    VALUES ($1, $2, $4, $3)
    ON CONFLICT (plan, quota_type, period) DO UPDATE SET quota_limit = EXCLUDED.quota_limit;
END
$$;
COMMENT ON FUNCTION llm_usage._set_plan_quota_impl(text, text, numeric, text) IS
'Internal: the body of llm_usage.set_plan_quota(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.create_tenant(tenant_id text, plan text DEFAULT 'trial', timezone text DEFAULT 'UTC')
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.create_tenant(text, text, text) IS
'Creates a tenant on a plan (default trial) with the time zone its quota periods and roll-ups are aligned in (default UTC).  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._create_tenant_impl(tenant_id text, plan text DEFAULT 'trial', timezone text DEFAULT 'UTC')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant text := $1;
BEGIN
    PERFORM llm_usage._require_admin('create_tenant');
    IF p_tenant IS NULL THEN
        RAISE EXCEPTION 'tenant_id must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_tenant !~ '^[[:graph:]]{1,128}$' THEN
        RAISE EXCEPTION 'invalid tenant_id "%"', p_tenant
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A tenant_id has 1 to 128 printable characters and no spaces.';
    END IF;
    PERFORM llm_usage._check_plan($2);
    -- the time zone: checked by the tenants trigger (_tenants_check_timezone)
    INSERT INTO llm_usage.tenants (tenant_id, plan, timezone)
    VALUES (p_tenant, $2, $3)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" already exists', p_tenant
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Change its plan or time zone with llm_usage.update_tenant().';
    END IF;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (p_tenant, 'admin', 'create_tenant', llm_usage._caller()::regrole::text,
            jsonb_build_object('plan', $2, 'timezone', $3));
END
$$;
COMMENT ON FUNCTION llm_usage._create_tenant_impl(text, text, text) IS
'Internal: the body of llm_usage.create_tenant(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.update_tenant(tenant_id text, plan text DEFAULT NULL, timezone text DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.update_tenant(text, text, text) IS
'Moves a tenant to another plan and/or time zone; the new limits apply to the next enforce_quota() call.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._update_tenant_impl(tenant_id text, plan text DEFAULT NULL, timezone text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('update_tenant');
    t := llm_usage._tenant($1);
    IF $2 IS NULL AND $3 IS NULL THEN
        RAISE EXCEPTION 'nothing to change'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass a plan, a timezone, or both.';
    END IF;
    IF $2 IS NOT NULL THEN
        PERFORM llm_usage._check_plan($2);
    END IF;
    -- a new time zone: checked by the tenants trigger (_tenants_check_timezone)
    UPDATE llm_usage.tenants
       SET plan = coalesce($2, plan), timezone = coalesce($3, timezone), updated_at = now()
     WHERE tenant_id = t.tenant_id;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'admin', 'update_tenant', llm_usage._caller()::regrole::text,
            jsonb_build_object('old_plan', t.plan, 'plan', coalesce($2, t.plan),
                               'old_timezone', t.timezone, 'timezone', coalesce($3, t.timezone)));
END
$$;
COMMENT ON FUNCTION llm_usage._update_tenant_impl(text, text, text) IS
'Internal: the body of llm_usage.update_tenant(), run as the owner by its entry point, which records the caller (src/caller.c).';
