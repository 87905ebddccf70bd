/*
 * src/sql/pre_install/schema.sql — the schema is safe to install into (install only; the first step)
 *
 * The extension's functions run as a superuser and resolve names in schema
 * llm_usage (their own, qualified, but an exact-match overload such as
 * llm_usage._require_arg(text, text) beats the extension's polymorphic
 * one).  CREATE EXTENSION uses the schema if it already exists: one made
 * beforehand by, say, the owner of the database could hold such functions,
 * or let that owner add them later.  So the install refuses (42501) unless
 * the schema is owned by a superuser, no other role may create objects in
 * it, and it holds nothing that is not the extension's.  The update delta
 * (src/sql/updates/1.2--1.3.sql) runs the same check first; keep the two
 * copies the same.  Everything here is qualified: the search_path of an
 * extension script starts with that very schema.
 */

DO $schema_check$
DECLARE
    v_owner   pg_catalog.name;
    v_super   pg_catalog.bool;
    v_ext     pg_catalog.oid;
    v_foreign pg_catalog.text;
    v_create  pg_catalog.text;
BEGIN
    SELECT r.rolname, r.rolsuper INTO v_owner, v_super
      FROM pg_catalog.pg_namespace n
      JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) n.nspowner
     WHERE n.nspname OPERATOR(pg_catalog.=) 'llm_usage';
    SELECT e.oid INTO v_ext FROM pg_catalog.pg_extension e WHERE e.extname OPERATOR(pg_catalog.=) 'llm_usage';
    -- every object in the schema that is not the extension's: members,
    -- the run-time partitions of usage_events and what PostgreSQL makes
    -- for a relation or type by itself (indexes, row and array types,
    -- identity sequences) are the extension's
    WITH nsp AS (
        SELECT n.oid FROM pg_catalog.pg_namespace n WHERE n.nspname OPERATOR(pg_catalog.=) 'llm_usage'),
    objects(classid, objid, what) AS (
        SELECT 'pg_catalog.pg_proc'::pg_catalog.regclass, p.oid, 'function ' OPERATOR(pg_catalog.||) p.oid::pg_catalog.regprocedure::pg_catalog.text
          FROM pg_catalog.pg_proc p, nsp WHERE p.pronamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, c.oid, 'relation ' OPERATOR(pg_catalog.||) c.relname::pg_catalog.text
          FROM pg_catalog.pg_class c, nsp
         WHERE c.relnamespace OPERATOR(pg_catalog.=) nsp.oid AND c.relkind OPERATOR(pg_catalog.<>) ALL (ARRAY['i', 'I']::pg_catalog."char"[])
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i
                            WHERE i.inhrelid OPERATOR(pg_catalog.=) c.oid
                              AND i.inhparent OPERATOR(pg_catalog.=) pg_catalog.to_regclass('llm_usage.usage_events'))
        UNION ALL
        SELECT 'pg_catalog.pg_type'::pg_catalog.regclass, t.oid, 'type ' OPERATOR(pg_catalog.||) t.typname::pg_catalog.text
          FROM pg_catalog.pg_type t, nsp WHERE t.typnamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_operator'::pg_catalog.regclass, o.oid, 'operator ' OPERATOR(pg_catalog.||) o.oid::pg_catalog.regoperator::pg_catalog.text
          FROM pg_catalog.pg_operator o, nsp WHERE o.oprnamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_collation'::pg_catalog.regclass, o.oid, 'collation ' OPERATOR(pg_catalog.||) o.collname::pg_catalog.text
          FROM pg_catalog.pg_collation o, nsp WHERE o.collnamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_conversion'::pg_catalog.regclass, o.oid, 'conversion ' OPERATOR(pg_catalog.||) o.conname::pg_catalog.text
          FROM pg_catalog.pg_conversion o, nsp WHERE o.connamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_opclass'::pg_catalog.regclass, o.oid, 'operator class ' OPERATOR(pg_catalog.||) o.opcname::pg_catalog.text
          FROM pg_catalog.pg_opclass o, nsp WHERE o.opcnamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_opfamily'::pg_catalog.regclass, o.oid, 'operator family ' OPERATOR(pg_catalog.||) o.opfname::pg_catalog.text
          FROM pg_catalog.pg_opfamily o, nsp WHERE o.opfnamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_ts_config'::pg_catalog.regclass, o.oid, 'text search configuration ' OPERATOR(pg_catalog.||) o.cfgname::pg_catalog.text
          FROM pg_catalog.pg_ts_config o, nsp WHERE o.cfgnamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_ts_dict'::pg_catalog.regclass, o.oid, 'text search dictionary ' OPERATOR(pg_catalog.||) o.dictname::pg_catalog.text
          FROM pg_catalog.pg_ts_dict o, nsp WHERE o.dictnamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_ts_parser'::pg_catalog.regclass, o.oid, 'text search parser ' OPERATOR(pg_catalog.||) o.prsname::pg_catalog.text
          FROM pg_catalog.pg_ts_parser o, nsp WHERE o.prsnamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_ts_template'::pg_catalog.regclass, o.oid, 'text search template ' OPERATOR(pg_catalog.||) o.tmplname::pg_catalog.text
          FROM pg_catalog.pg_ts_template o, nsp WHERE o.tmplnamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_statistic_ext'::pg_catalog.regclass, o.oid, 'statistics object ' OPERATOR(pg_catalog.||) o.stxname::pg_catalog.text
          FROM pg_catalog.pg_statistic_ext o, nsp WHERE o.stxnamespace OPERATOR(pg_catalog.=) nsp.oid
        UNION ALL
        SELECT 'pg_catalog.pg_extension'::pg_catalog.regclass, o.oid, 'extension ' OPERATOR(pg_catalog.||) o.extname::pg_catalog.text
          FROM pg_catalog.pg_extension o, nsp
         WHERE o.extnamespace OPERATOR(pg_catalog.=) nsp.oid AND o.oid OPERATOR(pg_catalog.<>) v_ext)
    SELECT pg_catalog.string_agg(x.what, ', ' ORDER BY x.what) INTO v_foreign
      FROM (SELECT o.what FROM objects o
             WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                                WHERE d.classid OPERATOR(pg_catalog.=) o.classid AND d.objid OPERATOR(pg_catalog.=) o.objid
                                  AND (d.deptype OPERATOR(pg_catalog.=) 'i'
                                       OR (d.deptype OPERATOR(pg_catalog.=) 'e' AND d.refobjid OPERATOR(pg_catalog.=) v_ext)
                                       OR (d.deptype OPERATOR(pg_catalog.=) 'a'
                                           AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass)))
             ORDER BY o.what LIMIT 20) x;
    SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_namespace n, pg_catalog.aclexplode(n.nspacl) a
                              WHERE n.nspname OPERATOR(pg_catalog.=) 'llm_usage' AND a.grantee OPERATOR(pg_catalog.=) 0
                                AND a.privilege_type OPERATOR(pg_catalog.=) 'CREATE')
                THEN 'PUBLIC'
                ELSE pg_catalog.string_agg(x.rolname::pg_catalog.text, ', ' ORDER BY x.rolname) END INTO v_create
      FROM (SELECT r.rolname FROM pg_catalog.pg_roles r, pg_catalog.pg_namespace n
             WHERE n.nspname OPERATOR(pg_catalog.=) 'llm_usage' AND NOT r.rolsuper
               AND pg_catalog.has_schema_privilege(r.oid, n.oid, 'CREATE')
             ORDER BY r.rolname LIMIT 10) x;
    IF NOT v_super OR v_foreign IS NOT NULL OR v_create IS NOT NULL THEN
        RAISE EXCEPTION 'schema llm_usage is not safe for the extension'
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = pg_catalog.concat_ws(' ',
                      CASE WHEN NOT v_super THEN pg_catalog.format('Its owner, %s, is not a superuser.', v_owner) END,
                      CASE WHEN v_foreign IS NOT NULL THEN pg_catalog.format('It holds objects that are not the extension''s: %s.', v_foreign) END,
                      CASE WHEN v_create IS NOT NULL THEN pg_catalog.format('Roles that are not superusers may create objects in it: %s.', v_create) END),
                  HINT = 'The extension''s functions run as a superuser and resolve names in this schema: whoever may create objects there could make them run code of theirs.  As a superuser: ALTER SCHEMA llm_usage OWNER TO a superuser, REVOKE CREATE ON SCHEMA llm_usage from every other role, move or drop the objects named, then try again (or let CREATE EXTENSION create the schema).';
    END IF;
END
$schema_check$;
