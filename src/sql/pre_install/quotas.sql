/*
 * src/sql/pre_install/quotas.sql — quota counters kept in a table (install only)
 *
 * The table path of the counters (see src/sql/quotas.sql).  It was
 * llm_usage.quota_counters before 1.2, hence the names of its constraints.
 */

CREATE TABLE llm_usage.quota_counters_table (
    tenant_id    text NOT NULL
                 CONSTRAINT quota_counters_tenant_id_fkey REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    quota_type   text NOT NULL,
    period       text NOT NULL,
    period_start timestamptz NOT NULL,
    used         numeric NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT quota_counters_pkey PRIMARY KEY (tenant_id, quota_type, period)
);
COMMENT ON TABLE llm_usage.quota_counters_table IS
'Quota counters kept in a table: used when llm_usage is not in shared_preload_libraries, or for tenants beyond llm_usage.quota_max_tenants.  Read llm_usage.quota_counters instead.';

CREATE TYPE llm_usage._quota_check AS (
    quota_type   text,
    period       text,
    quota_limit  numeric,
    requested    numeric,
    period_start timestamptz,
    period_end   timestamptz,
    used         numeric,
    fits         boolean
);
COMMENT ON TYPE llm_usage._quota_check IS 'Internal: one quota of one enforce call: limit, amount asked, period, usage, whether it fits.';

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
