/*
 * src/sql/credits.sql — prepaid credits
 *
 * A balance that never goes below zero, every change in credit_ledger, each
 * ref applied at most once per tenant.
 */

/*
 * _credit_change: the one place a balance changes.  Locks the tenant's
 * balance row (creating it at 0), so changes of one tenant are serialised;
 * a ref already in the ledger is not applied again (same delta: the current
 * balance is returned; another delta: an error).
 */
CREATE OR REPLACE FUNCTION llm_usage._credit_change(t llm_usage.tenants, p_delta numeric, p_reason text, p_ref text)
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

CREATE OR REPLACE FUNCTION llm_usage.grant_credits(tenant_id text, amount numeric, reason text, ref text DEFAULT NULL)
RETURNS numeric
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.grant_credits(text, numeric, text, text) IS
'Adds prepaid credits (USD) to a tenant and returns the new balance; with a ref, applied at most once.  Admin only.';

CREATE OR REPLACE FUNCTION llm_usage._grant_credits_impl(tenant_id text, amount numeric, reason text, ref text DEFAULT NULL)
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
COMMENT ON FUNCTION llm_usage._grant_credits_impl(text, numeric, text, text) IS
'Internal: the body of llm_usage.grant_credits(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.deduct_credits(tenant_id text, amount numeric, reason text, ref text DEFAULT NULL)
RETURNS numeric
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.deduct_credits(text, numeric, text, text) IS
'Takes credits from a tenant''s balance and returns the new balance; never below zero (23514), applied at most once per ref.';

CREATE OR REPLACE FUNCTION llm_usage._deduct_credits_impl(tenant_id text, amount numeric, reason text, ref text DEFAULT NULL)
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
COMMENT ON FUNCTION llm_usage._deduct_credits_impl(text, numeric, text, text) IS
'Internal: the body of llm_usage.deduct_credits(), run as the owner by its entry point, which records the caller (src/caller.c).';

CREATE OR REPLACE FUNCTION llm_usage.credit_balance(tenant_id text)
RETURNS numeric
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.credit_balance(text) IS 'The tenant''s prepaid credit balance in USD (0 if it never had any).';

CREATE OR REPLACE FUNCTION llm_usage._credit_balance_impl(tenant_id text)
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
COMMENT ON FUNCTION llm_usage._credit_balance_impl(text) IS
'Internal: the body of llm_usage.credit_balance(), run as the owner by its entry point, which records the caller (src/caller.c).';
