/*
 * src/sql/updates/1.2--1.3.sql — what the update from 1.2 to 1.3 cannot re-run
 *
 * The generated llm_usage--1.2--1.3.sql is this delta followed by every
 * area file of src/sql/ (functions, views, triggers, comments, grants), so a
 * function's only definition is its current one.  Here go ALTER TABLE, data
 * migration, and DROP of functions that are removed or change signature.
 */

-- First: the schema is safe to update in (the check of
-- src/sql/pre_install/schema.sql, the same copy): owned by a superuser, no
-- other role may create objects in it, nothing in it but the extension's
-- objects and the run-time partitions of usage_events.  Until 1.3 the
-- extension installed into whatever schema llm_usage it found.
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

-- Alert deliveries are retried across worker cycles with backoff: when each
-- pending channel is due again.
ALTER TABLE llm_usage.alerts ADD COLUMN webhook_next_at timestamptz, ADD COLUMN email_next_at timestamptz;
COMMENT ON COLUMN llm_usage.alerts.webhook_next_at IS
'While the webhook delivery is pending after a failed attempt: when the worker tries again (NULL: at once).';
COMMENT ON COLUMN llm_usage.alerts.email_next_at IS
'While the e-mail delivery is pending after a failed attempt: when the worker tries again (NULL: at once).';

-- The collector now hands over checked, reduced pages: _ingest_page gave
-- way to _ingest_rows (a library of 1.3 waits for this update before it
-- collects).
DROP FUNCTION llm_usage._ingest_page(bigint, text, jsonb);

-- Every price dimension that changes a bill (README "Prices").  The two
-- long-context rates of 1.2 keep their values under names without "200k":
-- the threshold is now stored per version.  1.2 applied them above 200,000
-- input tokens, so versions that have them get that threshold (the one
-- change ever made to stored versions: it records what 1.2 did, so no
-- computed cost changes meaning; the append-only trigger is made after this
-- delta, by tracking.sql).
ALTER TABLE llm_usage.model_price_versions RENAME COLUMN input_above_200k_usd_per_mtok TO input_long_context_usd_per_mtok;
ALTER TABLE llm_usage.model_price_versions RENAME COLUMN output_above_200k_usd_per_mtok TO output_long_context_usd_per_mtok;
ALTER TABLE llm_usage.model_price_versions
    RENAME CONSTRAINT model_price_versions_input_above_200k_usd_per_mtok_check TO model_price_versions_input_long_context_usd_per_mtok_check;
ALTER TABLE llm_usage.model_price_versions
    RENAME CONSTRAINT model_price_versions_output_above_200k_usd_per_mtok_check TO model_price_versions_output_long_context_usd_per_mtok_check;
ALTER TABLE llm_usage.model_price_versions
    ADD COLUMN long_context_threshold bigint CHECK (long_context_threshold > 0),
    ADD COLUMN cached_input_long_context_usd_per_mtok numeric CHECK (cached_input_long_context_usd_per_mtok >= 0),
    ADD COLUMN cache_write_long_context_usd_per_mtok numeric CHECK (cache_write_long_context_usd_per_mtok >= 0),
    ADD COLUMN cache_write_1h_long_context_usd_per_mtok numeric CHECK (cache_write_1h_long_context_usd_per_mtok >= 0),
    ADD COLUMN batch_cached_input_usd_per_mtok numeric CHECK (batch_cached_input_usd_per_mtok >= 0),
    ADD COLUMN batch_cache_write_usd_per_mtok numeric CHECK (batch_cache_write_usd_per_mtok >= 0),
    ADD COLUMN flex_input_usd_per_mtok numeric CHECK (flex_input_usd_per_mtok >= 0),
    ADD COLUMN flex_output_usd_per_mtok numeric CHECK (flex_output_usd_per_mtok >= 0),
    ADD COLUMN flex_cached_input_usd_per_mtok numeric CHECK (flex_cached_input_usd_per_mtok >= 0),
    ADD COLUMN flex_cache_write_usd_per_mtok numeric CHECK (flex_cache_write_usd_per_mtok >= 0),
    ADD COLUMN priority_input_usd_per_mtok numeric CHECK (priority_input_usd_per_mtok >= 0),
    ADD COLUMN priority_output_usd_per_mtok numeric CHECK (priority_output_usd_per_mtok >= 0),
    ADD COLUMN priority_cached_input_usd_per_mtok numeric CHECK (priority_cached_input_usd_per_mtok >= 0),
    ADD COLUMN priority_cache_write_usd_per_mtok numeric CHECK (priority_cache_write_usd_per_mtok >= 0);
UPDATE llm_usage.model_price_versions
   SET long_context_threshold = 200000
 WHERE input_long_context_usd_per_mtok IS NOT NULL OR output_long_context_usd_per_mtok IS NOT NULL;
COMMENT ON COLUMN llm_usage.model_price_versions.cache_write_usd_per_mtok IS 'Rate for input tokens written to the prompt cache with the 5-minute TTL (the default); NULL means the input rate applies.';
COMMENT ON COLUMN llm_usage.model_price_versions.cache_write_1h_usd_per_mtok IS 'Rate for input tokens written to the prompt cache with the 1-hour TTL; NULL means the 5-minute write rate applies.';
COMMENT ON COLUMN llm_usage.model_price_versions.batch_input_usd_per_mtok IS 'Batch API input rate; NULL: derived (README "Prices"; 50 % of the standard rate when the model has no batch rate at all).';
COMMENT ON COLUMN llm_usage.model_price_versions.input_long_context_usd_per_mtok IS 'Input rate of a call whose input tokens exceed long_context_threshold (all its input tokens).';
COMMENT ON COLUMN llm_usage.model_price_versions.output_long_context_usd_per_mtok IS 'Output rate of a call whose input tokens exceed long_context_threshold.';
COMMENT ON COLUMN llm_usage.model_price_versions.long_context_threshold IS 'Input tokens (all input: uncached, cache reads and writes) above which a call is billed at the long-context rates; NULL: the model has no long-context tier.';
-- the view's columns were renamed: made again by tracking.sql
DROP VIEW llm_usage.model_prices;

-- A call's 1-hour cache writes and its service tier (appended; the C
-- track_usage writes them by name).
ALTER TABLE llm_usage.usage_events
    ADD COLUMN cache_write_1h_tokens bigint NOT NULL DEFAULT 0,
    ADD COLUMN service_tier text NOT NULL DEFAULT 'standard'
        CONSTRAINT usage_events_service_tier_check CHECK (service_tier IN ('standard', 'batch', 'flex', 'priority'));
COMMENT ON COLUMN llm_usage.usage_events.input_tokens IS 'All input tokens, including cached_input_tokens, cache_write_tokens and cache_write_1h_tokens.';
COMMENT ON COLUMN llm_usage.usage_events.cache_write_tokens IS 'Input tokens written to the prompt cache with the 5-minute TTL (billed at the cache-write rate).';
COMMENT ON COLUMN llm_usage.usage_events.cache_write_1h_tokens IS 'Input tokens written to the prompt cache with the 1-hour TTL (billed at the 1-hour cache-write rate).';
COMMENT ON COLUMN llm_usage.usage_events.service_tier IS 'The service tier the call was billed in: standard, batch (Batch API), flex or priority.';
ALTER TABLE llm_usage.provider_usage ADD COLUMN cache_write_1h_tokens bigint NOT NULL DEFAULT 0;
COMMENT ON COLUMN llm_usage.provider_usage.cache_write_tokens IS 'Input tokens written to the prompt cache, every TTL (Anthropic 5-minute and 1-hour writes together).';
COMMENT ON COLUMN llm_usage.provider_usage.cache_write_1h_tokens IS 'The part of cache_write_tokens written with the 1-hour TTL (Anthropic ephemeral_1h_input_tokens).';

-- new arguments (service tier, 1-hour cache writes, every price dimension)
DROP FUNCTION llm_usage._cost(llm_usage.model_price_versions, bigint, bigint, bigint, bigint);
DROP FUNCTION llm_usage._check_token_split(bigint, bigint, bigint);
DROP FUNCTION llm_usage.calculate_cost(text, bigint, bigint, bigint, timestamptz, bigint);
DROP FUNCTION llm_usage.set_model_price(text, text, numeric, numeric, numeric, numeric, timestamptz);
DROP FUNCTION llm_usage.track_usage(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint);
DROP FUNCTION llm_usage._track_usage_sql(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint);
-- The shipped prices of 1.3 carry every dimension of the price map (1.2
-- shipped input, output, cache and 200k rates only).  Where a model's
-- version in force is still the shipped one and the 1.3 seed differs from
-- it, a shipped version valid from the update is added: costs computed
-- before keep their price.  Models priced by the admin since are left
-- alone.  (Generated by tools/gen_price_seed.py --update.)
CREATE TEMPORARY TABLE llm_usage_seed_1_3 AS
SELECT provider, model, mode, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,
       cache_write_usd_per_mtok, cache_write_1h_usd_per_mtok, batch_input_usd_per_mtok,
       batch_output_usd_per_mtok, input_long_context_usd_per_mtok, output_long_context_usd_per_mtok,
       cached_input_long_context_usd_per_mtok, cache_write_long_context_usd_per_mtok,
       cache_write_1h_long_context_usd_per_mtok, batch_cached_input_usd_per_mtok,
       batch_cache_write_usd_per_mtok, flex_input_usd_per_mtok, flex_output_usd_per_mtok,
       flex_cached_input_usd_per_mtok, flex_cache_write_usd_per_mtok, priority_input_usd_per_mtok,
       priority_output_usd_per_mtok, priority_cached_input_usd_per_mtok,
       priority_cache_write_usd_per_mtok, long_context_threshold, deprecation_date
  FROM llm_usage.model_price_versions WITH NO DATA;
INSERT INTO llm_usage_seed_1_3
  (provider, model, mode, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,
   cache_write_usd_per_mtok, cache_write_1h_usd_per_mtok, batch_input_usd_per_mtok,
   batch_output_usd_per_mtok, input_long_context_usd_per_mtok, output_long_context_usd_per_mtok,
   cached_input_long_context_usd_per_mtok, cache_write_long_context_usd_per_mtok,
   cache_write_1h_long_context_usd_per_mtok, batch_cached_input_usd_per_mtok,
   batch_cache_write_usd_per_mtok, flex_input_usd_per_mtok, flex_output_usd_per_mtok,
   flex_cached_input_usd_per_mtok, flex_cache_write_usd_per_mtok, priority_input_usd_per_mtok,
   priority_output_usd_per_mtok, priority_cached_input_usd_per_mtok,
   priority_cache_write_usd_per_mtok, long_context_threshold, deprecation_date)
VALUES
  ('anthropic', 'claude-3-7-sonnet-20250219', 'chat', 3, 15, 0.3, 3.75, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-02-19'),
  ('anthropic', 'claude-3-haiku-20240307', 'chat', 0.25, 1.25, 0.03, 0.3, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-3-opus-20240229', 'chat', 15, 75, 1.5, 18.75, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-05-01'),
  ('anthropic', 'claude-4-opus-20250514', 'chat', 15, 75, 1.5, 18.75, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-4-sonnet-20250514', 'chat', 3, 15, 0.3, 3.75, NULL, NULL, NULL, 6, 22.5, 0.6, 7.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 200000, NULL),
  ('anthropic', 'claude-fable-5', 'chat', 10, 50, 1, 12.5, 20, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-haiku-4-5', 'chat', 1, 5, 0.1, 1.25, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-haiku-4-5-20251001', 'chat', 1, 5, 0.1, 1.25, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-opus-4-1', 'chat', 15, 75, 1.5, 18.75, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-opus-4-1-20250805', 'chat', 15, 75, 1.5, 18.75, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-08-05'),
  ('anthropic', 'claude-opus-4-20250514', 'chat', 15, 75, 1.5, 18.75, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-05-14'),
  ('anthropic', 'claude-opus-4-5', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-opus-4-5-20251101', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-opus-4-6', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-opus-4-6-20260205', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-opus-4-7', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-opus-4-7-20260416', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-opus-4-8', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-opus-5', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-sonnet-4-20250514', 'chat', 3, 15, 0.3, 3.75, 6, NULL, NULL, 6, 22.5, 0.6, 7.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 200000, '2026-05-14'),
  ('anthropic', 'claude-sonnet-4-5', 'chat', 3, 15, 0.3, 3.75, 6, NULL, NULL, 6, 22.5, 0.6, 7.5, 12, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 200000, NULL),
  ('anthropic', 'claude-sonnet-4-5-20250929', 'chat', 3, 15, 0.3, 3.75, 6, NULL, NULL, 6, 22.5, 0.6, 7.5, 12, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 200000, NULL),
  ('anthropic', 'claude-sonnet-4-6', 'chat', 3, 15, 0.3, 3.75, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('anthropic', 'claude-sonnet-5', 'chat', 2, 10, 0.2, 2.5, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'babbage-002', 'completion', 0.4, 0.4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'chatgpt-4o-latest', 'chat', 5, 15, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'codex-mini-latest', 'responses', 1.5, 6, 0.375, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'davinci-002', 'completion', 2, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:babbage-002', 'completion', 1.6, 1.6, NULL, NULL, NULL, 0.2, 0.2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:davinci-002', 'completion', 12, 12, NULL, NULL, NULL, 1, 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-3.5-turbo', 'chat', 3, 6, NULL, NULL, NULL, 1.5, 3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-3.5-turbo-0125', 'chat', 3, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-3.5-turbo-0613', 'chat', 3, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-3.5-turbo-1106', 'chat', 3, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-4-0613', 'chat', 30, 60, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-4.1-2025-04-14', 'chat', 3, 12, 0.75, NULL, NULL, 1.5, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-4.1-mini-2025-04-14', 'chat', 0.8, 3.2, 0.2, NULL, NULL, 0.4, 1.6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-4.1-nano-2025-04-14', 'chat', 0.2, 0.8, 0.05, NULL, NULL, 0.1, 0.4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-4o-2024-08-06', 'chat', 3.75, 15, 1.875, NULL, NULL, 1.875, 7.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-4o-2024-11-20', 'chat', 3.75, 15, NULL, 1.875, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:gpt-4o-mini-2024-07-18', 'chat', 0.3, 1.2, 0.15, NULL, NULL, 0.15, 0.6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'ft:o4-mini-2025-04-16', 'chat', 4, 16, 1, NULL, NULL, 2, 8, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-3.5-turbo', 'chat', 0.5, 1.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-3.5-turbo-0125', 'chat', 0.5, 1.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-3.5-turbo-1106', 'chat', 1, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-09-28'),
  ('openai', 'gpt-3.5-turbo-16k', 'chat', 3, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-3.5-turbo-instruct', 'completion', 1.5, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-3.5-turbo-instruct-0914', 'completion', 1.5, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4', 'chat', 30, 60, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4-0125-preview', 'chat', 10, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-26'),
  ('openai', 'gpt-4-0314', 'chat', 30, 60, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-26'),
  ('openai', 'gpt-4-0613', 'chat', 30, 60, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2025-06-06'),
  ('openai', 'gpt-4-1106-preview', 'chat', 10, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-26'),
  ('openai', 'gpt-4-turbo', 'chat', 10, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4-turbo-2024-04-09', 'chat', 10, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4-turbo-preview', 'chat', 10, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4.1', 'chat', 2, 8, 0.5, NULL, NULL, 1, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3.5, 14, 0.875, NULL, NULL, NULL),
  ('openai', 'gpt-4.1-2025-04-14', 'chat', 2, 8, 0.5, NULL, NULL, 1, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4.1-mini', 'chat', 0.4, 1.6, 0.1, NULL, NULL, 0.2, 0.8, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.7, 2.8, 0.175, NULL, NULL, NULL),
  ('openai', 'gpt-4.1-mini-2025-04-14', 'chat', 0.4, 1.6, 0.1, NULL, NULL, 0.2, 0.8, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4.1-nano', 'chat', 0.1, 0.4, 0.025, NULL, NULL, 0.05, 0.2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.2, 0.8, 0.05, NULL, NULL, NULL),
  ('openai', 'gpt-4.1-nano-2025-04-14', 'chat', 0.1, 0.4, 0.025, NULL, NULL, 0.05, 0.2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o', 'chat', 2.5, 10, 1.25, NULL, NULL, 1.25, 5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 4.25, 17, 2.125, NULL, NULL, NULL),
  ('openai', 'gpt-4o-2024-05-13', 'chat', 5, 15, NULL, NULL, NULL, 2.5, 7.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 8.75, 26.25, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-2024-08-06', 'chat', 2.5, 10, 1.25, NULL, NULL, 1.25, 5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-2024-11-20', 'chat', 2.5, 10, 1.25, NULL, NULL, 1.25, 5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-audio-preview', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-audio-preview-2024-12-17', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-audio-preview-2025-06-03', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-mini', 'chat', 0.15, 0.6, 0.075, NULL, NULL, 0.075, 0.3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.25, 1, 0.125, NULL, NULL, NULL),
  ('openai', 'gpt-4o-mini-2024-07-18', 'chat', 0.15, 0.6, 0.075, NULL, NULL, 0.075, 0.3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-mini-audio-preview', 'chat', 0.15, 0.6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-mini-audio-preview-2024-12-17', 'chat', 0.15, 0.6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-mini-search-preview', 'chat', 0.15, 0.6, 0.075, NULL, NULL, 0.075, 0.3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-mini-search-preview-2025-03-11', 'chat', 0.15, 0.6, 0.075, NULL, NULL, 0.075, 0.3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-search-preview', 'chat', 2.5, 10, 1.25, NULL, NULL, 1.25, 5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-4o-search-preview-2025-03-11', 'chat', 2.5, 10, 1.25, NULL, NULL, 1.25, 5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.625, 5, 0.0625, NULL, 2.5, 20, 0.25, NULL, NULL, NULL),
  ('openai', 'gpt-5-2025-08-07', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.625, 5, 0.0625, NULL, 2.5, 20, 0.25, NULL, NULL, NULL),
  ('openai', 'gpt-5-chat', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5-chat-latest', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5-codex', 'responses', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5-mini', 'chat', 0.25, 2, 0.025, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.125, 1, 0.0125, NULL, 0.45, 3.6, 0.045, NULL, NULL, NULL),
  ('openai', 'gpt-5-mini-2025-08-07', 'chat', 0.25, 2, 0.025, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.125, 1, 0.0125, NULL, 0.45, 3.6, 0.045, NULL, NULL, NULL),
  ('openai', 'gpt-5-nano', 'chat', 0.05, 0.4, 0.005, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.025, 0.2, 0.0025, NULL, 2.5, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5-nano-2025-08-07', 'chat', 0.05, 0.4, 0.005, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.025, 0.2, 0.0025, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5-pro', 'responses', 15, 120, NULL, NULL, NULL, 7.5, 60, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5-pro-2025-10-06', 'responses', 15, 120, NULL, NULL, NULL, 7.5, 60, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5-search-api', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5-search-api-2025-10-14', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5.1', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 2.5, 20, 0.25, NULL, NULL, NULL),
  ('openai', 'gpt-5.1-2025-11-13', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 2.5, 20, 0.25, NULL, NULL, NULL),
  ('openai', 'gpt-5.1-chat-latest', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 2.5, 20, 0.25, NULL, NULL, NULL),
  ('openai', 'gpt-5.1-codex', 'responses', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 2.5, 20, 0.25, NULL, NULL, NULL),
  ('openai', 'gpt-5.1-codex-max', 'responses', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5.1-codex-mini', 'responses', 0.25, 2, 0.025, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.45, 3.6, 0.045, NULL, NULL, NULL),
  ('openai', 'gpt-5.2', 'chat', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3.5, 28, 0.35, NULL, NULL, NULL),
  ('openai', 'gpt-5.2-2025-12-11', 'chat', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3.5, 28, 0.35, NULL, NULL, NULL),
  ('openai', 'gpt-5.2-chat-latest', 'chat', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3.5, 28, 0.35, NULL, NULL, NULL),
  ('openai', 'gpt-5.2-codex', 'responses', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3.5, 28, 0.35, NULL, NULL, NULL),
  ('openai', 'gpt-5.2-pro', 'responses', 21, 168, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5.2-pro-2025-12-11', 'responses', 21, 168, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5.3-chat-latest', 'chat', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3.5, 28, 0.35, NULL, NULL, NULL),
  ('openai', 'gpt-5.3-codex', 'responses', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 3.5, 28, 0.35, NULL, NULL, NULL),
  ('openai', 'gpt-5.4', 'chat', 2.5, 15, 0.25, NULL, NULL, 1.25, 7.5, 5, 22.5, 0.5, NULL, NULL, NULL, NULL, 1.25, 7.5, 0.13, NULL, 5, 30, 0.5, NULL, 272000, NULL),
  ('openai', 'gpt-5.4-2026-03-05', 'chat', 2.5, 15, 0.25, NULL, NULL, 1.25, 7.5, 5, 22.5, 0.5, NULL, NULL, NULL, NULL, 1.25, 7.5, 0.13, NULL, 5, 30, 0.5, NULL, 272000, NULL),
  ('openai', 'gpt-5.4-mini', 'chat', 0.75, 4.5, 0.075, NULL, NULL, 0.375, 2.25, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.375, 2.25, 0.0375, NULL, 1.5, 9, 0.15, NULL, NULL, NULL),
  ('openai', 'gpt-5.4-mini-2026-03-17', 'chat', 0.75, 4.5, 0.075, NULL, NULL, 0.375, 2.25, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.375, 2.25, 0.0375, NULL, 1.5, 9, 0.15, NULL, NULL, NULL),
  ('openai', 'gpt-5.4-nano', 'chat', 0.2, 1.25, 0.02, NULL, NULL, 0.1, 0.625, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.1, 0.625, 0.01, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5.4-nano-2026-03-17', 'chat', 0.2, 1.25, 0.02, NULL, NULL, 0.1, 0.625, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.1, 0.625, 0.01, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-5.4-pro', 'responses', 30, 180, 3, NULL, NULL, 15, 90, 60, 270, 6, NULL, NULL, NULL, NULL, 15, 90, NULL, NULL, NULL, NULL, NULL, NULL, 272000, NULL),
  ('openai', 'gpt-5.4-pro-2026-03-05', 'responses', 30, 180, 3, NULL, NULL, 15, 90, 60, 270, 6, NULL, NULL, NULL, NULL, 15, 90, NULL, NULL, NULL, NULL, NULL, NULL, 272000, NULL),
  ('openai', 'gpt-5.5', 'chat', 5, 30, 0.5, NULL, NULL, 2.5, 15, 10, 45, 1, NULL, NULL, NULL, NULL, 2.5, 15, 0.25, NULL, 10, 60, 1, NULL, 272000, NULL),
  ('openai', 'gpt-5.5-2026-04-23', 'chat', 5, 30, 0.5, NULL, NULL, 2.5, 15, 10, 45, 1, NULL, NULL, NULL, NULL, 2.5, 15, 0.25, NULL, 10, 60, 1, NULL, 272000, NULL),
  ('openai', 'gpt-5.5-pro', 'responses', 30, 180, 3, NULL, NULL, 15, 90, 60, 270, 6, NULL, NULL, NULL, NULL, 15, 90, NULL, NULL, NULL, NULL, NULL, NULL, 272000, NULL),
  ('openai', 'gpt-5.5-pro-2026-04-23', 'responses', 30, 180, 3, NULL, NULL, 15, 90, 60, 270, 6, NULL, NULL, NULL, NULL, 15, 90, NULL, NULL, NULL, NULL, NULL, NULL, 272000, NULL),
  ('openai', 'gpt-5.6', 'chat', 5, 30, 0.5, 6.25, NULL, 2.5, 15, 10, 45, 1, 12.5, NULL, NULL, NULL, 2.5, 15, 0.25, 3.125, 10, 60, 1, 12.5, 272000, NULL),
  ('openai', 'gpt-5.6-luna', 'chat', 1, 6, 0.1, 1.25, NULL, 0.5, 3, 2, 9, 0.2, 2.5, NULL, NULL, NULL, 0.5, 3, 0.05, 0.625, 2, 12, 0.2, 2.5, 272000, NULL),
  ('openai', 'gpt-5.6-sol', 'chat', 5, 30, 0.5, 6.25, NULL, 2.5, 15, 10, 45, 1, 12.5, NULL, NULL, NULL, 2.5, 15, 0.25, 3.125, 10, 60, 1, 12.5, 272000, NULL),
  ('openai', 'gpt-5.6-terra', 'chat', 2.5, 15, 0.25, 3.125, NULL, 1.25, 7.5, 5, 22.5, 0.5, 6.25, NULL, NULL, NULL, 1.25, 7.5, 0.125, 1.5625, 5, 30, 0.5, 6.25, 272000, NULL),
  ('openai', 'gpt-audio', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-audio-1.5', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-audio-2025-08-28', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-audio-mini', 'chat', 0.6, 2.4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-audio-mini-2025-10-06', 'chat', 0.6, 2.4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'gpt-audio-mini-2025-12-15', 'chat', 0.6, 2.4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o1', 'chat', 15, 60, 7.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o1-2024-12-17', 'chat', 15, 60, 7.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o1-pro', 'responses', 150, 600, NULL, NULL, NULL, 75, 300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o1-pro-2025-03-19', 'responses', 150, 600, NULL, NULL, NULL, 75, 300, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o3', 'chat', 2, 8, 0.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1, 4, 0.25, NULL, 3.5, 14, 0.875, NULL, NULL, NULL),
  ('openai', 'o3-2025-04-16', 'chat', 2, 8, 0.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o3-deep-research', 'responses', 10, 40, 2.5, NULL, NULL, 5, 20, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o3-deep-research-2025-06-26', 'responses', 10, 40, 2.5, NULL, NULL, 5, 20, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o3-mini', 'chat', 1.1, 4.4, 0.55, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o3-mini-2025-01-31', 'chat', 1.1, 4.4, 0.55, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o3-pro', 'responses', 20, 80, NULL, NULL, NULL, 10, 40, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o3-pro-2025-06-10', 'responses', 20, 80, NULL, NULL, NULL, 10, 40, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o4-mini', 'chat', 1.1, 4.4, 0.275, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0.55, 2.2, 0.1375, NULL, 2, 8, 0.5, NULL, NULL, NULL),
  ('openai', 'o4-mini-2025-04-16', 'chat', 1.1, 4.4, 0.275, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o4-mini-deep-research', 'responses', 2, 8, 0.5, NULL, NULL, 1, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'o4-mini-deep-research-2025-06-26', 'responses', 2, 8, 0.5, NULL, NULL, 1, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'text-embedding-3-large', 'embedding', 0.13, 0, NULL, NULL, NULL, 0.065, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'text-embedding-3-small', 'embedding', 0.02, 0, NULL, NULL, NULL, 0.01, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'text-embedding-ada-002', 'embedding', 0.1, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
  ('openai', 'text-embedding-ada-002-v2', 'embedding', 0.1, 0, NULL, NULL, NULL, 0.05, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO llm_usage.model_price_versions
  (provider, model, mode, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,
   cache_write_usd_per_mtok, cache_write_1h_usd_per_mtok, batch_input_usd_per_mtok,
   batch_output_usd_per_mtok, input_long_context_usd_per_mtok, output_long_context_usd_per_mtok,
   cached_input_long_context_usd_per_mtok, cache_write_long_context_usd_per_mtok,
   cache_write_1h_long_context_usd_per_mtok, batch_cached_input_usd_per_mtok,
   batch_cache_write_usd_per_mtok, flex_input_usd_per_mtok, flex_output_usd_per_mtok,
   flex_cached_input_usd_per_mtok, flex_cache_write_usd_per_mtok, priority_input_usd_per_mtok,
   priority_output_usd_per_mtok, priority_cached_input_usd_per_mtok,
   priority_cache_write_usd_per_mtok, long_context_threshold, deprecation_date, valid_from,
   is_shipped, source)
SELECT s.provider, s.model, s.mode, s.input_usd_per_mtok, s.output_usd_per_mtok,
       s.cached_input_usd_per_mtok, s.cache_write_usd_per_mtok, s.cache_write_1h_usd_per_mtok,
       s.batch_input_usd_per_mtok, s.batch_output_usd_per_mtok, s.input_long_context_usd_per_mtok,
       s.output_long_context_usd_per_mtok, s.cached_input_long_context_usd_per_mtok,
       s.cache_write_long_context_usd_per_mtok, s.cache_write_1h_long_context_usd_per_mtok,
       s.batch_cached_input_usd_per_mtok, s.batch_cache_write_usd_per_mtok,
       s.flex_input_usd_per_mtok, s.flex_output_usd_per_mtok, s.flex_cached_input_usd_per_mtok,
       s.flex_cache_write_usd_per_mtok, s.priority_input_usd_per_mtok,
       s.priority_output_usd_per_mtok, s.priority_cached_input_usd_per_mtok,
       s.priority_cache_write_usd_per_mtok, s.long_context_threshold, s.deprecation_date,
       pg_catalog.now(), true, 'litellm 2026-07-24'
  FROM llm_usage_seed_1_3 s
  JOIN LATERAL (SELECT v.* FROM llm_usage.model_price_versions v
                 WHERE v.model OPERATOR(pg_catalog.=) s.model
                 ORDER BY v.valid_from DESC LIMIT 1) cur ON cur.is_shipped
 WHERE (s.input_usd_per_mtok, s.output_usd_per_mtok, s.cached_input_usd_per_mtok,
        s.cache_write_usd_per_mtok, s.cache_write_1h_usd_per_mtok, s.batch_input_usd_per_mtok,
        s.batch_output_usd_per_mtok, s.input_long_context_usd_per_mtok,
        s.output_long_context_usd_per_mtok, s.cached_input_long_context_usd_per_mtok,
        s.cache_write_long_context_usd_per_mtok, s.cache_write_1h_long_context_usd_per_mtok,
        s.batch_cached_input_usd_per_mtok, s.batch_cache_write_usd_per_mtok,
        s.flex_input_usd_per_mtok, s.flex_output_usd_per_mtok, s.flex_cached_input_usd_per_mtok,
        s.flex_cache_write_usd_per_mtok, s.priority_input_usd_per_mtok,
        s.priority_output_usd_per_mtok, s.priority_cached_input_usd_per_mtok,
        s.priority_cache_write_usd_per_mtok, s.long_context_threshold)
       IS DISTINCT FROM
       (cur.input_usd_per_mtok, cur.output_usd_per_mtok, cur.cached_input_usd_per_mtok,
        cur.cache_write_usd_per_mtok, cur.cache_write_1h_usd_per_mtok, cur.batch_input_usd_per_mtok,
        cur.batch_output_usd_per_mtok, cur.input_long_context_usd_per_mtok,
        cur.output_long_context_usd_per_mtok, cur.cached_input_long_context_usd_per_mtok,
        cur.cache_write_long_context_usd_per_mtok, cur.cache_write_1h_long_context_usd_per_mtok,
        cur.batch_cached_input_usd_per_mtok, cur.batch_cache_write_usd_per_mtok,
        cur.flex_input_usd_per_mtok, cur.flex_output_usd_per_mtok,
        cur.flex_cached_input_usd_per_mtok, cur.flex_cache_write_usd_per_mtok,
        cur.priority_input_usd_per_mtok, cur.priority_output_usd_per_mtok,
        cur.priority_cached_input_usd_per_mtok, cur.priority_cache_write_usd_per_mtok,
        cur.long_context_threshold);
DROP TABLE llm_usage_seed_1_3;

-- Roll-ups and check_alerts never skip a call committed late: the bound a
-- run read, for a run under REPEATABLE READ or SERIALIZABLE (appended).
ALTER TABLE llm_usage.aggregation_state ADD COLUMN pending_watermark timestamptz;
COMMENT ON COLUMN llm_usage.aggregation_state.pending_watermark IS
'The visibility bound the last run read: where a run under REPEATABLE READ or SERIALIZABLE may move the watermark (its own snapshot may be older than its bound).';
ALTER TABLE llm_usage.alert_state ADD COLUMN pending_at timestamptz;
COMMENT ON COLUMN llm_usage.alert_state.checked_at IS 'Audit events and calls recorded before it have been checked (a watermark: it never passes a transaction that may still commit one).';
COMMENT ON COLUMN llm_usage.alert_state.pending_at IS 'The visibility bound the last check read: where a check under REPEATABLE READ or SERIALIZABLE may move checked_at.';

-- A new alert kind, price_mismatch: collected usage priced with the
-- product's prices against the provider-reported cost (price_reconciliation()).
ALTER TABLE llm_usage.alerts DROP CONSTRAINT alerts_kind_check;
ALTER TABLE llm_usage.alerts ADD CONSTRAINT alerts_kind_check CHECK (kind IN ('quota_exceeded', 'quota_near', 'high_latency',
                        'high_error_rate', 'cost_anomaly', 'collection_failed', 'maintenance_failed', 'unpriced_usage',
                        'price_mismatch', 'credits_low', 'credits_exhausted'));
ALTER TABLE llm_usage.alert_rules DROP CONSTRAINT alert_rules_kind_check;
ALTER TABLE llm_usage.alert_rules ADD CONSTRAINT alert_rules_kind_check CHECK (kind IN ('quota_exceeded', 'quota_near', 'high_latency',
                    'high_error_rate', 'cost_anomaly', 'collection_failed', 'maintenance_failed', 'unpriced_usage',
                    'price_mismatch', 'credits_low', 'credits_exhausted'));
ALTER TABLE llm_usage.alert_rules DISABLE TRIGGER alert_rules_read_only;
INSERT INTO llm_usage.alert_rules (kind, enabled, threshold, min_calls, severity, description) VALUES
    ('price_mismatch',     true, 10,   NULL, 'warning',
     'the cost a provider reported for a tenant''s model on a UTC day differs from its collected usage priced with llm_usage''s prices by more than threshold percent (checked when collected data arrives; see price_reconciliation())'),
    ('credits_low',        true, NULL, NULL, 'warning',
     'a prepaid tenant''s credit balance fell below its low_balance_usd (set_prepaid_billing()), or below threshold USD where the tenant has none'),
    ('credits_exhausted',  true, NULL, NULL, 'error',
     'a prepaid tenant''s credit balance reached zero (its calls are denied by enforce_quota(tenant, ''credits'', ...); costs beyond the balance are ledgered as uncovered)');
ALTER TABLE llm_usage.alert_rules ENABLE TRIGGER alert_rules_read_only;

-- quota_status() also says the tenant's plan (a new output column)
DROP FUNCTION llm_usage.quota_status(text);

-- Custom usage sources (src/sql/pre_install/sources.sql): a run collects a
-- provider key or a source.
ALTER TABLE llm_usage.collector_runs ALTER COLUMN key_id DROP NOT NULL,
    ADD COLUMN source_id bigint,
    ADD CONSTRAINT collector_runs_target_check CHECK (num_nonnulls(key_id, source_id) = 1);
CREATE INDEX collector_runs_source_idx ON llm_usage.collector_runs (source_id, run_id) WHERE source_id IS NOT NULL;
COMMENT ON COLUMN llm_usage.collector_runs.source_id IS 'The custom usage source collected (provider custom); NULL for a provider key''s run (key_id).';
COMMENT ON TABLE llm_usage.collector_runs IS
'One row per collection of one key (or custom usage source) over one window [window_from, window_to) of UTC days: queued, running, succeeded or failed, with pages, rows written, HTTP requests and the error.';
-- _claim_next_run() hands over the source of a run too (a new result column)
DROP FUNCTION llm_usage._claim_next_run();

-- The custom usage source tables and row type, as src/sql/pre_install/sources.sql makes them.
CREATE TYPE llm_usage.usage_source_row AS (
    attribution  text,
    bucket_start timestamptz,
    bucket_end   timestamptz,
    metric       text,
    quantity     numeric,
    unit         text,
    cost_usd     numeric
);
COMMENT ON TYPE llm_usage.usage_source_row IS
'What a custom usage source''s mapping function returns, one value per usage row: attribution (a tenant id or a value mapped with attribute_source_usage; NULL: the source''s tenant), bucket [bucket_start, bucket_end), metric, quantity (>= 0), unit, optional cost_usd.';

CREATE TABLE llm_usage.usage_source_store (
    source_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name              text NOT NULL CONSTRAINT usage_source_store_name_key UNIQUE,
    tenant_id         text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    base_url          text NOT NULL,
    path_template     text NOT NULL,
    time_format       text NOT NULL CONSTRAINT usage_source_store_time_format_check CHECK (time_format IN ('rfc3339', 'unix')),
    per_day           boolean NOT NULL DEFAULT false,
    auth              text NOT NULL CONSTRAINT usage_source_store_auth_check CHECK (auth IN ('none', 'bearer', 'header', 'query')),
    auth_name         text,
    secret_key_id     bigint,
    pagination        jsonb NOT NULL DEFAULT '{"type": "none"}',
    mapping_function  text NOT NULL,
    run_as            text NOT NULL,
    registered_by     text NOT NULL,
    is_active         boolean NOT NULL DEFAULT true,
    created_at        timestamptz NOT NULL DEFAULT now(),
    last_synced_at    timestamptz,
    last_sync_status  text,
    last_error        text,
    collected_through date
);
CREATE INDEX usage_source_store_tenant_idx ON llm_usage.usage_source_store (tenant_id);
COMMENT ON TABLE llm_usage.usage_source_store IS
'Custom usage sources: where and how the collector fetches a usage API (base URL, path template with {from} and {to}, authentication, pagination), the mapping function that turns a page into usage rows and the role it runs as.  The secret is the provider_key_store row secret_key_id (encrypted); use the usage_sources view.';
COMMENT ON COLUMN llm_usage.usage_source_store.tenant_id IS 'The tenant rows land on when the mapping function gives no attribution, and whose readers see the source''s runs.';
COMMENT ON COLUMN llm_usage.usage_source_store.per_day IS 'Whether the window is fetched one UTC day at a time (for APIs that answer with totals over the requested range).';
COMMENT ON COLUMN llm_usage.usage_source_store.auth_name IS 'The header (auth = header) or query parameter (auth = query) that carries the secret.';
COMMENT ON COLUMN llm_usage.usage_source_store.secret_key_id IS 'The provider_key_store row (provider custom) holding the secret, encrypted; NULL when auth = none.';
COMMENT ON COLUMN llm_usage.usage_source_store.pagination IS 'How pages follow each other: {"type": "none"}, {"type": "cursor", "cursor_path", "param"}, {"type": "has_more", "has_more_path", "next_path", "param"}, {"type": "page_number", "param", "items_path", "first"}.';
COMMENT ON COLUMN llm_usage.usage_source_store.mapping_function IS 'The mapping function, schema-qualified with its argument types: (page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row.';
COMMENT ON COLUMN llm_usage.usage_source_store.run_as IS 'The role the mapping function runs as (never a superuser; checked at registration and before every run).';
COMMENT ON COLUMN llm_usage.usage_source_store.registered_by IS 'The admin that registered the source; it must still be a member of run_as for the source to run.';

CREATE TABLE llm_usage.usage_source_attributions (
    source_id  bigint NOT NULL REFERENCES llm_usage.usage_source_store (source_id) ON DELETE CASCADE,
    value      text NOT NULL,
    tenant_id  text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source_id, value)
);
CREATE INDEX usage_source_attributions_tenant_idx ON llm_usage.usage_source_attributions (tenant_id);
COMMENT ON TABLE llm_usage.usage_source_attributions IS
'Which tenant an attribution value of a custom source''s rows belongs to (wins over a tenant of the same name).';

CREATE TABLE llm_usage.custom_usage (
    tenant_id     text NOT NULL,
    usage_id      bigint GENERATED ALWAYS AS IDENTITY,
    attributed_by text NOT NULL,
    source_id     bigint NOT NULL,
    run_id        bigint,
    attribution   text,
    bucket_start  timestamptz NOT NULL,
    bucket_end    timestamptz NOT NULL,
    metric        text NOT NULL,
    quantity      numeric NOT NULL,
    unit          text,
    cost_usd      numeric,
    collected_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, usage_id),
    CONSTRAINT custom_usage_natural_key UNIQUE NULLS NOT DISTINCT (source_id, bucket_start, metric, attribution)
);
CREATE INDEX custom_usage_bucket_idx ON llm_usage.custom_usage (tenant_id, bucket_start);
COMMENT ON TABLE llm_usage.custom_usage IS
'Usage collected from custom usage sources, one row per source, bucket, metric and attribution value; re-collecting a window updates rows in place.';
COMMENT ON COLUMN llm_usage.custom_usage.attributed_by IS 'Why the row belongs to tenant_id: "mapping" (attribute_source_usage), "tenant" (the attribution is a tenant id) or "source" (no attribution, or none matched: the source''s tenant).';
COMMENT ON COLUMN llm_usage.custom_usage.attribution IS 'The attribution value as the mapping function gave it.';

-- pg_dump carries the sources, their attributions and what they collected
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_source_store', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_source_store_source_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_source_attributions', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.custom_usage', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.custom_usage_usage_id_seq', '');

-- Open event types (1.3): any name an application uses is tracked; this
-- table maps names to the counters they feed.
/*
 * Event types: track_usage() accepts any name an application uses (1 to 64
 * characters, no control characters, not blank); this table says which
 * counters a name feeds (the chat_messages and embeddings quotas, and the
 * roll-ups' chat_messages_sent and embeddings_generated).  A name not in it
 * feeds neither.  Shipped rows (is_shipped) are recreated by CREATE
 * EXTENSION and not dumped; an admin's row for the same name (set_event_type)
 * takes precedence and is dumped.
 */
CREATE TABLE llm_usage.event_types (
    event_type  text NOT NULL
                CONSTRAINT event_types_event_type_check
                CHECK (length(event_type) BETWEEN 1 AND 64 AND event_type ~ '[^ ]'
                       AND event_type !~ '[\u0001-\u001f\u007f-\u009f]'),
    counts_as   text
                CONSTRAINT event_types_counts_as_check CHECK (counts_as IN ('chat_messages', 'embeddings')),
    is_shipped  boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (event_type, is_shipped)
);
COMMENT ON TABLE llm_usage.event_types IS
'Which counter each event type feeds: chat_messages, embeddings, or none (NULL).  Shipped rows (is_shipped) come with the extension; an admin''s row for the same name (set_event_type) replaces the shipped one.  Event types not listed feed no counter.  The mapping in force: llm_usage.event_type_counters.';
COMMENT ON COLUMN llm_usage.event_types.counts_as IS 'The counter an event of this type feeds: chat_messages, embeddings, or NULL for none.';

INSERT INTO llm_usage.event_types (event_type, counts_as, is_shipped) VALUES
    ('chat',         'chat_messages', true),
    ('chat_message', 'chat_messages', true),
    ('completion',   NULL,            true),
    ('embedding',    'embeddings',    true),
    ('embeddings',   'embeddings',    true),
    ('search',       NULL,            true),
    ('tool',         NULL,            true),
    ('image',        NULL,            true),
    ('audio',        NULL,            true),
    ('moderation',   NULL,            true),
    ('other',        NULL,            true);
SELECT pg_catalog.pg_extension_config_dump('llm_usage.event_types', 'WHERE NOT is_shipped');

-- Reserve, then settle (1.3): enforce_quota/enforce_quotas take a
-- request_id; track_usage of that request settles the reservation.
DROP FUNCTION llm_usage.enforce_quota(text, text, numeric);
DROP FUNCTION llm_usage.enforce_quotas(text, jsonb);
DROP FUNCTION llm_usage._enforce_quota_sql(text, text, numeric);
DROP FUNCTION llm_usage._consume(llm_usage.tenants, text[], numeric[]);
DROP FUNCTION llm_usage._consume_table(llm_usage.tenants, text[], numeric[]);
DROP FUNCTION llm_usage._shm_consume(text, text[], numeric[]);

CREATE TABLE llm_usage.quota_reservations (
    tenant_id    text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    request_id   text NOT NULL,
    quota_type   text NOT NULL,
    period       text NOT NULL,
    period_start timestamptz NOT NULL,
    amount       numeric NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, request_id, quota_type, period)
);
COMMENT ON TABLE llm_usage.quota_reservations IS
'Internal: open reservations of the table path (enforce_quota with a request_id, not yet settled by track_usage): what was counted per quota and period; the shared-memory path keeps them in shared memory.  An expired one stays counted and is deleted.';

-- Prepaid credits that burn down (1.3): a tenant on prepaid billing has
-- each tracked call's and each collected custom-source row's cost deducted
-- from its balance; enforce_quota(tenant, 'credits', estimate) admits
-- against the balance less what open admissions hold (credit_holds).
ALTER TABLE llm_usage.tenants
    ADD COLUMN prepaid boolean NOT NULL DEFAULT false,
    ADD COLUMN low_balance_usd numeric
               CONSTRAINT tenants_low_balance_usd_check CHECK (low_balance_usd >= 0);
COMMENT ON COLUMN llm_usage.tenants.prepaid IS 'On prepaid billing: every tracked call''s cost and every collected custom-source row''s cost is deducted from its credit balance; set with set_prepaid_billing().';
COMMENT ON COLUMN llm_usage.tenants.low_balance_usd IS 'A prepaid tenant''s low-balance threshold (USD): a credits_low alert when its balance falls below it; NULL: none.';

ALTER TABLE llm_usage.credit_ledger
    ADD COLUMN kind text NOT NULL DEFAULT 'manual'
               CONSTRAINT credit_ledger_kind_check CHECK (kind IN ('grant', 'manual', 'tracked_call', 'source_row')),
    ADD COLUMN uncovered numeric NOT NULL DEFAULT 0
               CONSTRAINT credit_ledger_uncovered_check CHECK (uncovered >= 0),
    ADD COLUMN event_id bigint,
    ADD COLUMN request_id text,
    ADD COLUMN source_id bigint,
    ADD COLUMN usage_id bigint,
    ADD COLUMN source_key text;
-- the changes of 1.2 and before were grants (delta > 0) and deductions
UPDATE llm_usage.credit_ledger SET kind = 'grant' WHERE delta > 0;
CREATE UNIQUE INDEX credit_ledger_event_idx ON llm_usage.credit_ledger (tenant_id, event_id) WHERE event_id IS NOT NULL;
CREATE INDEX credit_ledger_usage_idx ON llm_usage.credit_ledger (source_id, usage_id) WHERE usage_id IS NOT NULL;
COMMENT ON COLUMN llm_usage.credit_ledger.kind IS 'What changed the balance: grant (grant_credits), manual (deduct_credits), tracked_call (a prepaid tenant''s tracked call), source_row (a prepaid tenant''s collected custom-source row).';
COMMENT ON COLUMN llm_usage.credit_ledger.uncovered IS 'The part of a cost the balance could not cover (the balance stops at zero); delta is what was deducted.';
COMMENT ON COLUMN llm_usage.credit_ledger.event_id IS 'tracked_call: the usage_events id of the call (deducted at most once per event).';
COMMENT ON COLUMN llm_usage.credit_ledger.request_id IS 'tracked_call: the call''s request id, if it had one.';
COMMENT ON COLUMN llm_usage.credit_ledger.source_key IS 'source_row: the row''s natural key in custom_usage (bucket_start, metric, attribution) as text; source_id and usage_id name the source and the row.';

CREATE TABLE llm_usage.credit_holds (
    tenant_id  text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    hold_id    bigint GENERATED ALWAYS AS IDENTITY,
    request_id text,
    amount     numeric NOT NULL
               CONSTRAINT credit_holds_amount_check CHECK (amount >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, hold_id)
);
CREATE UNIQUE INDEX credit_holds_request_idx ON llm_usage.credit_holds (tenant_id, request_id) WHERE request_id IS NOT NULL;
COMMENT ON TABLE llm_usage.credit_holds IS
'Internal: what open credits admissions (enforce_quota(tenant, ''credits'', estimate[, request_id])) hold of a prepaid tenant''s balance; released by track_usage() of the request, or at expires_at (llm_usage.reservation_ttl) with nothing deducted.';
