/*
 * src/sql/pre_install/tenants.sql — tenants, plans, quota limits, access (install only)
 *
 * Tables are created once, at install; a later change to one goes into the
 * delta of its version in src/sql/updates/.  Seed rows are in seed.sql.
 */

CREATE TABLE llm_usage.quota_types (
    quota_type  text PRIMARY KEY,
    unit        text NOT NULL,
    description text NOT NULL
);
COMMENT ON TABLE llm_usage.quota_types IS 'The quota types enforce_quota() knows; fixed by the extension.';

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
    updated_at  timestamptz NOT NULL DEFAULT now(),
    prepaid     boolean NOT NULL DEFAULT false,
    low_balance_usd numeric
                CONSTRAINT tenants_low_balance_usd_check CHECK (low_balance_usd >= 0)
);
COMMENT ON TABLE llm_usage.tenants IS 'Tenants (customers, teams, projects) whose LLM usage is metered.  Create with create_tenant().';
COMMENT ON COLUMN llm_usage.tenants.timezone IS 'IANA zone in which the tenant''s calendar periods (minute, hour, day, month) are aligned.';
COMMENT ON COLUMN llm_usage.tenants.prepaid IS 'On prepaid billing: every tracked call''s cost and every collected custom-source row''s cost is deducted from its credit balance; set with set_prepaid_billing().';
COMMENT ON COLUMN llm_usage.tenants.low_balance_usd IS 'A prepaid tenant''s low-balance threshold (USD): a credits_low alert when its balance falls below it; NULL: none.';

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
