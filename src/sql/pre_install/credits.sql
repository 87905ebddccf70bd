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
    PRIMARY KEY (tenant_id, entry_id)
);
CREATE UNIQUE INDEX credit_ledger_ref_idx ON llm_usage.credit_ledger (tenant_id, ref) WHERE ref IS NOT NULL;
COMMENT ON TABLE llm_usage.credit_ledger IS 'Every change of a credit balance, with the balance after it; a ref is applied at most once per tenant.';
