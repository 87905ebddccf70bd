--
-- upgrade: a fresh CREATE EXTENSION (the generated install script) and the
-- oldest release brought up to date with ALTER EXTENSION UPDATE are the
-- same extension: every member object with its definition, privileges and
-- comment, every column, constraint, index, trigger and policy of its
-- relations, the initial privileges pg_dump records, and what pg_dump
-- carries (extconfig).  Rows written through the 1.0 API read back the
-- same after the update (the behavioural layer: an install or update
-- script does not check PL/pgSQL bodies).
--
\getenv abs_srcdir PG_ABS_SRCDIR
SET client_min_messages = warning;
DROP DATABASE IF EXISTS llm_usage_upgrade_chain;
DROP DATABASE IF EXISTS llm_usage_upgrade_fresh;
CREATE DATABASE llm_usage_upgrade_chain;
CREATE DATABASE llm_usage_upgrade_fresh;
RESET client_min_messages;

--
-- the oldest release, with data written through its own API
--
\c llm_usage_upgrade_chain
CREATE EXTENSION llm_usage VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'llm_usage';
SET client_min_messages = warning;
-- only monthly quotas, so that no period ends between the two readings
SELECT llm_usage.create_plan('upg');
SELECT llm_usage.set_plan_quota('upg', 'api_calls', 3, 'month');
SELECT llm_usage.set_plan_quota('upg', 'tokens', NULL, 'month');
SELECT llm_usage.create_tenant('u1', 'upg', 'UTC');
SELECT llm_usage.create_tenant('u2', 'upg', 'Asia/Kathmandu');
SELECT llm_usage.set_custom_quota('u2', 'cost_usd', 7.5, 'month');
SELECT allowed, used FROM llm_usage.enforce_quota('u1', 'api_calls', 2);
SELECT allowed, used FROM llm_usage.enforce_quota('u2', 'tokens', 1234);
SELECT llm_usage.track_usage('u1', 'chat', 'gpt-4o', 1000, 100, 200, 350, request_id => 'before-update',
                             occurred_at => '2026-10-03 10:00+00') > 0 AS tracked;
SELECT llm_usage.track_usage('u1', 'embedding', 'text-embedding-3-small', 5000, occurred_at => '2026-10-03 11:00+00') > 0 AS tracked;
SELECT llm_usage.track_usage('u2', 'chat', 'claude-sonnet-4-5', 300000, 2000, 100000, 900, result => 'failure',
                             occurred_at => '2026-10-04 23:30+00', cache_write_tokens => 5000) > 0 AS tracked;
SELECT llm_usage.track_usage('u2', 'chat', 'no-such-model', 10, 10, occurred_at => '2026-10-05 01:00+00') > 0 AS tracked;
SELECT llm_usage.set_model_price('custom', 'upg-model', 1.5, 2.5, valid_from => '2026-01-01') > 0 AS priced;
SELECT llm_usage.grant_credits('u1', 25, 'welcome', 'grant-1');
SELECT llm_usage.deduct_credits('u1', 2.5, 'october', 'deduct-1');
SELECT llm_usage.audit('u1', 'app', 'export', 'success', '{"rows": 3}') > 0 AS audited;
SELECT llm_usage.aggregate_usage_metrics('daily') AS daily_rows, llm_usage.aggregate_usage_metrics('monthly') AS monthly_rows;
SELECT llm_usage.attribute_provider_usage('openai', 'project_id', 'proj_upg', 'u2');
RESET client_min_messages;

-- what the 1.0 API reads back, before the update
SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) AS events
  FROM (SELECT * FROM llm_usage.tenant_events('u1', '2026-01-01', '2027-01-01')
        UNION ALL SELECT * FROM llm_usage.tenant_events('u2', '2026-01-01', '2027-01-01')) x \gset before_
SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) AS quotas
  FROM (SELECT * FROM llm_usage.quota_status('u1') UNION ALL SELECT * FROM llm_usage.quota_status('u2')) x \gset before_
-- (the roll-ups' figures of 1.0; 1.1 added latency sums and recomputes every period once)
SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) AS rollups
  FROM (SELECT x.tenant_id, x.period_type, x.period_start, x.api_calls_total, x.api_calls_failed, x.rate_limited_count, x.chat_messages_sent,
               x.embeddings_generated, x.input_tokens, x.output_tokens, x.cached_input_tokens, x.total_tokens_used,
               x.estimated_cost_usd, x.unpriced_calls, x.api_latency_p50_ms, x.api_latency_p95_ms, x.api_latency_p99_ms, x.error_rate
          FROM (SELECT * FROM llm_usage.tenant_usage('u1', '2026-01-01', '2027-01-01')
                UNION ALL SELECT * FROM llm_usage.tenant_usage('u2', '2026-01-01', '2027-01-01', 'monthly')) x) r \gset before_
SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) AS audit
  FROM (SELECT * FROM llm_usage.audit_trail('u1', 30) UNION ALL SELECT * FROM llm_usage.audit_trail('u2', 30)) x \gset before_
SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) AS prices
  FROM (SELECT price_id, provider, model, mode, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,
               cache_write_usd_per_mtok, cache_write_1h_usd_per_mtok, batch_input_usd_per_mtok, batch_output_usd_per_mtok,
               input_above_200k_usd_per_mtok, output_above_200k_usd_per_mtok, deprecation_date, valid_from, is_shipped,
               source, created_by, created_at
          FROM llm_usage.model_price_versions) x \gset before_
SELECT max(price_id) AS max_price_id FROM llm_usage.model_price_versions \gset before_
SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) AS tables
  FROM (SELECT (t.tenant_id, t.plan, t.timezone, t.created_at, t.updated_at)::text FROM llm_usage.tenants t
        UNION ALL SELECT p::text FROM llm_usage.plans p
        UNION ALL SELECT q::text FROM llm_usage.plan_quotas q UNION ALL SELECT o::text FROM llm_usage.tenant_quota_overrides o
        UNION ALL SELECT (l.tenant_id, l.entry_id, l.delta, l.balance_after, l.reason, l.ref, l.actor, l.created_at)::text
                    FROM llm_usage.credit_ledger l
        UNION ALL SELECT a::text FROM llm_usage.provider_attributions a) x \gset before_
SELECT llm_usage.credit_balance('u1') AS balance, llm_usage.unpriced_models()::text AS unpriced \gset before_

ALTER EXTENSION llm_usage UPDATE;
SELECT extversion = default_version AS updated_to_default
  FROM pg_extension e JOIN pg_available_extensions a ON a.name = e.extname WHERE extname = 'llm_usage';

-- the same readings after the update
-- (1.3 added cache_write_1h_tokens and service_tier at the end: 0 and standard before)
SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) = :'before_events' AS events_same
  FROM (SELECT tenant_id, event_id, event_type, model, provider, input_tokens, output_tokens, cached_input_tokens,
               cache_write_tokens, total_tokens, cost_usd, price_id, latency_ms, status_code, result, metadata,
               request_id, occurred_at, recorded_at
          FROM (SELECT * FROM llm_usage.tenant_events('u1', '2026-01-01', '2027-01-01')
                UNION ALL SELECT * FROM llm_usage.tenant_events('u2', '2026-01-01', '2027-01-01')) e) x;
SELECT DISTINCT cache_write_1h_tokens, service_tier FROM llm_usage.usage_events;
-- (1.3 added the tenant's plan at the end)
SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) = :'before_quotas' AS quotas_same
  FROM (SELECT quota_type, period, quota_limit, used, remaining, percentage, resets_at, source
          FROM (SELECT * FROM llm_usage.quota_status('u1') UNION ALL SELECT * FROM llm_usage.quota_status('u2')) q) x;
SELECT DISTINCT plan FROM llm_usage.quota_status('u1');
SELECT llm_usage.aggregate_usage_metrics('daily') AS daily_rows_recomputed,
       llm_usage.aggregate_usage_metrics('monthly') AS monthly_rows_recomputed;
SELECT md5(string_agg(r::text, '|' ORDER BY r::text)) = :'before_rollups' AS rollups_same
  FROM (SELECT x.tenant_id, x.period_type, x.period_start, x.api_calls_total, x.api_calls_failed, x.rate_limited_count, x.chat_messages_sent,
               x.embeddings_generated, x.input_tokens, x.output_tokens, x.cached_input_tokens, x.total_tokens_used,
               x.estimated_cost_usd, x.unpriced_calls, x.api_latency_p50_ms, x.api_latency_p95_ms, x.api_latency_p99_ms, x.error_rate
          FROM (SELECT * FROM llm_usage.tenant_usage('u1', '2026-01-01', '2027-01-01')
                UNION ALL SELECT * FROM llm_usage.tenant_usage('u2', '2026-01-01', '2027-01-01', 'monthly')) x) r;
-- (1.3 added audit_events.origin, at the end: 'unknown' for events written before)
SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) = :'before_audit' AS audit_same
  FROM (SELECT tenant_id, audit_id, event_type, action, result, actor, role_name, details, created_at
          FROM llm_usage.audit_trail('u1', 30) UNION ALL
        SELECT tenant_id, audit_id, event_type, action, result, actor, role_name, details, created_at
          FROM llm_usage.audit_trail('u2', 30)) x;
SELECT DISTINCT origin FROM llm_usage.audit_trail('u1', 30);
-- (1.3: the 200k rates are the long-context rates, their threshold stored;
-- shipped models whose 1.3 seed has more dimensions got a shipped version
-- valid from the update, so costs computed before keep their price)
SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) = :'before_prices' AS prices_same
  FROM (SELECT price_id, provider, model, mode, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,
               cache_write_usd_per_mtok, cache_write_1h_usd_per_mtok, batch_input_usd_per_mtok, batch_output_usd_per_mtok,
               input_long_context_usd_per_mtok, output_long_context_usd_per_mtok, deprecation_date, valid_from, is_shipped,
               source, created_by, created_at
          FROM llm_usage.model_price_versions WHERE price_id <= :before_max_price_id) x;
SELECT long_context_threshold, count(*) AS versions
  FROM llm_usage.model_price_versions
 WHERE price_id <= :before_max_price_id AND input_long_context_usd_per_mtok IS NOT NULL
 GROUP BY 1;
SELECT count(*) AS shipped_versions_added, count(*) FILTER (WHERE long_context_threshold = 272000) AS with_272k,
       count(*) FILTER (WHERE flex_input_usd_per_mtok IS NOT NULL) AS with_flex,
       count(*) FILTER (WHERE valid_from > now() - interval '1 minute') AS valid_from_the_update
  FROM llm_usage.model_price_versions WHERE price_id > :before_max_price_id AND is_shipped;
SELECT llm_usage.calculate_cost('claude-sonnet-4-5', 1234567, 234567, 34567) AS sonnet_long_context,
       llm_usage.calculate_cost('gpt-4o', 1000, 100, 0, now(), 0, 0, 'batch') AS gpt_4o_batch,
       llm_usage.calculate_cost('gpt-5.4', 290000, 9000, 60000) AS gpt_5_4_above_272k;
SELECT md5(string_agg(x::text, '|' ORDER BY x::text)) = :'before_tables' AS tables_same
  FROM (SELECT (t.tenant_id, t.plan, t.timezone, t.created_at, t.updated_at)::text FROM llm_usage.tenants t
        UNION ALL SELECT p::text FROM llm_usage.plans p
        UNION ALL SELECT q::text FROM llm_usage.plan_quotas q UNION ALL SELECT o::text FROM llm_usage.tenant_quota_overrides o
        UNION ALL SELECT (l.tenant_id, l.entry_id, l.delta, l.balance_after, l.reason, l.ref, l.actor, l.created_at)::text
                    FROM llm_usage.credit_ledger l
        UNION ALL SELECT a::text FROM llm_usage.provider_attributions a) x;
-- 1.3 columns of kept rows: no tenant is prepaid, the ledger's changes are grants and manual deductions
SELECT count(*) FILTER (WHERE prepaid) AS prepaid_tenants, count(*) FILTER (WHERE low_balance_usd IS NOT NULL) AS thresholds
  FROM llm_usage.tenants;
SELECT kind, delta > 0 AS is_credit, count(*), sum(uncovered) AS uncovered, count(event_id) AS with_event
  FROM llm_usage.credit_ledger GROUP BY 1, 2 ORDER BY 1, 2;
SELECT llm_usage.credit_balance('u1') = :'before_balance' AS balance_same,
       llm_usage.unpriced_models()::text = :'before_unpriced' AS unpriced_same;
-- and they keep behaving: the counter carries on (2 of 3 used), the
-- request id is still known, a second roll-up changes nothing
SELECT allowed, used FROM llm_usage.enforce_quota('u1', 'api_calls', 1);
SELECT allowed, used FROM llm_usage.enforce_quota('u1', 'api_calls', 1);
SELECT count(*) AS events_for_repeated_request
  FROM llm_usage.usage_events WHERE request_id = 'before-update'
   AND event_id = llm_usage.track_usage('u1', 'chat', 'gpt-4o', 1000, 100, 200, 350, request_id => 'before-update',
                                        occurred_at => '2026-10-03 10:00+00');
SELECT llm_usage.aggregate_usage_metrics('daily') AS daily_rows_changed;

\set ECHO none
\i :abs_srcdir/sql/upgrade_fingerprint.psql
\set ECHO all
\set chain_fp :fp

--
-- a fresh install of the current version
--
\c llm_usage_upgrade_fresh
CREATE EXTENSION llm_usage;
\set ECHO none
\i :abs_srcdir/sql/upgrade_fingerprint.psql
\set ECHO all
\set fresh_fp :fp

-- the differences, both ways: none expected
SELECT 'only after the update' AS side, line
  FROM (SELECT pg_catalog.regexp_split_to_table(:'chain_fp', E'\n')
        EXCEPT SELECT pg_catalog.regexp_split_to_table(:'fresh_fp', E'\n')) d(line)
UNION ALL
SELECT 'only in a fresh install', line
  FROM (SELECT pg_catalog.regexp_split_to_table(:'fresh_fp', E'\n')
        EXCEPT SELECT pg_catalog.regexp_split_to_table(:'chain_fp', E'\n')) d(line)
ORDER BY 2, 1;
-- a fresh install answers the dashboards before any roll-up ran
SELECT llm_usage.create_tenant('fresh1', 'trial', 'Europe/Berlin');
SELECT (llm_usage.usage_overview('fresh1', '7d'))->'overview'->>'runs' AS runs_before_any_rollup;
-- what was compared
SELECT split_part(line, ' ', 1) AS fact, count(*) > 0 AS compared
  FROM pg_catalog.regexp_split_to_table(:'fresh_fp', E'\n') line
 GROUP BY 1 ORDER BY 1;

\c llm_usage_regress
DROP DATABASE llm_usage_upgrade_chain;
DROP DATABASE llm_usage_upgrade_fresh;

--
-- partitions made at run time by 1.2, one even granted to readers by hand,
-- get row-level security and lose every direct privilege in the update
--
SET client_min_messages = warning;
DROP DATABASE IF EXISTS llm_usage_upgrade_parts;
CREATE DATABASE llm_usage_upgrade_parts;
RESET client_min_messages;
\c llm_usage_upgrade_parts
CREATE EXTENSION llm_usage VERSION '1.2';
SELECT llm_usage._ensure_partitions('2026-10-01', '2026-11-01') AS partitions_made_by_1_2;
GRANT SELECT ON llm_usage.usage_events_202610 TO llm_usage_reader, PUBLIC;
SET client_min_messages = warning;
ALTER EXTENSION llm_usage UPDATE;
RESET client_min_messages;
SELECT c.relname, c.relrowsecurity, count(p.polname) AS policies,
       has_table_privilege('llm_usage_reader', c.oid, 'SELECT') AS reader_may_select,
       has_table_privilege('public', c.oid, 'SELECT') AS public_may_select
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
  LEFT JOIN pg_policy p ON p.polrelid = c.oid
 WHERE i.inhparent = 'llm_usage.usage_events'::regclass
 GROUP BY c.relname, c.relrowsecurity, c.oid
 ORDER BY 1;
\c llm_usage_regress
DROP DATABASE llm_usage_upgrade_parts;
