/*
 * src/sql/access.sql — roles and identity: who the caller is and which tenants it may use
 *
 * Every tenant check is made for llm_usage._caller() against
 * llm_usage.tenant_access; row-level security (privileges.sql) uses the
 * same helpers.  grant_tenant_access()/revoke_tenant_access() bind login
 * roles to tenants.
 */

CREATE OR REPLACE FUNCTION llm_usage._caller()
RETURNS oid
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'llm_usage_caller';
COMMENT ON FUNCTION llm_usage._caller() IS
'Internal: the calling role: the current user when the llm_usage API was entered (not the owner its SECURITY DEFINER bodies run as, nor the outer user of a SECURITY DEFINER function or maintenance command that called it); the role every tenant check is made for.';

CREATE OR REPLACE FUNCTION llm_usage._is_admin()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.pg_has_role(llm_usage._caller(), 'llm_usage_admin', 'USAGE')
$$;
COMMENT ON FUNCTION llm_usage._is_admin() IS
'Internal: whether the calling role is a superuser or has the privileges of llm_usage_admin.';

CREATE OR REPLACE FUNCTION llm_usage._my_tenants()
RETURNS text[]
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage._my_tenants() IS
'Internal: the tenants the calling role was granted with grant_tenant_access() (directly or through a role it has the privileges of).';

CREATE OR REPLACE FUNCTION llm_usage._my_tenants_impl()
RETURNS text[]
LANGUAGE sql STABLE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(a.tenant_id), '{}')
      FROM llm_usage.tenant_access a
      JOIN pg_catalog.pg_roles r ON r.oid = a.role_name
     WHERE pg_catalog.pg_has_role(llm_usage._caller(), r.oid, 'USAGE')
$$;
COMMENT ON FUNCTION llm_usage._my_tenants_impl() IS
'Internal: the body of llm_usage._my_tenants(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage._can_access(p_tenant text)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
    -- byte for byte (COLLATE "C"): a caller's nondeterministic collation
    -- must not make 'Gamma' match a grant of 'gamma'
    SELECT llm_usage._is_admin() OR p_tenant COLLATE pg_catalog."C" = ANY (llm_usage._my_tenants())
$$;
COMMENT ON FUNCTION llm_usage._can_access(text) IS 'Internal: whether the calling role may act on the tenant (tenant ids compared byte for byte, whatever the collation of the argument).';

CREATE OR REPLACE FUNCTION llm_usage._require_admin(p_what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT llm_usage._is_admin() THEN
        RAISE EXCEPTION 'permission denied for %', p_what
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role %s is not a member of llm_usage_admin.', llm_usage._caller()::regrole),
                  HINT = 'Only llm_usage_admin (or a superuser) may do this.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._require_admin(text) IS 'Internal: raise 42501 unless the calling role is an llm_usage admin.';

/*
 * _tenant(tenant_id): the tenant row, after checking that the argument is
 * given, that the caller may act on it and that it exists.  A caller who is
 * not an admin is told "permission denied" for a tenant it has no access to
 * whether or not that tenant exists, so tenant ids do not leak.
 */
CREATE OR REPLACE FUNCTION llm_usage._tenant(p_tenant text)
RETURNS llm_usage.tenants
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t llm_usage.tenants;
BEGIN
    IF p_tenant IS NULL THEN
        RAISE EXCEPTION 'tenant_id must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_tenant = '' THEN
        RAISE EXCEPTION 'tenant_id must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT llm_usage._can_access(p_tenant) THEN
        RAISE EXCEPTION 'permission denied for tenant "%"', p_tenant
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'An llm_usage admin can grant access with llm_usage.grant_tenant_access().';
    END IF;
    -- the primary key's (deterministic) collation, whatever the argument
    -- carries, and then byte for byte: a caller's collation never makes
    -- one tenant id match another
    SELECT * INTO t FROM llm_usage.tenants WHERE tenant_id = p_tenant COLLATE pg_catalog."default";
    IF NOT FOUND OR t.tenant_id COLLATE pg_catalog."C" <> p_tenant COLLATE pg_catalog."C" THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with llm_usage.create_tenant().';
    END IF;
    RETURN t;
END
$$;
COMMENT ON FUNCTION llm_usage._tenant(text) IS
'Internal: the tenant row after the NULL/empty, access and existence checks every tenant function makes.';

CREATE OR REPLACE FUNCTION llm_usage.grant_tenant_access(role_name regrole, tenant_id text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.grant_tenant_access(regrole, text) IS
'Lets a role (and every role that has its privileges) act on a tenant through the llm_usage functions and see its rows.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._grant_tenant_access_impl(role_name regrole, tenant_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('grant_tenant_access');
    PERFORM llm_usage._require_arg($1, 'role_name');
    t := llm_usage._tenant($2);
    INSERT INTO llm_usage.tenant_access (tenant_id, role_name)
    VALUES (t.tenant_id, $1)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
        VALUES (t.tenant_id, 'security', 'grant_tenant_access', llm_usage._caller()::regrole::text,
                jsonb_build_object('grantee', $1::text));
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._grant_tenant_access_impl(regrole, text) IS
'Internal: the body of llm_usage.grant_tenant_access(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.revoke_tenant_access(role_name regrole, tenant_id text)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.revoke_tenant_access(regrole, text) IS
'Takes back a role''s access to a tenant (a NOTICE if it had none).  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._revoke_tenant_access_impl(role_name regrole, tenant_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('revoke_tenant_access');
    PERFORM llm_usage._require_arg($1, 'role_name');
    t := llm_usage._tenant($2);
    DELETE FROM llm_usage.tenant_access a WHERE a.tenant_id = t.tenant_id AND a.role_name = $1;
    IF FOUND THEN
        INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
        VALUES (t.tenant_id, 'security', 'revoke_tenant_access', llm_usage._caller()::regrole::text,
                jsonb_build_object('grantee', $1::text));
    ELSE
        RAISE NOTICE 'role % had no access to tenant "%"', $1, t.tenant_id;
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._revoke_tenant_access_impl(regrole, text) IS
'Internal: the body of llm_usage.revoke_tenant_access(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * _prune_tenant_access(): tenant_access rows whose role was dropped.
 * role_name is a regrole, which records no dependency, so DROP ROLE leaves
 * the row behind; _my_tenants() ignores it (it joins pg_roles), but a role
 * created later could be given the same OID.  Maintenance removes such rows
 * and records each removal in the audit log.
 */
CREATE OR REPLACE FUNCTION llm_usage._prune_tenant_access()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    WITH gone AS (
        DELETE FROM llm_usage.tenant_access a
         WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles r WHERE r.oid = a.role_name)
        RETURNING a.tenant_id, a.role_name::oid AS role_oid, a.granted_by)
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    SELECT g.tenant_id, 'security', 'revoke_tenant_access', 'llm_usage maintenance',
           jsonb_build_object('grantee_oid', g.role_oid, 'reason', 'role dropped', 'granted_by', g.granted_by)
      FROM gone g;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._prune_tenant_access() IS
'Internal (worker maintenance): delete the tenant grants of roles that were dropped (an audited revoke_tenant_access with reason "role dropped").';
