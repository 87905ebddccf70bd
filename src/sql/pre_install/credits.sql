/*
 * src/sql/pre_install/credits.sql — prepaid credits (install only)
 */

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
    PRIMARY KEY (tenant_id, entry_id),
    kind          text NOT NULL DEFAULT 'manual'
                  CONSTRAINT credit_ledger_kind_check CHECK (kind IN ('grant', 'manual', 'tracked_call', 'source_row')),
    uncovered     numeric NOT NULL DEFAULT 0
                  CONSTRAINT credit_ledger_uncovered_check CHECK (uncovered >= 0),
    event_id      bigint,
    request_id    text,
    source_id     bigint,
    usage_id      bigint,
    source_key    text
);
CREATE UNIQUE INDEX credit_ledger_ref_idx ON llm_usage.credit_ledger (tenant_id, ref) WHERE ref IS NOT NULL;
COMMENT ON TABLE llm_usage.credit_ledger IS 'Every change of a credit balance, with the balance after it; a ref is applied at most once per tenant.';
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
