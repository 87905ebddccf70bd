#!/usr/bin/env bash
# t_focus: the FOCUS 1.2 export over a month of real collected data.  The
# worker collects October 2026 from the provider simulator for an OpenAI and
# an Anthropic key (one OpenAI project attributed to a second tenant), calls
# are tracked in the same month; then focus_export() for the month must
# give the product's own totals: provider rows = provider_costs (= the
# simulator's totals), tracked rows = usage_events.cost_usd, per tenant and
# per day; the mandatory columns are never null and hold allowed values;
# token quantities equal provider_usage; a reader bound to one tenant sees
# only that tenant; and the export goes to CSV with the FOCUS header.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim

OA=sk-admin-focus-test-0001
AN=sk-ant-admin01-focus-test-0002
wq -o /dev/null <<SQL
SELECT llm_usage.create_tenant('fx_a', 'pro');
SELECT llm_usage.create_tenant('fx_b', 'pro');
DROP ROLE IF EXISTS fx_reader;
CREATE ROLE fx_reader LOGIN IN ROLE llm_usage_reader;
SELECT llm_usage.grant_tenant_access('fx_reader', 'fx_a');
SQL
oa_id=$(wq -c "SELECT llm_usage.add_provider_key('fx_a', 'openai', '$OA', validate => true)")
an_id=$(wq -c "SELECT llm_usage.add_provider_key('fx_a', 'anthropic', '$AN', validate => true)")
wq -o /dev/null -c "SELECT llm_usage.attribute_provider_usage('openai', 'project_id', 'proj_beta', 'fx_b')"
run=$(wq -c "SELECT llm_usage.collect_now($oa_id, '2026-10-01', '2026-10-31')")
run2=$(wq -c "SELECT llm_usage.collect_now($an_id, '2026-10-01', '2026-10-31')")
[[ $(wait_run "$run") == succeeded ]] || fail "openai collection failed"
[[ $(wait_run "$run2") == succeeded ]] || fail "anthropic collection failed"
retire_keys fx_a

# tracked calls through October, priced and unpriced, with tags in metadata
wq -o /dev/null <<SQL
SELECT count(llm_usage.track_usage(v.t, v.et, v.m, 500 + (i * 71) % 9000, CASE WHEN v.et = 'embedding' THEN 0 ELSE 40 + (i * 13) % 900 END,
                                   (i % 4) * 100, 100 + i % 900,
                                   metadata => jsonb_build_object('project', 'p' || i % 3, 'api_key', 'key_' || i % 2),
                                   occurred_at => '2026-10-01 00:00+00'::timestamptz + make_interval(mins => i * 97 + v.o)))
  FROM generate_series(0, 459) i,
       (VALUES ('fx_a', 'chat', 'gpt-4o', 0), ('fx_a', 'chat', 'claude-sonnet-4-5', 5), ('fx_a', 'embedding', 'text-embedding-3-small', 9),
               ('fx_b', 'chat', 'gpt-4o-mini', 3), ('fx_b', 'chat', 'fx-in-house-model', 7)) v(t, et, m, o);
SQL

M="'2026-10-01 00:00+00', '2026-11-01 00:00+00'"
echo "month 2026-10: rows by source and tenant (export | product's own tables)"
wq -c "SELECT f.\"x_Source\", f.\"SubAccountId\", count(*) AS rows, sum(f.\"BilledCost\") AS billed_usd
         FROM llm_usage.focus_export($M) f WHERE f.\"SubAccountId\" LIKE 'fx\_%' GROUP BY 1, 2 ORDER BY 1, 2"
wq -c "SELECT 'provider_costs', tenant_id, count(*), sum(amount_usd) FROM llm_usage.provider_costs
        WHERE tenant_id LIKE 'fx\_%' AND bucket_start >= '2026-10-01' AND bucket_start < '2026-11-01' GROUP BY 2
       UNION ALL
       SELECT 'usage_events', tenant_id, count(*), sum(cost_usd) FROM llm_usage.usage_events
        WHERE tenant_id LIKE 'fx\_%' AND occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01' GROUP BY 2 ORDER BY 1, 2"

# 1. totals equal the product's own, per tenant and per UTC day, for each source
diffs=$(wq -c "
WITH f AS (SELECT * FROM llm_usage.focus_export($M) WHERE \"SubAccountId\" LIKE 'fx\_%'),
fp AS (SELECT \"SubAccountId\" AS t, date_trunc('day', \"ChargePeriodStart\", 'UTC') AS d, sum(\"BilledCost\") AS usd
         FROM f WHERE \"x_Source\" = 'provider' GROUP BY 1, 2),
pc AS (SELECT tenant_id AS t, date_trunc('day', bucket_start, 'UTC') AS d, sum(amount_usd) AS usd
         FROM llm_usage.provider_costs WHERE tenant_id LIKE 'fx\_%' AND bucket_start >= '2026-10-01' AND bucket_start < '2026-11-01'
        GROUP BY 1, 2),
ft AS (SELECT \"SubAccountId\" AS t, date_trunc('day', \"ChargePeriodStart\", 'UTC') AS d, sum(\"BilledCost\") AS usd,
              sum(\"x_Calls\") AS calls
         FROM f WHERE \"x_Source\" = 'tracked' GROUP BY 1, 2),
ue AS (SELECT tenant_id AS t, date_trunc('day', occurred_at, 'UTC') AS d, coalesce(sum(cost_usd), 0) AS usd, count(*) AS calls
         FROM llm_usage.usage_events WHERE tenant_id LIKE 'fx\_%' AND occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01'
        GROUP BY 1, 2)
SELECT (SELECT count(*) FROM fp FULL JOIN pc USING (t, d) WHERE fp.usd IS DISTINCT FROM pc.usd)
       + (SELECT count(*) FROM ft FULL JOIN ue USING (t, d) WHERE ft.usd IS DISTINCT FROM ue.usd OR ft.calls IS DISTINCT FROM ue.calls)
       || '|' || (SELECT count(*) FROM pc) || '|' || (SELECT count(*) FROM ue)")
echo "tenant-days whose export total differs from provider_costs / usage_events: ${diffs%%|*} (of $(cut -d'|' -f2 <<<"$diffs") provider and $(cut -d'|' -f3 <<<"$diffs") tracked tenant-days)"
[[ ${diffs%%|*} == 0 && $(cut -d'|' -f2 <<<"$diffs") -ge 60 && $(cut -d'|' -f3 <<<"$diffs") -ge 60 ]] || fail "export totals differ from the product's"

# ... and the provider side equals what the simulator served
for pair in "$oa_id:$OA" "$an_id:$AN"; do
    kid=${pair%%:*} key=${pair#*:}
    want=$(curl -sf "$SIM/_sim/expected?key=$key&from=2026-10-01&to=2026-10-31" | python3 -c "import json,sys; print(json.load(sys.stdin)['costs']['usd'])")
    got=$(wq -c "SELECT sum(\"BilledCost\") = $want FROM llm_usage.focus_export($M, 'provider') WHERE \"Tags\"->>'llm_usage/key_id' = '$kid'")
    echo "  key $kid: simulator served \$$want; export equal: $got"
    [[ $got == t ]] || fail "key $kid: export differs from the simulator's total"
done

# 2. mandatory columns never null; allowed values
bad=$(wq -c "
SELECT count(*) FILTER (WHERE \"BilledCost\" IS NULL OR \"EffectiveCost\" IS NULL OR \"ListCost\" IS NULL OR \"ContractedCost\" IS NULL
                           OR \"BillingCurrency\" IS NULL OR \"BillingPeriodStart\" IS NULL OR \"BillingPeriodEnd\" IS NULL
                           OR \"ChargePeriodStart\" IS NULL OR \"ChargePeriodEnd\" IS NULL OR \"ChargeCategory\" IS NULL
                           OR \"ChargeDescription\" IS NULL OR \"ChargeFrequency\" IS NULL OR \"ServiceName\" IS NULL
                           OR \"ServiceCategory\" IS NULL OR \"ProviderName\" IS NULL OR \"PublisherName\" IS NULL
                           OR \"InvoiceIssuerName\" IS NULL OR \"SubAccountId\" IS NULL OR \"SkuId\" IS NULL
                           OR \"PricingCategory\" IS NULL OR \"ConsumedQuantity\" IS NULL OR \"ConsumedUnit\" IS NULL
                           OR \"PricingQuantity\" IS NULL OR \"PricingUnit\" IS NULL OR \"Tags\" IS NULL)
       || '|' || count(*) FILTER (WHERE \"ChargeCategory\" NOT IN ('Usage', 'Purchase', 'Tax', 'Credit', 'Adjustment')
                                   OR \"ServiceCategory\" <> 'AI and Machine Learning' OR \"BillingCurrency\" !~ '^[A-Z]{3}\$'
                                   OR \"ChargeFrequency\" NOT IN ('One-Time', 'Recurring', 'Usage-Based')
                                   OR \"ChargeClass\" IS NOT NULL AND \"ChargeClass\" <> 'Correction'
                                   OR \"ChargePeriodEnd\" <= \"ChargePeriodStart\"
                                   OR \"ChargePeriodStart\" < \"BillingPeriodStart\" OR \"ChargePeriodEnd\" > \"BillingPeriodEnd\"
                                   OR \"ConsumedQuantity\" < 0 OR jsonb_typeof(\"Tags\") <> 'object')
       || '|' || count(*)
  FROM llm_usage.focus_export($M) WHERE \"SubAccountId\" LIKE 'fx\_%'")
echo "rows with a null mandatory (or, here, quantity) column | with a value FOCUS does not allow | rows: $bad"
[[ $bad == 0\|0\|* ]] || fail "mandatory columns or allowed values"

# 3. token quantities of provider rows equal provider_usage
q=$(wq -c "
SELECT (SELECT sum(\"ConsumedQuantity\") FROM llm_usage.focus_export($M, 'provider')
         WHERE \"Tags\"->>'llm_usage/key_id' = '$an_id' AND \"SkuId\" LIKE '%/output_tokens')
       = (SELECT sum(output_tokens) FROM llm_usage.provider_usage WHERE key_id = $an_id
           AND bucket_start >= '2026-10-01' AND bucket_start < '2026-11-01')
   AND (SELECT sum(\"ConsumedQuantity\") FROM llm_usage.focus_export($M, 'provider')
         WHERE \"Tags\"->>'llm_usage/key_id' = '$an_id' AND \"SkuId\" LIKE '%/uncached_input_tokens')
       = (SELECT sum(input_tokens - cached_input_tokens - cache_write_tokens) FROM llm_usage.provider_usage WHERE key_id = $an_id
           AND bucket_start >= '2026-10-01' AND bucket_start < '2026-11-01')
   AND (SELECT sum(\"ConsumedQuantity\") FROM llm_usage.focus_export($M, 'provider')
         WHERE \"Tags\"->>'llm_usage/key_id' = '$oa_id' AND \"SkuId\" = 'gpt-4o, output')
       = (SELECT sum(output_tokens) FROM llm_usage.provider_usage WHERE key_id = $oa_id AND model = 'gpt-4o'
           AND bucket_start >= '2026-10-01' AND bucket_start < '2026-11-01')")
echo "provider token quantities equal provider_usage (Anthropic output and uncached input, OpenAI gpt-4o output): $q"
[[ $q == t ]] || fail "quantities differ from provider_usage"

# 4. row-level security: the reader bound to fx_a sees fx_a only, with fx_a's totals
rq() { as_user "$PGBIN/psql" -X -At -U fx_reader -d "$WDB" "$@"; }
seen=$(rq -c "SELECT string_agg(DISTINCT \"SubAccountId\", ',') FROM llm_usage.focus_export($M)")
same=$(rq -c "SELECT sum(\"BilledCost\") FILTER (WHERE \"x_Source\" = 'provider') || '|' || sum(\"BilledCost\") FILTER (WHERE \"x_Source\" = 'tracked') FROM llm_usage.focus_export($M)")
want=$(wq -c "SELECT (SELECT sum(amount_usd) FROM llm_usage.provider_costs WHERE tenant_id = 'fx_a' AND bucket_start >= '2026-10-01' AND bucket_start < '2026-11-01')
              || '|' || (SELECT sum(cost_usd) FROM llm_usage.usage_events WHERE tenant_id = 'fx_a' AND occurred_at >= '2026-10-01' AND occurred_at < '2026-11-01')")
echo "reader bound to fx_a sees tenants: $seen; its provider|tracked totals $same (fx_a's: $want)"
[[ $seen == fx_a && $same == "$want" ]] || fail "row-level security"

# 5. CSV with the FOCUS column names as header
wq -c "\\copy (SELECT * FROM llm_usage.focus_export($M) WHERE \"SubAccountId\" LIKE 'fx\_%') TO '$WORK/focus.csv' WITH (FORMAT csv, HEADER)"
head -1 "$WORK/focus.csv" | cut -c1-160
lines=$(($(wc -l <"$WORK/focus.csv") - 1))
echo "CSV: $lines rows"
[[ $(head -1 "$WORK/focus.csv") == BilledCost,EffectiveCost,ListCost,ContractedCost,BillingCurrency,* && $lines -gt 100 ]] || fail "CSV export"
wq -o /dev/null -c "SELECT llm_usage.revoke_tenant_access('fx_reader', 'fx_a')" -c "DROP ROLE fx_reader"
echo "PASS"
