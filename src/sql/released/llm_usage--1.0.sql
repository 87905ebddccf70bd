/*
 * llm_usage 1.0 — install script.
 *
 * LLM usage metering, cost accounting and quota enforcement inside
 * PostgreSQL.  Everything lives in schema llm_usage.  Functions that touch
 * tenant data are SECURITY DEFINER with a pinned search_path and check the
 * calling role (llm_usage._caller(), i.e. current_user as the client set it)
 * against llm_usage.tenant_access; row-level security gives the same answer
 * to roles that read the tables directly.
 *
 * Error codes used throughout:
 *   22004 null argument, 22023 bad argument, 42704 unknown tenant/model/...,
 *   42710 already exists, 42501 not allowed, 23514 insufficient credits.
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION llm_usage" to load this file. \quit

------------------------------------------------------------------------
-- Roles.  Roles are cluster-wide and outlive the extension: they are made
-- once and reused by every database that installs llm_usage.
------------------------------------------------------------------------
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

------------------------------------------------------------------------
-- C functions
------------------------------------------------------------------------
CREATE FUNCTION llm_usage._caller()
RETURNS oid
LANGUAGE c STABLE PARALLEL RESTRICTED
AS 'MODULE_PATHNAME', 'llm_usage_caller';
COMMENT ON FUNCTION llm_usage._caller() IS
'Internal: the calling role (current_user as the client set it, unaffected by SECURITY DEFINER); the role every tenant check is made for.';

CREATE FUNCTION llm_usage.build_info()
RETURNS TABLE (component text, version text)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_build_info';
COMMENT ON FUNCTION llm_usage.build_info() IS
'Versions of llm_usage, PostgreSQL, libcurl and OpenSSL as linked into the running server, and whether the library was preloaded.';

------------------------------------------------------------------------
-- Plans and quotas
------------------------------------------------------------------------
CREATE TABLE llm_usage.quota_types (
    quota_type  text PRIMARY KEY,
    unit        text NOT NULL,
    description text NOT NULL
);
COMMENT ON TABLE llm_usage.quota_types IS 'The quota types enforce_quota() knows; fixed by the extension.';

INSERT INTO llm_usage.quota_types VALUES
    ('tokens',        'tokens',   'input plus output tokens'),
    ('api_calls',     'calls',    'LLM API calls of any kind'),
    ('cost_usd',      'USD',      'spend in US dollars'),
    ('chat_messages', 'messages', 'chat messages sent'),
    ('embeddings',    'vectors',  'embeddings generated');

CREATE TABLE llm_usage.plans (
    plan        text PRIMARY KEY
                CONSTRAINT plans_plan_check CHECK (plan ~ '^[a-z][a-z0-9_-]{0,62}$'),
    description text,
    is_shipped  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE llm_usage.plans IS
'Plans a tenant can be on.  Shipped plans (trial, starter, pro, enterprise) are read-only; make your own with create_plan().';
COMMENT ON COLUMN llm_usage.plans.is_shipped IS 'true for the plans the extension ships; those are not dumped by pg_dump and cannot be changed.';

CREATE TABLE llm_usage.plan_quotas (
    plan        text NOT NULL REFERENCES llm_usage.plans (plan) ON DELETE CASCADE,
    quota_type  text NOT NULL REFERENCES llm_usage.quota_types (quota_type),
    period      text NOT NULL
                CONSTRAINT plan_quotas_period_check CHECK (period IN ('minute', 'hour', 'day', 'month')),
    quota_limit numeric
                CONSTRAINT plan_quotas_limit_check CHECK (quota_limit >= 0),
    is_shipped  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (plan, quota_type, period)
);
COMMENT ON TABLE llm_usage.plan_quotas IS
'Quota limits per plan, type and calendar period (in the tenant''s time zone).  A NULL limit means unlimited but counted.';

CREATE TABLE llm_usage.tenants (
    tenant_id   text PRIMARY KEY
                CONSTRAINT tenants_tenant_id_check CHECK (tenant_id ~ '^[[:graph:]]{1,128}$'),
    plan        text NOT NULL REFERENCES llm_usage.plans (plan),
    timezone    text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE llm_usage.tenants IS 'Tenants (customers, teams, projects) whose LLM usage is metered.  Create with create_tenant().';
COMMENT ON COLUMN llm_usage.tenants.timezone IS 'IANA zone in which the tenant''s calendar periods (minute, hour, day, month) are aligned.';

CREATE TABLE llm_usage.tenant_quota_overrides (
    tenant_id   text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    quota_type  text NOT NULL REFERENCES llm_usage.quota_types (quota_type),
    period      text NOT NULL
                CONSTRAINT tenant_quota_overrides_period_check CHECK (period IN ('minute', 'hour', 'day', 'month')),
    quota_limit numeric
                CONSTRAINT tenant_quota_overrides_limit_check CHECK (quota_limit >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, quota_type, period)
);
COMMENT ON TABLE llm_usage.tenant_quota_overrides IS
'Per-tenant quota limits that replace (or add to) the plan''s; set with set_custom_quota().  A NULL limit means unlimited.';

CREATE TABLE llm_usage.quota_counters (
    tenant_id    text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    quota_type   text NOT NULL,
    period       text NOT NULL,
    period_start timestamptz NOT NULL,
    used         numeric NOT NULL DEFAULT 0,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, quota_type, period)
);
COMMENT ON TABLE llm_usage.quota_counters IS
'Consumption in the current period of each quota: one row per tenant, type and period, reset when a new period starts.  Written only by enforce_quota()/enforce_quotas().';

CREATE TABLE llm_usage.tenant_access (
    tenant_id  text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    role_name  regrole NOT NULL,
    granted_by text NOT NULL DEFAULT session_user,
    granted_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, role_name)
);
CREATE INDEX tenant_access_role_idx ON llm_usage.tenant_access (role_name);
COMMENT ON TABLE llm_usage.tenant_access IS
'Which roles may act on which tenants; managed with grant_tenant_access()/revoke_tenant_access().  Membership in a listed role counts.';

------------------------------------------------------------------------
-- Prices
------------------------------------------------------------------------
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
    input_above_200k_usd_per_mtok numeric CHECK (input_above_200k_usd_per_mtok >= 0),
    output_above_200k_usd_per_mtok numeric CHECK (output_above_200k_usd_per_mtok >= 0),
    deprecation_date              date,
    valid_from                    timestamptz NOT NULL DEFAULT '-infinity',
    is_shipped                    boolean NOT NULL DEFAULT false,
    source                        text NOT NULL DEFAULT 'set_model_price',
    created_by                    text NOT NULL DEFAULT session_user,
    created_at                    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model, valid_from)
);
COMMENT ON TABLE llm_usage.model_price_versions IS
'Every price a model ever had, in USD per million tokens; a version is valid from valid_from until the next version of the same model.  Rows are never changed, so costs already computed stay explained.';
COMMENT ON COLUMN llm_usage.model_price_versions.cached_input_usd_per_mtok IS 'Rate for input tokens read from the prompt cache; NULL means the input rate applies.';
COMMENT ON COLUMN llm_usage.model_price_versions.cache_write_usd_per_mtok IS 'Rate for input tokens written to the prompt cache (Anthropic 5-minute TTL); NULL means the input rate applies.';
COMMENT ON COLUMN llm_usage.model_price_versions.is_shipped IS 'true for the published prices the extension ships (LiteLLM price map of 2026-07-24); those are not dumped by pg_dump.';

CREATE VIEW llm_usage.model_prices AS
SELECT v.price_id,
       v.provider,
       v.model,
       v.mode,
       v.input_usd_per_mtok,
       v.output_usd_per_mtok,
       v.cached_input_usd_per_mtok,
       v.cache_write_usd_per_mtok,
       v.cache_write_1h_usd_per_mtok,
       v.batch_input_usd_per_mtok,
       v.batch_output_usd_per_mtok,
       v.input_above_200k_usd_per_mtok,
       v.output_above_200k_usd_per_mtok,
       v.valid_from,
       lead(v.valid_from) OVER (PARTITION BY v.model ORDER BY v.valid_from) AS valid_to,
       v.deprecation_date,
       v.source
  FROM llm_usage.model_price_versions v;
COMMENT ON VIEW llm_usage.model_prices IS
'Model prices with their validity range [valid_from, valid_to); valid_to is NULL for the price in force.  Change prices with set_model_price().';

------------------------------------------------------------------------
-- Usage events and roll-ups
------------------------------------------------------------------------
CREATE TABLE llm_usage.usage_events (
    tenant_id           text NOT NULL,
    event_id            bigint GENERATED ALWAYS AS IDENTITY,
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
    PRIMARY KEY (tenant_id, event_id)
);
CREATE UNIQUE INDEX usage_events_request_idx ON llm_usage.usage_events (tenant_id, request_id)
    WHERE request_id IS NOT NULL;
CREATE INDEX usage_events_occurred_idx ON llm_usage.usage_events (tenant_id, occurred_at);
CREATE INDEX usage_events_recorded_brin ON llm_usage.usage_events USING brin (recorded_at);
CREATE INDEX usage_events_unpriced_idx ON llm_usage.usage_events (model)
    WHERE cost_usd IS NULL AND model IS NOT NULL;
COMMENT ON TABLE llm_usage.usage_events IS
'One row per LLM call reported with track_usage(); append-only.  cost_usd is computed from the price valid at occurred_at, NULL when the model has no price.';
COMMENT ON COLUMN llm_usage.usage_events.input_tokens IS 'All input tokens, including cached_input_tokens and cache_write_tokens.';
COMMENT ON COLUMN llm_usage.usage_events.cached_input_tokens IS 'Input tokens read from the prompt cache (billed at the cached rate).';
COMMENT ON COLUMN llm_usage.usage_events.cache_write_tokens IS 'Input tokens written to the prompt cache (billed at the cache-write rate).';
COMMENT ON COLUMN llm_usage.usage_events.recorded_at IS 'When the row was written or last re-priced; aggregate_usage_metrics() finds new work by it.';

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
    PRIMARY KEY (tenant_id, period_type, period_start)
);
COMMENT ON TABLE llm_usage.tenant_usage_metrics IS
'Roll-ups of usage_events per tenant and calendar period (hour, day, month in the tenant''s zone), kept by aggregate_usage_metrics().';
COMMENT ON COLUMN llm_usage.tenant_usage_metrics.error_rate IS 'Share of calls whose result was failure or rate_limited, 0 to 1.';
COMMENT ON COLUMN llm_usage.tenant_usage_metrics.estimated_cost_usd IS 'Sum of the priced calls'' cost; unpriced_calls says how many calls had no price.';

CREATE TABLE llm_usage.aggregation_state (
    period_type text PRIMARY KEY,
    watermark   timestamptz,
    last_run_at timestamptz
);
COMMENT ON TABLE llm_usage.aggregation_state IS
'Per roll-up period type (a row once it first ran): events recorded at or after watermark may not be in the roll-ups yet.';

------------------------------------------------------------------------
-- Provider-reported usage and costs (filled by the collector)
------------------------------------------------------------------------
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
    PRIMARY KEY (tenant_id, usage_id),
    CONSTRAINT provider_usage_natural_key UNIQUE NULLS NOT DISTINCT
        (key_id, endpoint, bucket_start, model, project_id, workspace_id, provider_api_key_id, service_tier, batch)
);
CREATE INDEX provider_usage_bucket_idx ON llm_usage.provider_usage (tenant_id, bucket_start);
COMMENT ON TABLE llm_usage.provider_usage IS
'Token usage as reported by the providers'' organization usage APIs, one row per key, bucket and grouping; re-collecting a window updates rows in place.';
COMMENT ON COLUMN llm_usage.provider_usage.input_tokens IS 'All input tokens: for Anthropic uncached + cache reads + cache writes; OpenAI''s input_tokens as reported.';
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

------------------------------------------------------------------------
-- Audit
------------------------------------------------------------------------
CREATE TABLE llm_usage.audit_events (
    tenant_id  text NOT NULL,
    audit_id   bigint GENERATED ALWAYS AS IDENTITY,
    event_type text NOT NULL,
    action     text NOT NULL,
    result     text NOT NULL DEFAULT 'success'
               CONSTRAINT audit_events_result_check CHECK (result IN ('success', 'failure', 'denied')),
    actor      text NOT NULL DEFAULT session_user,
    role_name  text NOT NULL DEFAULT current_user,
    details    jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (tenant_id, audit_id)
);
CREATE INDEX audit_events_created_idx ON llm_usage.audit_events (tenant_id, created_at);
COMMENT ON TABLE llm_usage.audit_events IS
'Append-only audit log: what was done to or for a tenant, by whom, with what result.  Rows cannot be updated or deleted.';
COMMENT ON COLUMN llm_usage.audit_events.actor IS 'session_user of the session that caused the event.';
COMMENT ON COLUMN llm_usage.audit_events.role_name IS 'The role the action was checked for (current_user as the client set it).';

CREATE FUNCTION llm_usage._audit_events_immutable()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RAISE EXCEPTION 'audit events cannot be changed or deleted'
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'llm_usage.audit_events is append-only.';
END
$$;
COMMENT ON FUNCTION llm_usage._audit_events_immutable() IS 'Internal: trigger keeping audit_events append-only.';

CREATE TRIGGER audit_events_append_only
    BEFORE UPDATE OR DELETE ON llm_usage.audit_events
    FOR EACH ROW EXECUTE FUNCTION llm_usage._audit_events_immutable();
CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON llm_usage.audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION llm_usage._audit_events_immutable();

------------------------------------------------------------------------
-- Credits
------------------------------------------------------------------------
CREATE TABLE llm_usage.credit_balances (
    tenant_id  text PRIMARY KEY REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    balance    numeric NOT NULL DEFAULT 0
               CONSTRAINT credit_balances_balance_check CHECK (balance >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE llm_usage.credit_balances IS 'Prepaid credit balance per tenant (USD); never below zero.';

CREATE TABLE llm_usage.credit_ledger (
    tenant_id     text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    entry_id      bigint GENERATED ALWAYS AS IDENTITY,
    delta         numeric NOT NULL,
    balance_after numeric NOT NULL,
    reason        text NOT NULL,
    ref           text,
    actor         text NOT NULL DEFAULT session_user,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, entry_id)
);
CREATE UNIQUE INDEX credit_ledger_ref_idx ON llm_usage.credit_ledger (tenant_id, ref) WHERE ref IS NOT NULL;
COMMENT ON TABLE llm_usage.credit_ledger IS 'Every change of a credit balance, with the balance after it; a ref is applied at most once per tenant.';

------------------------------------------------------------------------
-- Internal helpers: access checks and argument checks
------------------------------------------------------------------------
CREATE FUNCTION llm_usage._is_admin()
RETURNS boolean
LANGUAGE sql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.pg_has_role(llm_usage._caller(), 'llm_usage_admin', 'USAGE')
$$;
COMMENT ON FUNCTION llm_usage._is_admin() IS
'Internal: whether the calling role is a superuser or has the privileges of llm_usage_admin.';

CREATE FUNCTION llm_usage._my_tenants()
RETURNS text[]
LANGUAGE sql STABLE PARALLEL RESTRICTED SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(array_agg(a.tenant_id), '{}')
      FROM llm_usage.tenant_access a
      JOIN pg_catalog.pg_roles r ON r.oid = a.role_name
     WHERE pg_catalog.pg_has_role(llm_usage._caller(), r.oid, 'USAGE')
$$;
COMMENT ON FUNCTION llm_usage._my_tenants() IS
'Internal: the tenants the calling role was granted with grant_tenant_access() (directly or through a role it has the privileges of).';

CREATE FUNCTION llm_usage._can_access(p_tenant text)
RETURNS boolean
LANGUAGE sql STABLE PARALLEL RESTRICTED
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT llm_usage._is_admin() OR p_tenant = ANY (llm_usage._my_tenants())
$$;
COMMENT ON FUNCTION llm_usage._can_access(text) IS 'Internal: whether the calling role may act on the tenant.';

CREATE FUNCTION llm_usage._require_admin(p_what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT llm_usage._is_admin() THEN
        RAISE EXCEPTION 'permission denied for %', p_what
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role %s is not a member of llm_usage_admin.', llm_usage._caller()::regrole),
                  HINT = 'Only llm_usage_admin (or a superuser) may do this.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._require_admin(text) IS 'Internal: raise 42501 unless the calling role is an llm_usage admin.';

CREATE FUNCTION llm_usage._require_arg(p_value anyelement, p_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._require_arg(anyelement, text) IS 'Internal: raise 22004 when an argument is NULL.';

/*
 * _tenant(tenant_id): the tenant row, after checking that the argument is
 * given, that the caller may act on it and that it exists.  A caller who is
 * not an admin is told "permission denied" for a tenant it has no access to
 * whether or not that tenant exists, so tenant ids do not leak.
 */
CREATE FUNCTION llm_usage._tenant(p_tenant text)
RETURNS llm_usage.tenants
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t llm_usage.tenants;
BEGIN
    IF p_tenant IS NULL THEN
        RAISE EXCEPTION 'tenant_id must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_tenant = '' THEN
        RAISE EXCEPTION 'tenant_id must not be empty'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT llm_usage._can_access(p_tenant) THEN
        RAISE EXCEPTION 'permission denied for tenant "%"', p_tenant
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'An llm_usage admin can grant access with llm_usage.grant_tenant_access().';
    END IF;
    SELECT * INTO t FROM llm_usage.tenants WHERE tenant_id = p_tenant;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" does not exist', p_tenant
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with llm_usage.create_tenant().';
    END IF;
    RETURN t;
END
$$;
COMMENT ON FUNCTION llm_usage._tenant(text) IS
'Internal: the tenant row after the NULL/empty, access and existence checks every tenant function makes.';

CREATE FUNCTION llm_usage._check_quota_type(p_type text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_type IS NULL THEN
        RAISE EXCEPTION 'quota_type must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM llm_usage.quota_types WHERE quota_type = p_type) THEN
        RAISE EXCEPTION 'unknown quota type "%"', p_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Quota types are: ' || (SELECT string_agg(quota_type, ', ' ORDER BY quota_type) FROM llm_usage.quota_types) || '.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_quota_type(text) IS 'Internal: raise 22004/22023 unless the quota type is known.';

CREATE FUNCTION llm_usage._check_period(p_period text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_period IS NULL THEN
        RAISE EXCEPTION 'period must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_period NOT IN ('minute', 'hour', 'day', 'month') THEN
        RAISE EXCEPTION 'unknown quota period "%"', p_period
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Quota periods are: minute, hour, day, month.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_period(text) IS 'Internal: raise 22004/22023 unless the quota period is minute, hour, day or month.';

CREATE FUNCTION llm_usage._rollup_unit(p_period_type text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_period_type IS NULL THEN
        RAISE EXCEPTION 'period_type must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    RETURN CASE p_period_type
               WHEN 'hourly' THEN 'hour'
               WHEN 'daily' THEN 'day'
               WHEN 'monthly' THEN 'month'
           END;
END
$$;
COMMENT ON FUNCTION llm_usage._rollup_unit(text) IS 'Internal: date_trunc unit of a roll-up period type; NULL when the type is unknown.';

CREATE FUNCTION llm_usage._require_rollup_unit(p_period_type text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_unit text := llm_usage._rollup_unit(p_period_type);
BEGIN
    IF v_unit IS NULL THEN
        RAISE EXCEPTION 'unknown period type "%"', p_period_type
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Period types are: hourly, daily, monthly.';
    END IF;
    RETURN v_unit;
END
$$;
COMMENT ON FUNCTION llm_usage._require_rollup_unit(text) IS 'Internal: date_trunc unit of a roll-up period type; raises 22004/22023 when it is missing or unknown.';

CREATE FUNCTION llm_usage._check_count(p_value bigint, p_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass 0 when there were none.';
    END IF;
    IF p_value < 0 OR p_value > 1000000000 THEN
        RAISE EXCEPTION '% must be between 0 and 1000000000, got %', p_name, p_value
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Token counts are per call; a single call of more than a billion tokens is taken to be a bug.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_count(bigint, text) IS 'Internal: raise 22004/22023 unless a token count is between 0 and 10^9.';

CREATE FUNCTION llm_usage._check_amount(p_value numeric, p_name text, p_allow_zero boolean)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_value = 'NaN'::numeric OR p_value < 0 OR (p_value = 0 AND NOT p_allow_zero)
       OR p_value > 1000000000000 THEN
        RAISE EXCEPTION '% must be % and at most 1000000000000, got %', p_name,
                CASE WHEN p_allow_zero THEN 'zero or more' ELSE 'greater than zero' END, p_value
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_amount(numeric, text, boolean) IS 'Internal: raise 22004/22023 unless an amount is a number in [0 or >0, 10^12].';

CREATE FUNCTION llm_usage._check_timezone(p_tz text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_tz IS NULL THEN
        RAISE EXCEPTION 'timezone must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = p_tz) THEN
        RAISE EXCEPTION 'unknown time zone "%"', p_tz
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Use a name from pg_timezone_names, such as UTC or Europe/Berlin.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_timezone(text) IS 'Internal: raise 22004/22023 unless the zone is in pg_timezone_names.';

CREATE FUNCTION llm_usage._check_plan(p_plan text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_plan IS NULL THEN
        RAISE EXCEPTION 'plan must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM llm_usage.plans WHERE plan = p_plan) THEN
        RAISE EXCEPTION 'plan "%" does not exist', p_plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Plans are: ' || (SELECT string_agg(plan, ', ' ORDER BY plan) FROM llm_usage.plans) || '.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_plan(text) IS 'Internal: raise 22004/42704 unless the plan exists.';

CREATE FUNCTION llm_usage._check_range(p_from timestamptz, p_to timestamptz)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM llm_usage._require_arg(p_from, 'from_ts');
    PERFORM llm_usage._require_arg(p_to, 'to_ts');
    IF p_to < p_from THEN
        RAISE EXCEPTION 'to_ts (%) is before from_ts (%)', p_to, p_from
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_range(timestamptz, timestamptz) IS 'Internal: raise 22004/22023 unless [from_ts, to_ts] is a range.';

CREATE FUNCTION llm_usage._check_max_rows(p_rows integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM llm_usage._require_arg(p_rows, 'max_rows');
    IF p_rows < 1 OR p_rows > 10000 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 10000, got %', p_rows
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_max_rows(integer) IS 'Internal: raise 22004/22023 unless max_rows is between 1 and 10000.';

CREATE FUNCTION llm_usage._check_days(p_days integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM llm_usage._require_arg(p_days, 'days');
    IF p_days < 1 OR p_days > 3660 THEN
        RAISE EXCEPTION 'days must be between 1 and 3660, got %', p_days
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_days(integer) IS 'Internal: raise 22004/22023 unless days is between 1 and 3660.';

CREATE FUNCTION llm_usage._check_object(p_value jsonb, p_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'Pass ''{}'' for none.';
    END IF;
    IF jsonb_typeof(p_value) <> 'object' THEN
        RAISE EXCEPTION '% must be a JSON object, got a JSON %', p_name, jsonb_typeof(p_value)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(p_value::text) > 65536 THEN
        RAISE EXCEPTION '% is larger than 64 kB', p_name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_object(jsonb, text) IS 'Internal: raise 22004/22023 unless the value is a JSON object of at most 64 kB.';

CREATE FUNCTION llm_usage._check_text(p_value text, p_name text, p_max integer)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_value IS NULL THEN
        RAISE EXCEPTION '% must not be NULL', p_name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF btrim(p_value) = '' OR length(p_value) > p_max THEN
        RAISE EXCEPTION '% must be between 1 and % characters and not blank', p_name, p_max
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_text(text, text, integer) IS 'Internal: raise 22004/22023 unless the text is non-blank and at most p_max characters.';

/*
 * _period_bounds(period, at, tz): the calendar period containing "at", in
 * zone tz.  Minutes and hours are fixed lengths of absolute time (an hour
 * boundary is a whole local hour even in zones with :30 offsets);
 * days and months are local calendar units, so a day is 23 or 25 hours long
 * across a DST change.
 */
CREATE FUNCTION llm_usage._period_bounds(p_period text, p_at timestamptz, p_tz text,
                                         OUT period_start timestamptz, OUT period_end timestamptz)
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT s,
           CASE p_period
               WHEN 'minute' THEN s + interval '1 minute'
               WHEN 'hour' THEN s + interval '1 hour'
               WHEN 'day' THEN ((s AT TIME ZONE p_tz) + interval '1 day') AT TIME ZONE p_tz
               WHEN 'month' THEN ((s AT TIME ZONE p_tz) + interval '1 month') AT TIME ZONE p_tz
           END
      FROM (SELECT date_trunc(p_period, p_at, p_tz) AS s) b
$$;
COMMENT ON FUNCTION llm_usage._period_bounds(text, timestamptz, text) IS
'Internal: start and end of the minute, hour, day or month containing p_at, in zone p_tz.';

CREATE FUNCTION llm_usage._remaining(p_limit numeric, p_used numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p_limit IS NOT NULL THEN greatest(p_limit - p_used, 0) END
$$;
COMMENT ON FUNCTION llm_usage._remaining(numeric, numeric) IS 'Internal: what is left of a limit (never negative); NULL for an unlimited quota.';

CREATE FUNCTION llm_usage._effective_quotas(p_tenant text, p_plan text)
RETURNS TABLE (quota_type text, period text, quota_limit numeric, source text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(o.quota_type, p.quota_type),
           coalesce(o.period, p.period),
           CASE WHEN o.tenant_id IS NOT NULL THEN o.quota_limit ELSE p.quota_limit END,
           CASE WHEN o.tenant_id IS NOT NULL THEN 'override' ELSE 'plan' END
      FROM (SELECT * FROM llm_usage.plan_quotas WHERE plan = p_plan) p
      FULL JOIN (SELECT * FROM llm_usage.tenant_quota_overrides WHERE tenant_id = p_tenant) o
        ON o.quota_type = p.quota_type AND o.period = p.period
$$;
COMMENT ON FUNCTION llm_usage._effective_quotas(text, text) IS
'Internal: the quotas in force for a tenant: its plan''s, replaced or extended by its overrides.';

------------------------------------------------------------------------
-- Plans
------------------------------------------------------------------------
CREATE FUNCTION llm_usage._shipped_rows_read_only()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF OLD.is_shipped THEN
        RAISE EXCEPTION 'shipped plan "%" is read-only', OLD.plan
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'Make a plan of your own with llm_usage.create_plan(''my_plan'', copy_from => ''' || OLD.plan || ''') and move tenants to it.';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END
$$;
COMMENT ON FUNCTION llm_usage._shipped_rows_read_only() IS 'Internal: trigger keeping the shipped plans and their quotas unchanged (they are recreated, not dumped).';

CREATE TRIGGER plans_shipped_read_only
    BEFORE UPDATE OR DELETE ON llm_usage.plans
    FOR EACH ROW EXECUTE FUNCTION llm_usage._shipped_rows_read_only();
CREATE TRIGGER plan_quotas_shipped_read_only
    BEFORE UPDATE OR DELETE ON llm_usage.plan_quotas
    FOR EACH ROW EXECUTE FUNCTION llm_usage._shipped_rows_read_only();

INSERT INTO llm_usage.plans (plan, description, is_shipped) VALUES
    ('trial',      'Evaluation: small daily allowances, $5 a month',                   true),
    ('starter',    'Small production apps: per-minute rate limits and daily budgets', true),
    ('pro',        'Growing apps: high rate limits, large daily budgets',             true),
    ('enterprise', 'Rate limits only; token, cost and message volume unlimited',      true);

INSERT INTO llm_usage.plan_quotas (plan, quota_type, period, quota_limit, is_shipped) VALUES
    ('trial',      'api_calls',     'minute',        10, true),
    ('trial',      'api_calls',     'day',          500, true),
    ('trial',      'tokens',        'day',       100000, true),
    ('trial',      'cost_usd',      'month',          5, true),
    ('trial',      'chat_messages', 'day',          200, true),
    ('trial',      'embeddings',    'day',         1000, true),
    ('starter',    'api_calls',     'minute',        60, true),
    ('starter',    'api_calls',     'day',        10000, true),
    ('starter',    'tokens',        'minute',    100000, true),
    ('starter',    'tokens',        'day',      2000000, true),
    ('starter',    'cost_usd',      'month',         50, true),
    ('starter',    'chat_messages', 'day',         5000, true),
    ('starter',    'embeddings',    'day',        50000, true),
    ('pro',        'api_calls',     'minute',       600, true),
    ('pro',        'api_calls',     'day',       200000, true),
    ('pro',        'tokens',        'minute',   1000000, true),
    ('pro',        'tokens',        'day',     50000000, true),
    ('pro',        'cost_usd',      'month',       1000, true),
    ('pro',        'chat_messages', 'day',       100000, true),
    ('pro',        'embeddings',    'day',      1000000, true),
    ('enterprise', 'api_calls',     'minute',      6000, true),
    ('enterprise', 'tokens',        'minute',  10000000, true),
    ('enterprise', 'tokens',        'month',       NULL, true),
    ('enterprise', 'cost_usd',      'month',       NULL, true);

CREATE FUNCTION llm_usage.create_plan(plan text, description text DEFAULT NULL, copy_from text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_plan text := $1;
    p_copy text := $3;
BEGIN
    PERFORM llm_usage._require_admin('create_plan');
    PERFORM llm_usage._require_arg(p_plan, 'plan');
    IF p_plan !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid plan name "%"', p_plan
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A plan name starts with a lower-case letter and has at most 63 lower-case letters, digits, _ or -.';
    END IF;
    IF EXISTS (SELECT 1 FROM llm_usage.plans WHERE plan = p_plan) THEN
        RAISE EXCEPTION 'plan "%" already exists', p_plan
            USING ERRCODE = 'duplicate_object';
    END IF;
    IF p_copy IS NOT NULL THEN
        PERFORM llm_usage._check_plan(p_copy);
    END IF;
    INSERT INTO llm_usage.plans (plan, description) VALUES (p_plan, $2);
    INSERT INTO llm_usage.plan_quotas (plan, quota_type, period, quota_limit)
    SELECT p_plan, q.quota_type, q.period, q.quota_limit
      FROM llm_usage.plan_quotas q
     WHERE q.plan = p_copy;
END
$$;
COMMENT ON FUNCTION llm_usage.create_plan(text, text, text) IS
'Creates a plan, optionally with a copy of another plan''s quotas.  Admin only.';

CREATE FUNCTION llm_usage.set_plan_quota(plan text, quota_type text, quota_limit numeric, period text DEFAULT 'day')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
    PERFORM llm_usage._require_admin('set_plan_quota');
    PERFORM llm_usage._check_plan($1);
    PERFORM llm_usage._check_quota_type($2);
    IF $3 IS NOT NULL THEN
        PERFORM llm_usage._check_amount($3, 'quota_limit', true);
    END IF;
    PERFORM llm_usage._check_period($4);
    INSERT INTO llm_usage.plan_quotas AS q (plan, quota_type, period, quota_limit)
    VALUES ($1, $2, $4, $3)
    ON CONFLICT (plan, quota_type, period) DO UPDATE SET quota_limit = EXCLUDED.quota_limit;
END
$$;
COMMENT ON FUNCTION llm_usage.set_plan_quota(text, text, numeric, text) IS
'Sets a plan''s limit for a quota type and period (NULL = unlimited but counted).  Shipped plans are read-only.  Admin only.';

------------------------------------------------------------------------
-- Tenants and access
------------------------------------------------------------------------
CREATE FUNCTION llm_usage.create_tenant(tenant_id text, plan text DEFAULT 'trial', timezone text DEFAULT 'UTC')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_tenant text := $1;
BEGIN
    PERFORM llm_usage._require_admin('create_tenant');
    IF p_tenant IS NULL THEN
        RAISE EXCEPTION 'tenant_id must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF p_tenant !~ '^[[:graph:]]{1,128}$' THEN
        RAISE EXCEPTION 'invalid tenant_id "%"', p_tenant
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A tenant_id has 1 to 128 printable characters and no spaces.';
    END IF;
    PERFORM llm_usage._check_plan($2);
    PERFORM llm_usage._check_timezone($3);
    INSERT INTO llm_usage.tenants (tenant_id, plan, timezone)
    VALUES (p_tenant, $2, $3)
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" already exists', p_tenant
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Change its plan or time zone with llm_usage.update_tenant().';
    END IF;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (p_tenant, 'admin', 'create_tenant', llm_usage._caller()::regrole::text,
            jsonb_build_object('plan', $2, 'timezone', $3));
END
$$;
COMMENT ON FUNCTION llm_usage.create_tenant(text, text, text) IS
'Creates a tenant on a plan (default trial) with the time zone its quota periods and roll-ups are aligned in (default UTC).  Admin only.';

CREATE FUNCTION llm_usage.update_tenant(tenant_id text, plan text DEFAULT NULL, timezone text DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('update_tenant');
    t := llm_usage._tenant($1);
    IF $2 IS NULL AND $3 IS NULL THEN
        RAISE EXCEPTION 'nothing to change'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass a plan, a timezone, or both.';
    END IF;
    IF $2 IS NOT NULL THEN
        PERFORM llm_usage._check_plan($2);
    END IF;
    IF $3 IS NOT NULL THEN
        PERFORM llm_usage._check_timezone($3);
    END IF;
    UPDATE llm_usage.tenants
       SET plan = coalesce($2, plan), timezone = coalesce($3, timezone), updated_at = now()
     WHERE tenant_id = t.tenant_id;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'admin', 'update_tenant', llm_usage._caller()::regrole::text,
            jsonb_build_object('old_plan', t.plan, 'plan', coalesce($2, t.plan),
                               'old_timezone', t.timezone, 'timezone', coalesce($3, t.timezone)));
END
$$;
COMMENT ON FUNCTION llm_usage.update_tenant(text, text, text) IS
'Moves a tenant to another plan and/or time zone; the new limits apply to the next enforce_quota() call.  Admin only.';

CREATE FUNCTION llm_usage.grant_tenant_access(role_name regrole, tenant_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('grant_tenant_access');
    PERFORM llm_usage._require_arg($1, 'role_name');
    t := llm_usage._tenant($2);
    INSERT INTO llm_usage.tenant_access (tenant_id, role_name)
    VALUES (t.tenant_id, $1)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
        INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
        VALUES (t.tenant_id, 'security', 'grant_tenant_access', llm_usage._caller()::regrole::text,
                jsonb_build_object('grantee', $1::text));
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage.grant_tenant_access(regrole, text) IS
'Lets a role (and every role that has its privileges) act on a tenant through the llm_usage functions and see its rows.  Admin only.';

CREATE FUNCTION llm_usage.revoke_tenant_access(role_name regrole, tenant_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('revoke_tenant_access');
    PERFORM llm_usage._require_arg($1, 'role_name');
    t := llm_usage._tenant($2);
    DELETE FROM llm_usage.tenant_access a WHERE a.tenant_id = t.tenant_id AND a.role_name = $1;
    IF FOUND THEN
        INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
        VALUES (t.tenant_id, 'security', 'revoke_tenant_access', llm_usage._caller()::regrole::text,
                jsonb_build_object('grantee', $1::text));
    ELSE
        RAISE NOTICE 'role % had no access to tenant "%"', $1, t.tenant_id;
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage.revoke_tenant_access(regrole, text) IS
'Takes back a role''s access to a tenant (a NOTICE if it had none).  Admin only.';

------------------------------------------------------------------------
-- Quotas
------------------------------------------------------------------------
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

/*
 * _consume(tenant, types, amounts): atomic, all-or-nothing check-and-consume
 * of every quota in force for the given types.
 *
 * Locking: the counter rows involved are locked FOR UPDATE in one global
 * order (quota type, then minute < hour < day < month), so two callers never
 * wait on each other in a cycle.  Under READ COMMITTED a locked row is read
 * in its latest committed version, so the check sees every admission that
 * committed before, and no other admission can commit until this
 * transaction ends: the sum admitted in a period never exceeds the limit.
 * Under REPEATABLE READ or SERIALIZABLE a concurrent admission makes this
 * call fail with a serialization error, which the client retries.
 *
 * A counter whose period_start is older than the current period counts as
 * 0 (the period rolled over).  One that is newer (another session's clock
 * already moved on) is consumed in that newer period, which can only make
 * admission stricter.
 *
 * Returns one _quota_check per quota; "used" is after consumption when
 * every quota fits, and unchanged when any does not.
 */
CREATE FUNCTION llm_usage._consume(t llm_usage.tenants, p_types text[], p_amounts numeric[])
RETURNS SETOF llm_usage._quota_check
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now    timestamptz := clock_timestamp();
    v_req    llm_usage._quota_check[];
    v_chk    llm_usage._quota_check[];
    v_ok     boolean;
BEGIN
    SELECT array_agg(ROW(q.quota_type, q.period, q.quota_limit, a.amount,
                         b.period_start, b.period_end, NULL, NULL)::llm_usage._quota_check
                     ORDER BY q.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], q.period))
      INTO v_req
      FROM llm_usage._effective_quotas(t.tenant_id, t.plan) q
      JOIN unnest(p_types, p_amounts) AS a(quota_type, amount) ON a.quota_type = q.quota_type
      CROSS JOIN LATERAL llm_usage._period_bounds(q.period, v_now, t.timezone) b;

    IF v_req IS NULL THEN
        RETURN;                 -- no quota in force for these types
    END IF;

    FOR i IN 1..2 LOOP
        SELECT array_agg(ROW(x.quota_type, x.period, x.quota_limit, x.requested, x.period_start, x.period_end,
                             x.used, NULL)::llm_usage._quota_check
                         ORDER BY x.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], x.period))
          INTO v_chk
          FROM (SELECT r.quota_type, r.period, r.quota_limit, r.requested, r.period_start, r.period_end,
                       CASE WHEN c.period_start < r.period_start THEN 0 ELSE c.used END AS used
                  FROM unnest(v_req) r
                  JOIN llm_usage.quota_counters c
                    ON c.tenant_id = t.tenant_id AND c.quota_type = r.quota_type AND c.period = r.period
                 ORDER BY r.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], r.period)
                   FOR UPDATE OF c) x;
        EXIT WHEN cardinality(v_chk) = cardinality(v_req);
        IF i = 2 THEN
            RAISE EXCEPTION 'quota counters of tenant "%" disappeared while being locked', t.tenant_id
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        -- first use of some counter: create it, then lock again (in order)
        INSERT INTO llm_usage.quota_counters (tenant_id, quota_type, period, period_start, used)
        SELECT t.tenant_id, r.quota_type, r.period, r.period_start, 0
          FROM unnest(v_req) r
        ON CONFLICT DO NOTHING;
    END LOOP;

    SELECT array_agg(ROW(c.quota_type, c.period, c.quota_limit, c.requested, c.period_start, c.period_end, c.used,
                         c.quota_limit IS NULL OR c.used + c.requested <= c.quota_limit)::llm_usage._quota_check
                     ORDER BY c.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], c.period)),
           bool_and(c.quota_limit IS NULL OR c.used + c.requested <= c.quota_limit)
      INTO v_chk, v_ok
      FROM unnest(v_chk) c;

    IF v_ok THEN
        UPDATE llm_usage.quota_counters c
           SET used = r.used + r.requested,
               period_start = greatest(c.period_start, r.period_start),
               updated_at = v_now
          FROM unnest(v_chk) r
         WHERE c.tenant_id = t.tenant_id AND c.quota_type = r.quota_type AND c.period = r.period;
        RETURN QUERY
            SELECT r.quota_type, r.period, r.quota_limit, r.requested, r.period_start, r.period_end,
                   r.used + r.requested, r.fits
              FROM unnest(v_chk) r;
        RETURN;
    END IF;

    IF coalesce(current_setting('llm_usage.audit_quota_denials', true), 'on') = 'on' THEN
        INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, result, role_name, details)
        SELECT t.tenant_id, 'quota', 'quota_exceeded', 'denied', llm_usage._caller()::regrole::text,
               jsonb_build_object('requested', jsonb_object_agg(r.quota_type || '/' || r.period, r.requested),
                                  'denied', jsonb_agg(jsonb_build_object('quota_type', r.quota_type,
                                                                         'period', r.period,
                                                                         'quota_limit', r.quota_limit,
                                                                         'used', r.used,
                                                                         'period_start', r.period_start))
                                            FILTER (WHERE NOT r.fits))
          FROM unnest(v_chk) r;
    END IF;
    RETURN QUERY SELECT * FROM unnest(v_chk);
END
$$;
COMMENT ON FUNCTION llm_usage._consume(llm_usage.tenants, text[], numeric[]) IS
'Internal: atomic all-or-nothing check-and-consume of the quotas in force for some types (lock order and guarantees in the source).';

CREATE FUNCTION llm_usage.enforce_quota(tenant_id text, quota_type text, amount numeric DEFAULT 1)
RETURNS TABLE (allowed boolean, quota_limit numeric, used numeric, remaining numeric, resets_at timestamptz)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t     llm_usage.tenants := llm_usage._tenant($1);
    v_res llm_usage._quota_check[];
    v_ok  boolean;
    b     llm_usage._quota_check;
BEGIN
    PERFORM llm_usage._check_quota_type($2);
    PERFORM llm_usage._check_amount($3, 'amount', true);

    SELECT array_agg(c), bool_and(c.fits) INTO v_res, v_ok
      FROM llm_usage._consume(t, ARRAY[$2], ARRAY[$3]) c;
    IF v_res IS NULL THEN
        RETURN QUERY SELECT true, NULL::numeric, NULL::numeric, NULL::numeric, NULL::timestamptz;
        RETURN;
    END IF;
    -- the binding quota: the one that denied, else the one with least left
    SELECT r.* INTO b
      FROM unnest(v_res) r
     ORDER BY r.fits, r.quota_limit - r.used NULLS LAST,
              array_position(ARRAY['minute', 'hour', 'day', 'month'], r.period)
     LIMIT 1;
    RETURN QUERY SELECT v_ok, b.quota_limit, b.used, llm_usage._remaining(b.quota_limit, b.used), b.period_end;
END
$$;
COMMENT ON FUNCTION llm_usage.enforce_quota(text, text, numeric) IS
'Atomic check-and-consume before an LLM call: when allowed, the amount is counted against every period of that quota type; when not, nothing is.  Returns the binding quota.  NULL limit = unlimited.';

CREATE FUNCTION llm_usage.enforce_quotas(tenant_id text, amounts jsonb)
RETURNS TABLE (allowed boolean, results jsonb)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t         llm_usage.tenants := llm_usage._tenant($1);
    p_amounts jsonb := $2;
    v_types   text[];
    v_values  numeric[];
    v_res     llm_usage._quota_check[];
    v_ok      boolean;
    k         text;
    v         jsonb;
BEGIN
    IF p_amounts IS NULL THEN
        RAISE EXCEPTION 'amounts must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF jsonb_typeof(p_amounts) <> 'object' OR p_amounts = '{}' THEN
        RAISE EXCEPTION 'amounts must be a non-empty JSON object of quota type to amount'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example ''{"tokens": 500, "api_calls": 1}''.';
    END IF;
    FOR k, v IN SELECT * FROM jsonb_each(p_amounts) LOOP
        PERFORM llm_usage._check_quota_type(k);
        IF jsonb_typeof(v) <> 'number' THEN
            RAISE EXCEPTION 'amount for "%" must be a JSON number, got %', k, v
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM llm_usage._check_amount(v::text::numeric, 'amount for "' || k || '"', true);
        v_types := v_types || k;
        v_values := v_values || v::text::numeric;
    END LOOP;

    SELECT array_agg(c), coalesce(bool_and(c.fits), true) INTO v_res, v_ok
      FROM llm_usage._consume(t, v_types, v_values) c;

    RETURN QUERY
    SELECT v_ok,
           jsonb_object_agg(a.quota_type,
               CASE WHEN b.quota_type IS NULL THEN
                   jsonb_build_object('allowed', true, 'requested', a.amount, 'period', NULL,
                                      'quota_limit', NULL, 'used', NULL, 'remaining', NULL, 'resets_at', NULL)
               ELSE
                   jsonb_build_object('allowed', b.all_fit, 'requested', a.amount, 'period', b.period,
                                      'quota_limit', b.quota_limit, 'used', b.used,
                                      'remaining', llm_usage._remaining(b.quota_limit, b.used), 'resets_at', b.period_end)
               END)
      FROM unnest(v_types, v_values) AS a(quota_type, amount)
      LEFT JOIN LATERAL (
            SELECT r.*, bool_and(r.fits) OVER () AS all_fit
              FROM unnest(v_res) r
             WHERE r.quota_type = a.quota_type
             ORDER BY r.fits, r.quota_limit - r.used NULLS LAST,
                      array_position(ARRAY['minute', 'hour', 'day', 'month'], r.period)
             LIMIT 1) b ON true;
END
$$;
COMMENT ON FUNCTION llm_usage.enforce_quotas(text, jsonb) IS
'All-or-nothing check-and-consume over several quota types, e.g. ''{"tokens":500,"api_calls":1}'': either every amount is counted or none is.  results has the binding quota per type.';

CREATE FUNCTION llm_usage.quota_status(tenant_id text)
RETURNS TABLE (quota_type text, period text, quota_limit numeric, used numeric, remaining numeric,
               percentage numeric, resets_at timestamptz, source text)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t     llm_usage.tenants := llm_usage._tenant($1);
    v_now timestamptz := clock_timestamp();
BEGIN
    RETURN QUERY
    SELECT s.quota_type, s.period, s.quota_limit, s.used,
           llm_usage._remaining(s.quota_limit, s.used),
           CASE WHEN s.quota_limit IS NULL THEN NULL
                WHEN s.quota_limit = 0 THEN 100::numeric
                ELSE round(100 * s.used / s.quota_limit, 2) END,
           s.period_end, s.source
      FROM (SELECT q.quota_type, q.period, q.quota_limit, q.source, b.period_end,
                   coalesce(CASE WHEN c.period_start >= b.period_start THEN c.used END, 0) AS used
              FROM llm_usage._effective_quotas(t.tenant_id, t.plan) q
             CROSS JOIN LATERAL llm_usage._period_bounds(q.period, v_now, t.timezone) b
              LEFT JOIN llm_usage.quota_counters c
                ON c.tenant_id = t.tenant_id AND c.quota_type = q.quota_type AND c.period = q.period) s
     ORDER BY s.quota_type, array_position(ARRAY['minute', 'hour', 'day', 'month'], s.period);
END
$$;
COMMENT ON FUNCTION llm_usage.quota_status(text) IS
'Every quota in force for a tenant with its use in the current period (tenant''s zone), what is left, percent used and when it resets.';

CREATE FUNCTION llm_usage.set_custom_quota(tenant_id text, quota_type text, quota_limit numeric, period text DEFAULT 'day')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('set_custom_quota');
    t := llm_usage._tenant($1);
    PERFORM llm_usage._check_quota_type($2);
    IF $3 IS NOT NULL THEN
        PERFORM llm_usage._check_amount($3, 'quota_limit', true);
    END IF;
    PERFORM llm_usage._check_period($4);
    INSERT INTO llm_usage.tenant_quota_overrides AS o (tenant_id, quota_type, period, quota_limit)
    VALUES (t.tenant_id, $2, $4, $3)
    ON CONFLICT (tenant_id, quota_type, period)
    DO UPDATE SET quota_limit = EXCLUDED.quota_limit, updated_at = now();
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'quota', 'set_custom_quota', llm_usage._caller()::regrole::text,
            jsonb_build_object('quota_type', $2, 'period', $4, 'quota_limit', $3));
END
$$;
COMMENT ON FUNCTION llm_usage.set_custom_quota(text, text, numeric, text) IS
'Per-tenant override of the plan''s limit for a quota type and period (default day); NULL = unlimited.  Takes effect on the next call.  Admin only.';

CREATE FUNCTION llm_usage.clear_custom_quota(tenant_id text, quota_type text, period text DEFAULT 'day')
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('clear_custom_quota');
    t := llm_usage._tenant($1);
    PERFORM llm_usage._check_quota_type($2);
    PERFORM llm_usage._check_period($3);
    DELETE FROM llm_usage.tenant_quota_overrides o
     WHERE o.tenant_id = t.tenant_id AND o.quota_type = $2 AND o.period = $3;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'tenant "%" has no custom % quota per %', t.tenant_id, $2, $3
            USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'quota', 'clear_custom_quota', llm_usage._caller()::regrole::text,
            jsonb_build_object('quota_type', $2, 'period', $3));
END
$$;
COMMENT ON FUNCTION llm_usage.clear_custom_quota(text, text, text) IS
'Removes a per-tenant override so the plan''s limit applies again.  Admin only.';

------------------------------------------------------------------------
-- Prices and cost
------------------------------------------------------------------------
CREATE FUNCTION llm_usage._price_at(p_model text, p_at timestamptz)
RETURNS llm_usage.model_price_versions
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT v.*
      FROM llm_usage.model_price_versions v
     WHERE v.model = p_model AND v.valid_from <= p_at
     ORDER BY v.valid_from DESC
     LIMIT 1
$$;
COMMENT ON FUNCTION llm_usage._price_at(text, timestamptz) IS 'Internal: the price version of a model valid at a time (NULL fields when there is none).';

/*
 * _cost: USD for one call.  Cached and cache-write tokens are part of the
 * input tokens and are billed at their own rates instead of the input rate
 * (the input rate where a model has no such rate).  Above 200k input tokens
 * the long-context input and output rates apply where the model has them.
 * numeric throughout, so the result is exact.
 */
CREATE FUNCTION llm_usage._cost(p llm_usage.model_price_versions, p_input bigint, p_output bigint,
                                p_cached bigint, p_cache_write bigint)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN p.price_id IS NULL THEN NULL ELSE
           trim_scale((
                 (p_input - p_cached - p_cache_write)
                     * CASE WHEN p_input > 200000 AND p.input_above_200k_usd_per_mtok IS NOT NULL
                            THEN p.input_above_200k_usd_per_mtok ELSE p.input_usd_per_mtok END
               + p_cached * coalesce(p.cached_input_usd_per_mtok, p.input_usd_per_mtok)
               + p_cache_write * coalesce(p.cache_write_usd_per_mtok, p.input_usd_per_mtok)
               + p_output
                     * CASE WHEN p_input > 200000 AND p.output_above_200k_usd_per_mtok IS NOT NULL
                            THEN p.output_above_200k_usd_per_mtok ELSE p.output_usd_per_mtok END
           ) * 0.000001) END
$$;
COMMENT ON FUNCTION llm_usage._cost(llm_usage.model_price_versions, bigint, bigint, bigint, bigint) IS
'Internal: exact USD cost of one call at a given price version.';

CREATE FUNCTION llm_usage._check_token_split(p_input bigint, p_cached bigint, p_cache_write bigint)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_cached + p_cache_write > p_input THEN
        RAISE EXCEPTION 'cached_input_tokens (%) plus cache_write_tokens (%) exceed input_tokens (%)',
                p_cached, p_cache_write, p_input
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'input_tokens counts all input, including tokens read from or written to the cache.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_token_split(bigint, bigint, bigint) IS 'Internal: raise 22023 when cached plus cache-write tokens exceed the input tokens.';

CREATE FUNCTION llm_usage.calculate_cost(model text, input_tokens bigint, output_tokens bigint,
                                         cached_input_tokens bigint DEFAULT 0, at timestamptz DEFAULT now(),
                                         cache_write_tokens bigint DEFAULT 0)
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p llm_usage.model_price_versions;
BEGIN
    PERFORM llm_usage._require_arg($1, 'model');
    PERFORM llm_usage._check_count($2, 'input_tokens');
    PERFORM llm_usage._check_count($3, 'output_tokens');
    PERFORM llm_usage._check_count($4, 'cached_input_tokens');
    PERFORM llm_usage._check_count($6, 'cache_write_tokens');
    PERFORM llm_usage._check_token_split($2, $4, $6);
    PERFORM llm_usage._require_arg($5, 'at');
    p := llm_usage._price_at($1, $5);
    IF p.price_id IS NULL THEN
        RAISE EXCEPTION 'no price for model "%" at %', $1, $5
            USING ERRCODE = 'undefined_object',
                  HINT = CASE WHEN EXISTS (SELECT 1 FROM llm_usage.model_price_versions v WHERE v.model = $1)
                              THEN 'The model''s first price starts later; see llm_usage.model_prices.'
                              ELSE 'Add one with llm_usage.set_model_price(); llm_usage.model_prices lists the known models.' END;
    END IF;
    RETURN llm_usage._cost(p, $2, $3, $4, $6);
END
$$;
COMMENT ON FUNCTION llm_usage.calculate_cost(text, bigint, bigint, bigint, timestamptz, bigint) IS
'USD cost of one call at the price valid at "at".  Cached input (and cache-write) tokens are part of input_tokens and billed at their own rates.  Errors on an unknown model or bad counts.';

CREATE FUNCTION llm_usage.set_model_price(provider text, model text,
                                          input_usd_per_mtok numeric, output_usd_per_mtok numeric,
                                          cached_input_usd_per_mtok numeric DEFAULT NULL,
                                          cache_write_usd_per_mtok numeric DEFAULT NULL,
                                          valid_from timestamptz DEFAULT now())
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_provider text := $1;
    p_model    text := $2;
    p_from     timestamptz := $7;
    v_first    llm_usage.model_price_versions;
    v_last     llm_usage.model_price_versions;
    v_row      llm_usage.model_price_versions;
    v_next     timestamptz;
    v_priced   bigint;
BEGIN
    PERFORM llm_usage._require_admin('set_model_price');
    PERFORM llm_usage._require_arg(p_provider, 'provider');
    IF p_provider !~ '^[a-z][a-z0-9_-]{0,62}$' THEN
        RAISE EXCEPTION 'invalid provider "%"', p_provider
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A provider is a lower-case name such as openai, anthropic or custom.';
    END IF;
    PERFORM llm_usage._require_arg(p_model, 'model');
    IF p_model !~ '^[[:graph:]]{1,200}$' THEN
        RAISE EXCEPTION 'invalid model name "%"', p_model
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A model name has 1 to 200 printable characters and no spaces, as sent to the provider.';
    END IF;
    PERFORM llm_usage._check_amount($3, 'input_usd_per_mtok', true);
    PERFORM llm_usage._check_amount($4, 'output_usd_per_mtok', true);
    IF $5 IS NOT NULL THEN
        PERFORM llm_usage._check_amount($5, 'cached_input_usd_per_mtok', true);
    END IF;
    IF $6 IS NOT NULL THEN
        PERFORM llm_usage._check_amount($6, 'cache_write_usd_per_mtok', true);
    END IF;
    PERFORM llm_usage._require_arg(p_from, 'valid_from');

    PERFORM pg_advisory_xact_lock(hashtext('llm_usage.model_price'), hashtext(p_model));
    SELECT * INTO v_first FROM llm_usage.model_price_versions v WHERE v.model = p_model ORDER BY v.valid_from LIMIT 1;
    SELECT * INTO v_last FROM llm_usage.model_price_versions v WHERE v.model = p_model ORDER BY v.valid_from DESC LIMIT 1;

    IF v_last.price_id IS NOT NULL THEN
        IF v_last.provider <> p_provider THEN
            RAISE EXCEPTION 'model "%" is priced under provider "%", not "%"', p_model, v_last.provider, p_provider
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        IF p_from >= v_first.valid_from AND (p_from <= v_last.valid_from OR p_from < now()) THEN
            RAISE EXCEPTION 'a price for "%" valid from % would rewrite history', p_model, p_from
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Its current price is valid from %s; costs already computed must keep their price.', v_last.valid_from),
                      HINT = 'Use a valid_from of now() or later (and after the latest version), or one before the model''s first price to fill a period it had none.';
        END IF;
    END IF;

    INSERT INTO llm_usage.model_price_versions
        (provider, model, mode, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,
         cache_write_usd_per_mtok, valid_from)
    VALUES (p_provider, p_model, v_last.mode, $3, $4, $5, $6, p_from)
    RETURNING * INTO v_row;

    -- Calls tracked while the model had no price get one now, where this
    -- version covers them; calls that already have a cost are never touched.
    SELECT min(v.valid_from) INTO v_next
      FROM llm_usage.model_price_versions v
     WHERE v.model = p_model AND v.valid_from > p_from;
    UPDATE llm_usage.usage_events e
       SET cost_usd = llm_usage._cost(v_row, e.input_tokens, e.output_tokens, e.cached_input_tokens, e.cache_write_tokens),
           price_id = v_row.price_id,
           provider = v_row.provider,
           recorded_at = clock_timestamp()
     WHERE e.model = p_model AND e.cost_usd IS NULL
       AND e.occurred_at >= p_from AND (v_next IS NULL OR e.occurred_at < v_next);
    GET DIAGNOSTICS v_priced = ROW_COUNT;
    IF v_priced > 0 THEN
        RAISE NOTICE 'priced % earlier call(s) of model "%" that had no price', v_priced, p_model;
    END IF;
    RETURN v_row.price_id;
END
$$;
COMMENT ON FUNCTION llm_usage.set_model_price(text, text, numeric, numeric, numeric, numeric, timestamptz) IS
'Adds a price version (USD per million tokens) valid from valid_from (default now); the previous version ends there, so costs already computed keep their price.  Calls tracked while the model had no price are priced.  Admin only.';

CREATE FUNCTION llm_usage.unpriced_models()
RETURNS TABLE (model text, calls bigint, tenants bigint, input_tokens numeric, output_tokens numeric,
               first_seen timestamptz, last_seen timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT e.model, count(*), count(DISTINCT e.tenant_id), sum(e.input_tokens), sum(e.output_tokens),
           min(e.occurred_at), max(e.occurred_at)
      FROM llm_usage.usage_events e
     WHERE e.cost_usd IS NULL AND e.model IS NOT NULL
       AND llm_usage._can_access(e.tenant_id)
     GROUP BY e.model
     ORDER BY count(*) DESC, e.model
$$;
COMMENT ON FUNCTION llm_usage.unpriced_models() IS
'Models used in tracked calls that had no price at the time (their cost is NULL, not zero), with how much they were used.  Fix with set_model_price().';

------------------------------------------------------------------------
-- Tracking
------------------------------------------------------------------------
CREATE FUNCTION llm_usage.track_usage(tenant_id text, event_type text, model text DEFAULT NULL,
                                      input_tokens bigint DEFAULT 0, output_tokens bigint DEFAULT 0,
                                      cached_input_tokens bigint DEFAULT 0, latency_ms integer DEFAULT NULL,
                                      status_code integer DEFAULT 200, result text DEFAULT 'success',
                                      metadata jsonb DEFAULT '{}', request_id text DEFAULT NULL,
                                      occurred_at timestamptz DEFAULT now(),
                                      cache_write_tokens bigint DEFAULT 0)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t       llm_usage.tenants := llm_usage._tenant($1);
    p       llm_usage.model_price_versions;
    v_id    bigint;
BEGIN
    PERFORM llm_usage._require_arg($2, 'event_type');
    IF $2 NOT IN ('chat', 'completion', 'embedding', 'image', 'audio', 'moderation', 'tool', 'other') THEN
        RAISE EXCEPTION 'unknown event_type "%"', $2
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Event types are: chat, completion, embedding, image, audio, moderation, tool, other.';
    END IF;
    IF $3 IS NOT NULL AND $3 !~ '^[[:graph:]]{1,200}$' THEN
        RAISE EXCEPTION 'invalid model name "%"', $3
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the model name as sent to the provider, or NULL.';
    END IF;
    PERFORM llm_usage._check_count($4, 'input_tokens');
    PERFORM llm_usage._check_count($5, 'output_tokens');
    PERFORM llm_usage._check_count($6, 'cached_input_tokens');
    PERFORM llm_usage._check_count($13, 'cache_write_tokens');
    PERFORM llm_usage._check_token_split($4, $6, $13);
    IF $7 IS NOT NULL AND ($7 < 0 OR $7 > 86400000) THEN
        RAISE EXCEPTION 'latency_ms must be between 0 and 86400000, got %', $7
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $8 IS NOT NULL AND ($8 < 100 OR $8 > 599) THEN
        RAISE EXCEPTION 'status_code must be an HTTP status between 100 and 599, got %', $8
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM llm_usage._require_arg($9, 'result');
    IF $9 NOT IN ('success', 'failure', 'rate_limited') THEN
        RAISE EXCEPTION 'unknown result "%"', $9
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'result is one of success, failure, rate_limited.';
    END IF;
    PERFORM llm_usage._check_object($10, 'metadata');
    IF $11 IS NOT NULL THEN
        PERFORM llm_usage._check_text($11, 'request_id', 255);
    END IF;
    PERFORM llm_usage._require_arg($12, 'occurred_at');
    IF $12 > now() + interval '1 hour' OR $12 < '2000-01-01'::timestamptz THEN
        RAISE EXCEPTION 'occurred_at % is out of range', $12
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Calls are tracked from 2000-01-01 up to one hour ahead of the server clock.';
    END IF;

    IF $3 IS NOT NULL THEN
        p := llm_usage._price_at($3, $12);
    END IF;

    INSERT INTO llm_usage.usage_events
        (tenant_id, event_type, model, provider, input_tokens, output_tokens, cached_input_tokens,
         cache_write_tokens, cost_usd, price_id, latency_ms, status_code, result, metadata, request_id,
         occurred_at)
    VALUES (t.tenant_id, $2, $3, p.provider, $4, $5, $6, $13,
            llm_usage._cost(p, $4, $5, $6, $13), p.price_id, $7, $8, $9, $10, $11, $12)
    ON CONFLICT (tenant_id, request_id) WHERE request_id IS NOT NULL DO NOTHING
    RETURNING event_id INTO v_id;

    IF v_id IS NULL THEN
        -- the same request was tracked before: return that event, count nothing
        SELECT e.event_id INTO v_id
          FROM llm_usage.usage_events e
         WHERE e.tenant_id = t.tenant_id AND e.request_id = $11;
    END IF;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION llm_usage.track_usage(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint) IS
'Records one LLM call after it happened and returns its event id; cost comes from the price valid at occurred_at (NULL for a model with no price).  Idempotent on (tenant_id, request_id): a repeat returns the first event''s id.';

------------------------------------------------------------------------
-- Roll-ups
------------------------------------------------------------------------

/*
 * aggregate_usage_metrics(period_type, since): recompute the roll-ups of
 * every (tenant, period) that has events recorded since the last run (or,
 * with "since", events that occurred since then), from all the raw events
 * of those periods, and upsert them.  A row is only written when a figure
 * changed, so a re-run changes nothing and returns 0.
 *
 * Finding new events: each event has recorded_at = clock_timestamp() at
 * insert (or re-pricing), which is never earlier than the start of the
 * transaction that wrote it.  Before scanning, the run takes as its next
 * watermark the earliest start of any transaction still open in this
 * database (or now, if none): an event this run cannot see yet was written
 * by such a transaction or a later one, so the next run, scanning from the
 * watermark, finds it.  Concurrent runs of one period type are serialised
 * by the lock on its aggregation_state row.
 */
CREATE FUNCTION llm_usage.aggregate_usage_metrics(period_type text DEFAULT 'daily', since timestamptz DEFAULT NULL)
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_type   text := $1;
    p_since  timestamptz := $2;
    v_unit   text;
    v_wm     timestamptz;
    v_new_wm timestamptz;
    v_tenants text[];
    v_starts timestamptz[];
    v_rows   integer;
BEGIN
    PERFORM llm_usage._require_admin('aggregate_usage_metrics');
    v_unit := llm_usage._require_rollup_unit(p_type);
    IF p_since IS NOT NULL AND p_since > now() THEN
        RAISE EXCEPTION 'since (%) is in the future', p_since
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    INSERT INTO llm_usage.aggregation_state (period_type) VALUES (p_type) ON CONFLICT DO NOTHING;
    SELECT s.watermark INTO v_wm
      FROM llm_usage.aggregation_state s
     WHERE s.period_type = p_type
       FOR UPDATE;

    PERFORM pg_stat_clear_snapshot();
    SELECT least(clock_timestamp(), min(a.xact_start)) INTO v_new_wm
      FROM pg_catalog.pg_stat_activity a
     WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.xact_start IS NOT NULL;

    IF p_since IS NOT NULL THEN
        SELECT array_agg(d.tenant_id), array_agg(d.period_start) INTO v_tenants, v_starts
          FROM (SELECT DISTINCT e.tenant_id, date_trunc(v_unit, e.occurred_at, t.timezone) AS period_start
                  FROM llm_usage.usage_events e
                  JOIN llm_usage.tenants t ON t.tenant_id = e.tenant_id
                 WHERE e.occurred_at >= p_since) d;
    ELSIF v_wm IS NULL THEN
        SELECT array_agg(d.tenant_id), array_agg(d.period_start) INTO v_tenants, v_starts
          FROM (SELECT DISTINCT e.tenant_id, date_trunc(v_unit, e.occurred_at, t.timezone) AS period_start
                  FROM llm_usage.usage_events e
                  JOIN llm_usage.tenants t ON t.tenant_id = e.tenant_id) d;
    ELSE
        SELECT array_agg(d.tenant_id), array_agg(d.period_start) INTO v_tenants, v_starts
          FROM (SELECT DISTINCT e.tenant_id, date_trunc(v_unit, e.occurred_at, t.timezone) AS period_start
                  FROM llm_usage.usage_events e
                  JOIN llm_usage.tenants t ON t.tenant_id = e.tenant_id
                 WHERE e.recorded_at >= v_wm) d;
    END IF;

    INSERT INTO llm_usage.tenant_usage_metrics AS m
        (tenant_id, period_type, period_start, api_calls_total, api_calls_failed, rate_limited_count,
         chat_messages_sent, embeddings_generated, input_tokens, output_tokens, cached_input_tokens,
         total_tokens_used, estimated_cost_usd, unpriced_calls, api_latency_p50_ms, api_latency_p95_ms,
         api_latency_p99_ms, error_rate, updated_at)
    SELECT p.tenant_id, p_type, p.period_start,
           count(*),
           count(*) FILTER (WHERE e.result = 'failure'),
           count(*) FILTER (WHERE e.result = 'rate_limited'),
           count(*) FILTER (WHERE e.event_type = 'chat'),
           count(*) FILTER (WHERE e.event_type = 'embedding'),
           sum(e.input_tokens),
           sum(e.output_tokens),
           sum(e.cached_input_tokens),
           sum(e.total_tokens),
           coalesce(sum(e.cost_usd), 0),
           count(*) FILTER (WHERE e.cost_usd IS NULL),
           round(percentile_cont(0.50) WITHIN GROUP (ORDER BY e.latency_ms)::numeric, 2),
           round(percentile_cont(0.95) WITHIN GROUP (ORDER BY e.latency_ms)::numeric, 2),
           round(percentile_cont(0.99) WITHIN GROUP (ORDER BY e.latency_ms)::numeric, 2),
           round(count(*) FILTER (WHERE e.result <> 'success')::numeric / count(*), 4),
           now()
      FROM unnest(v_tenants, v_starts) AS p(tenant_id, period_start)
      JOIN llm_usage.tenants t ON t.tenant_id = p.tenant_id
     CROSS JOIN LATERAL llm_usage._period_bounds(v_unit, p.period_start, t.timezone) b
      JOIN llm_usage.usage_events e
        ON e.tenant_id = p.tenant_id AND e.occurred_at >= b.period_start AND e.occurred_at < b.period_end
     GROUP BY p.tenant_id, p.period_start
    ON CONFLICT (tenant_id, period_type, period_start) DO UPDATE
       SET api_calls_total = EXCLUDED.api_calls_total,
           api_calls_failed = EXCLUDED.api_calls_failed,
           rate_limited_count = EXCLUDED.rate_limited_count,
           chat_messages_sent = EXCLUDED.chat_messages_sent,
           embeddings_generated = EXCLUDED.embeddings_generated,
           input_tokens = EXCLUDED.input_tokens,
           output_tokens = EXCLUDED.output_tokens,
           cached_input_tokens = EXCLUDED.cached_input_tokens,
           total_tokens_used = EXCLUDED.total_tokens_used,
           estimated_cost_usd = EXCLUDED.estimated_cost_usd,
           unpriced_calls = EXCLUDED.unpriced_calls,
           api_latency_p50_ms = EXCLUDED.api_latency_p50_ms,
           api_latency_p95_ms = EXCLUDED.api_latency_p95_ms,
           api_latency_p99_ms = EXCLUDED.api_latency_p99_ms,
           error_rate = EXCLUDED.error_rate,
           updated_at = EXCLUDED.updated_at
     WHERE (m.api_calls_total, m.api_calls_failed, m.rate_limited_count, m.chat_messages_sent,
            m.embeddings_generated, m.input_tokens, m.output_tokens, m.cached_input_tokens,
            m.total_tokens_used, m.estimated_cost_usd, m.unpriced_calls, m.api_latency_p50_ms,
            m.api_latency_p95_ms, m.api_latency_p99_ms, m.error_rate)
           IS DISTINCT FROM
           (EXCLUDED.api_calls_total, EXCLUDED.api_calls_failed, EXCLUDED.rate_limited_count,
            EXCLUDED.chat_messages_sent, EXCLUDED.embeddings_generated, EXCLUDED.input_tokens,
            EXCLUDED.output_tokens, EXCLUDED.cached_input_tokens, EXCLUDED.total_tokens_used,
            EXCLUDED.estimated_cost_usd, EXCLUDED.unpriced_calls, EXCLUDED.api_latency_p50_ms,
            EXCLUDED.api_latency_p95_ms, EXCLUDED.api_latency_p99_ms, EXCLUDED.error_rate);
    GET DIAGNOSTICS v_rows = ROW_COUNT;

    IF p_since IS NULL THEN
        UPDATE llm_usage.aggregation_state s
           SET watermark = v_new_wm, last_run_at = now()
         WHERE s.period_type = p_type;
    ELSE
        UPDATE llm_usage.aggregation_state s
           SET last_run_at = now()
         WHERE s.period_type = p_type;
    END IF;
    RETURN v_rows;
END
$$;
COMMENT ON FUNCTION llm_usage.aggregate_usage_metrics(text, timestamptz) IS
'Upserts tenant_usage_metrics (hourly, daily or monthly, in each tenant''s zone) for the periods that got events since the last run, or that have events since "since".  Idempotent: a re-run changes nothing.  Returns the rows written.  Admin only.';

------------------------------------------------------------------------
-- Queries
------------------------------------------------------------------------
CREATE FUNCTION llm_usage.tenant_usage(tenant_id text, from_ts timestamptz, to_ts timestamptz,
                                       period_type text DEFAULT 'daily')
RETURNS SETOF llm_usage.tenant_usage_metrics
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants := llm_usage._tenant($1);
BEGIN
    PERFORM llm_usage._check_range($2, $3);
    PERFORM llm_usage._require_rollup_unit($4);
    RETURN QUERY
    SELECT m.*
      FROM llm_usage.tenant_usage_metrics m
     WHERE m.tenant_id = t.tenant_id AND m.period_type = $4
       AND m.period_start >= $2 AND m.period_start < $3
     ORDER BY m.period_start;
END
$$;
COMMENT ON FUNCTION llm_usage.tenant_usage(text, timestamptz, timestamptz, text) IS
'A tenant''s roll-ups (hourly, daily or monthly) whose period starts in [from_ts, to_ts), oldest first.  As fresh as the last aggregate_usage_metrics() run.';

CREATE FUNCTION llm_usage.today_usage(tenant_id text)
RETURNS TABLE (tenant text, day date, api_calls bigint, failed_calls bigint, input_tokens bigint,
               output_tokens bigint, total_tokens bigint, cost_usd numeric, unpriced_calls bigint,
               tightest_quota_type text, tightest_quota_period text, tightest_quota_remaining numeric,
               tightest_quota_percentage numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t     llm_usage.tenants := llm_usage._tenant($1);
    v_day llm_usage._quota_check;
    b     record;
BEGIN
    SELECT * INTO b FROM llm_usage._period_bounds('day', clock_timestamp(), t.timezone);
    RETURN QUERY
    SELECT t.tenant_id,
           (b.period_start AT TIME ZONE t.timezone)::date,
           coalesce(u.calls, 0), coalesce(u.failed, 0), coalesce(u.input, 0), coalesce(u.output, 0),
           coalesce(u.total, 0), coalesce(u.cost, 0), coalesce(u.unpriced, 0),
           q.quota_type, q.period, q.remaining, q.percentage
      FROM (SELECT count(*) AS calls,
                   count(*) FILTER (WHERE e.result <> 'success') AS failed,
                   sum(e.input_tokens)::bigint AS input,
                   sum(e.output_tokens)::bigint AS output,
                   sum(e.total_tokens)::bigint AS total,
                   sum(e.cost_usd) AS cost,
                   count(*) FILTER (WHERE e.cost_usd IS NULL) AS unpriced
              FROM llm_usage.usage_events e
             WHERE e.tenant_id = t.tenant_id
               AND e.occurred_at >= b.period_start AND e.occurred_at < b.period_end) u
      LEFT JOIN LATERAL (
            SELECT s.quota_type, s.period, s.remaining, s.percentage
              FROM llm_usage.quota_status(t.tenant_id) s
             WHERE s.quota_limit IS NOT NULL
             ORDER BY s.percentage DESC, s.remaining
             LIMIT 1) q ON true;
END
$$;
COMMENT ON FUNCTION llm_usage.today_usage(text) IS
'Calls, tokens and cost of the tenant''s current day (in its zone) from the raw events, and its tightest quota (highest percent used).';

CREATE FUNCTION llm_usage.top_consumers(metric text, period_type text DEFAULT 'daily', max_rows integer DEFAULT 10)
RETURNS TABLE (rank bigint, tenant_id text, value numeric, period_start timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    p_metric text := $1;
    v_unit   text;
    v_now    timestamptz := clock_timestamp();
    v_mine   text[];
    v_admin  boolean := llm_usage._is_admin();
BEGIN
    PERFORM llm_usage._require_arg(p_metric, 'metric');
    IF p_metric NOT IN ('tokens', 'cost', 'api_calls') THEN
        RAISE EXCEPTION 'unknown metric "%"', p_metric
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Metrics are: tokens, cost, api_calls.';
    END IF;
    v_unit := llm_usage._require_rollup_unit($2);
    PERFORM llm_usage._check_max_rows($3);
    IF NOT v_admin THEN
        v_mine := llm_usage._my_tenants();
    END IF;
    RETURN QUERY
    SELECT rank() OVER (ORDER BY x.value DESC, x.tenant_id), x.tenant_id, x.value, x.period_start
      FROM (SELECT t.tenant_id, b.period_start,
                   CASE p_metric
                       WHEN 'tokens' THEN coalesce(sum(e.total_tokens), 0)::numeric
                       WHEN 'cost' THEN coalesce(sum(e.cost_usd), 0)
                       ELSE count(e.event_id)::numeric
                   END AS value
              FROM llm_usage.tenants t
             CROSS JOIN LATERAL llm_usage._period_bounds(v_unit, v_now, t.timezone) b
              JOIN llm_usage.usage_events e
                ON e.tenant_id = t.tenant_id AND e.occurred_at >= b.period_start AND e.occurred_at < b.period_end
             WHERE v_admin OR t.tenant_id = ANY (v_mine)
             GROUP BY t.tenant_id, b.period_start) x
     ORDER BY 1, 2
     LIMIT $3;
END
$$;
COMMENT ON FUNCTION llm_usage.top_consumers(text, text, integer) IS
'Tenants ranked by tokens, cost or api_calls in their current hour, day or month (each in its own zone), from the raw events.  Non-admins see only their tenants.';

CREATE FUNCTION llm_usage.tenant_events(tenant_id text, from_ts timestamptz, to_ts timestamptz,
                                        event_type text DEFAULT NULL, max_rows integer DEFAULT 100)
RETURNS SETOF llm_usage.usage_events
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants := llm_usage._tenant($1);
BEGIN
    PERFORM llm_usage._check_range($2, $3);
    PERFORM llm_usage._check_max_rows($5);
    IF $4 IS NOT NULL AND $4 NOT IN ('chat', 'completion', 'embedding', 'image', 'audio', 'moderation', 'tool', 'other') THEN
        RAISE EXCEPTION 'unknown event_type "%"', $4
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Event types are: chat, completion, embedding, image, audio, moderation, tool, other.';
    END IF;
    RETURN QUERY
    SELECT e.*
      FROM llm_usage.usage_events e
     WHERE e.tenant_id = t.tenant_id AND e.occurred_at >= $2 AND e.occurred_at < $3
       AND ($4 IS NULL OR e.event_type = $4)
     ORDER BY e.occurred_at DESC, e.event_id DESC
     LIMIT $5;
END
$$;
COMMENT ON FUNCTION llm_usage.tenant_events(text, timestamptz, timestamptz, text, integer) IS
'A tenant''s tracked calls in [from_ts, to_ts), newest first, optionally of one event type.';

CREATE FUNCTION llm_usage.usage_overview(tenant_id text, period text DEFAULT '30d')
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t        llm_usage.tenants := llm_usage._tenant($1);
    p_period text := $2;
    v_len    interval;
    v_bucket text;
    v_to     timestamptz := clock_timestamp();
    v_from   timestamptz;
    v_prev   timestamptz;
    v_cur    jsonb;
    v_old    jsonb;
BEGIN
    PERFORM llm_usage._require_arg(p_period, 'period');
    CASE p_period
        WHEN '7d' THEN v_len := interval '7 days'; v_bucket := 'day';
        WHEN '30d' THEN v_len := interval '30 days'; v_bucket := 'day';
        WHEN '90d' THEN v_len := interval '90 days'; v_bucket := 'week';
        WHEN '1y' THEN v_len := interval '1 year'; v_bucket := 'month';
        ELSE
            RAISE EXCEPTION 'unknown period "%"', p_period
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Periods are: 7d, 30d, 90d, 1y.';
    END CASE;
    v_from := v_to - v_len;
    v_prev := v_from - v_len;

    SELECT jsonb_build_object(
               'runs', count(*),
               'cost_usd', coalesce(sum(e.cost_usd), 0),
               'tokens', coalesce(sum(e.total_tokens), 0),
               'avg_cost_per_run_usd', round(coalesce(sum(e.cost_usd), 0) / nullif(count(*), 0), 8),
               'success_rate', round(count(*) FILTER (WHERE e.result = 'success')::numeric / nullif(count(*), 0), 4),
               'avg_latency_ms', round(avg(e.latency_ms), 1),
               'unpriced_runs', count(*) FILTER (WHERE e.cost_usd IS NULL))
      INTO v_cur
      FROM llm_usage.usage_events e
     WHERE e.tenant_id = t.tenant_id AND e.occurred_at >= v_from AND e.occurred_at < v_to;

    SELECT jsonb_build_object('runs', count(*), 'cost_usd', coalesce(sum(e.cost_usd), 0),
                              'tokens', coalesce(sum(e.total_tokens), 0))
      INTO v_old
      FROM llm_usage.usage_events e
     WHERE e.tenant_id = t.tenant_id AND e.occurred_at >= v_prev AND e.occurred_at < v_from;

    RETURN jsonb_build_object(
        'tenant_id', t.tenant_id,
        'period', p_period,
        'from', v_from,
        'to', v_to,
        'overview', v_cur || jsonb_build_object(
            'previous_period', v_old,
            'runs_change_pct', round(100 * ((v_cur->>'runs')::numeric - (v_old->>'runs')::numeric)
                                          / nullif((v_old->>'runs')::numeric, 0), 2),
            'cost_change_pct', round(100 * ((v_cur->>'cost_usd')::numeric - (v_old->>'cost_usd')::numeric)
                                          / nullif((v_old->>'cost_usd')::numeric, 0), 2),
            'tokens_change_pct', round(100 * ((v_cur->>'tokens')::numeric - (v_old->>'tokens')::numeric)
                                            / nullif((v_old->>'tokens')::numeric, 0), 2)),
        'models', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'model', m.model, 'runs', m.runs, 'tokens', m.tokens, 'cost_usd', m.cost,
                       'unpriced_runs', m.unpriced, 'share_of_cost', m.share)
                       ORDER BY m.cost DESC, m.runs DESC, m.model), '[]')
              FROM (SELECT e.model, count(*) AS runs, sum(e.total_tokens) AS tokens,
                           coalesce(sum(e.cost_usd), 0) AS cost,
                           count(*) FILTER (WHERE e.cost_usd IS NULL) AS unpriced,
                           round(coalesce(sum(e.cost_usd), 0) / nullif(sum(sum(e.cost_usd)) OVER (), 0), 4) AS share
                      FROM llm_usage.usage_events e
                     WHERE e.tenant_id = t.tenant_id AND e.occurred_at >= v_from AND e.occurred_at < v_to
                     GROUP BY e.model) m),
        'time_series', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'bucket', s.bucket, 'runs', s.runs, 'tokens', s.tokens, 'cost_usd', s.cost)
                       ORDER BY s.bucket), '[]')
              FROM (SELECT (date_trunc(v_bucket, e.occurred_at, t.timezone) AT TIME ZONE t.timezone)::date AS bucket,
                           count(*) AS runs, sum(e.total_tokens) AS tokens, coalesce(sum(e.cost_usd), 0) AS cost
                      FROM llm_usage.usage_events e
                     WHERE e.tenant_id = t.tenant_id AND e.occurred_at >= v_from AND e.occurred_at < v_to
                     GROUP BY 1) s),
        'most_expensive', (
            SELECT coalesce(jsonb_agg(jsonb_build_object(
                       'event_id', x.event_id, 'request_id', x.request_id, 'model', x.model,
                       'tokens', x.total_tokens, 'cost_usd', x.cost_usd, 'occurred_at', x.occurred_at)
                       ORDER BY x.cost_usd DESC, x.event_id), '[]')
              FROM (SELECT e.event_id, e.request_id, e.model, e.total_tokens, e.cost_usd, e.occurred_at
                      FROM llm_usage.usage_events e
                     WHERE e.tenant_id = t.tenant_id AND e.occurred_at >= v_from AND e.occurred_at < v_to
                       AND e.cost_usd IS NOT NULL
                     ORDER BY e.cost_usd DESC, e.event_id
                     LIMIT 10) x));
END
$$;
COMMENT ON FUNCTION llm_usage.usage_overview(text, text) IS
'Dashboard of one tenant over the last 7d, 30d, 90d or 1y: totals and change against the period before, per-model breakdown, time series (daily, weekly for 90d, monthly for 1y) and the 10 most expensive calls.';

CREATE FUNCTION llm_usage.cost_summary(tenant_id text DEFAULT NULL)
RETURNS TABLE (tenant text, yesterday date, yesterday_tracked_usd numeric, yesterday_provider_usd numeric,
               week_start date, week_tracked_usd numeric, week_provider_usd numeric)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    v_tenants text[];
    v_now     timestamptz := clock_timestamp();
BEGIN
    IF $1 IS NOT NULL THEN
        v_tenants := ARRAY[(llm_usage._tenant($1)).tenant_id];
    ELSIF llm_usage._is_admin() THEN
        SELECT array_agg(t.tenant_id) INTO v_tenants FROM llm_usage.tenants t;
    ELSE
        v_tenants := llm_usage._my_tenants();
    END IF;
    RETURN QUERY
    SELECT t.tenant_id,
           (d.period_start - interval '1 day')::date,
           (SELECT coalesce(sum(e.cost_usd), 0) FROM llm_usage.usage_events e
             WHERE e.tenant_id = t.tenant_id AND e.occurred_at >= d.y_start AND e.occurred_at < d.d_start),
           (SELECT sum(c.amount_usd) FROM llm_usage.provider_costs c
             WHERE c.tenant_id = t.tenant_id
               AND (c.bucket_start AT TIME ZONE 'UTC')::date = d.period_start - 1),
           d.week_start::date,
           (SELECT coalesce(sum(e.cost_usd), 0) FROM llm_usage.usage_events e
             WHERE e.tenant_id = t.tenant_id AND e.occurred_at >= d.w_start AND e.occurred_at < v_now),
           (SELECT sum(c.amount_usd) FROM llm_usage.provider_costs c
             WHERE c.tenant_id = t.tenant_id
               AND (c.bucket_start AT TIME ZONE 'UTC')::date >= d.week_start::date
               AND (c.bucket_start AT TIME ZONE 'UTC')::date <= d.period_start)
      FROM llm_usage.tenants t
     CROSS JOIN LATERAL (
            SELECT (v_now AT TIME ZONE t.timezone)::date AS period_start,
                   date_trunc('day', v_now, t.timezone) AS d_start,
                   ((date_trunc('day', v_now AT TIME ZONE t.timezone) - interval '1 day') AT TIME ZONE t.timezone) AS y_start,
                   date_trunc('week', v_now AT TIME ZONE t.timezone) AS week_start,
                   (date_trunc('week', v_now AT TIME ZONE t.timezone) AT TIME ZONE t.timezone) AS w_start) d
     WHERE t.tenant_id = ANY (v_tenants)
     ORDER BY t.tenant_id;
END
$$;
COMMENT ON FUNCTION llm_usage.cost_summary(text) IS
'Yesterday''s and this week''s (Monday on, tenant''s zone) cost per tenant: tracked with track_usage() and reported by the provider (the provider''s UTC days of those dates; NULL until collected), side by side.  NULL tenant_id = every tenant the caller may see.';

------------------------------------------------------------------------
-- Audit
------------------------------------------------------------------------
CREATE FUNCTION llm_usage.audit(tenant_id text, event_type text, action text, result text DEFAULT 'success',
                                details jsonb DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t    llm_usage.tenants := llm_usage._tenant($1);
    v_id bigint;
BEGIN
    PERFORM llm_usage._require_arg($2, 'event_type');
    IF $2 !~ '^[a-z][a-z0-9_.]{0,62}$' THEN
        RAISE EXCEPTION 'invalid audit event_type "%"', $2
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'An audit event type is a lower-case name such as security, quota, usage or admin.';
    END IF;
    PERFORM llm_usage._check_text($3, 'action', 200);
    PERFORM llm_usage._require_arg($4, 'result');
    IF $4 NOT IN ('success', 'failure', 'denied') THEN
        RAISE EXCEPTION 'unknown audit result "%"', $4
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'result is one of success, failure, denied.';
    END IF;
    PERFORM llm_usage._check_object($5, 'details');
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, result, role_name, details)
    VALUES (t.tenant_id, $2, $3, $4, llm_usage._caller()::regrole::text, $5)
    RETURNING audit_id INTO v_id;
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION llm_usage.audit(text, text, text, text, jsonb) IS
'Appends an event to the tenant''s audit log (actor = session user) and returns its id.';

CREATE FUNCTION llm_usage._audit_window(p_tenant text, p_days integer, p_kind text)
RETURNS SETOF llm_usage.audit_events
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    t llm_usage.tenants := llm_usage._tenant(p_tenant);
BEGIN
    PERFORM llm_usage._check_days(p_days);
    RETURN QUERY
    SELECT a.* FROM llm_usage.audit_events a
     WHERE a.tenant_id = t.tenant_id AND a.created_at >= now() - make_interval(days => p_days)
       AND CASE p_kind
               WHEN 'failed' THEN a.result IN ('failure', 'denied')
               WHEN 'security' THEN a.event_type = 'security' OR a.event_type LIKE 'security.%'
               ELSE true
           END
     ORDER BY a.created_at DESC, a.audit_id DESC;
END
$$;
COMMENT ON FUNCTION llm_usage._audit_window(text, integer, text) IS
'Internal: a tenant''s audit events of the last p_days days, all, failed (failure or denied) or security ones, newest first.';

CREATE FUNCTION llm_usage.audit_trail(tenant_id text, days integer DEFAULT 7)
RETURNS SETOF llm_usage.audit_events
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM llm_usage._audit_window($1, $2, 'all') $$;
COMMENT ON FUNCTION llm_usage.audit_trail(text, integer) IS 'The tenant''s audit events of the last N days (default 7), newest first.';

CREATE FUNCTION llm_usage.failed_operations(tenant_id text, days integer DEFAULT 30)
RETURNS SETOF llm_usage.audit_events
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM llm_usage._audit_window($1, $2, 'failed') $$;
COMMENT ON FUNCTION llm_usage.failed_operations(text, integer) IS 'The tenant''s failed or denied audit events of the last N days (default 30), newest first.';

CREATE FUNCTION llm_usage.security_events(tenant_id text, days integer DEFAULT 90)
RETURNS SETOF llm_usage.audit_events
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM llm_usage._audit_window($1, $2, 'security') $$;
COMMENT ON FUNCTION llm_usage.security_events(text, integer) IS
'The tenant''s security audit events (event_type security or security.*: access grants, key changes) of the last N days (default 90), newest first.';

CREATE FUNCTION llm_usage.audit_report(tenant_id text, from_ts timestamptz, to_ts timestamptz)
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants := llm_usage._tenant($1);
BEGIN
    PERFORM llm_usage._check_range($2, $3);
    RETURN (
        WITH a AS (
            SELECT * FROM llm_usage.audit_events a
             WHERE a.tenant_id = t.tenant_id AND a.created_at >= $2 AND a.created_at < $3)
        SELECT jsonb_build_object(
                   'tenant_id', t.tenant_id,
                   'from', $2,
                   'to', $3,
                   'total', (SELECT count(*) FROM a),
                   'by_event_type', (SELECT coalesce(jsonb_object_agg(x.event_type, x.n), '{}')
                                       FROM (SELECT event_type, count(*) AS n FROM a GROUP BY 1) x),
                   'by_result', (SELECT coalesce(jsonb_object_agg(x.result, x.n), '{}')
                                   FROM (SELECT result, count(*) AS n FROM a GROUP BY 1) x),
                   'by_actor', (SELECT coalesce(jsonb_object_agg(x.actor, x.n), '{}')
                                  FROM (SELECT actor, count(*) AS n FROM a GROUP BY 1) x),
                   'by_action', (SELECT coalesce(jsonb_object_agg(x.action, x.n), '{}')
                                   FROM (SELECT action, count(*) AS n FROM a GROUP BY 1) x),
                   'failures', (SELECT coalesce(jsonb_agg(to_jsonb(f) - 'tenant_id' ORDER BY f.created_at DESC, f.audit_id DESC), '[]')
                                  FROM (SELECT * FROM a WHERE a.result IN ('failure', 'denied')
                                         ORDER BY a.created_at DESC, a.audit_id DESC LIMIT 20) f))
    );
END
$$;
COMMENT ON FUNCTION llm_usage.audit_report(text, timestamptz, timestamptz) IS
'Summary of a tenant''s audit log in [from_ts, to_ts): counts by event type, result, actor and action, and the 20 latest failures or denials.';

------------------------------------------------------------------------
-- Credits
------------------------------------------------------------------------

/*
 * _credit_change: the one place a balance changes.  Locks the tenant's
 * balance row (creating it at 0), so changes of one tenant are serialised;
 * a ref already in the ledger is not applied again (same delta: the current
 * balance is returned; another delta: an error).
 */
CREATE FUNCTION llm_usage._credit_change(t llm_usage.tenants, p_delta numeric, p_reason text, p_ref text)
RETURNS numeric
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_balance numeric;
    v_prior   numeric;
BEGIN
    INSERT INTO llm_usage.credit_balances (tenant_id, balance) VALUES (t.tenant_id, 0)
    ON CONFLICT DO NOTHING;
    SELECT b.balance INTO v_balance
      FROM llm_usage.credit_balances b
     WHERE b.tenant_id = t.tenant_id
       FOR UPDATE;

    IF p_ref IS NOT NULL THEN
        SELECT l.delta INTO v_prior
          FROM llm_usage.credit_ledger l
         WHERE l.tenant_id = t.tenant_id AND l.ref = p_ref;
        IF FOUND THEN
            IF v_prior <> p_delta THEN
                RAISE EXCEPTION 'ref "%" was already applied to tenant "%" with amount %', p_ref, t.tenant_id, abs(v_prior)
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'A ref identifies one credit change; use a new ref for a new change.';
            END IF;
            RAISE NOTICE 'ref "%" was already applied; balance unchanged', p_ref;
            RETURN v_balance;
        END IF;
    END IF;

    IF v_balance + p_delta < 0 THEN
        RAISE EXCEPTION 'insufficient credits: tenant "%" has %, % requested', t.tenant_id, v_balance, -p_delta
            USING ERRCODE = 'check_violation',
                  HINT = 'Grant credits with llm_usage.grant_credits() first.';
    END IF;
    v_balance := v_balance + p_delta;
    UPDATE llm_usage.credit_balances b SET balance = v_balance, updated_at = now()
     WHERE b.tenant_id = t.tenant_id;
    INSERT INTO llm_usage.credit_ledger (tenant_id, delta, balance_after, reason, ref)
    VALUES (t.tenant_id, p_delta, v_balance, p_reason, p_ref);
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'credits', CASE WHEN p_delta > 0 THEN 'grant_credits' ELSE 'deduct_credits' END,
            llm_usage._caller()::regrole::text,
            jsonb_build_object('amount', abs(p_delta), 'balance', v_balance, 'reason', p_reason, 'ref', p_ref));
    RETURN v_balance;
END
$$;
COMMENT ON FUNCTION llm_usage._credit_change(llm_usage.tenants, numeric, text, text) IS
'Internal: applies one credit change under the tenant''s balance row lock, once per ref.';

CREATE FUNCTION llm_usage.grant_credits(tenant_id text, amount numeric, reason text, ref text DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('grant_credits');
    t := llm_usage._tenant($1);
    PERFORM llm_usage._check_amount($2, 'amount', false);
    PERFORM llm_usage._check_text($3, 'reason', 500);
    IF $4 IS NOT NULL THEN
        PERFORM llm_usage._check_text($4, 'ref', 255);
    END IF;
    RETURN llm_usage._credit_change(t, $2, $3, $4);
END
$$;
COMMENT ON FUNCTION llm_usage.grant_credits(text, numeric, text, text) IS
'Adds prepaid credits (USD) to a tenant and returns the new balance; with a ref, applied at most once.  Admin only.';

CREATE FUNCTION llm_usage.deduct_credits(tenant_id text, amount numeric, reason text, ref text DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants := llm_usage._tenant($1);
BEGIN
    PERFORM llm_usage._check_amount($2, 'amount', false);
    PERFORM llm_usage._check_text($3, 'reason', 500);
    IF $4 IS NOT NULL THEN
        PERFORM llm_usage._check_text($4, 'ref', 255);
    END IF;
    RETURN llm_usage._credit_change(t, -$2, $3, $4);
END
$$;
COMMENT ON FUNCTION llm_usage.deduct_credits(text, numeric, text, text) IS
'Takes credits from a tenant''s balance and returns the new balance; never below zero (23514), applied at most once per ref.';

CREATE FUNCTION llm_usage.credit_balance(tenant_id text)
RETURNS numeric
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants := llm_usage._tenant($1);
BEGIN
    RETURN coalesce((SELECT b.balance FROM llm_usage.credit_balances b WHERE b.tenant_id = t.tenant_id), 0);
END
$$;
COMMENT ON FUNCTION llm_usage.credit_balance(text) IS 'The tenant''s prepaid credit balance in USD (0 if it never had any).';

------------------------------------------------------------------------
-- Alerts (delivery and more kinds come with the alerting work; the
-- collector raises collection_failed)
------------------------------------------------------------------------
CREATE TABLE llm_usage.alerts (
    tenant_id       text NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    kind            text NOT NULL
                    CONSTRAINT alerts_kind_check CHECK (kind IN ('quota_exceeded', 'quota_near', 'high_latency',
                        'high_error_rate', 'cost_anomaly', 'collection_failed', 'maintenance_failed', 'unpriced_usage')),
    severity        text NOT NULL DEFAULT 'warning'
                    CONSTRAINT alerts_severity_check CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    message         text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX alerts_created_idx ON llm_usage.alerts (tenant_id, created_at);
COMMENT ON TABLE llm_usage.alerts IS
'Alerts raised for tenants; each new one is also sent with NOTIFY llm_usage_alerts (JSON payload).';

CREATE FUNCTION llm_usage._raise_alert(p_tenant text, p_kind text, p_severity text, p_message text, p_details jsonb)
RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a llm_usage.alerts;
BEGIN
    INSERT INTO llm_usage.alerts (tenant_id, kind, severity, message, details)
    VALUES (p_tenant, p_kind, p_severity, left(p_message, 2000), p_details)
    RETURNING * INTO a;
    PERFORM pg_notify('llm_usage_alerts',
                      left(jsonb_build_object('id', a.id, 'tenant_id', a.tenant_id, 'kind', a.kind,
                                              'severity', a.severity, 'message', left(a.message, 500),
                                              'created_at', a.created_at)::text, 7900));
    RETURN a.id;
END
$$;
COMMENT ON FUNCTION llm_usage._raise_alert(text, text, text, text, jsonb) IS
'Internal: store an alert and NOTIFY llm_usage_alerts with its JSON (sent when the transaction commits).';

------------------------------------------------------------------------
-- Provider keys: ciphertext only, readable by nobody but the owner (the
-- worker runs as superuser); the provider_keys view shows the rest.
------------------------------------------------------------------------
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

CREATE VIEW llm_usage.provider_keys WITH (security_barrier) AS
SELECT k.key_id AS id, k.tenant_id, k.provider, k.label, k.key_preview, k.is_active, k.created_at,
       k.last_used_at, k.last_synced_at, k.last_sync_status, k.last_error, k.key_version,
       k.master_key_version, k.rotated_at, k.collected_through
  FROM llm_usage.provider_key_store k
 WHERE llm_usage._can_access(k.tenant_id);
COMMENT ON VIEW llm_usage.provider_keys IS
'Stored provider keys of the tenants the caller may see: preview (last 4 characters), state and last sync; never ciphertext or plaintext.';

CREATE FUNCTION llm_usage._seal_key(api_key text, aad text,
                                    OUT key_ciphertext bytea, OUT wrapped_dek bytea, OUT master_key_version integer)
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_seal_key';
COMMENT ON FUNCTION llm_usage._seal_key(text, text) IS 'Internal: encrypt a provider key under a fresh data key wrapped by the current master key.';

CREATE FUNCTION llm_usage._rewrap_key(wrapped_dek bytea, master_key_version integer, aad text,
                                      OUT wrapped_dek bytea, OUT master_key_version integer)
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_rewrap_key';
COMMENT ON FUNCTION llm_usage._rewrap_key(bytea, integer, text) IS 'Internal: re-wrap a data key under the current master key version.';

CREATE FUNCTION llm_usage._master_key_status(reload boolean DEFAULT false,
                                             OUT loaded boolean, OUT current_version integer, OUT problem text)
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_master_key_status';
COMMENT ON FUNCTION llm_usage._master_key_status(boolean) IS 'Internal: whether the master key file is loaded, its newest version, or what is wrong with it.';

CREATE FUNCTION llm_usage._probe_key(provider text, api_key text)
RETURNS void
LANGUAGE c VOLATILE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_probe_key';
COMMENT ON FUNCTION llm_usage._probe_key(text, text) IS 'Internal: one cheap authenticated request with a key; raises 28000 if the provider refuses it.';

CREATE FUNCTION llm_usage._wake_worker()
RETURNS boolean
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_wake_worker';
COMMENT ON FUNCTION llm_usage._wake_worker() IS 'Internal: wake the collector when the calling transaction commits; whether a collector runs.';

CREATE FUNCTION llm_usage._worker_pid()
RETURNS integer
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_worker_pid';
COMMENT ON FUNCTION llm_usage._worker_pid() IS 'Internal: process id of the collector worker, NULL when none runs.';

CREATE FUNCTION llm_usage._key_aad(p_key_id bigint, p_tenant text, p_provider text, p_version integer)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT format('llm_usage/provider_key/%s/%s/%s/v%s', p_key_id, p_tenant, p_provider, p_version) $$;
COMMENT ON FUNCTION llm_usage._key_aad(bigint, text, text, integer) IS 'Internal: the associated data binding a key''s ciphertext to its row.';

CREATE FUNCTION llm_usage._check_api_key(p_key text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_key IS NULL THEN
        RAISE EXCEPTION 'api_key must not be NULL'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF length(p_key) < 8 OR length(p_key) > 1024 OR p_key !~ '^[[:graph:]]+$' THEN
        RAISE EXCEPTION 'api_key must be 8 to 1024 printable characters without spaces'
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Pass the organization admin key exactly as the provider shows it.';
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._check_api_key(text) IS 'Internal: raise 22004/22023 unless a key looks like an API key (the message never shows it).';

CREATE FUNCTION llm_usage._key_row(p_key_id bigint)
RETURNS llm_usage.provider_key_store
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k llm_usage.provider_key_store;
BEGIN
    PERFORM llm_usage._require_arg(p_key_id, 'key_id');
    SELECT * INTO k FROM llm_usage.provider_key_store WHERE key_id = p_key_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'provider key % does not exist', p_key_id
            USING ERRCODE = 'undefined_object',
                  HINT = 'llm_usage.provider_keys lists the stored keys.';
    END IF;
    RETURN k;
END
$$;
COMMENT ON FUNCTION llm_usage._key_row(bigint) IS 'Internal: a stored key row, or 22004/42704.';

CREATE FUNCTION llm_usage.add_provider_key(tenant_id text, provider text, api_key text, label text DEFAULT NULL,
                                           validate boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t      llm_usage.tenants;
    v_id   bigint;
    v_aad  text;
    s      record;
BEGIN
    PERFORM llm_usage._require_admin('add_provider_key');
    t := llm_usage._tenant($1);
    PERFORM llm_usage._require_arg($2, 'provider');
    IF $2 NOT IN ('openai', 'anthropic', 'custom') THEN
        RAISE EXCEPTION 'unknown provider "%"', $2
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Providers are: openai, anthropic, custom.';
    END IF;
    PERFORM llm_usage._check_api_key($3);
    IF $4 IS NOT NULL THEN
        PERFORM llm_usage._check_text($4, 'label', 200);
    END IF;
    PERFORM llm_usage._require_arg($5, 'validate');
    IF $5 THEN
        IF $2 = 'custom' THEN
            RAISE EXCEPTION 'keys of provider "custom" cannot be validated'
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM llm_usage._probe_key($2, $3);
    END IF;
    v_id := nextval('llm_usage.provider_key_store_key_id_seq');
    v_aad := llm_usage._key_aad(v_id, t.tenant_id, $2, 1);
    SELECT * INTO s FROM llm_usage._seal_key($3, v_aad);
    INSERT INTO llm_usage.provider_key_store
        (key_id, tenant_id, provider, label, key_preview, key_ciphertext, wrapped_dek, master_key_version)
    VALUES (v_id, t.tenant_id, $2, $4, '…' || right($3, 4), s.key_ciphertext, s.wrapped_dek, s.master_key_version);
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'security', 'add_provider_key', llm_usage._caller()::regrole::text,
            jsonb_build_object('key_id', v_id, 'provider', $2, 'key_preview', '…' || right($3, 4), 'validated', $5));
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION llm_usage.add_provider_key(text, text, text, text, boolean) IS
'Stores a provider organization admin key (openai, anthropic or custom) encrypted, and returns its id; validate => true first makes one cheap authenticated request and refuses a key the provider rejects.  Pass the key as a bind parameter.  Admin only.';

CREATE FUNCTION llm_usage.rotate_provider_key(key_id bigint, api_key text, validate boolean DEFAULT false)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    k     llm_usage.provider_key_store;
    s     record;
BEGIN
    PERFORM llm_usage._require_admin('rotate_provider_key');
    k := llm_usage._key_row($1);
    PERFORM llm_usage._check_api_key($2);
    PERFORM llm_usage._require_arg($3, 'validate');
    IF $3 THEN
        PERFORM llm_usage._probe_key(k.provider, $2);
    END IF;
    SELECT * INTO s FROM llm_usage._seal_key($2, llm_usage._key_aad(k.key_id, k.tenant_id, k.provider, k.key_version + 1));
    UPDATE llm_usage.provider_key_store
       SET key_version = key_version + 1, key_ciphertext = s.key_ciphertext, wrapped_dek = s.wrapped_dek,
           master_key_version = s.master_key_version, key_preview = '…' || right($2, 4), rotated_at = now(),
           is_active = true
     WHERE key_id = k.key_id;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (k.tenant_id, 'security', 'rotate_provider_key', llm_usage._caller()::regrole::text,
            jsonb_build_object('key_id', k.key_id, 'provider', k.provider, 'key_preview', '…' || right($2, 4)));
END
$$;
COMMENT ON FUNCTION llm_usage.rotate_provider_key(bigint, text, boolean) IS
'Replaces a stored key with a new one (new data key, new ciphertext) and reactivates it.  Admin only.';

CREATE FUNCTION llm_usage.deactivate_provider_key(key_id bigint)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    k llm_usage.provider_key_store;
BEGIN
    PERFORM llm_usage._require_admin('deactivate_provider_key');
    k := llm_usage._key_row($1);
    UPDATE llm_usage.provider_key_store SET is_active = false WHERE key_id = k.key_id;
    UPDATE llm_usage.collector_runs
       SET status = 'failed', finished_at = now(), error = 'key deactivated before the run started'
     WHERE key_id = k.key_id AND status = 'queued';
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (k.tenant_id, 'security', 'deactivate_provider_key', llm_usage._caller()::regrole::text,
            jsonb_build_object('key_id', k.key_id, 'provider', k.provider));
END
$$;
COMMENT ON FUNCTION llm_usage.deactivate_provider_key(bigint) IS
'Stops using a stored key (its queued runs are dropped); rotate_provider_key() reactivates it.  Admin only.';

CREATE FUNCTION llm_usage.rotate_master_key()
RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st     record;
    k      llm_usage.provider_key_store;
    w      record;
    v_done integer := 0;
BEGIN
    PERFORM llm_usage._require_admin('rotate_master_key');
    SELECT * INTO st FROM llm_usage._master_key_status(true);
    IF NOT st.loaded OR st.problem IS NOT NULL THEN
        RAISE EXCEPTION 'llm_usage master key file could not be read'
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = st.problem || '.',
                  HINT = 'Fix llm_usage.master_key_file first; keys stay wrapped as they are.';
    END IF;
    FOR k IN SELECT * FROM llm_usage.provider_key_store
              WHERE master_key_version <> st.current_version ORDER BY key_id FOR UPDATE
    LOOP
        SELECT * INTO w FROM llm_usage._rewrap_key(k.wrapped_dek, k.master_key_version,
                                                   llm_usage._key_aad(k.key_id, k.tenant_id, k.provider, k.key_version));
        UPDATE llm_usage.provider_key_store
           SET wrapped_dek = w.wrapped_dek, master_key_version = w.master_key_version
         WHERE key_id = k.key_id;
        v_done := v_done + 1;
    END LOOP;
    IF v_done = 0 THEN
        RAISE NOTICE 'every stored key already uses master key version %', st.current_version
            USING HINT = 'To rotate, add a line "<version>:<new key>" with a higher version to llm_usage.master_key_file, keeping the old line until this function has run.';
    END IF;
    RETURN v_done;
END
$$;
COMMENT ON FUNCTION llm_usage.rotate_master_key() IS
'Re-wraps every stored key''s data key under the newest master key version in llm_usage.master_key_file (re-read now), in one transaction: keys stay readable throughout as long as the file keeps the old version until this commits.  Returns the keys re-wrapped.  Admin only.';

------------------------------------------------------------------------
-- Collection runs
------------------------------------------------------------------------
CREATE TABLE llm_usage.collector_runs (
    run_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id        bigint NOT NULL,
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
    requested_by  text NOT NULL DEFAULT session_user
);
CREATE INDEX collector_runs_queued_idx ON llm_usage.collector_runs (run_id) WHERE status IN ('queued', 'running');
CREATE INDEX collector_runs_key_idx ON llm_usage.collector_runs (key_id, run_id);
COMMENT ON TABLE llm_usage.collector_runs IS
'One row per collection of one key over one window [window_from, window_to) of UTC days: queued, running, succeeded or failed, with pages, rows written, HTTP requests and the error.';

CREATE FUNCTION llm_usage._default_window(p_key llm_usage.provider_key_store, OUT window_from timestamptz, OUT window_to timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    -- The previous full day in llm_usage.timezone, re-fetching the day before
    -- (providers keep filling recent buckets), plus every earlier day not
    -- collected yet, at most 31 days back; a new key starts a week back.
    SELECT (greatest(d.last_day - 30, least(coalesce(p_key.collected_through + 1, d.last_day - 6), d.last_day - 1))
              ::timestamp AT TIME ZONE 'UTC'),
           ((d.last_day + 1)::timestamp AT TIME ZONE 'UTC')
      FROM (SELECT (now() AT TIME ZONE coalesce(current_setting('llm_usage.timezone', true), 'UTC'))::date - 1 AS last_day) d
$$;
COMMENT ON FUNCTION llm_usage._default_window(llm_usage.provider_key_store) IS
'Internal: the window a scheduled run of a key collects (UTC days up to the previous full day in llm_usage.timezone).';

CREATE FUNCTION llm_usage.collect_now(key_id bigint DEFAULT NULL, from_date date DEFAULT NULL, to_date date DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    k       llm_usage.provider_key_store;
    v_first bigint;
    v_id    bigint;
    w       record;
BEGIN
    PERFORM llm_usage._require_admin('collect_now');
    IF $1 IS NOT NULL THEN
        k := llm_usage._key_row($1);
        IF NOT k.is_active THEN
            RAISE EXCEPTION 'provider key % is deactivated', $1
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      HINT = 'Reactivate it with llm_usage.rotate_provider_key().';
        END IF;
        IF k.provider = 'custom' THEN
            RAISE EXCEPTION 'provider key % is of provider "custom", which has no usage API to collect from', $1
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
    END IF;
    IF $2 IS NOT NULL AND $3 IS NOT NULL AND $3 < $2 THEN
        RAISE EXCEPTION 'to_date (%) is before from_date (%)', $3, $2
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $3 IS NOT NULL AND $3 > (now() AT TIME ZONE 'UTC')::date THEN
        RAISE EXCEPTION 'to_date (%) is in the future', $3
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF $2 IS NOT NULL AND $2 < (now() AT TIME ZONE 'UTC')::date - 366 * 3 THEN
        RAISE EXCEPTION 'from_date (%) is more than three years ago', $2
            USING ERRCODE = 'invalid_parameter_value';
    END IF;

    FOR k IN SELECT * FROM llm_usage.provider_key_store s
              WHERE ($1 IS NULL OR s.key_id = $1) AND s.is_active AND s.provider <> 'custom'
              ORDER BY s.key_id
    LOOP
        w := llm_usage._default_window(k);
        INSERT INTO llm_usage.collector_runs (key_id, tenant_id, provider, trigger, window_from, window_to)
        VALUES (k.key_id, k.tenant_id, k.provider, 'manual',
                coalesce($2::timestamp AT TIME ZONE 'UTC', w.window_from),
                coalesce(($3 + 1)::timestamp AT TIME ZONE 'UTC', greatest(w.window_to, ($2 + 1)::timestamp AT TIME ZONE 'UTC')))
        RETURNING run_id INTO v_id;
        v_first := coalesce(v_first, v_id);
    END LOOP;
    IF v_first IS NULL THEN
        RAISE EXCEPTION 'no active provider key to collect'
            USING ERRCODE = 'undefined_object',
                  HINT = 'Store one with llm_usage.add_provider_key().';
    END IF;
    IF current_database() <> coalesce(current_setting('llm_usage.database', true), 'postgres') THEN
        RAISE WARNING 'the llm_usage collector works in database "%", not in this one; these runs stay queued',
                coalesce(current_setting('llm_usage.database', true), 'postgres')
            USING HINT = 'Store keys and call collect_now() in the database named by llm_usage.database.';
    ELSIF NOT llm_usage._wake_worker() THEN
        RAISE WARNING 'the llm_usage collector is not running; the run will start when it does'
            USING HINT = 'Check llm_usage.enabled, llm_usage.database and the server log.';
    END IF;
    RETURN v_first;
END
$$;
COMMENT ON FUNCTION llm_usage.collect_now(bigint, date, date) IS
'Queues a collection run now for one key (or every active key) over [from_date, to_date] (UTC days; default: the scheduled window) and wakes the collector at commit; returns the first run id (one run per key, consecutive ids).  Admin only.';

CREATE FUNCTION llm_usage._queue_scheduled_runs()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    n integer;
BEGIN
    INSERT INTO llm_usage.collector_runs (key_id, tenant_id, provider, trigger, window_from, window_to, requested_by)
    SELECT k.key_id, k.tenant_id, k.provider, 'schedule', w.window_from, w.window_to, 'llm_usage collector'
      FROM llm_usage.provider_key_store k
     CROSS JOIN LATERAL llm_usage._default_window(k) w
     WHERE k.is_active AND k.provider <> 'custom'
       AND NOT EXISTS (SELECT 1 FROM llm_usage.collector_runs r
                        WHERE r.key_id = k.key_id AND r.status IN ('queued', 'running'))
     ORDER BY k.key_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._queue_scheduled_runs() IS 'Internal (worker): queue one run per active key that has none pending.';

CREATE FUNCTION llm_usage._claim_next_run()
RETURNS TABLE (run_id bigint, key_id bigint, provider text, window_from timestamptz, window_to timestamptz,
               key_ciphertext bytea, wrapped_dek bytea, master_key_version integer, aad text)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    r llm_usage.collector_runs;
    k llm_usage.provider_key_store;
BEGIN
    LOOP
        SELECT * INTO r FROM llm_usage.collector_runs c
         WHERE c.status = 'queued' ORDER BY c.run_id LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN;
        END IF;
        SELECT * INTO k FROM llm_usage.provider_key_store s WHERE s.key_id = r.key_id;
        IF NOT FOUND OR NOT k.is_active THEN
            UPDATE llm_usage.collector_runs c SET status = 'failed', finished_at = now(),
                   error = 'key deactivated or removed before the run started'
             WHERE c.run_id = r.run_id;
            CONTINUE;
        END IF;
        UPDATE llm_usage.collector_runs c SET status = 'running', started_at = now() WHERE c.run_id = r.run_id;
        UPDATE llm_usage.provider_key_store s SET last_used_at = now() WHERE s.key_id = k.key_id;
        RETURN QUERY SELECT r.run_id, k.key_id, k.provider, r.window_from, r.window_to, k.key_ciphertext,
                            k.wrapped_dek, k.master_key_version,
                            llm_usage._key_aad(k.key_id, k.tenant_id, k.provider, k.key_version);
        RETURN;
    END LOOP;
END
$$;
COMMENT ON FUNCTION llm_usage._claim_next_run() IS 'Internal (worker): mark the oldest queued run running and hand over its key''s ciphertext.';

CREATE FUNCTION llm_usage._finish_run(p_run_id bigint, p_status text, p_pages integer, p_rows bigint,
                                      p_attempts integer, p_error text)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r llm_usage.collector_runs;
BEGIN
    UPDATE llm_usage.collector_runs
       SET status = p_status, finished_at = now(), pages = p_pages, rows_written = p_rows,
           http_attempts = p_attempts, error = p_error
     WHERE run_id = p_run_id
    RETURNING * INTO r;
    UPDATE llm_usage.provider_key_store
       SET last_synced_at = now(), last_sync_status = p_status, last_error = p_error,
           collected_through = CASE WHEN p_status = 'succeeded'
                                    THEN greatest(collected_through, (r.window_to AT TIME ZONE 'UTC')::date - 1)
                                    ELSE collected_through END
     WHERE key_id = r.key_id;
    IF p_status = 'failed' THEN
        PERFORM llm_usage._raise_alert(r.tenant_id, 'collection_failed', 'error',
                    format('collection of %s key %s failed: %s', r.provider, r.key_id, p_error),
                    jsonb_build_object('run_id', r.run_id, 'key_id', r.key_id, 'provider', r.provider,
                                       'window_from', r.window_from, 'window_to', r.window_to,
                                       'http_attempts', p_attempts, 'error', p_error));
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._finish_run(bigint, text, integer, bigint, integer, text) IS
'Internal (worker): record how a run ended; a failure raises a collection_failed alert.';

CREATE FUNCTION llm_usage._recover_interrupted_runs()
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT run_id, pages, http_attempts FROM llm_usage.collector_runs WHERE status = 'running' ORDER BY run_id
    LOOP
        PERFORM llm_usage._finish_run(r.run_id, 'failed', r.pages, 0, r.http_attempts,
                                      'interrupted: the server or the collector stopped during the run; nothing of it was written');
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._recover_interrupted_runs() IS 'Internal (worker, at start): runs a crash left running are failed (their writes were rolled back).';

------------------------------------------------------------------------
-- Attribution of provider usage to tenants
------------------------------------------------------------------------
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

CREATE FUNCTION llm_usage._attribute(p_provider text, p_key_tenant text, p_project text, p_workspace text,
                                     p_api_key text, OUT tenant_id text, OUT attributed_by text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT coalesce(a.tenant_id, p_key_tenant), coalesce(a.dimension, 'key')
      FROM (SELECT 1) one
      LEFT JOIN LATERAL (
            SELECT m.tenant_id, m.dimension
              FROM llm_usage.provider_attributions m
             WHERE m.provider = p_provider
               AND ((m.dimension = 'api_key_id' AND m.value = p_api_key)
                 OR (m.dimension = 'project_id' AND m.value = p_project)
                 OR (m.dimension = 'workspace_id' AND m.value = p_workspace))
             ORDER BY array_position(ARRAY['api_key_id', 'project_id', 'workspace_id'], m.dimension)
             LIMIT 1) a ON true
$$;
COMMENT ON FUNCTION llm_usage._attribute(text, text, text, text, text) IS
'Internal: the tenant a collected row belongs to and why (a mapped dimension, or "key": the key''s own tenant).';

CREATE FUNCTION llm_usage.attribute_provider_usage(provider text, dimension text, value text, tenant_id text)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('attribute_provider_usage');
    PERFORM llm_usage._require_arg($1, 'provider');
    IF $1 NOT IN ('openai', 'anthropic') THEN
        RAISE EXCEPTION 'unknown provider "%"', $1
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Providers are: openai, anthropic.';
    END IF;
    PERFORM llm_usage._require_arg($2, 'dimension');
    IF $2 NOT IN ('project_id', 'workspace_id', 'api_key_id') THEN
        RAISE EXCEPTION 'unknown dimension "%"', $2
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Dimensions are: project_id, workspace_id, api_key_id.';
    END IF;
    PERFORM llm_usage._check_text($3, 'value', 200);
    t := llm_usage._tenant($4);
    INSERT INTO llm_usage.provider_attributions AS a (provider, dimension, value, tenant_id)
    VALUES ($1, $2, $3, t.tenant_id)
    ON CONFLICT (provider, dimension, value) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, created_at = now();
    -- re-attribute what was already collected
    UPDATE llm_usage.provider_usage u
       SET (tenant_id, attributed_by) =
           (SELECT x.tenant_id, x.attributed_by
              FROM llm_usage._attribute(u.provider, k.tenant_id, u.project_id, u.workspace_id, u.provider_api_key_id) x)
      FROM llm_usage.provider_key_store k
     WHERE k.key_id = u.key_id AND u.provider = $1
       AND ROW(u.tenant_id, u.attributed_by) IS DISTINCT FROM
           (SELECT ROW(x.tenant_id, x.attributed_by)
              FROM llm_usage._attribute(u.provider, k.tenant_id, u.project_id, u.workspace_id, u.provider_api_key_id) x);
    UPDATE llm_usage.provider_costs c
       SET (tenant_id, attributed_by) =
           (SELECT x.tenant_id, x.attributed_by
              FROM llm_usage._attribute(c.provider, k.tenant_id, c.project_id, c.workspace_id, c.provider_api_key_id) x)
      FROM llm_usage.provider_key_store k
     WHERE k.key_id = c.key_id AND c.provider = $1
       AND ROW(c.tenant_id, c.attributed_by) IS DISTINCT FROM
           (SELECT ROW(x.tenant_id, x.attributed_by)
              FROM llm_usage._attribute(c.provider, k.tenant_id, c.project_id, c.workspace_id, c.provider_api_key_id) x);
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'admin', 'attribute_provider_usage', llm_usage._caller()::regrole::text,
            jsonb_build_object('provider', $1, 'dimension', $2, 'value', $3));
END
$$;
COMMENT ON FUNCTION llm_usage.attribute_provider_usage(text, text, text, text) IS
'Maps a provider project_id, workspace_id or api_key_id to a tenant: usage and costs collected with that value (already or later) belong to it.  Admin only.';

------------------------------------------------------------------------
-- Ingesting provider pages (called by the collector in its write transaction)
------------------------------------------------------------------------
CREATE FUNCTION llm_usage._ingest_page(p_run_id bigint, p_endpoint text, p_page jsonb)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r      llm_usage.collector_runs;
    v_kt   text;
    n      integer;
BEGIN
    SELECT * INTO r FROM llm_usage.collector_runs WHERE run_id = p_run_id;
    SELECT tenant_id INTO v_kt FROM llm_usage.provider_key_store WHERE key_id = r.key_id;

    IF r.provider = 'openai' AND p_endpoint IN ('completions', 'embeddings') THEN
        INSERT INTO llm_usage.provider_usage AS u
            (tenant_id, attributed_by, key_id, run_id, provider, endpoint, bucket_start, bucket_end, model,
             project_id, workspace_id, provider_api_key_id, service_tier, batch, input_tokens,
             cached_input_tokens, cache_write_tokens, output_tokens, requests)
        SELECT a.tenant_id, a.attributed_by, r.key_id, r.run_id, 'openai', p_endpoint, g.bs, g.be, g.model,
               g.project_id, NULL, g.api_key_id, g.service_tier, g.batch, g.input, g.cached, g.cache_write,
               g.output, g.requests
          FROM (SELECT to_timestamp((b->>'start_time')::bigint) AS bs, to_timestamp((b->>'end_time')::bigint) AS be,
                       x->>'model' AS model, x->>'project_id' AS project_id, x->>'api_key_id' AS api_key_id,
                       x->>'service_tier' AS service_tier, (x->>'batch')::boolean AS batch,
                       sum(coalesce((x->>'input_tokens')::numeric, 0))::bigint AS input,
                       sum(coalesce((x->>'input_cached_tokens')::numeric, 0))::bigint AS cached,
                       sum(coalesce((x->>'input_cache_write_tokens')::numeric, 0))::bigint AS cache_write,
                       sum(coalesce((x->>'output_tokens')::numeric, 0))::bigint AS output,
                       sum(coalesce((x->>'num_model_requests')::numeric, 0))::bigint AS requests
                  FROM jsonb_array_elements(p_page->'data') b
                 CROSS JOIN LATERAL jsonb_array_elements(coalesce(b->'results', '[]')) x
                 GROUP BY 1, 2, 3, 4, 5, 6, 7) g
         CROSS JOIN LATERAL llm_usage._attribute('openai', v_kt, g.project_id, NULL, g.api_key_id) a
        ON CONFLICT ON CONSTRAINT provider_usage_natural_key DO UPDATE
           SET tenant_id = EXCLUDED.tenant_id, attributed_by = EXCLUDED.attributed_by, run_id = EXCLUDED.run_id,
               bucket_end = EXCLUDED.bucket_end, input_tokens = EXCLUDED.input_tokens,
               cached_input_tokens = EXCLUDED.cached_input_tokens, cache_write_tokens = EXCLUDED.cache_write_tokens,
               output_tokens = EXCLUDED.output_tokens, requests = EXCLUDED.requests, collected_at = now();
    ELSIF r.provider = 'anthropic' AND p_endpoint = 'messages' THEN
        INSERT INTO llm_usage.provider_usage AS u
            (tenant_id, attributed_by, key_id, run_id, provider, endpoint, bucket_start, bucket_end, model,
             project_id, workspace_id, provider_api_key_id, service_tier, batch, input_tokens,
             cached_input_tokens, cache_write_tokens, output_tokens, requests)
        SELECT a.tenant_id, a.attributed_by, r.key_id, r.run_id, 'anthropic', 'messages', g.bs, g.be, g.model,
               NULL, g.workspace_id, g.api_key_id, g.service_tier, NULL,
               g.uncached + g.cache_read + g.cache_write, g.cache_read, g.cache_write, g.output, 0
          FROM (SELECT (b->>'starting_at')::timestamptz AS bs, (b->>'ending_at')::timestamptz AS be,
                       x->>'model' AS model, x->>'workspace_id' AS workspace_id, x->>'api_key_id' AS api_key_id,
                       x->>'service_tier' AS service_tier,
                       sum(coalesce((x->>'uncached_input_tokens')::numeric, 0))::bigint AS uncached,
                       sum(coalesce((x->>'cache_read_input_tokens')::numeric, 0))::bigint AS cache_read,
                       sum(coalesce((x->'cache_creation'->>'ephemeral_5m_input_tokens')::numeric, 0)
                           + coalesce((x->'cache_creation'->>'ephemeral_1h_input_tokens')::numeric, 0))::bigint AS cache_write,
                       sum(coalesce((x->>'output_tokens')::numeric, 0))::bigint AS output
                  FROM jsonb_array_elements(p_page->'data') b
                 CROSS JOIN LATERAL jsonb_array_elements(coalesce(b->'results', '[]')) x
                 GROUP BY 1, 2, 3, 4, 5, 6) g
         CROSS JOIN LATERAL llm_usage._attribute('anthropic', v_kt, NULL, g.workspace_id, g.api_key_id) a
        ON CONFLICT ON CONSTRAINT provider_usage_natural_key DO UPDATE
           SET tenant_id = EXCLUDED.tenant_id, attributed_by = EXCLUDED.attributed_by, run_id = EXCLUDED.run_id,
               bucket_end = EXCLUDED.bucket_end, input_tokens = EXCLUDED.input_tokens,
               cached_input_tokens = EXCLUDED.cached_input_tokens, cache_write_tokens = EXCLUDED.cache_write_tokens,
               output_tokens = EXCLUDED.output_tokens, requests = EXCLUDED.requests, collected_at = now();
    ELSIF p_endpoint = 'costs' AND r.provider IN ('openai', 'anthropic') THEN
        IF EXISTS (SELECT 1 FROM jsonb_array_elements(p_page->'data') b
                    CROSS JOIN LATERAL jsonb_array_elements(coalesce(b->'results', '[]')) x
                    WHERE lower(coalesce(CASE r.provider WHEN 'openai' THEN x->'amount'->>'currency'
                                                          ELSE x->>'currency' END, 'usd')) <> 'usd') THEN
            RAISE EXCEPTION 'provider reported a cost in a currency other than USD'
                USING ERRCODE = 'feature_not_supported';
        END IF;
        INSERT INTO llm_usage.provider_costs AS c
            (tenant_id, attributed_by, key_id, run_id, provider, bucket_start, bucket_end, line_item, model,
             project_id, workspace_id, provider_api_key_id, token_type, service_tier, context_window, amount_usd)
        SELECT a.tenant_id, a.attributed_by, r.key_id, r.run_id, r.provider, g.bs, g.be, g.line_item, g.model,
               g.project_id, g.workspace_id, g.api_key_id, g.token_type, g.service_tier, g.context_window, g.amount
          FROM (SELECT CASE r.provider WHEN 'openai' THEN to_timestamp((b->>'start_time')::bigint)
                                       ELSE (b->>'starting_at')::timestamptz END AS bs,
                       CASE r.provider WHEN 'openai' THEN to_timestamp((b->>'end_time')::bigint)
                                       ELSE (b->>'ending_at')::timestamptz END AS be,
                       CASE r.provider WHEN 'openai' THEN x->>'line_item' ELSE x->>'description' END AS line_item,
                       x->>'model' AS model, x->>'project_id' AS project_id, x->>'workspace_id' AS workspace_id,
                       x->>'api_key_id' AS api_key_id, x->>'token_type' AS token_type,
                       x->>'service_tier' AS service_tier, x->>'context_window' AS context_window,
                       sum(CASE r.provider WHEN 'openai' THEN (x->'amount'->>'value')::numeric
                                           ELSE (x->>'amount')::numeric * 0.01 END) AS amount
                  FROM jsonb_array_elements(p_page->'data') b
                 CROSS JOIN LATERAL jsonb_array_elements(coalesce(b->'results', '[]')) x
                 GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10) g
         CROSS JOIN LATERAL llm_usage._attribute(r.provider, v_kt, g.project_id, g.workspace_id, g.api_key_id) a
        ON CONFLICT ON CONSTRAINT provider_costs_natural_key DO UPDATE
           SET tenant_id = EXCLUDED.tenant_id, attributed_by = EXCLUDED.attributed_by, run_id = EXCLUDED.run_id,
               bucket_end = EXCLUDED.bucket_end, amount_usd = EXCLUDED.amount_usd, collected_at = now();
    ELSE
        RAISE EXCEPTION 'no ingest for % endpoint "%"', r.provider, p_endpoint
            USING ERRCODE = 'feature_not_supported';
    END IF;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._ingest_page(bigint, text, jsonb) IS
'Internal (worker): upsert the rows of one provider page on their natural keys, attributed to tenants; returns the rows written.';

------------------------------------------------------------------------
-- Reconciliation
------------------------------------------------------------------------
CREATE VIEW llm_usage.reconciliation WITH (security_barrier) AS
WITH tracked AS (
    SELECT e.tenant_id, e.provider, (e.occurred_at AT TIME ZONE 'UTC')::date AS day, sum(e.cost_usd) AS usd
      FROM llm_usage.usage_events e
     WHERE e.provider IN ('openai', 'anthropic')
     GROUP BY 1, 2, 3),
reported AS (
    SELECT c.tenant_id, c.provider, (c.bucket_start AT TIME ZONE 'UTC')::date AS day, sum(c.amount_usd) AS usd
      FROM llm_usage.provider_costs c
     GROUP BY 1, 2, 3)
SELECT tenant_id, provider, day,
       coalesce(t.usd, 0) AS tracked_usd,
       r.usd AS reported_usd,
       r.usd - coalesce(t.usd, 0) AS difference_usd,
       round(100 * (r.usd - coalesce(t.usd, 0)) / nullif(r.usd, 0), 2) AS difference_pct
  FROM tracked t
  FULL JOIN reported r USING (tenant_id, provider, day)
 WHERE llm_usage._can_access(tenant_id);
COMMENT ON VIEW llm_usage.reconciliation IS
'Per tenant, provider and UTC day: cost tracked with track_usage() against cost the provider reported (NULL until collected), the difference in USD (reported minus tracked) and in percent of reported.';

------------------------------------------------------------------------
-- Privileges
------------------------------------------------------------------------
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA llm_usage FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA llm_usage FROM PUBLIC;

-- policy helpers must be callable by whoever reads the tables
GRANT EXECUTE ON FUNCTION llm_usage._caller(), llm_usage._is_admin(), llm_usage._my_tenants(),
                          llm_usage._can_access(text)
    TO llm_usage_admin, llm_usage_app, llm_usage_reader;

GRANT EXECUTE ON FUNCTION
    llm_usage.build_info(),
    llm_usage.quota_status(text),
    llm_usage.today_usage(text),
    llm_usage.calculate_cost(text, bigint, bigint, bigint, timestamptz, bigint),
    llm_usage.credit_balance(text)
    TO llm_usage_app, llm_usage_reader;

GRANT EXECUTE ON FUNCTION
    llm_usage.enforce_quota(text, text, numeric),
    llm_usage.enforce_quotas(text, jsonb),
    llm_usage.track_usage(text, text, text, bigint, bigint, bigint, integer, integer, text, jsonb, text, timestamptz, bigint),
    llm_usage.audit(text, text, text, text, jsonb),
    llm_usage.deduct_credits(text, numeric, text, text)
    TO llm_usage_app;

GRANT EXECUTE ON FUNCTION
    llm_usage.tenant_usage(text, timestamptz, timestamptz, text),
    llm_usage.top_consumers(text, text, integer),
    llm_usage.tenant_events(text, timestamptz, timestamptz, text, integer),
    llm_usage.usage_overview(text, text),
    llm_usage.cost_summary(text),
    llm_usage.unpriced_models(),
    llm_usage.audit_trail(text, integer),
    llm_usage.failed_operations(text, integer),
    llm_usage.security_events(text, integer),
    llm_usage.audit_report(text, timestamptz, timestamptz)
    TO llm_usage_reader;

GRANT EXECUTE ON FUNCTION
    llm_usage.create_plan(text, text, text),
    llm_usage.set_plan_quota(text, text, numeric, text),
    llm_usage.create_tenant(text, text, text),
    llm_usage.update_tenant(text, text, text),
    llm_usage.grant_tenant_access(regrole, text),
    llm_usage.revoke_tenant_access(regrole, text),
    llm_usage.set_custom_quota(text, text, numeric, text),
    llm_usage.clear_custom_quota(text, text, text),
    llm_usage.set_model_price(text, text, numeric, numeric, numeric, numeric, timestamptz),
    llm_usage.aggregate_usage_metrics(text, timestamptz),
    llm_usage.grant_credits(text, numeric, text, text),
    llm_usage.add_provider_key(text, text, text, text, boolean),
    llm_usage.rotate_provider_key(bigint, text, boolean),
    llm_usage.deactivate_provider_key(bigint),
    llm_usage.rotate_master_key(),
    llm_usage.collect_now(bigint, date, date),
    llm_usage.attribute_provider_usage(text, text, text, text)
    TO llm_usage_admin;

-- Catalog-like tables: readable by every llm_usage role.
GRANT SELECT ON llm_usage.quota_types, llm_usage.plans, llm_usage.plan_quotas,
                llm_usage.model_price_versions, llm_usage.model_prices
    TO llm_usage_app, llm_usage_reader;

-- Tenant tables: readable by app and reader, row-level security keeps
-- them to their tenants.  Writes go through the functions only.
GRANT SELECT ON llm_usage.tenants, llm_usage.tenant_quota_overrides, llm_usage.quota_counters,
                llm_usage.usage_events, llm_usage.tenant_usage_metrics, llm_usage.provider_usage,
                llm_usage.provider_costs, llm_usage.credit_balances, llm_usage.credit_ledger,
                llm_usage.provider_keys, llm_usage.reconciliation
    TO llm_usage_app, llm_usage_reader;
GRANT SELECT ON llm_usage.collector_runs, llm_usage.alerts TO llm_usage_reader;

-- Admins may also read and fix data directly (audit_events stays append-only).
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA llm_usage TO llm_usage_admin;
REVOKE UPDATE, DELETE ON llm_usage.audit_events FROM llm_usage_admin;
REVOKE INSERT, UPDATE, DELETE ON llm_usage.quota_types FROM llm_usage_admin;
-- key ciphertext is for the worker (which runs as the owner) only
REVOKE ALL ON llm_usage.provider_key_store FROM llm_usage_admin;
REVOKE INSERT, UPDATE, DELETE ON llm_usage.collector_runs FROM llm_usage_admin;
GRANT SELECT ON llm_usage.provider_keys, llm_usage.reconciliation TO llm_usage_admin;
GRANT SELECT ON llm_usage.model_prices TO llm_usage_admin;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA llm_usage TO llm_usage_admin;

------------------------------------------------------------------------
-- Row-level security: a role sees the rows of the tenants it was granted
-- (admins see everything).  The helpers run once per query (initplans).
------------------------------------------------------------------------
DO $rls$
DECLARE
    tbl text;
BEGIN
    FOREACH tbl IN ARRAY ARRAY['tenants', 'tenant_quota_overrides', 'quota_counters', 'tenant_access',
                               'usage_events', 'tenant_usage_metrics', 'provider_usage', 'provider_costs',
                               'audit_events', 'credit_balances', 'credit_ledger', 'alerts', 'collector_runs',
                               'provider_key_store', 'provider_attributions']
    LOOP
        EXECUTE format('ALTER TABLE llm_usage.%I ENABLE ROW LEVEL SECURITY', tbl);
        EXECUTE format($p$CREATE POLICY tenant_isolation ON llm_usage.%I
                            USING ((SELECT llm_usage._is_admin())
                                   OR tenant_id IN (SELECT unnest(llm_usage._my_tenants())))
                            WITH CHECK ((SELECT llm_usage._is_admin()))$p$, tbl);
        EXECUTE format('COMMENT ON POLICY tenant_isolation ON llm_usage.%I IS %L', tbl,
                       'Non-admin roles see only the rows of tenants granted to them; only admins write directly.');
    END LOOP;
END
$rls$;

------------------------------------------------------------------------
-- pg_dump: user data is dumped; shipped plans and prices are recreated by
-- CREATE EXTENSION instead.
------------------------------------------------------------------------
SELECT pg_catalog.pg_extension_config_dump('llm_usage.plans', 'WHERE NOT is_shipped');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.plan_quotas', 'WHERE NOT is_shipped');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.model_price_versions', 'WHERE NOT is_shipped');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.model_price_versions_price_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_events_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_usage_usage_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_costs_cost_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.audit_events_audit_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.credit_ledger_entry_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.tenants', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.tenant_quota_overrides', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.quota_counters', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.tenant_access', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.usage_events', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.tenant_usage_metrics', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.aggregation_state', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_usage', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_costs', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.audit_events', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.credit_balances', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.credit_ledger', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.alerts', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.alerts_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_key_store', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_key_store_key_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.collector_runs', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.collector_runs_run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('llm_usage.provider_attributions', '');

------------------------------------------------------------------------
-- Published prices (generated by tools/gen_price_seed.py from the LiteLLM
-- price map of 2026-07-24; valid for all time until a new version is set)
------------------------------------------------------------------------
INSERT INTO llm_usage.model_price_versions
  (provider, model, mode, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,
   cache_write_usd_per_mtok, cache_write_1h_usd_per_mtok, batch_input_usd_per_mtok,
   batch_output_usd_per_mtok, input_above_200k_usd_per_mtok, output_above_200k_usd_per_mtok,
   deprecation_date, is_shipped, source)
VALUES
  ('anthropic', 'claude-3-7-sonnet-20250219', 'chat', 3, 15, 0.3, 3.75, 6, NULL, NULL, NULL, NULL, '2026-02-19', true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-3-haiku-20240307', 'chat', 0.25, 1.25, 0.03, 0.3, 6, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-3-opus-20240229', 'chat', 15, 75, 1.5, 18.75, 6, NULL, NULL, NULL, NULL, '2026-05-01', true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-4-opus-20250514', 'chat', 15, 75, 1.5, 18.75, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-4-sonnet-20250514', 'chat', 3, 15, 0.3, 3.75, NULL, NULL, NULL, 6, 22.5, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-fable-5', 'chat', 10, 50, 1, 12.5, 20, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-haiku-4-5', 'chat', 1, 5, 0.1, 1.25, 2, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-haiku-4-5-20251001', 'chat', 1, 5, 0.1, 1.25, 2, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-4-1', 'chat', 15, 75, 1.5, 18.75, 30, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-4-1-20250805', 'chat', 15, 75, 1.5, 18.75, 30, NULL, NULL, NULL, NULL, '2026-08-05', true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-4-20250514', 'chat', 15, 75, 1.5, 18.75, 30, NULL, NULL, NULL, NULL, '2026-05-14', true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-4-5', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-4-5-20251101', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-4-6', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-4-6-20260205', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-4-7', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-4-7-20260416', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-4-8', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-opus-5', 'chat', 5, 25, 0.5, 6.25, 10, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-sonnet-4-20250514', 'chat', 3, 15, 0.3, 3.75, 6, NULL, NULL, 6, 22.5, '2026-05-14', true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-sonnet-4-5', 'chat', 3, 15, 0.3, 3.75, 6, NULL, NULL, 6, 22.5, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-sonnet-4-5-20250929', 'chat', 3, 15, 0.3, 3.75, 6, NULL, NULL, 6, 22.5, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-sonnet-4-6', 'chat', 3, 15, 0.3, 3.75, 6, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('anthropic', 'claude-sonnet-5', 'chat', 2, 10, 0.2, 2.5, 4, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'babbage-002', 'completion', 0.4, 0.4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'chatgpt-4o-latest', 'chat', 5, 15, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'codex-mini-latest', 'responses', 1.5, 6, 0.375, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'davinci-002', 'completion', 2, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:babbage-002', 'completion', 1.6, 1.6, NULL, NULL, NULL, 0.2, 0.2, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:davinci-002', 'completion', 12, 12, NULL, NULL, NULL, 1, 1, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-3.5-turbo', 'chat', 3, 6, NULL, NULL, NULL, 1.5, 3, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-3.5-turbo-0125', 'chat', 3, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-3.5-turbo-0613', 'chat', 3, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-3.5-turbo-1106', 'chat', 3, 6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-4-0613', 'chat', 30, 60, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-4.1-2025-04-14', 'chat', 3, 12, 0.75, NULL, NULL, 1.5, 6, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-4.1-mini-2025-04-14', 'chat', 0.8, 3.2, 0.2, NULL, NULL, 0.4, 1.6, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-4.1-nano-2025-04-14', 'chat', 0.2, 0.8, 0.05, NULL, NULL, 0.1, 0.4, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-4o-2024-08-06', 'chat', 3.75, 15, 1.875, NULL, NULL, 1.875, 7.5, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-4o-2024-11-20', 'chat', 3.75, 15, NULL, 1.875, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:gpt-4o-mini-2024-07-18', 'chat', 0.3, 1.2, 0.15, NULL, NULL, 0.15, 0.6, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'ft:o4-mini-2025-04-16', 'chat', 4, 16, 1, NULL, NULL, 2, 8, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-3.5-turbo', 'chat', 0.5, 1.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-3.5-turbo-0125', 'chat', 0.5, 1.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-3.5-turbo-1106', 'chat', 1, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-09-28', true, 'litellm 2026-07-24'),
  ('openai', 'gpt-3.5-turbo-16k', 'chat', 3, 4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-3.5-turbo-instruct', 'completion', 1.5, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-3.5-turbo-instruct-0914', 'completion', 1.5, 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4', 'chat', 30, 60, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4-0125-preview', 'chat', 10, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-26', true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4-0314', 'chat', 30, 60, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-26', true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4-0613', 'chat', 30, 60, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2025-06-06', true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4-1106-preview', 'chat', 10, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '2026-03-26', true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4-turbo', 'chat', 10, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4-turbo-2024-04-09', 'chat', 10, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4-turbo-preview', 'chat', 10, 30, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4.1', 'chat', 2, 8, 0.5, NULL, NULL, 1, 4, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4.1-2025-04-14', 'chat', 2, 8, 0.5, NULL, NULL, 1, 4, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4.1-mini', 'chat', 0.4, 1.6, 0.1, NULL, NULL, 0.2, 0.8, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4.1-mini-2025-04-14', 'chat', 0.4, 1.6, 0.1, NULL, NULL, 0.2, 0.8, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4.1-nano', 'chat', 0.1, 0.4, 0.025, NULL, NULL, 0.05, 0.2, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4.1-nano-2025-04-14', 'chat', 0.1, 0.4, 0.025, NULL, NULL, 0.05, 0.2, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o', 'chat', 2.5, 10, 1.25, NULL, NULL, 1.25, 5, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-2024-05-13', 'chat', 5, 15, NULL, NULL, NULL, 2.5, 7.5, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-2024-08-06', 'chat', 2.5, 10, 1.25, NULL, NULL, 1.25, 5, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-2024-11-20', 'chat', 2.5, 10, 1.25, NULL, NULL, 1.25, 5, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-audio-preview', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-audio-preview-2024-12-17', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-audio-preview-2025-06-03', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-mini', 'chat', 0.15, 0.6, 0.075, NULL, NULL, 0.075, 0.3, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-mini-2024-07-18', 'chat', 0.15, 0.6, 0.075, NULL, NULL, 0.075, 0.3, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-mini-audio-preview', 'chat', 0.15, 0.6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-mini-audio-preview-2024-12-17', 'chat', 0.15, 0.6, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-mini-search-preview', 'chat', 0.15, 0.6, 0.075, NULL, NULL, 0.075, 0.3, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-mini-search-preview-2025-03-11', 'chat', 0.15, 0.6, 0.075, NULL, NULL, 0.075, 0.3, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-search-preview', 'chat', 2.5, 10, 1.25, NULL, NULL, 1.25, 5, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-4o-search-preview-2025-03-11', 'chat', 2.5, 10, 1.25, NULL, NULL, 1.25, 5, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-2025-08-07', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-chat', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-chat-latest', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-codex', 'responses', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-mini', 'chat', 0.25, 2, 0.025, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-mini-2025-08-07', 'chat', 0.25, 2, 0.025, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-nano', 'chat', 0.05, 0.4, 0.005, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-nano-2025-08-07', 'chat', 0.05, 0.4, 0.005, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-pro', 'responses', 15, 120, NULL, NULL, NULL, 7.5, 60, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-pro-2025-10-06', 'responses', 15, 120, NULL, NULL, NULL, 7.5, 60, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-search-api', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5-search-api-2025-10-14', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.1', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.1-2025-11-13', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.1-chat-latest', 'chat', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.1-codex', 'responses', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.1-codex-max', 'responses', 1.25, 10, 0.125, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.1-codex-mini', 'responses', 0.25, 2, 0.025, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.2', 'chat', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.2-2025-12-11', 'chat', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.2-chat-latest', 'chat', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.2-codex', 'responses', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.2-pro', 'responses', 21, 168, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.2-pro-2025-12-11', 'responses', 21, 168, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.3-chat-latest', 'chat', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.3-codex', 'responses', 1.75, 14, 0.175, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.4', 'chat', 2.5, 15, 0.25, NULL, NULL, 1.25, 7.5, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.4-2026-03-05', 'chat', 2.5, 15, 0.25, NULL, NULL, 1.25, 7.5, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.4-mini', 'chat', 0.75, 4.5, 0.075, NULL, NULL, 0.375, 2.25, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.4-mini-2026-03-17', 'chat', 0.75, 4.5, 0.075, NULL, NULL, 0.375, 2.25, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.4-nano', 'chat', 0.2, 1.25, 0.02, NULL, NULL, 0.1, 0.625, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.4-nano-2026-03-17', 'chat', 0.2, 1.25, 0.02, NULL, NULL, 0.1, 0.625, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.4-pro', 'responses', 30, 180, 3, NULL, NULL, 15, 90, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.4-pro-2026-03-05', 'responses', 30, 180, 3, NULL, NULL, 15, 90, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.5', 'chat', 5, 30, 0.5, NULL, NULL, 2.5, 15, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.5-2026-04-23', 'chat', 5, 30, 0.5, NULL, NULL, 2.5, 15, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.5-pro', 'responses', 30, 180, 3, NULL, NULL, 15, 90, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.5-pro-2026-04-23', 'responses', 30, 180, 3, NULL, NULL, 15, 90, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.6', 'chat', 5, 30, 0.5, 6.25, NULL, 2.5, 15, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.6-luna', 'chat', 1, 6, 0.1, 1.25, NULL, 0.5, 3, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.6-sol', 'chat', 5, 30, 0.5, 6.25, NULL, 2.5, 15, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-5.6-terra', 'chat', 2.5, 15, 0.25, 3.125, NULL, 1.25, 7.5, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-audio', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-audio-1.5', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-audio-2025-08-28', 'chat', 2.5, 10, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-audio-mini', 'chat', 0.6, 2.4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-audio-mini-2025-10-06', 'chat', 0.6, 2.4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'gpt-audio-mini-2025-12-15', 'chat', 0.6, 2.4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o1', 'chat', 15, 60, 7.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o1-2024-12-17', 'chat', 15, 60, 7.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o1-pro', 'responses', 150, 600, NULL, NULL, NULL, 75, 300, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o1-pro-2025-03-19', 'responses', 150, 600, NULL, NULL, NULL, 75, 300, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o3', 'chat', 2, 8, 0.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o3-2025-04-16', 'chat', 2, 8, 0.5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o3-deep-research', 'responses', 10, 40, 2.5, NULL, NULL, 5, 20, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o3-deep-research-2025-06-26', 'responses', 10, 40, 2.5, NULL, NULL, 5, 20, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o3-mini', 'chat', 1.1, 4.4, 0.55, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o3-mini-2025-01-31', 'chat', 1.1, 4.4, 0.55, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o3-pro', 'responses', 20, 80, NULL, NULL, NULL, 10, 40, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o3-pro-2025-06-10', 'responses', 20, 80, NULL, NULL, NULL, 10, 40, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o4-mini', 'chat', 1.1, 4.4, 0.275, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o4-mini-2025-04-16', 'chat', 1.1, 4.4, 0.275, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o4-mini-deep-research', 'responses', 2, 8, 0.5, NULL, NULL, 1, 4, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'o4-mini-deep-research-2025-06-26', 'responses', 2, 8, 0.5, NULL, NULL, 1, 4, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'text-embedding-3-large', 'embedding', 0.13, 0, NULL, NULL, NULL, 0.065, 0, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'text-embedding-3-small', 'embedding', 0.02, 0, NULL, NULL, NULL, 0.01, 0, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'text-embedding-ada-002', 'embedding', 0.1, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true, 'litellm 2026-07-24'),
  ('openai', 'text-embedding-ada-002-v2', 'embedding', 0.1, 0, NULL, NULL, NULL, 0.05, 0, NULL, NULL, NULL, true, 'litellm 2026-07-24');
