/*
 * src/sql/credits.sql — prepaid credits
 *
 * A balance that never goes below zero, every change in credit_ledger, each
 * ref applied at most once per tenant.
 *
 * Prepaid billing (README "Prepaid credits"): a tenant with tenants.prepaid
 * has the cost of each tracked call (_track_usage_sql) and of each collected
 * custom-source row (_ingest_source_rows) deducted by _credit_burn, in the
 * transaction that records it, at most once per event or row; a cost above
 * the balance takes the balance to zero and the rest is ledgered as
 * uncovered.  enforce_quota(tenant, 'credits', estimate[, request_id])
 * admits through _enforce_credits against the balance less the open holds
 * (credit_holds).  Every balance change of a tenant runs under its
 * credit_balances row lock, taken before any hold is touched.
 */

/*
 * _credit_alerts(t, before, after): a prepaid tenant's balance went from
 * before to after: a credits_low alert when it crossed the tenant's
 * low_balance_usd (else the credits_low rule's threshold) downwards, a
 * credits_exhausted alert when it reached zero.  Only on the crossing, and
 * throttled by _raise_alert, so a balance resting at zero alerts once.
 */
CREATE OR REPLACE FUNCTION llm_usage._credit_alerts(t llm_usage.tenants, p_before numeric, p_after numeric)
RETURNS void
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_low numeric;
BEGIN
    IF NOT t.prepaid OR p_after >= p_before THEN
        RETURN;
    END IF;
    v_low := coalesce(t.low_balance_usd, (llm_usage._alert_rule(t.tenant_id, 'credits_low')).threshold);
    IF v_low IS NOT NULL AND p_after < v_low AND p_before >= v_low THEN
        PERFORM llm_usage._raise_alert(t.tenant_id, 'credits_low', (llm_usage._alert_rule(t.tenant_id, 'credits_low')).severity,
                    format('prepaid credit balance of tenant %s is %s USD, below %s USD', t.tenant_id, p_after, v_low),
                    jsonb_build_object('balance', p_after, 'low_balance_usd', v_low), 'balance');
    END IF;
    IF p_after <= 0 AND p_before > 0 THEN
        PERFORM llm_usage._raise_alert(t.tenant_id, 'credits_exhausted', (llm_usage._alert_rule(t.tenant_id, 'credits_exhausted')).severity,
                    format('prepaid credits of tenant %s are used up (balance 0 USD)', t.tenant_id),
                    jsonb_build_object('balance', p_after), 'balance');
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._credit_alerts(llm_usage.tenants, numeric, numeric) IS
'Internal: credits_low and credits_exhausted alerts when a prepaid tenant''s balance crosses its threshold or reaches zero.';

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
    INSERT INTO llm_usage.credit_ledger (tenant_id, delta, balance_after, reason, ref, kind)
    VALUES (t.tenant_id, p_delta, v_balance, p_reason, p_ref, CASE WHEN p_delta > 0 THEN 'grant' ELSE 'manual' END);
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'credits', CASE WHEN p_delta > 0 THEN 'grant_credits' ELSE 'deduct_credits' END,
            llm_usage._caller()::regrole::text,
            jsonb_build_object('amount', abs(p_delta), 'balance', v_balance, 'reason', p_reason, 'ref', p_ref));
    PERFORM llm_usage._credit_alerts(t, v_balance - p_delta, v_balance);
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

------------------------------------------------------------------------
-- Prepaid billing
------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION llm_usage.set_prepaid_billing(tenant_id text, prepaid boolean, low_balance_usd numeric DEFAULT NULL)
RETURNS void
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.set_prepaid_billing(text, boolean, numeric) IS
'Puts a tenant on prepaid billing (each tracked call''s and collected custom-source row''s cost is deducted from its credits; enforce_quota(tenant, ''credits'', estimate) admits against the balance) or takes it off (open credit holds are dropped); low_balance_usd: the credits_low alert threshold (NULL: none).  Admin only, audited.';

CREATE OR REPLACE FUNCTION llm_usage._set_prepaid_billing_impl(tenant_id text, prepaid boolean, low_balance_usd numeric DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants;
BEGIN
    PERFORM llm_usage._require_admin('set_prepaid_billing');
    t := llm_usage._tenant($1);
    PERFORM llm_usage._require_arg($2, 'prepaid');
    IF $3 IS NOT NULL THEN
        PERFORM llm_usage._check_amount($3, 'low_balance_usd', true);
    END IF;
    -- the balance row first, as every credit change locks it
    INSERT INTO llm_usage.credit_balances (tenant_id, balance) VALUES (t.tenant_id, 0)
    ON CONFLICT DO NOTHING;
    PERFORM 1 FROM llm_usage.credit_balances b WHERE b.tenant_id = t.tenant_id FOR UPDATE;
    UPDATE llm_usage.tenants
       SET prepaid = $2, low_balance_usd = $3, updated_at = now()
     WHERE tenant_id = t.tenant_id;
    IF NOT $2 THEN
        DELETE FROM llm_usage.credit_holds h WHERE h.tenant_id = t.tenant_id;
    END IF;
    INSERT INTO llm_usage.audit_events (tenant_id, event_type, action, role_name, details)
    VALUES (t.tenant_id, 'admin', 'set_prepaid_billing', llm_usage._caller()::regrole::text,
            jsonb_build_object('old_prepaid', t.prepaid, 'prepaid', $2,
                               'old_low_balance_usd', t.low_balance_usd, 'low_balance_usd', $3));
END
$$;
COMMENT ON FUNCTION llm_usage._set_prepaid_billing_impl(text, boolean, numeric) IS
'Internal: the body of llm_usage.set_prepaid_billing(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * _credit_burn: deducts a prepaid tenant's cost (a tracked call or a
 * custom-source row) under the tenant's balance row lock: what the balance
 * covers is deducted, the rest ledgered as uncovered (the balance stops at
 * zero).  A tracked call is deducted at most once per event id (unique
 * index); a custom-source row (p_usage_id) is charged its cost less what
 * the ledger already charged for that row, so at most once whatever is
 * re-collected (a lowered cost is not refunded).  With a request id, the request's credit hold is released first,
 * whatever the cost.  Returns the amount deducted.  Runs in the caller's
 * transaction (the one that records the cost).
 */
CREATE OR REPLACE FUNCTION llm_usage._credit_burn(t llm_usage.tenants, p_cost numeric, p_kind text, p_reason text,
                                                  p_event_id bigint DEFAULT NULL, p_request_id text DEFAULT NULL,
                                                  p_source_id bigint DEFAULT NULL, p_usage_id bigint DEFAULT NULL,
                                                  p_source_key text DEFAULT NULL)
RETURNS numeric
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_balance numeric;
    v_take    numeric;
BEGIN
    IF p_request_id IS NULL AND (p_cost IS NULL OR p_cost <= 0) THEN
        RETURN 0;               -- nothing to deduct, no hold to release
    END IF;
    INSERT INTO llm_usage.credit_balances (tenant_id, balance) VALUES (t.tenant_id, 0)
    ON CONFLICT DO NOTHING;
    SELECT b.balance INTO v_balance
      FROM llm_usage.credit_balances b
     WHERE b.tenant_id = t.tenant_id
       FOR UPDATE;
    IF p_request_id IS NOT NULL THEN
        DELETE FROM llm_usage.credit_holds h WHERE h.tenant_id = t.tenant_id AND h.request_id = p_request_id;
    END IF;
    IF p_cost IS NULL OR p_cost <= 0 THEN
        RETURN 0;
    END IF;
    IF p_event_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM llm_usage.credit_ledger l WHERE l.tenant_id = t.tenant_id AND l.event_id = p_event_id) THEN
        RETURN 0;
    END IF;
    IF p_usage_id IS NOT NULL THEN
        -- a custom-source row: what its cost adds to what was charged for it
        -- before (deducted or uncovered), so a re-collection charges only a rise
        p_cost := p_cost - coalesce((SELECT sum(l.uncovered - l.delta) FROM llm_usage.credit_ledger l
                                      WHERE l.source_id = p_source_id AND l.usage_id = p_usage_id), 0);
        IF p_cost <= 0 THEN
            RETURN 0;
        END IF;
    END IF;
    v_take := least(v_balance, p_cost);
    UPDATE llm_usage.credit_balances b SET balance = v_balance - v_take, updated_at = now()
     WHERE b.tenant_id = t.tenant_id;
    INSERT INTO llm_usage.credit_ledger (tenant_id, delta, balance_after, reason, kind, uncovered,
                                         event_id, request_id, source_id, usage_id, source_key)
    VALUES (t.tenant_id, -v_take, v_balance - v_take, p_reason, p_kind, p_cost - v_take,
            p_event_id, p_request_id, p_source_id, p_usage_id, p_source_key);
    PERFORM llm_usage._credit_alerts(t, v_balance, v_balance - v_take);
    RETURN v_take;
END
$$;
COMMENT ON FUNCTION llm_usage._credit_burn(llm_usage.tenants, numeric, text, text, bigint, text, bigint, bigint, text) IS
'Internal: deducts a prepaid tenant''s tracked-call or custom-source cost once (the balance stops at zero, the rest is ledgered as uncovered) and releases the request''s credit hold.';

/*
 * _enforce_credits: enforce_quota(tenant, 'credits', estimate, request_id)
 * (arguments checked by the caller).  A tenant not on prepaid billing is
 * refused (55000).  In shared memory when the tenant is counted there
 * (src/credits.c), else in the table (_enforce_credits_table).
 */
CREATE OR REPLACE FUNCTION llm_usage._enforce_credits(t llm_usage.tenants, p_amount numeric, p_request_id text)
RETURNS TABLE (allowed boolean, quota_limit numeric, used numeric, remaining numeric, resets_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT t.prepaid THEN
        RAISE EXCEPTION 'tenant "%" is not on prepaid billing', t.tenant_id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'An admin puts a tenant on prepaid billing with llm_usage.set_prepaid_billing(); check the other quota types for other tenants.';
    END IF;
    RETURN QUERY SELECT * FROM llm_usage._shm_enforce_credits(t.tenant_id, p_amount, p_request_id);
    IF NOT FOUND THEN
        RETURN QUERY SELECT * FROM llm_usage._enforce_credits_table(t, p_amount, p_request_id);
    END IF;
END
$$;
COMMENT ON FUNCTION llm_usage._enforce_credits(llm_usage.tenants, numeric, text) IS
'Internal: the credits admission of a prepaid tenant (55000 for another), in shared memory when the tenant is counted there, else in the table.';

CREATE OR REPLACE FUNCTION llm_usage._shm_enforce_credits(tenant_id text, amount numeric, request_id text)
RETURNS TABLE (allowed boolean, quota_limit numeric, used numeric, remaining numeric, resets_at timestamptz)
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_enforce_credits';
COMMENT ON FUNCTION llm_usage._shm_enforce_credits(text, numeric, text) IS
'Internal: the credits admission in shared memory (src/credits.c); no row when the tenant is not counted there.';

/*
 * _enforce_credits_table: the credits admission of the table path.  Under
 * the tenant's balance row lock: expired holds are dropped, and the call
 * is admitted when the balance less the open holds is above zero and
 * covers the estimate; then the estimate is held (added to the request's
 * hold, whose expiry moves on; without a request id, to the tenant's
 * newest anonymous hold if opened within the last eighth of
 * llm_usage.reservation_ttl), released when track_usage() of the request
 * deducts the real cost, or at expiry with nothing deducted.  Returns the
 * balance as quota_limit, what is held as used, what is left.
 */
CREATE OR REPLACE FUNCTION llm_usage._enforce_credits_table(t llm_usage.tenants, p_amount numeric, p_request_id text)
RETURNS TABLE (allowed boolean, quota_limit numeric, used numeric, remaining numeric, resets_at timestamptz)
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_now     timestamptz := clock_timestamp();
    v_ttl     interval := llm_usage._reservation_ttl();
    v_balance numeric;
    v_held    numeric;
    v_ok      boolean;
BEGIN
    INSERT INTO llm_usage.credit_balances (tenant_id, balance) VALUES (t.tenant_id, 0)
    ON CONFLICT DO NOTHING;
    SELECT b.balance INTO v_balance
      FROM llm_usage.credit_balances b
     WHERE b.tenant_id = t.tenant_id
       FOR UPDATE;
    DELETE FROM llm_usage.credit_holds h WHERE h.tenant_id = t.tenant_id AND h.expires_at <= v_now;
    SELECT coalesce(sum(h.amount), 0) INTO v_held FROM llm_usage.credit_holds h WHERE h.tenant_id = t.tenant_id;
    v_ok := v_balance - v_held > 0 AND v_held + p_amount <= v_balance;
    IF v_ok THEN
        IF p_request_id IS NULL THEN
            UPDATE llm_usage.credit_holds h
               SET amount = h.amount + p_amount, expires_at = greatest(h.expires_at, v_now + v_ttl)
             WHERE h.tenant_id = t.tenant_id
               AND h.hold_id = (SELECT max(x.hold_id) FROM llm_usage.credit_holds x
                                 WHERE x.tenant_id = t.tenant_id AND x.request_id IS NULL
                                   AND x.created_at > v_now - v_ttl / 8);
            IF NOT FOUND THEN
                INSERT INTO llm_usage.credit_holds (tenant_id, request_id, amount, created_at, expires_at)
                VALUES (t.tenant_id, NULL, p_amount, v_now, v_now + v_ttl);
            END IF;
        ELSE
            INSERT INTO llm_usage.credit_holds AS h (tenant_id, request_id, amount, created_at, expires_at)
            VALUES (t.tenant_id, p_request_id, p_amount, v_now, v_now + v_ttl)
            ON CONFLICT (tenant_id, request_id) WHERE request_id IS NOT NULL DO UPDATE
               SET amount = h.amount + EXCLUDED.amount, expires_at = EXCLUDED.expires_at;
        END IF;
        v_held := v_held + p_amount;
    END IF;
    RETURN QUERY SELECT v_ok, v_balance, v_held, greatest(v_balance - v_held, 0), NULL::timestamptz;
END
$$;
COMMENT ON FUNCTION llm_usage._enforce_credits_table(llm_usage.tenants, numeric, text) IS
'Internal: the credits admission of the table path: admitted while the balance less the open holds (credit_holds) covers the estimate (and is above zero), then the estimate is held until track_usage() of the request or llm_usage.reservation_ttl; exact under concurrency (the balance row lock).';

CREATE OR REPLACE FUNCTION llm_usage._shm_credits(tenant_id text, OUT known boolean, OUT balance numeric, OUT held numeric)
RETURNS record
LANGUAGE c VOLATILE
AS 'MODULE_PATHNAME', 'llm_usage_shm_credits';
COMMENT ON FUNCTION llm_usage._shm_credits(text) IS
'Internal (admins, tests): a prepaid tenant''s credits mirrored in shared memory: whether known, the balance (millionths, rounded down) and what open admissions hold; NULL when the tenant is not counted there.';

CREATE OR REPLACE FUNCTION llm_usage._credit_balance_changed()
RETURNS trigger
LANGUAGE c
AS 'MODULE_PATHNAME', 'llm_usage_credit_balance_changed';
COMMENT ON FUNCTION llm_usage._credit_balance_changed() IS
'Internal: trigger on credit_balances noting each balance change for the shared-memory mirror of the tenant''s credits, applied when the transaction commits (src/credits.c).';

CREATE OR REPLACE TRIGGER credit_balances_mirror
    AFTER INSERT OR UPDATE OR DELETE ON llm_usage.credit_balances
    FOR EACH ROW EXECUTE FUNCTION llm_usage._credit_balance_changed();

CREATE OR REPLACE FUNCTION llm_usage.credit_ledger_for(tenant_id text, max_rows integer DEFAULT 100)
RETURNS TABLE (entry_id bigint, kind text, delta numeric, uncovered numeric, balance_after numeric, reason text,
               ref text, event_id bigint, request_id text, source_id bigint, source_key text, actor text,
               created_at timestamptz)
LANGUAGE c STABLE
AS 'MODULE_PATHNAME', 'llm_usage_entry';
COMMENT ON FUNCTION llm_usage.credit_ledger_for(text, integer) IS
'A tenant''s credit ledger, newest first: every grant, manual deduction, tracked call and custom-source row deducted, with what the balance could not cover and the source (event and request id, or source id and natural key).  App and reader roles, for their tenants.';

CREATE OR REPLACE FUNCTION llm_usage._credit_ledger_for_impl(tenant_id text, max_rows integer DEFAULT 100)
RETURNS TABLE (entry_id bigint, kind text, delta numeric, uncovered numeric, balance_after numeric, reason text,
               ref text, event_id bigint, request_id text, source_id bigint, source_key text, actor text,
               created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
DECLARE
    t llm_usage.tenants := llm_usage._tenant($1);
BEGIN
    IF $2 IS NULL OR $2 < 1 OR $2 > 100000 THEN
        RAISE EXCEPTION 'max_rows must be between 1 and 100000, got %', coalesce($2::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    RETURN QUERY
        SELECT l.entry_id, l.kind, l.delta, l.uncovered, l.balance_after, l.reason, l.ref, l.event_id, l.request_id,
               l.source_id, l.source_key, l.actor, l.created_at
          FROM llm_usage.credit_ledger l
         WHERE l.tenant_id = t.tenant_id
         ORDER BY l.entry_id DESC
         LIMIT $2;
END
$$;
COMMENT ON FUNCTION llm_usage._credit_ledger_for_impl(text, integer) IS
'Internal: the body of llm_usage.credit_ledger_for(), run as the owner by its entry point, which records the caller (src/caller.c).';

/*
 * _credit_burn_source_rows(run_id): the custom-source rows a run wrote
 * (custom_usage.run_id) with a positive cost, of prepaid tenants, each
 * charged once through _credit_burn, tenant by tenant in a fixed order.
 * Called by _ingest_source_rows in the run's write transaction.
 */
CREATE OR REPLACE FUNCTION llm_usage._credit_burn_source_rows(p_run_id bigint)
RETURNS integer
LANGUAGE plpgsql VOLATILE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    r record;
    n integer := 0;
BEGIN
    FOR r IN SELECT t AS tenant, u.source_id, u.usage_id, u.cost_usd,
                    jsonb_build_object('bucket_start', to_char(u.bucket_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                                       'metric', u.metric, 'attribution', u.attribution)::text AS source_key
               FROM llm_usage.custom_usage u
               JOIN llm_usage.tenants t ON t.tenant_id = u.tenant_id
              WHERE u.run_id = p_run_id AND t.prepaid AND u.cost_usd > 0
              ORDER BY u.tenant_id, u.usage_id
    LOOP
        IF llm_usage._credit_burn(r.tenant, r.cost_usd, 'source_row', 'custom source row', NULL, NULL,
                                  r.source_id, r.usage_id, r.source_key) > 0 THEN
            n := n + 1;
        END IF;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION llm_usage._credit_burn_source_rows(bigint) IS
'Internal: charges the prepaid tenants'' custom-source rows a collection run wrote, each at most once (a re-collection charges only a rise of its cost).';
