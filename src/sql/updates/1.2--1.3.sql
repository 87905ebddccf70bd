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
