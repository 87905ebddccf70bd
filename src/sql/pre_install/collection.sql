/*
 * src/sql/pre_install/collection.sql — provider keys, collected usage and costs, runs, attribution (install only)
 *
 * Filled by the collector (src/collector.c) through src/sql/collection.sql;
 * provider_key_store holds ciphertext only, readable by nobody but the owner
 * (the worker runs as superuser); the provider_keys view shows the rest.
 */

CREATE TABLE llm_usage.provider_usage (
    tenant_id           text NOT NULL,
    usage_id            bigint GENERATED ALWAYS AS IDENTITY,
    attributed_by       text NOT NULL DEFAULT 'key',
    key_id              bigint NOT NULL,
    run_id              bigint,
    provider            text NOT NULL,
    endpoint            text NOT NULL,
    bucket_start        timestamptz NOT NULL,
    bucket_end          timestamptz NOT NULL,
    model               text,
    project_id          text,
    workspace_id        text,
    provider_api_key_id text,
    service_tier        text,
    batch               boolean,
    input_tokens        bigint NOT NULL DEFAULT 0,
    cached_input_tokens bigint NOT NULL DEFAULT 0,
    cache_write_tokens  bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    requests            bigint NOT NULL DEFAULT 0,
    collected_at        timestamptz NOT NULL DEFAULT now(),
    cache_write_1h_tokens bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, usage_id),
    CONSTRAINT provider_usage_natural_key UNIQUE NULLS NOT DISTINCT
        (key_id, endpoint, bucket_start, model, project_id, workspace_id, provider_api_key_id, service_tier, batch)
);
CREATE INDEX provider_usage_bucket_idx ON llm_usage.provider_usage (tenant_id, bucket_start);
COMMENT ON TABLE llm_usage.provider_usage IS
'Token usage as reported by the providers'' organization usage APIs, one row per key, bucket and grouping; re-collecting a window updates rows in place.';
COMMENT ON COLUMN llm_usage.provider_usage.input_tokens IS 'All input tokens: for Anthropic uncached + cache reads + cache writes; OpenAI''s input_tokens as reported.';
COMMENT ON COLUMN llm_usage.provider_usage.cache_write_tokens IS 'Input tokens written to the prompt cache, every TTL (Anthropic 5-minute and 1-hour writes together).';
COMMENT ON COLUMN llm_usage.provider_usage.cache_write_1h_tokens IS 'The part of cache_write_tokens written with the 1-hour TTL (Anthropic ephemeral_1h_input_tokens).';
COMMENT ON COLUMN llm_usage.provider_usage.requests IS 'Model requests (OpenAI num_model_requests); 0 for Anthropic, whose usage report has no request count.';
COMMENT ON COLUMN llm_usage.provider_usage.attributed_by IS 'Why the row belongs to tenant_id: a mapped api_key_id, project_id or workspace_id, or "key" (the collecting key''s own tenant).';

CREATE TABLE llm_usage.provider_costs (
    tenant_id           text NOT NULL,
    cost_id             bigint GENERATED ALWAYS AS IDENTITY,
    attributed_by       text NOT NULL DEFAULT 'key',
    key_id              bigint NOT NULL,
    run_id              bigint,
    provider            text NOT NULL,
    bucket_start        timestamptz NOT NULL,
    bucket_end          timestamptz NOT NULL,
    line_item           text,
    model               text,
    project_id          text,
    workspace_id        text,
    provider_api_key_id text,
    token_type          text,
    service_tier        text,
    context_window      text,
    amount_usd          numeric NOT NULL,
    collected_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, cost_id),
    CONSTRAINT provider_costs_natural_key UNIQUE NULLS NOT DISTINCT
        (key_id, bucket_start, line_item, model, project_id, workspace_id, provider_api_key_id, token_type,
         service_tier, context_window)
);
CREATE INDEX provider_costs_bucket_idx ON llm_usage.provider_costs (tenant_id, bucket_start);
COMMENT ON TABLE llm_usage.provider_costs IS
'Costs in USD as reported by the providers'' cost APIs (OpenAI value as given, Anthropic cents / 100), one row per key, bucket and grouping; re-collecting updates rows in place.';
COMMENT ON COLUMN llm_usage.provider_costs.line_item IS 'OpenAI line_item, or Anthropic description.';

CREATE TABLE llm_usage.provider_key_store (
    key_id             bigint PRIMARY KEY,
    tenant_id          text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    provider           text NOT NULL
                       CONSTRAINT provider_key_store_provider_check CHECK (provider IN ('openai', 'anthropic', 'custom')),
    label              text,
    key_preview        text NOT NULL,
    key_version        integer NOT NULL DEFAULT 1,
    key_ciphertext     bytea NOT NULL,
    wrapped_dek        bytea NOT NULL,
    master_key_version integer NOT NULL,
    is_active          boolean NOT NULL DEFAULT true,
    created_at         timestamptz NOT NULL DEFAULT now(),
    rotated_at         timestamptz,
    last_used_at       timestamptz,
    last_synced_at     timestamptz,
    last_sync_status   text,
    last_error         text,
    collected_through  date
);
CREATE SEQUENCE llm_usage.provider_key_store_key_id_seq OWNED BY llm_usage.provider_key_store.key_id;
CREATE INDEX provider_key_store_tenant_idx ON llm_usage.provider_key_store (tenant_id);
COMMENT ON TABLE llm_usage.provider_key_store IS
'Provider admin keys, AES-256-GCM encrypted under a per-key data key wrapped by the master key; no role but the owner may read it.  Use the provider_keys view.';
COMMENT ON COLUMN llm_usage.provider_key_store.collected_through IS 'Last UTC day a collection run of this key covered successfully.';

CREATE TABLE llm_usage.collector_runs (
    run_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id        bigint,
    tenant_id     text NOT NULL,
    provider      text NOT NULL,
    trigger       text NOT NULL CONSTRAINT collector_runs_trigger_check CHECK (trigger IN ('schedule', 'manual')),
    status        text NOT NULL DEFAULT 'queued'
                  CONSTRAINT collector_runs_status_check CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    window_from   timestamptz NOT NULL,
    window_to     timestamptz NOT NULL,
    queued_at     timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    pages         integer NOT NULL DEFAULT 0,
    rows_written  bigint NOT NULL DEFAULT 0,
    http_attempts integer NOT NULL DEFAULT 0,
    error         text,
    requested_by  text NOT NULL DEFAULT session_user,
    source_id     bigint,
    CONSTRAINT collector_runs_target_check CHECK (num_nonnulls(key_id, source_id) = 1)
);
CREATE INDEX collector_runs_queued_idx ON llm_usage.collector_runs (run_id) WHERE status IN ('queued', 'running');
CREATE INDEX collector_runs_key_idx ON llm_usage.collector_runs (key_id, run_id);
CREATE INDEX collector_runs_source_idx ON llm_usage.collector_runs (source_id, run_id) WHERE source_id IS NOT NULL;
COMMENT ON COLUMN llm_usage.collector_runs.source_id IS 'The custom usage source collected (provider custom); NULL for a provider key''s run (key_id).';
COMMENT ON TABLE llm_usage.collector_runs IS
'One row per collection of one key (or custom usage source) over one window [window_from, window_to) of UTC days: queued, running, succeeded or failed, with pages, rows written, HTTP requests and the error.';

CREATE TABLE llm_usage.provider_attributions (
    provider   text NOT NULL CONSTRAINT provider_attributions_provider_check CHECK (provider IN ('openai', 'anthropic')),
    dimension  text NOT NULL
               CONSTRAINT provider_attributions_dimension_check CHECK (dimension IN ('project_id', 'workspace_id', 'api_key_id')),
    value      text NOT NULL,
    tenant_id  text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, dimension, value)
);
COMMENT ON TABLE llm_usage.provider_attributions IS
'Which tenant a provider project, workspace or API key id belongs to; collected rows carrying it land on that tenant (api_key_id wins over project_id over workspace_id).';
