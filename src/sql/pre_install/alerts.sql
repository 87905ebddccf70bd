/*
 * src/sql/pre_install/alerts.sql — alerts and alert rules (install only)
 *
 * Rules are seeded in seed.sql.
 */

CREATE TABLE llm_usage.alerts (
    tenant_id       text NOT NULL,
    id              bigint GENERATED ALWAYS AS IDENTITY,
    kind            text NOT NULL
                    CONSTRAINT alerts_kind_check CHECK (kind IN ('quota_exceeded', 'quota_near', 'high_latency',
                        'high_error_rate', 'cost_anomaly', 'collection_failed', 'maintenance_failed', 'unpriced_usage',
                        'price_mismatch', 'credits_low', 'credits_exhausted')),
    severity        text NOT NULL DEFAULT 'warning'
                    CONSTRAINT alerts_severity_check CHECK (severity IN ('info', 'warning', 'error', 'critical')),
    message         text NOT NULL,
    details         jsonb NOT NULL DEFAULT '{}',
    created_at      timestamptz NOT NULL DEFAULT now(),
    acknowledged_at timestamptz,
    subject          text NOT NULL DEFAULT '',
    webhook_status   text CONSTRAINT alerts_webhook_status_check CHECK (webhook_status IN ('pending', 'delivered', 'failed')),
    webhook_attempts integer NOT NULL DEFAULT 0,
    webhook_error    text,
    email_status     text CONSTRAINT alerts_email_status_check CHECK (email_status IN ('pending', 'delivered', 'failed')),
    email_attempts   integer NOT NULL DEFAULT 0,
    email_error      text,
    delivered_at     timestamptz,
    webhook_next_at  timestamptz,
    email_next_at    timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX alerts_created_idx ON llm_usage.alerts (tenant_id, created_at);
COMMENT ON TABLE llm_usage.alerts IS
'Alerts raised for tenants; each new one is also sent with NOTIFY llm_usage_alerts (JSON payload).';
COMMENT ON COLUMN llm_usage.alerts.webhook_status IS
'pending, delivered or failed when llm_usage.alert_webhook_url was set as the alert was raised; NULL otherwise.';
COMMENT ON COLUMN llm_usage.alerts.email_status IS
'pending, delivered or failed when llm_usage.alert_smtp_url and alert_email_to were set as the alert was raised; NULL otherwise.';
COMMENT ON COLUMN llm_usage.alerts.webhook_next_at IS
'While the webhook delivery is pending after a failed attempt: when the worker tries again (NULL: at once).';
COMMENT ON COLUMN llm_usage.alerts.email_next_at IS
'While the e-mail delivery is pending after a failed attempt: when the worker tries again (NULL: at once).';
CREATE INDEX alerts_pending_idx ON llm_usage.alerts (id) WHERE webhook_status = 'pending' OR email_status = 'pending';
COMMENT ON COLUMN llm_usage.alerts.subject IS
'What the alert is about within its kind (a quota and period, a model, a key, a day); throttling is per tenant, kind and subject.';
CREATE INDEX alerts_throttle_idx ON llm_usage.alerts (tenant_id, kind, subject, created_at);

CREATE TABLE llm_usage.alert_rules (
    kind        text PRIMARY KEY
                CONSTRAINT alert_rules_kind_check CHECK (kind IN ('quota_exceeded', 'quota_near', 'high_latency',
                    'high_error_rate', 'cost_anomaly', 'collection_failed', 'maintenance_failed', 'unpriced_usage',
                    'price_mismatch', 'credits_low', 'credits_exhausted')),
    enabled     boolean NOT NULL,
    threshold   numeric,
    min_calls   integer,
    severity    text NOT NULL,
    description text NOT NULL
);
COMMENT ON TABLE llm_usage.alert_rules IS
'The alert kinds and their shipped thresholds (read-only; change them with set_alert_rule(), globally or per tenant).';

CREATE TABLE llm_usage.alert_rule_overrides (
    tenant_id  text NOT NULL,
    kind       text NOT NULL REFERENCES llm_usage.alert_rules (kind),
    enabled    boolean NOT NULL,
    threshold  numeric,
    min_calls  integer,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind)
);
COMMENT ON TABLE llm_usage.alert_rule_overrides IS
'Changed alert rules: tenant_id ''*'' for every tenant, or one tenant''s own; set with set_alert_rule().';

CREATE TABLE llm_usage.alert_state (
    name       text PRIMARY KEY,
    checked_at timestamptz NOT NULL,
    pending_at timestamptz
);
COMMENT ON TABLE llm_usage.alert_state IS 'When check_alerts() last looked at new audit events and calls.';
COMMENT ON COLUMN llm_usage.alert_state.checked_at IS 'Audit events and calls recorded before it have been checked (a watermark: it never passes a transaction that may still commit one).';
COMMENT ON COLUMN llm_usage.alert_state.pending_at IS 'The visibility bound the last check read: where a check under REPEATABLE READ or SERIALIZABLE may move checked_at.';

CREATE TABLE llm_usage.alert_quota_marks (
    tenant_id    text NOT NULL REFERENCES llm_usage.tenants (tenant_id) ON DELETE CASCADE,
    quota_type   text NOT NULL,
    period       text NOT NULL,
    period_start timestamptz NOT NULL,
    level        numeric NOT NULL,
    marked_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, quota_type, period, period_start, level)
);
COMMENT ON TABLE llm_usage.alert_quota_marks IS 'quota_near levels already alerted, per quota period, so each fires once per period.';
