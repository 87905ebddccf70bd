--
-- prepaid: tenants on prepaid billing, credits burning down with tracked
-- calls and collected custom-source rows, the credits admission
-- (enforce_quota(t, 'credits', estimate[, request_id])) on both paths, the
-- alerts, and who may do what (real roles)
--
-- pp_s is counted in shared memory (the suites run with the library
-- preloaded); pp_x... (an id of over 255 bytes) is counted in the table.
SELECT 'pp_x' || repeat(U&'\4E2D', 90) AS long \gset
SELECT llm_usage.create_tenant(t, 'pro') FROM unnest(ARRAY['pp_s', :'long', 'pp_src']) t;
-- a model of its own: 2.50 USD per million input tokens, 10 per million output
SELECT llm_usage.set_model_price('openai', 'pp-model', 2.5, 10) > 0 AS priced;
CREATE FUNCTION pg_temp.holds(t text) RETURNS numeric LANGUAGE sql AS $$
    SELECT coalesce((SELECT held FROM llm_usage._shm_credits(t)), 0)
         + coalesce((SELECT sum(amount) FROM llm_usage.credit_holds h WHERE h.tenant_id = t), 0)
$$;

-- not prepaid: a credits check is refused, tracking deducts nothing
SELECT left(t, 6) AS tenant, try(format('SELECT llm_usage.enforce_quota(%L, %L, 1)', t, 'credits'))
  FROM unnest(ARRAY['pp_s', :'long']) t;

-- set_prepaid_billing: bad input changes nothing
SELECT try($$SELECT llm_usage.set_prepaid_billing(NULL, true)$$);
SELECT try($$SELECT llm_usage.set_prepaid_billing('nobody', true)$$);
SELECT try($$SELECT llm_usage.set_prepaid_billing('pp_s', NULL)$$);
SELECT try($$SELECT llm_usage.set_prepaid_billing('pp_s', true, -1)$$);
SELECT try($$SELECT llm_usage.set_prepaid_billing('pp_s', true, 'NaN')$$);
SELECT count(*) FILTER (WHERE prepaid) AS prepaid, count(low_balance_usd) AS thresholds FROM llm_usage.tenants;

SELECT llm_usage.set_prepaid_billing(t, true, 0.6) FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT llm_usage.grant_credits(t, 1, 'prepaid') FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(tenant_id, 6) AS tenant, action, details FROM llm_usage.audit_events
 WHERE action = 'set_prepaid_billing' ORDER BY audit_id;

-- admission: the balance less what open admissions hold covers the estimate
SELECT left(t, 6) AS tenant, (llm_usage.enforce_quota(t, 'credits', 0.3, 'r1')).* FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(t, 6) AS tenant, (llm_usage.enforce_quota(t, 'credits', 0.8, 'r2')).* FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(t, 6) AS tenant, (llm_usage.enforce_quota(t, 'credits', 0.7, 'r2')).* FROM unnest(ARRAY['pp_s', :'long']) t;
-- nothing left: even a zero estimate is denied
SELECT left(t, 6) AS tenant, (llm_usage.enforce_quota(t, 'credits', 0)).* FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(t, 6) AS tenant, pg_temp.holds(t) AS held, (SELECT known FROM llm_usage._shm_credits(t)) AS in_shared_memory
  FROM unnest(ARRAY['pp_s', :'long']) t;

-- bad input: a clear error, nothing held
\set VERBOSITY verbose
SELECT left(t, 6) AS tenant, a AS estimate, try(format('SELECT llm_usage.enforce_quota(%L, %L, %s)', t, 'credits', a))
  FROM unnest(ARRAY['pp_s', :'long']) t, unnest(ARRAY['-1', '''NaN''', 'NULL', '1e13', '-0.000001']) a;
SELECT left(t, 6) AS tenant, try(format('SELECT llm_usage.enforce_quota(%L, %L, 0.1, %L)', t, 'credits', '')) AS empty_request_id,
       try(format('SELECT llm_usage.enforce_quotas(%L, %L)', t, '{"credits": 0.1}')) AS with_enforce_quotas
  FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT try($$SELECT llm_usage.enforce_quota('nobody', 'credits', 1)$$);
\set VERBOSITY default
SELECT left(t, 6) AS tenant, pg_temp.holds(t) AS held, llm_usage.credit_balance(t) AS balance
  FROM unnest(ARRAY['pp_s', :'long']) t;

-- tracking r1 (0.45 USD) deducts its cost and releases its hold (at commit
-- in shared memory), once: tracking it again deducts nothing
SELECT left(t, 6) AS tenant, llm_usage.track_usage(t, 'chat', 'pp-model', 100000, 20000, request_id => 'r1') > 0 AS tracked
  FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(t, 6) AS tenant, llm_usage.track_usage(t, 'chat', 'pp-model', 100000, 20000, request_id => 'r1') > 0 AS tracked_again
  FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(t, 6) AS tenant, llm_usage.credit_balance(t) AS balance, pg_temp.holds(t) AS held
  FROM unnest(ARRAY['pp_s', :'long']) t;
-- a track that rolls back deducts nothing and releases nothing
BEGIN;
SELECT llm_usage.track_usage('pp_s', 'chat', 'pp-model', 100000, 0, request_id => 'r2') > 0 AS tracked;
ROLLBACK;
SELECT llm_usage.credit_balance('pp_s') AS balance, pg_temp.holds('pp_s') AS held;

-- r2 costs 0.75, more than the 0.55 left: the balance goes to zero, the
-- rest is ledgered as uncovered; credits_low (below 0.6) and
-- credits_exhausted are raised once
SELECT left(t, 6) AS tenant, llm_usage.track_usage(t, 'chat', 'pp-model', 300000, 0, request_id => 'r2') > 0 AS tracked
  FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(t, 6) AS tenant, llm_usage.track_usage(t, 'chat', 'pp-model', 1000, 0) > 0 AS tracked_at_zero
  FROM unnest(ARRAY['pp_s', :'long']) t;
-- an unpriced call deducts nothing
SELECT left(t, 6) AS tenant, llm_usage.track_usage(t, 'chat', 'no-such-model', 1000, 0) > 0 AS unpriced
  FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(t, 6) AS tenant, llm_usage.credit_balance(t) AS balance, pg_temp.holds(t) AS held,
       (llm_usage.enforce_quota(t, 'credits', 0.01)).allowed AS admits_more
  FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(l.tenant, 6) AS tenant, l.kind, l.delta, l.uncovered, l.balance_after, l.request_id, l.event_id IS NOT NULL AS has_event
  FROM unnest(ARRAY['pp_s', :'long']) t, LATERAL (SELECT t AS tenant, * FROM llm_usage.credit_ledger_for(t)) l
 ORDER BY l.tenant, l.entry_id;
-- every tracked cost is in the ledger once: deducted plus uncovered = tracked
SELECT left(e.tenant_id, 6) AS tenant, count(e.cost_usd) FILTER (WHERE e.cost_usd > 0) AS priced_calls, sum(e.cost_usd) AS tracked,
       (SELECT count(*) FROM llm_usage.credit_ledger l WHERE l.tenant_id = e.tenant_id AND l.kind = 'tracked_call') AS ledgered,
       (SELECT sum(l.uncovered - l.delta) FROM llm_usage.credit_ledger l WHERE l.tenant_id = e.tenant_id AND l.kind = 'tracked_call') AS charged
  FROM llm_usage.usage_events e WHERE e.tenant_id IN ('pp_s', :'long') GROUP BY e.tenant_id ORDER BY 1;
SELECT left(tenant_id, 6) AS tenant, kind, severity, message, details FROM llm_usage.alerts
 WHERE kind IN ('credits_low', 'credits_exhausted') ORDER BY tenant_id, id;
-- the NOTIFY payload says only the id and the kind (as for every alert)

-- a grant refills the balance and the mirror follows (after commit)
SELECT llm_usage.grant_credits(t, 5, 'refill') FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT llm_usage.credit_balance('pp_s') AS balance, (llm_usage._shm_credits('pp_s')).balance AS mirrored;
SELECT left(t, 6) AS tenant, (llm_usage.enforce_quota(t, 'credits', 4.5, 'r3')).* FROM unnest(ARRAY['pp_s', :'long']) t;

-- track_response_usage deducts too (it records through track_usage): 1,000 + 100 tokens, 0.0035 USD
SELECT left(t, 6) AS tenant, llm_usage.track_response_usage(t, 'openai', 'pp-model', '{"prompt_tokens": 1000, "completion_tokens": 100}', request_id => 'r3') > 0 AS tracked
  FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(t, 6) AS tenant, l.kind, l.delta, l.uncovered, l.request_id, pg_temp.holds(t) AS held
  FROM unnest(ARRAY['pp_s', :'long']) t, LATERAL llm_usage.credit_ledger_for(t, 1) l;

-- off prepaid billing: holds dropped, credits checks refused, calls not deducted
SELECT llm_usage.set_prepaid_billing(t, false) FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT left(t, 6) AS tenant, try(format('SELECT llm_usage.enforce_quota(%L, %L, 1)', t, 'credits')),
       llm_usage.track_usage(t, 'chat', 'pp-model', 1000, 0) > 0 AS tracked, llm_usage.credit_balance(t) AS balance
  FROM unnest(ARRAY['pp_s', :'long']) t;
SELECT count(*) AS table_holds FROM llm_usage.credit_holds;

-- custom-source rows with a cost are deducted once, whatever is re-collected
CREATE ROLE regress_pp_mapper NOLOGIN;
CREATE SCHEMA regress_pp;
GRANT USAGE ON SCHEMA regress_pp TO PUBLIC;
CREATE FUNCTION regress_pp.map(page jsonb, source_id bigint) RETURNS SETOF llm_usage.usage_source_row
LANGUAGE sql STABLE AS $$
    SELECT r->>'who', (r->>'from')::timestamptz, (r->>'to')::timestamptz, r->>'metric',
           (r->>'n')::numeric, 'requests', (r->>'usd')::numeric
      FROM jsonb_array_elements(page->'rows') r
$$;
GRANT EXECUTE ON FUNCTION regress_pp.map(jsonb, bigint) TO regress_pp_mapper;
SET llm_usage.source_url_prefixes = 'https://usage.example.test';
SELECT llm_usage.add_usage_source('pp-svc', 'pp_src', 'https://usage.example.test/v1', '/u?from={from}&to={to}',
                                  'regress_pp.map(jsonb,bigint)', 'regress_pp_mapper') AS src \gset
RESET llm_usage.source_url_prefixes;
SELECT llm_usage.set_prepaid_billing('pp_src', true);
SELECT llm_usage.grant_credits('pp_src', 2, 'prepaid');
CREATE FUNCTION pg_temp.collect(src bigint, page jsonb) RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    run bigint;
BEGIN
    -- a run as the worker makes it, and the page its mapping function turned into rows
    INSERT INTO llm_usage.collector_runs (source_id, tenant_id, provider, trigger, window_from, window_to, status)
    VALUES (src, 'pp_src', 'custom', 'manual', '2026-10-01 00:00+00', '2026-10-03 00:00+00', 'running')
    RETURNING run_id INTO run;
    RETURN llm_usage._ingest_source_rows(run, 1, (SELECT array_agg(m) FROM regress_pp.map(page, src) m));
END
$$;
SELECT pg_temp.collect(:src, '{"rows": [
  {"who": null, "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "requests", "n": 10, "usd": "0.5"},
  {"who": "pp_src", "from": "2026-10-02Z", "to": "2026-10-03Z", "metric": "requests", "n": 5, "usd": "0.25"},
  {"who": null, "from": "2026-10-02Z", "to": "2026-10-03Z", "metric": "checks", "n": 7}]}') AS first_collection;
-- the same window collected again: nothing more is deducted
SELECT pg_temp.collect(:src, '{"rows": [
  {"who": null, "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "requests", "n": 10, "usd": "0.5"},
  {"who": "pp_src", "from": "2026-10-02Z", "to": "2026-10-03Z", "metric": "requests", "n": 5, "usd": "0.25"},
  {"who": null, "from": "2026-10-02Z", "to": "2026-10-03Z", "metric": "checks", "n": 7}]}') AS same_again;
-- a cost that rose is charged by the rise only; a lowered one is not refunded
SELECT pg_temp.collect(:src, '{"rows": [
  {"who": null, "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "requests", "n": 14, "usd": "0.7"},
  {"who": "pp_src", "from": "2026-10-02Z", "to": "2026-10-03Z", "metric": "requests", "n": 2, "usd": "0.1"}]}') AS changed;
SELECT kind, delta, uncovered, balance_after, source_id = :src AS of_source, source_key
  FROM llm_usage.credit_ledger_for('pp_src') ORDER BY entry_id;
SELECT llm_usage.credit_balance('pp_src') AS balance;
-- a run that fails (its transaction rolls back) deducts nothing
SELECT try(format($$SELECT pg_temp.collect(%s, '{"rows": [{"who": null, "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "new", "n": 1, "usd": "0.3"}, {"who": null, "from": "2026-10-01Z", "to": "2026-10-02Z", "metric": "new", "n": 1, "usd": "0.3"}]}')$$, :src)) AS failing_run;
SELECT llm_usage.credit_balance('pp_src') AS balance, count(*) AS ledger_entries FROM llm_usage.credit_ledger WHERE tenant_id = 'pp_src';

-- roles: the app checks credits of its tenants only and cannot write the
-- ledger; the reader sees its tenant's ledger only; only admins set billing
SELECT llm_usage.set_prepaid_billing('pp_s', true);
CREATE ROLE regress_pp_app LOGIN IN ROLE llm_usage_app;
CREATE ROLE regress_pp_reader LOGIN IN ROLE llm_usage_reader;
SELECT llm_usage.grant_tenant_access('regress_pp_app', 'pp_s');
SELECT llm_usage.grant_tenant_access('regress_pp_reader', 'pp_s');
SET ROLE regress_pp_app;
SELECT allowed, quota_limit FROM llm_usage.enforce_quota('pp_s', 'credits', 0.5, 'app-1');
SELECT try($$SELECT llm_usage.enforce_quota('pp_src', 'credits', 0.5)$$) AS other_tenant;
SELECT try($$SELECT llm_usage._enforce_quota_sql('pp_src', 'credits', 0.5, NULL)$$) AS other_tenant_sql;
SELECT try($$SELECT llm_usage._shm_enforce_credits('pp_src', 0.5, NULL)$$) AS internal;
SELECT try($$INSERT INTO llm_usage.credit_ledger (tenant_id, delta, balance_after, reason) VALUES ('pp_s', 100, 100, 'forged')$$) AS write_ledger;
SELECT try($$UPDATE llm_usage.credit_balances SET balance = 1000$$) AS write_balance;
SELECT try($$DELETE FROM llm_usage.credit_holds$$) AS drop_holds;
SELECT try($$SELECT llm_usage.set_prepaid_billing('pp_s', false)$$) AS set_billing;
SELECT try($$SELECT llm_usage.credit_ledger_for('pp_src')$$) AS other_ledger;
SELECT count(*) AS own_ledger_entries FROM llm_usage.credit_ledger_for('pp_s');
RESET ROLE;
SET ROLE regress_pp_reader;
SELECT count(*) AS own_ledger_entries, sum(delta) AS net FROM llm_usage.credit_ledger_for('pp_s');
SELECT try($$SELECT llm_usage.credit_ledger_for('pp_src')$$) AS other_ledger;
SELECT try($$SELECT * FROM llm_usage.credit_ledger$$) AS read_table;
SELECT try($$SELECT llm_usage.enforce_quota('pp_s', 'credits', 0.1)$$) AS reader_enforce;
RESET ROLE;
SELECT try($$SELECT llm_usage.credit_ledger_for('pp_s', 0)$$) AS bad_max_rows;

-- clean up what is not a tenant's
SELECT llm_usage.revoke_tenant_access('regress_pp_app', 'pp_s');
SELECT llm_usage.revoke_tenant_access('regress_pp_reader', 'pp_s');
SELECT llm_usage.deactivate_usage_source(:src);
DROP ROLE regress_pp_app;
DROP ROLE regress_pp_reader;
DROP OWNED BY regress_pp_mapper;
DROP ROLE regress_pp_mapper;
