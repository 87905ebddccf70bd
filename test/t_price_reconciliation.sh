#!/usr/bin/env bash
# t_price_reconciliation: collected usage priced with the product's own
# prices against the cost the provider reported, per tenant, provider, UTC
# day and model (price_reconciliation()), and the price_mismatch alert.
#   1. the worker collects a week of OpenAI and Anthropic usage and costs
#      from the provider simulator over HTTP; Anthropic's 1-hour cache
#      writes are kept apart (cache_write_1h_tokens = the simulator's
#      ephemeral_1h_input_tokens);
#   2. each day and model's estimate = the sum of calculate_cost() over its
#      usage rows (5-minute and 1-hour writes, batch rows at batch rates),
#      each day and model's reported cost = its cost rows (OpenAI line
#      items "model, kind"), the difference = reported - estimated;
#   3. check_alerts raises price_mismatch for the day-models that differ by
#      more than the threshold (the simulator's costs are not its usage at
#      list prices), and none once the threshold is above every difference;
#   4. a day whose provider cost is exactly the usage at llm_usage's prices
#      (rows written as the collector writes them) raises nothing; one 20 %
#      above, one alert naming the model; a reader sees only its tenants.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim

OA=sk-admin-pricerec-test-0001
AN=sk-ant-admin01-pricerec-test-0002
# tenants of this run (the worker's database outlives a suite)
A=pr_a_$$
B=pr_b_$$
wq -o /dev/null <<SQL
SELECT llm_usage.create_tenant('$A', 'pro');
SELECT llm_usage.create_tenant('$B', 'pro');
DROP ROLE IF EXISTS pr_reader;
CREATE ROLE pr_reader LOGIN IN ROLE llm_usage_reader;
SELECT llm_usage.grant_tenant_access('pr_reader', '$B');
SQL
oa_id=$(wq -c "SELECT llm_usage.add_provider_key('$A', 'openai', '$OA', validate => true)")
an_id=$(wq -c "SELECT llm_usage.add_provider_key('$A', 'anthropic', '$AN', validate => true)")
r1=$(wq -c "SELECT llm_usage.collect_now($oa_id, '2026-10-01', '2026-10-07')")
r2=$(wq -c "SELECT llm_usage.collect_now($an_id, '2026-10-01', '2026-10-07')")
[[ $(wait_run "$r1") == succeeded && $(wait_run "$r2") == succeeded ]] || fail "collection failed"
retire_keys $A

# 1. Anthropic's 1-hour cache writes, as the simulator served them
want_1h=$(cd "$WORK" && python3 -c "
import sys; sys.path.insert(0, '$WORK'); import provider_sim as s
d0 = 20362  # 2026-10-01 in days since 1970
print(sum(r['cache_creation']['ephemeral_1h_input_tokens'] for d in range(d0, d0 + 7) for r in s.anthropic_message_rows('$AN', d)))")
got_1h=$(wq -c "SELECT sum(cache_write_1h_tokens) || '|' || bool_and(cache_write_1h_tokens <= cache_write_tokens)
                  FROM llm_usage.provider_usage WHERE key_id = $an_id")
echo "Anthropic 1-hour cache writes collected: ${got_1h%%|*} (simulator: $want_1h)"
[[ ${got_1h%%|*} == "$want_1h" && ${got_1h#*|} == true && $want_1h -gt 0 ]] || fail "1-hour cache writes not collected as served"

# 2. estimates and reported costs, recomputed another way
mism=$(wq -c "
WITH r AS (SELECT * FROM llm_usage.price_reconciliation('2026-10-01', '2026-10-07') WHERE tenant = '$A'),
est AS (SELECT u.tenant_id, u.provider, (u.bucket_start AT TIME ZONE 'UTC')::date AS day, u.model,
               sum(llm_usage.calculate_cost(u.model, u.input_tokens, u.output_tokens, u.cached_input_tokens, u.bucket_start,
                                            u.cache_write_tokens - u.cache_write_1h_tokens, u.cache_write_1h_tokens,
                                            CASE WHEN u.batch THEN 'batch' ELSE 'standard' END)) AS usd
          FROM llm_usage.provider_usage u WHERE u.key_id IN ($oa_id, $an_id) AND u.tenant_id = '$A' GROUP BY 1, 2, 3, 4),
rep AS (SELECT c.tenant_id, c.provider, (c.bucket_start AT TIME ZONE 'UTC')::date AS day,
               coalesce(c.model, split_part(c.line_item, ',', 1)) AS model, sum(c.amount_usd) AS usd
          FROM llm_usage.provider_costs c WHERE c.key_id IN ($oa_id, $an_id) AND c.tenant_id = '$A' GROUP BY 1, 2, 3, 4)
SELECT count(*) FILTER (WHERE r.estimated_usd IS DISTINCT FROM est.usd OR r.reported_usd IS DISTINCT FROM rep.usd
                           OR r.difference_usd IS DISTINCT FROM rep.usd - est.usd)
       || '|' || count(*) || '|' || count(*) FILTER (WHERE r.estimated_usd IS NOT NULL AND r.reported_usd IS NOT NULL)
  FROM r
  FULL JOIN est ON est.tenant_id = r.tenant AND est.provider = r.provider AND est.day = r.day AND est.model IS NOT DISTINCT FROM r.model
  FULL JOIN rep ON rep.tenant_id = coalesce(r.tenant, est.tenant_id) AND rep.provider = coalesce(r.provider, est.provider)
               AND rep.day = coalesce(r.day, est.day) AND rep.model IS NOT DISTINCT FROM coalesce(r.model, est.model)")
echo "price_reconciliation rows of the collected week: $(cut -d'|' -f2 <<<"$mism") (both sides: $(cut -d'|' -f3 <<<"$mism")), differing from calculate_cost over the usage rows and the sum of the cost rows: ${mism%%|*}"
[[ ${mism%%|*} == 0 && $(cut -d'|' -f3 <<<"$mism") -ge 7 ]] || fail "price_reconciliation disagrees with its own definition"
wq -c "SELECT provider, day, model, estimated_usd, reported_usd, difference_pct FROM llm_usage.price_reconciliation('2026-10-01', '2026-10-01')
        WHERE tenant = '$A' ORDER BY 1, 3"

# 3. the alert, for what differs by more than the threshold
wq -o /dev/null -c "SELECT llm_usage.check_alerts()"
want=$(wq -c "SELECT count(*) FROM llm_usage.price_reconciliation('2026-10-01', '2026-10-07')
               WHERE tenant = '$A' AND model IS NOT NULL AND estimated_usd IS NOT NULL AND reported_usd IS NOT NULL
                 AND (abs(difference_pct) > 10 OR (reported_usd = 0 AND estimated_usd > 0))")
got=$(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = '$A' AND kind = 'price_mismatch'")
echo "price_mismatch alerts: $got (day-models more than 10 % apart: $want)"
[[ $got == "$want" && $got -gt 0 ]] || fail "price_mismatch alerts do not match the differences"

# 4. exact and 20 % off, on days written as the collector writes them
wq -o /dev/null <<SQL
INSERT INTO llm_usage.provider_usage (tenant_id, key_id, provider, endpoint, bucket_start, bucket_end, model, service_tier,
                                      input_tokens, cached_input_tokens, cache_write_tokens, cache_write_1h_tokens, output_tokens)
VALUES ('$B', $an_id, 'anthropic', 'messages', '2026-10-20', '2026-10-21', 'claude-sonnet-4-5', 'standard', 150000, 30000, 10000, 2000, 20000),
       ('$B', $an_id, 'anthropic', 'messages', '2026-10-21', '2026-10-22', 'claude-sonnet-4-5', 'batch', 150000, 30000, 10000, 2000, 20000);
INSERT INTO llm_usage.provider_costs (tenant_id, key_id, provider, bucket_start, bucket_end, line_item, model, amount_usd)
SELECT '$B', $an_id, 'anthropic', d, d + interval '1 day', 'Claude Sonnet 4.5 Usage', 'claude-sonnet-4-5',
       llm_usage.calculate_cost('claude-sonnet-4-5', 150000, 20000, 30000, d, 8000, 2000, t) * f
  FROM (VALUES ('2026-10-20'::timestamptz, 'standard', 1), ('2026-10-21', 'batch', 1.2)) v(d, t, f);
SELECT llm_usage.check_alerts();
SQL
rows=$(wq -c "SELECT string_agg(day || ':' || estimated_usd || ':' || reported_usd || ':' || difference_pct, ' ' ORDER BY day)
                FROM llm_usage.price_reconciliation('2026-10-20', '2026-10-21', '$B')")
alerts=$(wq -c "SELECT string_agg(details->>'day' || ':' || (details->>'model'), ' ') FROM llm_usage.alerts WHERE tenant_id = '$B' AND kind = 'price_mismatch'")
echo "$B: $rows; alerts: $alerts"
[[ $rows == "2026-10-20:0.681:0.681:0.00 2026-10-21:0.3405:0.40860:16.67" && $alerts == "2026-10-21:claude-sonnet-4-5" ]] \
    || fail "exact day or 20 % day reconciled wrong"
seen=$(as_user "$PGBIN/psql" -X -At -d "$WDB" -U pr_reader -c "SELECT string_agg(DISTINCT tenant, ',') FROM llm_usage.price_reconciliation('2026-10-01', '2026-10-31')")
echo "a reader of $B sees: $seen"
[[ $seen == "$B" ]] || fail "a reader saw other tenants' reconciliation"
bad=$(as_user "$PGBIN/psql" -X -At -d "$WDB" -U pr_reader -c "SELECT llm_usage.price_reconciliation(tenant_id => '$A')" 2>&1 || true)
[[ $bad == *"permission denied"* ]] || fail "a reader reached another tenant: $bad"
bad=$(wq -c "SELECT llm_usage.price_reconciliation('2026-10-02', '2026-10-01')" 2>&1 || true)
[[ $bad == *"is after to_day"* ]] || fail "a reversed range was not refused: $bad"
echo "ok: a reader sees its tenants only; a reversed range is refused"
wq -o /dev/null -c "DROP ROLE pr_reader" 2>/dev/null || true
echo "PASS"
