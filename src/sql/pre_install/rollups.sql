/*
 * src/sql/pre_install/rollups.sql — roll-up tables (install only)
 *
 * Filled by aggregate_usage_metrics() (src/sql/rollups.sql).
 */

CREATE TABLE llm_usage.tenant_usage_metrics (
    tenant_id            text NOT NULL,
    period_type          text NOT NULL
                         CONSTRAINT tenant_usage_metrics_period_type_check CHECK (period_type IN ('hourly', 'daily', 'monthly')),
    period_start         timestamptz NOT NULL,
    api_calls_total      bigint NOT NULL,
    api_calls_failed     bigint NOT NULL,
    rate_limited_count   bigint NOT NULL,
    chat_messages_sent   bigint NOT NULL,
    embeddings_generated bigint NOT NULL,
    input_tokens         bigint NOT NULL,
    output_tokens        bigint NOT NULL,
    cached_input_tokens  bigint NOT NULL,
    total_tokens_used    bigint NOT NULL,
    estimated_cost_usd   numeric NOT NULL,
    unpriced_calls       bigint NOT NULL,
    api_latency_p50_ms   numeric,
    api_latency_p95_ms   numeric,
    api_latency_p99_ms   numeric,
    error_rate           numeric NOT NULL,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    latency_sum_ms       numeric NOT NULL DEFAULT 0,
    latency_count        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, period_type, period_start)
);
COMMENT ON TABLE llm_usage.tenant_usage_metrics IS
'Roll-ups of usage_events per tenant and calendar period (hour, day, month in the tenant''s zone), kept by aggregate_usage_metrics().';
COMMENT ON COLUMN llm_usage.tenant_usage_metrics.error_rate IS 'Share of calls whose result was failure or rate_limited, 0 to 1.';
COMMENT ON COLUMN llm_usage.tenant_usage_metrics.estimated_cost_usd IS 'Sum of the priced calls'' cost; unpriced_calls says how many calls had no price.';
COMMENT ON COLUMN llm_usage.tenant_usage_metrics.latency_sum_ms IS 'Sum of the latencies reported (ms), for averages over several periods.';
COMMENT ON COLUMN llm_usage.tenant_usage_metrics.latency_count IS 'Number of calls that reported a latency.';

CREATE TABLE llm_usage.aggregation_state (
    period_type text PRIMARY KEY,
    watermark   timestamptz,
    last_run_at timestamptz,
    pending_watermark timestamptz
);
COMMENT ON TABLE llm_usage.aggregation_state IS
'Per roll-up period type (a row once it first ran): events recorded at or after watermark may not be in the roll-ups yet.';
COMMENT ON COLUMN llm_usage.aggregation_state.pending_watermark IS
'The visibility bound the last run read: where a run under REPEATABLE READ or SERIALIZABLE may move the watermark (its own snapshot may be older than its bound).';
