-- The collector end to end: provider keys stored encrypted, a collection run
-- by the background worker against the provider APIs (here the local
-- simulator, set by llm_usage.openai_base_url / anthropic_base_url), and
-- what a user looks at afterwards.  Run by test/quickstart.sh with
-- -v oa_key=... -v an_key=... in the collector's database.
\set ON_ERROR_STOP on
\pset footer off
SET client_min_messages = warning;
\set SHOW_CONTEXT never
CREATE EXTENSION IF NOT EXISTS llm_usage;

\echo
\echo '== one organization key per provider; the OpenAI project proj_beta is team globex'
SELECT llm_usage.create_tenant('acme', 'pro', 'UTC');
SELECT llm_usage.create_tenant('globex', 'pro', 'UTC');
SELECT llm_usage.add_provider_key('acme', 'openai', :'oa_key', 'OpenAI org', validate => true) AS openai_key_id;
SELECT llm_usage.add_provider_key('acme', 'anthropic', :'an_key', 'Anthropic org', validate => true) AS anthropic_key_id;
SELECT llm_usage.attribute_provider_usage('openai', 'project_id', 'proj_beta', 'globex');
SELECT id, tenant_id, provider, label, key_preview, is_active, master_key_version FROM llm_usage.provider_keys ORDER BY id;

\echo '== what the app tracked itself over the last week (for reconciliation and the report)'
SELECT count(llm_usage.track_usage('acme', 'chat', 'gpt-4o', 20000 + 100 * i, 3000, 5000,
                                   occurred_at => (current_date - 1) + make_interval(hours => i)))
       AS calls_tracked
  FROM generate_series(1, 12) i;
SELECT count(llm_usage.track_usage(v.t, v.et, v.m, 1500 + (i * 379) % 9000, CASE WHEN v.et = 'embedding' THEN 0 ELSE 200 + (i * 53) % 1200 END,
                                   (i % 3) * 500, 300 + (i * 137) % 2400,
                                   result => CASE WHEN i % 17 = 0 THEN 'failure' WHEN i % 29 = 0 THEN 'rate_limited' ELSE 'success' END,
                                   occurred_at => now() - make_interval(mins => i * 47 + v.o)))
       AS more_calls_tracked
  FROM generate_series(0, 210) i,
       (VALUES ('acme', 'chat', 'claude-sonnet-4-5', 0), ('acme', 'embedding', 'text-embedding-3-small', 11),
               ('globex', 'chat', 'gpt-4o-mini', 23), ('globex', 'chat', 'claude-haiku-4-5', 31)) v(t, et, m, o);
SELECT count(llm_usage.track_usage('globex', 'chat', 'in-house-model-v2', 4000, 400, latency_ms => 650,
                                   occurred_at => now() - make_interval(hours => i * 9)))
       AS calls_of_a_model_without_a_price
  FROM generate_series(0, 17) i;
SELECT llm_usage.set_custom_quota('acme', 'tokens', 2000000, 'day');
SELECT llm_usage.set_custom_quota('globex', 'cost_usd', 20, 'month');
SELECT q.allowed, q.used, q.remaining
  FROM (VALUES ('acme', 'tokens', 750000), ('acme', 'tokens', 750000), ('globex', 'cost_usd', 17)) v(t, k, n),
       LATERAL llm_usage.enforce_quota(v.t, v.k, v.n) q;

\echo '== collect the last seven days now, and wait for the worker'
SELECT llm_usage.collect_now(NULL, current_date - 7, current_date - 1) AS first_run_id \gset
DO $$
BEGIN
    FOR i IN 1..300 LOOP      -- at most 60 s
        EXIT WHEN NOT EXISTS (SELECT 1 FROM llm_usage.collector_runs WHERE status IN ('queued', 'running'));
        PERFORM pg_sleep(0.2);
        PERFORM pg_stat_clear_snapshot();
    END LOOP;
END $$;
SELECT run_id, provider, status, window_from::date, (window_to - interval '1 day')::date AS window_to,
       pages, rows_written, http_attempts, round(extract(epoch FROM finished_at - started_at)::numeric, 2) AS seconds, error
  FROM llm_usage.collector_runs WHERE run_id >= :first_run_id ORDER BY run_id;

\echo '== collected usage per day and model (provider-reported tokens)'
SELECT bucket_start::date AS day, provider, model, tenant_id, sum(requests) AS requests,
       sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached, sum(output_tokens) AS output_tokens
  FROM llm_usage.provider_usage
 WHERE bucket_start >= current_date - 2
 GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4;

\echo '== provider-reported cost per day (USD, exact)'
SELECT bucket_start::date AS day, provider, tenant_id, count(*) AS line_items, sum(amount_usd) AS usd
  FROM llm_usage.provider_costs GROUP BY 1, 2, 3 ORDER BY 1, 2, 3;

\echo '== yesterday and this week: tracked vs provider-reported (after a roll-up, which the worker runs every llm_usage.aggregate_interval)'
SELECT sum(llm_usage.aggregate_usage_metrics(p)) AS rows_rolled_up FROM unnest(ARRAY['hourly', 'daily', 'monthly']) p \gset
SELECT * FROM llm_usage.cost_summary();

\echo '== reconciliation for yesterday'
SELECT * FROM llm_usage.reconciliation WHERE day = current_date - 1 ORDER BY tenant_id, provider;

\echo '== key status'
SELECT id, provider, last_sync_status, last_synced_at::time(0) AS synced_at, collected_through FROM llm_usage.provider_keys ORDER BY id;

\echo '== the usage report: one HTML file (inline SVG charts, no scripts, nothing fetched)'
\echo 'psql -Atc "select llm_usage.usage_report_html(NULL, ''7d'')" > report.html   (test/quickstart.sh writes it and says where)'
