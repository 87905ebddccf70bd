/*
 * src/sql/pre_install/tracking.sql — prices and usage events (install only)
 *
 * usage_events is partitioned by month of occurred_at (UTC).  Monthly
 * partitions (usage_events_YYYYMM) are made by the worker ahead of time and
 * at run time, so they are ordinary tables that pg_dump dumps with their
 * rows; usage_events_default (post_install/partitions.sql), part of the
 * extension, catches calls of a month that has no partition yet until the
 * worker moves them.  Request ids, unique per tenant across partitions,
 * live in usage_requests.
 */

CREATE TABLE llm_usage.model_price_versions (
    price_id                      bigserial PRIMARY KEY,
    provider                      text NOT NULL
                                  CONSTRAINT model_price_versions_provider_check CHECK (provider ~ '^[a-z][a-z0-9_-]{0,62}$'),
    model                         text NOT NULL
                                  CONSTRAINT model_price_versions_model_check CHECK (model ~ '^[[:graph:]]{1,200}$'),
    mode                          text,
    input_usd_per_mtok            numeric NOT NULL CHECK (input_usd_per_mtok >= 0),
    output_usd_per_mtok           numeric NOT NULL CHECK (output_usd_per_mtok >= 0),
    cached_input_usd_per_mtok     numeric CHECK (cached_input_usd_per_mtok >= 0),
    cache_write_usd_per_mtok      numeric CHECK (cache_write_usd_per_mtok >= 0),
    cache_write_1h_usd_per_mtok   numeric CHECK (cache_write_1h_usd_per_mtok >= 0),
    batch_input_usd_per_mtok      numeric CHECK (batch_input_usd_per_mtok >= 0),
    batch_output_usd_per_mtok     numeric CHECK (batch_output_usd_per_mtok >= 0),
    input_long_context_usd_per_mtok numeric CHECK (input_long_context_usd_per_mtok >= 0),
    output_long_context_usd_per_mtok numeric CHECK (output_long_context_usd_per_mtok >= 0),
    deprecation_date              date,
    valid_from                    timestamptz NOT NULL DEFAULT '-infinity',
    is_shipped                    boolean NOT NULL DEFAULT false,
    source                        text NOT NULL DEFAULT 'set_model_price',
    created_by                    text NOT NULL DEFAULT session_user,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    long_context_threshold        bigint CHECK (long_context_threshold > 0),
    cached_input_long_context_usd_per_mtok numeric CHECK (cached_input_long_context_usd_per_mtok >= 0),
    cache_write_long_context_usd_per_mtok numeric CHECK (cache_write_long_context_usd_per_mtok >= 0),
    cache_write_1h_long_context_usd_per_mtok numeric CHECK (cache_write_1h_long_context_usd_per_mtok >= 0),
    batch_cached_input_usd_per_mtok numeric CHECK (batch_cached_input_usd_per_mtok >= 0),
    batch_cache_write_usd_per_mtok numeric CHECK (batch_cache_write_usd_per_mtok >= 0),
    flex_input_usd_per_mtok       numeric CHECK (flex_input_usd_per_mtok >= 0),
    flex_output_usd_per_mtok      numeric CHECK (flex_output_usd_per_mtok >= 0),
    flex_cached_input_usd_per_mtok numeric CHECK (flex_cached_input_usd_per_mtok >= 0),
    flex_cache_write_usd_per_mtok numeric CHECK (flex_cache_write_usd_per_mtok >= 0),
    priority_input_usd_per_mtok   numeric CHECK (priority_input_usd_per_mtok >= 0),
    priority_output_usd_per_mtok  numeric CHECK (priority_output_usd_per_mtok >= 0),
    priority_cached_input_usd_per_mtok numeric CHECK (priority_cached_input_usd_per_mtok >= 0),
    priority_cache_write_usd_per_mtok numeric CHECK (priority_cache_write_usd_per_mtok >= 0),
    UNIQUE (model, valid_from)
);
COMMENT ON TABLE llm_usage.model_price_versions IS
'Every price a model ever had, in USD per million tokens; a version is valid from valid_from until the next version of the same model.  Rows are never changed, so costs already computed stay explained.';
COMMENT ON COLUMN llm_usage.model_price_versions.cached_input_usd_per_mtok IS 'Rate for input tokens read from the prompt cache; NULL means the input rate applies.';
COMMENT ON COLUMN llm_usage.model_price_versions.cache_write_usd_per_mtok IS 'Rate for input tokens written to the prompt cache with the 5-minute TTL (the default); NULL means the input rate applies.';
COMMENT ON COLUMN llm_usage.model_price_versions.cache_write_1h_usd_per_mtok IS 'Rate for input tokens written to the prompt cache with the 1-hour TTL; NULL means the 5-minute write rate applies.';
COMMENT ON COLUMN llm_usage.model_price_versions.batch_input_usd_per_mtok IS 'Batch API input rate; NULL: derived (README "Prices"; 50 % of the standard rate when the model has no batch rate at all).';
COMMENT ON COLUMN llm_usage.model_price_versions.input_long_context_usd_per_mtok IS 'Input rate of a call whose input tokens exceed long_context_threshold (all its input tokens).';
COMMENT ON COLUMN llm_usage.model_price_versions.output_long_context_usd_per_mtok IS 'Output rate of a call whose input tokens exceed long_context_threshold.';
COMMENT ON COLUMN llm_usage.model_price_versions.long_context_threshold IS 'Input tokens (all input: uncached, cache reads and writes) above which a call is billed at the long-context rates; NULL: the model has no long-context tier.';
COMMENT ON COLUMN llm_usage.model_price_versions.is_shipped IS 'true for the published prices the extension ships (LiteLLM price map of 2026-07-24); those are not dumped by pg_dump.';

CREATE SEQUENCE llm_usage.usage_events_id_seq;

CREATE TABLE llm_usage.usage_events (
    tenant_id           text NOT NULL,
    event_id            bigint NOT NULL DEFAULT nextval('llm_usage.usage_events_id_seq'),
    event_type          text NOT NULL,
    model               text,
    provider            text,
    input_tokens        bigint NOT NULL DEFAULT 0,
    output_tokens       bigint NOT NULL DEFAULT 0,
    cached_input_tokens bigint NOT NULL DEFAULT 0,
    cache_write_tokens  bigint NOT NULL DEFAULT 0,
    total_tokens        bigint GENERATED ALWAYS AS (input_tokens + output_tokens) STORED,
    cost_usd            numeric,
    price_id            bigint,
    latency_ms          integer,
    status_code         integer,
    result              text NOT NULL DEFAULT 'success'
                        CONSTRAINT usage_events_result_check CHECK (result IN ('success', 'failure', 'rate_limited')),
    metadata            jsonb NOT NULL DEFAULT '{}',
    request_id          text,
    occurred_at         timestamptz NOT NULL DEFAULT now(),
    recorded_at         timestamptz NOT NULL DEFAULT clock_timestamp(),
    cache_write_1h_tokens bigint NOT NULL DEFAULT 0,
    service_tier        text NOT NULL DEFAULT 'standard'
                        CONSTRAINT usage_events_service_tier_check CHECK (service_tier IN ('standard', 'batch', 'flex', 'priority'))
) PARTITION BY RANGE (occurred_at);
ALTER SEQUENCE llm_usage.usage_events_id_seq OWNED BY llm_usage.usage_events.event_id;
COMMENT ON TABLE llm_usage.usage_events IS
'One row per LLM call reported with track_usage(); append-only, partitioned by month of occurred_at, kept for llm_usage.event_retention months.  cost_usd is computed from the price valid at occurred_at, NULL when the model has no price.';
COMMENT ON COLUMN llm_usage.usage_events.input_tokens IS 'All input tokens, including cached_input_tokens, cache_write_tokens and cache_write_1h_tokens.';
COMMENT ON COLUMN llm_usage.usage_events.cached_input_tokens IS 'Input tokens read from the prompt cache (billed at the cached rate).';
COMMENT ON COLUMN llm_usage.usage_events.cache_write_tokens IS 'Input tokens written to the prompt cache with the 5-minute TTL (billed at the cache-write rate).';
COMMENT ON COLUMN llm_usage.usage_events.cache_write_1h_tokens IS 'Input tokens written to the prompt cache with the 1-hour TTL (billed at the 1-hour cache-write rate).';
COMMENT ON COLUMN llm_usage.usage_events.service_tier IS 'The service tier the call was billed in: standard, batch (Batch API), flex or priority.';
COMMENT ON COLUMN llm_usage.usage_events.recorded_at IS 'When the row was written or last re-priced; aggregate_usage_metrics() finds new work by it.';

CREATE TABLE llm_usage.usage_requests (
    tenant_id   text NOT NULL,
    request_id  text NOT NULL,
    event_id    bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, request_id)
);
COMMENT ON TABLE llm_usage.usage_requests IS
'Request ids of tracked calls, so that track_usage() counts a (tenant_id, request_id) once across partitions.';

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
