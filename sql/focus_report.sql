--
-- focus_report: the FOCUS 1.2 export (focus_export) and the HTML report
-- (usage_report_html): sums against the source tables, mandatory columns,
-- quantities matched from provider_usage, errors with their SQLSTATEs,
-- HTML escaping of user data, and row-level security for a reader bound to
-- one tenant.
--
SET client_min_messages = warning;
SET timezone = 'UTC';
SELECT llm_usage.create_tenant('fr_a', 'pro', 'UTC');
SELECT llm_usage.create_tenant('fr_<b>"''&x', 'starter', 'UTC');
CREATE ROLE regress_fr_reader LOGIN IN ROLE llm_usage_reader;
CREATE ROLE regress_fr_outsider LOGIN;
SELECT llm_usage.grant_tenant_access('regress_fr_reader', 'fr_a');

-- tracked calls in March 2026: a priced model with tags in metadata, an
-- unpriced model with a hostile name, and calls of the other tenant
SELECT count(llm_usage.track_usage('fr_a', 'chat', 'gpt-4o', 1000 * i, 100 * i, 0, 100 + i,
                                   metadata => jsonb_build_object('project', 'p1', 'api_key', 'k1'),
                                   occurred_at => '2026-03-01 10:00+00'::timestamptz + make_interval(days => i % 3, hours => i)))
  FROM generate_series(1, 12) i;
SELECT count(llm_usage.track_usage('fr_a', 'chat', 'm<script>"x''y', 500, 50,
                                   occurred_at => '2026-03-02 08:00+00'))
  FROM generate_series(1, 2);
SELECT count(llm_usage.track_usage('fr_<b>"''&x', 'embedding', 'text-embedding-3-small', 7000,
                                   occurred_at => '2026-03-01 12:00+00'))
  FROM generate_series(1, 3);

-- what the providers reported for fr_a (as the collector writes it): an
-- Anthropic cost line per model and token type, an OpenAI line item
-- "<model>, <kind>", and the usage rows they are matched with
INSERT INTO llm_usage.provider_usage (tenant_id, key_id, provider, endpoint, bucket_start, bucket_end, model,
                                      workspace_id, provider_api_key_id, input_tokens, cached_input_tokens,
                                      cache_write_tokens, output_tokens)
VALUES ('fr_a', 9001, 'anthropic', 'messages', '2026-03-01', '2026-03-02', 'claude-sonnet-4-5', 'ws1', 'ak1', 10000, 2000, 1000, 700),
       ('fr_a', 9001, 'anthropic', 'messages', '2026-03-01', '2026-03-02', 'claude-sonnet-4-5', 'ws1', 'ak2', 5000, 0, 0, 300);
INSERT INTO llm_usage.provider_usage (tenant_id, key_id, provider, endpoint, bucket_start, bucket_end, model,
                                      project_id, input_tokens, cached_input_tokens, output_tokens, requests)
VALUES ('fr_a', 9002, 'openai', 'completions', '2026-03-01', '2026-03-02', 'gpt-4o', 'proj1', 8000, 3000, 900, 12);
INSERT INTO llm_usage.provider_costs (tenant_id, key_id, provider, bucket_start, bucket_end, line_item, model,
                                      workspace_id, token_type, amount_usd)
VALUES ('fr_a', 9001, 'anthropic', '2026-03-01', '2026-03-02', 'Claude Sonnet 4.5 Usage - Input Tokens', 'claude-sonnet-4-5', 'ws1', 'uncached_input_tokens', 0.036),
       ('fr_a', 9001, 'anthropic', '2026-03-01', '2026-03-02', 'Claude Sonnet 4.5 Usage - Output Tokens', 'claude-sonnet-4-5', 'ws1', 'output_tokens', 0.015),
       ('fr_a', 9001, 'anthropic', '2026-03-02', '2026-03-03', 'Web search', NULL, NULL, NULL, 0.5);
INSERT INTO llm_usage.provider_costs (tenant_id, key_id, provider, bucket_start, bucket_end, line_item, project_id, amount_usd)
VALUES ('fr_a', 9002, 'openai', '2026-03-01', '2026-03-02', 'gpt-4o, input', 'proj1', 0.0125),
       ('fr_a', 9002, 'openai', '2026-03-01', '2026-03-02', 'gpt-4o, cached input', 'proj1', 0.00375),
       ('fr_a', 9002, 'openai', '2026-03-01', '2026-03-02', 'gpt-4o, output', 'proj1', 0.009),
       ('fr_a', 9002, 'openai', '2026-04-01', '2026-04-02', 'gpt-4o, output', 'proj1', 1.0);

CREATE TEMP VIEW fr_march AS
SELECT * FROM llm_usage.focus_export('2026-03-01', '2026-04-01') f
 WHERE f."SubAccountId" IN ('fr_a', 'fr_<b>"''&x');

-- cost sums equal the sources over the same range, per source
SELECT f."x_Source", count(*) AS rows, sum(f."BilledCost") AS billed,
       sum(f."BilledCost") = sum(f."EffectiveCost") AND sum(f."BilledCost") = sum(f."ListCost") AS costs_agree
  FROM fr_march f GROUP BY 1 ORDER BY 1;
SELECT (SELECT sum(amount_usd) FROM llm_usage.provider_costs
         WHERE tenant_id IN ('fr_a', 'fr_<b>"''&x') AND bucket_start >= '2026-03-01' AND bucket_start < '2026-04-01')
       = (SELECT sum("BilledCost") FROM fr_march WHERE "x_Source" = 'provider') AS provider_sum_equal,
       (SELECT sum(cost_usd) FROM llm_usage.usage_events
         WHERE tenant_id IN ('fr_a', 'fr_<b>"''&x') AND occurred_at >= '2026-03-01' AND occurred_at < '2026-04-01')
       = (SELECT sum("BilledCost") FROM fr_march WHERE "x_Source" = 'tracked') AS tracked_sum_equal,
       (SELECT count(*) FROM llm_usage.usage_events
         WHERE tenant_id IN ('fr_a', 'fr_<b>"''&x') AND occurred_at >= '2026-03-01' AND occurred_at < '2026-04-01')
       = (SELECT sum("x_Calls") FROM fr_march) AS calls_equal;

-- the columns FOCUS 1.2 makes mandatory and not null are never null
SELECT count(*) FILTER (WHERE "BilledCost" IS NULL OR "EffectiveCost" IS NULL OR "ListCost" IS NULL
                           OR "ContractedCost" IS NULL OR "BillingCurrency" IS NULL OR "BillingPeriodStart" IS NULL
                           OR "BillingPeriodEnd" IS NULL OR "ChargePeriodStart" IS NULL OR "ChargePeriodEnd" IS NULL
                           OR "ChargeCategory" IS NULL OR "ChargeFrequency" IS NULL OR "ServiceName" IS NULL
                           OR "ServiceCategory" IS NULL OR "ProviderName" IS NULL OR "PublisherName" IS NULL
                           OR "InvoiceIssuerName" IS NULL OR "SubAccountId" IS NULL OR "SkuId" IS NULL
                           OR "PricingCategory" IS NULL) AS rows_with_a_null_mandatory_column,
       count(*) FILTER (WHERE "ChargePeriodEnd" <= "ChargePeriodStart") AS empty_charge_periods,
       count(*) FILTER (WHERE "ChargePeriodStart" < '2026-03-01' OR "ChargePeriodStart" >= '2026-04-01') AS outside_range,
       count(*) FILTER (WHERE "BillingCurrency" <> 'USD' OR "ChargeCategory" <> 'Usage'
                           OR "ServiceCategory" <> 'AI and Machine Learning') AS unexpected_values
  FROM fr_march;

-- provider rows: quantities matched from provider_usage (uncached input =
-- input - cache reads - cache writes; OpenAI "input" = input - cached)
SELECT "ProviderName", "SkuId", "BilledCost", "ConsumedQuantity", "ConsumedUnit", "PricingQuantity", "PricingUnit",
       "ResourceId", "ResourceType", "Tags"
  FROM fr_march WHERE "x_Source" = 'provider' ORDER BY "ChargePeriodStart", "ProviderName", "SkuId";

-- tracked rows: one per tenant, UTC day, model, price and tags
SELECT "ChargePeriodStart", "SubAccountId", "SkuId", "SkuPriceId" IS NOT NULL AS priced, "BilledCost",
       "ConsumedQuantity", "ConsumedUnit", "Tags", "x_Calls", "x_UnpricedCalls", "ResourceId"
  FROM fr_march WHERE "x_Source" = 'tracked' ORDER BY 1, 2, 3;

-- a range that starts mid-day clips the charge period; sources apart
SELECT "ChargePeriodStart", "ChargePeriodEnd", "x_Calls"
  FROM llm_usage.focus_export('2026-03-02 09:30+00', '2026-03-02 20:00+00', 'tracked')
 WHERE "SubAccountId" = 'fr_a' ORDER BY "SkuId";
SELECT count(*) AS provider_rows_when_tracked_asked
  FROM llm_usage.focus_export('2026-03-01', '2026-04-01', 'tracked') WHERE "x_Source" <> 'tracked';

-- bad input: a clear error and its SQLSTATE
SELECT try($$SELECT * FROM llm_usage.focus_export(NULL, '2026-04-01')$$);
SELECT try($$SELECT * FROM llm_usage.focus_export('2026-03-01', NULL)$$);
SELECT try($$SELECT * FROM llm_usage.focus_export('2026-03-01', '2026-04-01', NULL)$$);
SELECT try($$SELECT * FROM llm_usage.focus_export('2026-04-01', '2026-03-01')$$);
SELECT try($$SELECT * FROM llm_usage.focus_export('2025-01-01', '2026-03-01')$$);
SELECT try($$SELECT * FROM llm_usage.focus_export('-infinity', '2026-03-01')$$);
SELECT try($$SELECT * FROM llm_usage.focus_export('2026-03-01', '2026-04-01', 'invoice')$$);
\set VERBOSITY verbose
SELECT * FROM llm_usage.focus_export('2026-04-01', '2026-03-01');
\set VERBOSITY default

-- row-level security: the reader bound to fr_a sees fr_a only
SET ROLE regress_fr_reader;
SELECT "SubAccountId", "x_Source", count(*), sum("BilledCost")
  FROM llm_usage.focus_export('2026-03-01', '2026-04-01') GROUP BY 1, 2 ORDER BY 1, 2;
RESET ROLE;

------------------------------------------------------------------------
-- usage_report_html
------------------------------------------------------------------------
-- calls in the report's window (now), for both tenants
SELECT count(llm_usage.track_usage('fr_a', 'chat', 'gpt-4o-mini', 2000, 300, latency_ms => 400,
                                   occurred_at => now() - make_interval(hours => i)))
  FROM generate_series(1, 5) i;
SELECT count(llm_usage.track_usage('fr_<b>"''&x', 'chat', 'evil<img/src=x>"model', 100, 10,
                                   occurred_at => now() - make_interval(mins => i)))
  FROM generate_series(1, 4) i;

CREATE TEMP TABLE fr_html AS
SELECT 'a' AS which, llm_usage.usage_report_html('fr_a') AS html
UNION ALL SELECT 'evil', llm_usage.usage_report_html('fr_<b>"''&x', '7d')
UNION ALL SELECT 'all', llm_usage.usage_report_html();

-- one document, nothing it could fetch or run, user data escaped
SELECT which,
       html LIKE '<!DOCTYPE html>%</html>' AS one_document,
       position('default-src ''none''' IN html) > 0 AS csp,
       position('<script' IN lower(html)) = 0 AS no_script,
       html !~* '(src|href|action|data)\s*=\s*["'']|url\(|@import|<(link|img|iframe|object|embed|image|use)\M' AS no_external_reference,
       position('<b>"' IN html) = 0 AND position('<img' IN html) = 0 AS no_raw_user_markup
  FROM fr_html ORDER BY 1;
SELECT position('fr_&lt;b&gt;&quot;&#39;&amp;x' IN html) > 0 AS tenant_escaped,
       position('evil&lt;img/src=x&gt;&quot;model' IN html) > 0 AS model_escaped,
       (SELECT count(*) FROM regexp_matches(html, '<section class="card', 'g')) AS cards,
       (SELECT count(*) FROM regexp_matches(html, '<svg class="chart-svg"', 'g')) AS charts
  FROM fr_html WHERE which = 'evil';
SELECT position('m&lt;script&gt;&quot;x&#39;y' IN html) = 0 AS march_model_not_in_30d
  FROM fr_html WHERE which = 'a';

-- the key figures are the tenant's
SELECT (regexp_match(html, 'data-kpi="calls" data-value="([^"]*)"'))[1]::bigint
       = (SELECT count(*) FROM llm_usage.usage_events
           WHERE tenant_id = 'fr_a' AND occurred_at >= date_trunc('day', now() - interval '29 days', 'UTC')) AS calls_match,
       (regexp_match(html, 'data-kpi="tokens" data-value="([^"]*)"'))[1]::bigint
       = (SELECT sum(total_tokens) FROM llm_usage.usage_events
           WHERE tenant_id = 'fr_a' AND occurred_at >= date_trunc('day', now() - interval '29 days', 'UTC')) AS tokens_match
  FROM fr_html WHERE which = 'a';

-- row-level security: the reader bound to fr_a sees one tenant in the
-- all-tenants report, never the other one, and is refused the other one
SET ROLE regress_fr_reader;
SELECT (regexp_match(h.html, 'data-tenants="([^"]*)"'))[1] AS tenants_seen,
       position('fr_a' IN h.html) > 0 AS sees_fr_a,
       position('fr_&lt;b' IN h.html) = 0 AS not_the_other_tenant,
       position('evil&lt;img' IN h.html) = 0 AS not_its_models,
       (regexp_match(h.html, 'data-kpi="calls" data-value="([^"]*)"'))[1]::bigint = 5 AS calls_are_fr_a_only
  FROM (SELECT llm_usage.usage_report_html() AS html) h;
SELECT try($$SELECT llm_usage.usage_report_html('fr_<b>"''&x')$$);
SELECT try($$SELECT llm_usage.usage_report_html('no_such_tenant')$$);
RESET ROLE;
SET ROLE regress_fr_outsider;
SELECT try($$SELECT llm_usage.usage_report_html()$$);
SELECT try($$SELECT * FROM llm_usage.focus_export('2026-03-01', '2026-04-01')$$);
RESET ROLE;

-- bad input
SELECT try($$SELECT llm_usage.usage_report_html('fr_a', NULL)$$);
SELECT try($$SELECT llm_usage.usage_report_html('fr_a', '2d')$$);
SELECT try($$SELECT llm_usage.usage_report_html('')$$);
SELECT try($$SELECT llm_usage.usage_report_html('no_such_tenant')$$);
\set VERBOSITY verbose
SELECT llm_usage.usage_report_html(NULL, '1w');
\set VERBOSITY default

-- every period renders (1y in weeks)
SELECT p, length(llm_usage.usage_report_html('fr_a', p)) > 1000 AS rendered
  FROM unnest(ARRAY['7d', '30d', '90d', '1y']) p;

-- the helpers: escaping, figures, axis steps
SELECT llm_usage._html('<a href="x">&''</a>') AS escaped;
SELECT llm_usage._report_num(1234.567, 'usd') AS usd, llm_usage._report_num(0.00123, 'usd') AS cents,
       llm_usage._report_num(1234567, 'int') AS int, llm_usage._report_num(97.46, 'pct') AS pct,
       llm_usage._report_num(1530.4, 'ms') AS ms;
SELECT v, llm_usage._report_step(v) AS step FROM unnest(ARRAY[0.0003, 0.3, 1.7, 2.2, 3, 7, 1234]::numeric[]) v;

SELECT llm_usage.revoke_tenant_access('regress_fr_reader', 'fr_a');
DROP ROLE regress_fr_reader, regress_fr_outsider;
