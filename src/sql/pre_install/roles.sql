/*
 * src/sql/pre_install/roles.sql — the extension's roles (install only)
 *
 * Roles are cluster-wide and outlive the extension: they are made once and
 * reused by every database that installs llm_usage.  What each may do is in
 * privileges.sql.
 */

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'llm_usage_reader') THEN
        CREATE ROLE llm_usage_reader NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'llm_usage_app') THEN
        CREATE ROLE llm_usage_app NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'llm_usage_admin') THEN
        CREATE ROLE llm_usage_admin NOLOGIN;
    END IF;
END
$roles$;

GRANT llm_usage_reader TO llm_usage_admin;
GRANT llm_usage_app TO llm_usage_admin;

GRANT USAGE ON SCHEMA llm_usage TO llm_usage_admin, llm_usage_app, llm_usage_reader;
