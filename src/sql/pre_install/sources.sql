/*
 * src/sql/pre_install/sources.sql — custom usage sources (install only)
 *
 * An admin registers a usage API that is neither OpenAI nor Anthropic
 * (src/sql/sources.sql); the collector (src/collector.c,
 * src/provider_custom.c) fetches its pages and the admin's mapping function
 * turns each page into llm_usage.usage_source_row values, upserted into
 * custom_usage.  The source's secret is a provider_key_store row of provider
 * 'custom' (the same envelope as provider keys), never a column here.
 */

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
