--
-- credits: prepaid balance, never below zero, idempotent on ref, ledgered
--
SELECT llm_usage.create_tenant('cr', 'pro');
SELECT llm_usage.credit_balance('cr');
SELECT llm_usage.grant_credits('cr', 25, 'welcome credit');
SELECT llm_usage.grant_credits('cr', 0.005, 'rounding test', 'grant-1');
SELECT llm_usage.grant_credits('cr', 0.005, 'rounding test', 'grant-1');
SELECT llm_usage.deduct_credits('cr', 1.2345, 'call 1', 'call-1');
SELECT llm_usage.deduct_credits('cr', 1.2345, 'call 1', 'call-1');
SELECT llm_usage.deduct_credits('cr', 3.7705, 'call 2');
SELECT llm_usage.credit_balance('cr');
SELECT delta, balance_after, reason, ref FROM llm_usage.credit_ledger WHERE tenant_id = 'cr' ORDER BY entry_id;

-- never below zero; the whole balance can be used
SELECT try($$SELECT llm_usage.deduct_credits('cr', 20.0001, 'too much')$$);
SELECT llm_usage.deduct_credits('cr', 20, 'all of it');
SELECT try($$SELECT llm_usage.deduct_credits('cr', 0.0000001, 'one more')$$);
\set SHOW_CONTEXT never
SELECT llm_usage.deduct_credits('cr', 1, 'one more');
\set SHOW_CONTEXT errors

-- bad input, nothing changed
SELECT try($$SELECT llm_usage.grant_credits('cr', -5, 'negative')$$);
SELECT try($$SELECT llm_usage.grant_credits('cr', 0, 'zero')$$);
SELECT try($$SELECT llm_usage.grant_credits('cr', NULL, 'null')$$);
SELECT try($$SELECT llm_usage.grant_credits('cr', 'NaN', 'nan')$$);
SELECT try($$SELECT llm_usage.grant_credits('cr', 5, NULL)$$);
SELECT try($$SELECT llm_usage.grant_credits('cr', 5, '')$$);
SELECT try($$SELECT llm_usage.grant_credits('nobody', 5, 'x')$$);
SELECT try($$SELECT llm_usage.grant_credits(NULL, 5, 'x')$$);
SELECT try($$SELECT llm_usage.deduct_credits('cr', -5, 'negative')$$);
SELECT try($$SELECT llm_usage.deduct_credits('cr', 5, 'x', '')$$);
SELECT try($$SELECT llm_usage.grant_credits('cr', 7, 'reuse', 'grant-1')$$);
SELECT try($$SELECT llm_usage.deduct_credits('nobody', 1, 'x')$$);
SELECT try($$SELECT llm_usage.credit_balance('nobody')$$);
SELECT llm_usage.credit_balance('cr');
SELECT count(*) AS ledger_entries FROM llm_usage.credit_ledger WHERE tenant_id = 'cr';
SELECT action, details->>'amount' AS amount FROM llm_usage.audit_events
 WHERE tenant_id = 'cr' AND event_type = 'credits' ORDER BY audit_id;
