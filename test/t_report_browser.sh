#!/usr/bin/env bash
# t_report_browser: the HTML usage report in a real browser.  The worker
# collects 29 days of usage and cost from the provider simulator, calls are
# tracked over the last 30 days for two tenants (one with a hostile id, one
# unpriced model with a hostile name), one with a long id, and a fourth
# tenant, quotas are used;
# a reader bound to the first three writes the report with psql; Debian's
# chromium (installed here: the CI machine starts without it) renders it
# headless at 1280 and 390 px, and test/report_browser.py checks the DOM
# against figures computed in SQL from the tables (see its header), that
# the fourth tenant is nowhere in it, and takes a screenshot at each width.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"

if ! command -v chromium >/dev/null 2>&1; then
    log "installing chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
echo "browser: $(chromium --version 2>/dev/null | head -1)"
start_sim
use_sim

EVIL='rb_<script>alert("x")</script>'
EVIL_SQL=${EVIL//\'/\'\'}
MODEL='rb_m<img/src=x>"q'
# a long id in wide letters, to prove labels are clipped to their chart
LONG=rb_WIDE-CUSTOMER-WWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWWW-0123456789
OA=sk-admin-report-browser-0001
AN=sk-ant-admin01-report-browser-0002
wq -o /dev/null <<SQL
SELECT llm_usage.create_plan('rb_plan', 'report browser test: day and month quotas only');
SELECT llm_usage.set_plan_quota('rb_plan', 'tokens', 1000000, 'day');
SELECT llm_usage.set_plan_quota('rb_plan', 'api_calls', 100, 'day');
SELECT llm_usage.set_plan_quota('rb_plan', 'cost_usd', 5, 'month');
SELECT llm_usage.set_plan_quota('rb_plan', 'embeddings', NULL, 'month');
SELECT llm_usage.create_tenant('rb_acme', 'rb_plan');
SELECT llm_usage.create_tenant('$EVIL_SQL', 'rb_plan');
SELECT llm_usage.create_tenant('rb_other', 'rb_plan');
SELECT llm_usage.create_tenant('$LONG', 'rb_plan');
DROP ROLE IF EXISTS rb_reader;
CREATE ROLE rb_reader LOGIN IN ROLE llm_usage_reader;
SELECT llm_usage.grant_tenant_access('rb_reader', 'rb_acme');
SELECT llm_usage.grant_tenant_access('rb_reader', '$EVIL_SQL');
SELECT llm_usage.grant_tenant_access('rb_reader', '$LONG');
SQL
oa_id=$(wq -c "SELECT llm_usage.add_provider_key('rb_acme', 'openai', '$OA', 'report org', validate => true)")
an_id=$(wq -c "SELECT llm_usage.add_provider_key('rb_acme', 'anthropic', '$AN', validate => true)")
# one OpenAI project and the Anthropic default workspace belong to the hostile tenant
wq -o /dev/null -c "SELECT llm_usage.attribute_provider_usage('openai', 'project_id', 'proj_beta', '$EVIL_SQL')"

# the worker collects the last 29 full days
run=$(wq -c "SELECT llm_usage.collect_now($oa_id, current_date - 29, current_date - 1)")
run2=$(wq -c "SELECT llm_usage.collect_now($an_id, current_date - 29, current_date - 1)")
[[ $(wait_run "$run") == succeeded ]] || fail "openai collection failed"
[[ $(wait_run "$run2") == succeeded ]] || fail "anthropic collection failed"
retire_keys rb_acme
wq -c "SELECT tenant_id = 'rb_acme' AS acme, provider, count(*) AS cost_rows, sum(amount_usd) AS usd
         FROM llm_usage.provider_costs WHERE key_id IN ($oa_id, $an_id) GROUP BY 1, 2 ORDER BY 1, 2"

# tracked calls over the last 30 days (today included), with failures and latencies
wq -o /dev/null <<SQL
SELECT count(llm_usage.track_usage(v.t, 'chat', v.m, 800 + (i * 53) % 4000, 60 + (i * 29) % 700, (i % 3) * 100,
                                   150 + (i * 97) % 2600,
                                   result => CASE WHEN i % 13 = 0 THEN 'failure' WHEN i % 19 = 0 THEN 'rate_limited' ELSE 'success' END,
                                   occurred_at => date_trunc('hour', now()) - make_interval(hours => i * 5 + v.o)))
  FROM generate_series(0, 143) i,
       (VALUES ('rb_acme', 'gpt-4o', 0), ('rb_acme', 'claude-sonnet-4-5', 1), ('rb_acme', 'text-embedding-3-small', 2),
               ('$EVIL_SQL', 'gpt-4o-mini', 3), ('$EVIL_SQL', 'claude-haiku-4-5', 4),
               ('rb_other', 'gpt-5', 1), ('$LONG', 'gpt-4o', 2)) v(t, m, o)
 WHERE v.t <> '$LONG' OR i % 10 = 0;
SELECT count(llm_usage.track_usage('$EVIL_SQL', 'chat', '${MODEL//\'/\'\'}', 2000, 300, latency_ms => 900,
                                   occurred_at => now() - make_interval(hours => i * 7)))
  FROM generate_series(1, 25) i;
SELECT count(*) FROM llm_usage.enforce_quota('rb_acme', 'tokens', 850000);
SELECT count(*) FROM llm_usage.enforce_quota('rb_acme', 'api_calls', 12);
SELECT count(*) FROM llm_usage.enforce_quota('$EVIL_SQL', 'cost_usd', 5);
SELECT count(*) FROM llm_usage.enforce_quota('$EVIL_SQL', 'tokens', 120000);
SELECT count(*) FROM llm_usage.enforce_quota('rb_other', 'tokens', 990000);
SELECT count(*) FROM llm_usage.enforce_quota('$LONG', 'api_calls', 95);
SQL

# the report as a user gets it, as the reader bound to two of the three tenants
as_user "$PGBIN/psql" -X -U rb_reader -d "$WDB" -Atc "SELECT llm_usage.usage_report_html()" >"$WORK/report.html"
echo "report: $(wc -c <"$WORK/report.html") bytes, $(grep -o '<svg class="chart-svg"' "$WORK/report.html" | wc -l) charts drawn"

# the figures, from the tables (not from the report), for the same window
wq -c "
WITH t AS (SELECT unnest(ARRAY['rb_acme', '$EVIL_SQL', '$LONG']) AS tenant_id),
w AS (SELECT ((now() AT TIME ZONE 'UTC')::date - 29)::timestamp AT TIME ZONE 'UTC' AS t0,
             ((now() AT TIME ZONE 'UTC')::date + 1)::timestamp AT TIME ZONE 'UTC' AS t1),
e AS (SELECT e.*, (e.occurred_at AT TIME ZONE 'UTC')::date::text AS d FROM llm_usage.usage_events e, w
       WHERE e.tenant_id IN (SELECT tenant_id FROM t) AND e.occurred_at >= w.t0 AND e.occurred_at < w.t1),
c AS (SELECT c.*, (c.bucket_start AT TIME ZONE 'UTC')::date::text AS d FROM llm_usage.provider_costs c, w
       WHERE c.tenant_id IN (SELECT tenant_id FROM t) AND c.bucket_start >= w.t0 AND c.bucket_start < w.t1)
SELECT json_build_object(
  'kpis', (SELECT json_build_object(
              'cost', coalesce(sum(cost_usd), 0)::text, 'calls', count(*)::text,
              'tokens', coalesce(sum(total_tokens), 0)::text,
              'success_rate', round(100.0 * count(*) FILTER (WHERE result = 'success') / count(*), 2)::text,
              'p95_latency', round((percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms))::numeric, 1)::text,
              'unpriced_calls', (count(*) FILTER (WHERE cost_usd IS NULL))::text,
              'reported_cost', (SELECT coalesce(sum(amount_usd), 0) FROM c)::text) FROM e),
  'cost', (SELECT json_agg(json_build_object('x', d, 'series', model, 'value', v::text))
             FROM (SELECT d, model, sum(cost_usd) AS v FROM e GROUP BY 1, 2 HAVING sum(cost_usd) > 0) x),
  'tokens', (SELECT json_agg(json_build_object('x', d, 'series', s, 'value', v::text))
               FROM (SELECT d, 'input tokens' AS s, sum(input_tokens) AS v FROM e GROUP BY 1
                     UNION ALL SELECT d, 'output tokens', sum(output_tokens) FROM e GROUP BY 1) x),
  'success_rate', (SELECT json_agg(json_build_object('x', d, 'series', 'success rate',
                          'value', round(100.0 * count_s / n, 2)::text))
                     FROM (SELECT d, count(*) FILTER (WHERE result = 'success') AS count_s, count(*) AS n FROM e GROUP BY 1) x),
  'p95_latency', (SELECT json_agg(json_build_object('x', d, 'series', 'p95 latency', 'value', v::text))
                    FROM (SELECT d, round((percentile_cont(0.95) WITHIN GROUP (ORDER BY latency_ms))::numeric, 1) AS v
                            FROM e GROUP BY 1) x WHERE v IS NOT NULL),
  'reconciliation', (SELECT json_agg(json_build_object('x', d, 'series', s, 'value', v::text))
                       FROM (SELECT d, 'tracked' AS s, sum(cost_usd) AS v FROM e WHERE provider IN ('openai', 'anthropic') GROUP BY 1
                             UNION ALL SELECT d, 'provider-reported', sum(amount_usd) FROM c GROUP BY 1) x WHERE v IS NOT NULL),
  'recon', json_build_object('tracked', (SELECT coalesce(sum(cost_usd), 0) FROM e WHERE provider IN ('openai', 'anthropic'))::text,
                             'reported', (SELECT coalesce(sum(amount_usd), 0) FROM c)::text),
  'quota', (SELECT json_agg(json_build_object('key', k, 'value', used::text, 'limit', quota_limit::text, 'pct', percentage::text) ORDER BY o)
              FROM (SELECT t.tenant_id || '|' || q.quota_type || '|' || q.period AS k, q.used, q.quota_limit, q.percentage,
                           row_number() OVER (ORDER BY q.percentage DESC NULLS LAST, t.tenant_id, q.quota_type,
                                                       array_position(ARRAY['minute', 'hour', 'day', 'month'], q.period)) AS o
                      FROM t, llm_usage.quota_status(t.tenant_id) q WHERE q.quota_limit IS NOT NULL) x WHERE o <= 12),
  'consumers', (SELECT json_agg(json_build_object('key', tenant_id, 'value', cost::text, 'calls', calls::text, 'tokens', tokens::text)
                                ORDER BY cost DESC, calls DESC, tenant_id)
                  FROM (SELECT tenant_id, coalesce(sum(cost_usd), 0) AS cost, count(*) AS calls,
                               coalesce(sum(total_tokens), 0) AS tokens FROM e GROUP BY 1) x),
  'unpriced', (SELECT coalesce(json_agg(json_build_object('model', model, 'calls', n::text, 'tokens', tk::text) ORDER BY n DESC, model), '[]')
                 FROM (SELECT model, count(*) AS n, coalesce(sum(total_tokens), 0) AS tk FROM e
                        WHERE cost_usd IS NULL AND model IS NOT NULL GROUP BY 1) x),
  'present', json_build_array('rb_acme', '$EVIL_SQL', '${MODEL//\'/\'\'}', 'gpt-4o', 'claude-haiku-4-5'),
  'absent', json_build_array('rb_other', 'gpt-5'))" >"$WORK/expected.json"
python3 -c "import json,sys; e=json.load(open(sys.argv[1])); print('SQL figures: %d cost cells, %d token cells, %d quota bars, %d consumers, %d unpriced models; tracked %s, provider-reported %s' % (len(e['cost']), len(e['tokens']), len(e['quota']), len(e['consumers']), len(e['unpriced']), e['recon']['tracked'], e['recon']['reported']))" "$WORK/expected.json"

python3 "$(dirname "$0")/report_browser.py" "$(command -v chromium)" "$WORK/report.html" "$WORK/expected.json" "$WORK" 1280 390 \
    || fail "the report's DOM checks failed"
if [[ -n "${LLM_USAGE_REPORT_SHOTS:-}" ]]; then
    cp "$WORK"/report-1280.png "$WORK"/report-390.png "$WORK/report.html" "$LLM_USAGE_REPORT_SHOTS/"
fi
wq -o /dev/null -c "SELECT llm_usage.revoke_tenant_access('rb_reader', t) FROM unnest(ARRAY['rb_acme', '$EVIL_SQL', '$LONG']) t" \
   -c "DROP ROLE rb_reader"
echo "PASS"
