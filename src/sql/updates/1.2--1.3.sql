/*
 * src/sql/updates/1.2--1.3.sql — what the update from 1.2 to 1.3 cannot re-run
 *
 * The generated llm_usage--1.2--1.3.sql is this delta followed by every
 * area file of src/sql/ (functions, views, triggers, comments, grants), so a
 * function's only definition is its current one.  Here go ALTER TABLE, data
 * migration, and DROP of functions that are removed or change signature.
 */

-- 1.1 replaced usage_events (and its identity sequence) by a partitioned
-- table; the old relations' entries stayed in extconfig as bare OIDs, which
-- pg_dump could one day resolve to an unrelated table.  Keep only entries
-- that still name a relation.
UPDATE pg_catalog.pg_extension e
   SET extconfig = x.config, extcondition = x.cond
  FROM (SELECT pg_catalog.array_agg(c.oid ORDER BY c.ord) AS config,
               pg_catalog.array_agg(c.cond ORDER BY c.ord) AS cond
          FROM pg_catalog.pg_extension e2,
               LATERAL ROWS FROM (pg_catalog.unnest(e2.extconfig), pg_catalog.unnest(e2.extcondition)) WITH ORDINALITY AS c(oid, cond, ord)
         WHERE e2.extname OPERATOR(pg_catalog.=) 'llm_usage'
           AND EXISTS (SELECT 1 FROM pg_catalog.pg_class r WHERE r.oid OPERATOR(pg_catalog.=) c.oid)) x
 WHERE e.extname OPERATOR(pg_catalog.=) 'llm_usage';

-- Audit events record who wrote them: the extension itself, or an
-- application through audit().  Events of 1.2 and before cannot be told
-- apart, so they are 'unknown'; alerts are derived from the extension's own
-- records only.  (Added with its 1.2 value as the default, then the default
-- of new rows; ADD COLUMN does not fire the append-only triggers.)
ALTER TABLE llm_usage.audit_events
    ADD COLUMN origin text NOT NULL DEFAULT 'unknown'
        CONSTRAINT audit_events_origin_check CHECK (origin IN ('llm_usage', 'application', 'unknown'));
ALTER TABLE llm_usage.audit_events ALTER COLUMN origin SET DEFAULT 'llm_usage';
COMMENT ON COLUMN llm_usage.audit_events.origin IS
'Who wrote the event: llm_usage (the extension itself; the only events alerts are derived from), application (through llm_usage.audit(), as the role in role_name), unknown (written before 1.3, when this was not recorded).';
COMMENT ON COLUMN llm_usage.audit_events.role_name IS 'The role the action was checked for: the current user when the llm_usage API was entered (llm_usage._caller()).';

-- Quota denials are audited aggregated (one event per tenant and minute);
-- the table path collects its pending windows here.
CREATE TABLE llm_usage.quota_denials_pending (
    tenant_id text PRIMARY KEY REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    first_at  timestamptz NOT NULL,
    last_at   timestamptz NOT NULL,
    calls     bigint NOT NULL,
    roles     text[] NOT NULL,
    denied    jsonb NOT NULL
);
COMMENT ON TABLE llm_usage.quota_denials_pending IS
'Internal: denied calls of the table path not yet written to the audit log, one window per tenant (the shared-memory path keeps its windows in shared memory); written as one quota_exceeded event by _write_quota_denials().';

-- The session caches read a tenant alone and the plans apart: the
-- directory query takes a tenant and a row limit and returns overrides.
DROP FUNCTION IF EXISTS llm_usage._quota_configs();
DROP FUNCTION IF EXISTS llm_usage._quota_configs_impl();
