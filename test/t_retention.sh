#!/usr/bin/env bash
# t_retention: usage_events is partitioned by month; partitions are made
# ahead and for calls that wait in the default partition; partitions past
# llm_usage.event_retention are dropped only once rolled up (a late call
# keeps its partition until the next roll-up); no call inside retention is
# lost and roll-ups stay; finished runs and delivered alerts are pruned
# after llm_usage.history_retention.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_retention
fresh_db "$DB"
q() { psql_q -At -d "$DB" "$@"; }
parts() { q -c "SELECT string_agg(c.relname || '=' || (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM llm_usage.%I', c.relname), false, true, '')))[1]::text, ' ' ORDER BY c.relname)
                  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'llm_usage.usage_events'::regclass"; }
set_retention() { q -c "ALTER SYSTEM SET llm_usage.event_retention = $1" -c "SELECT pg_reload_conf()" >/dev/null; sleep 0.5; }

q -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_tenant('ret', 'enterprise');
-- calls 3 and 2 months back and this month, mid-month
SELECT count(llm_usage.track_usage('ret', 'chat', 'gpt-4o-mini', 100 * m + i, 10,
             occurred_at => date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
                            - make_interval(months => m) + interval '10 days' + make_interval(mins => i)))
  FROM (VALUES (3), (2), (0)) v(m), generate_series(1, 5) i;
SQL
echo "before maintenance: $(parts)"
[[ $(q -c "SELECT count(*) FROM llm_usage.usage_events_default") == 15 ]] || fail "calls should wait in the default partition"

made=$(q -c "SELECT llm_usage._ensure_partitions((now() AT TIME ZONE 'UTC')::date, (now() AT TIME ZONE 'UTC')::date + 62)")
echo "partitions made: $made -> $(parts)"
[[ $(q -c "SELECT count(*) FROM llm_usage.usage_events_default") == 0 ]] || fail "the default partition was not emptied"
[[ $(q -c "SELECT count(*) FROM llm_usage.usage_events") == 15 ]] || fail "calls lost while partitioning"
want_months=$(q -c "SELECT string_agg(to_char(d, 'YYYYMM'), ',' ORDER BY d) FROM (
                      SELECT date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => m) AS d FROM unnest(ARRAY[3, 2, 0, -1, -2]) m) x")
got_months=$(q -c "SELECT string_agg(right(c.relname, 6), ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'llm_usage.usage_events'::regclass AND c.relname ~ '[0-9]{6}$'")
echo "monthly partitions: $got_months (expected $want_months: data months and two ahead)"
[[ $got_months == "$want_months" ]] || fail "unexpected partitions"
# a call lands in its partition directly now
q -c "SELECT llm_usage.track_usage('ret', 'chat', 'gpt-4o-mini', 1, 1)" >/dev/null
[[ $(q -c "SELECT count(*) FROM llm_usage.usage_events_default") == 0 ]] || fail "a call of a partitioned month went to default"

# nothing is dropped before every roll-up has run
set_retention 1
[[ $(q -c "SELECT llm_usage._drop_old_partitions()") == 0 ]] || fail "dropped partitions that were not rolled up"
q -c "SELECT llm_usage.aggregate_usage_metrics(p) FROM unnest(ARRAY['hourly', 'daily', 'monthly']) p" >/dev/null
# a late call into the oldest month after the roll-ups keeps that month for now
set_retention 600
q -c "SELECT llm_usage.track_usage('ret', 'chat', 'gpt-4o-mini', 7, 7,
          occurred_at => date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' - interval '3 months' + interval '20 days')" >/dev/null
set_retention 1
dropped=$(q -c "SELECT llm_usage._drop_old_partitions()")
echo "retention 1 month, late call not rolled up yet: dropped $dropped -> $(parts)"
[[ $dropped == 1 ]] || fail "expected only the month without late calls dropped"
q -c "SELECT llm_usage.aggregate_usage_metrics(p) FROM unnest(ARRAY['hourly', 'daily', 'monthly']) p" >/dev/null
dropped=$(q -c "SELECT llm_usage._drop_old_partitions()")
echo "after the next roll-up: dropped $dropped -> $(parts)"
[[ $dropped == 1 ]] || fail "the rolled-up old month was not dropped"
# the roll-ups of dropped months remain, including the late call; this month's calls are all there
q -c "SELECT to_char(period_start, 'YYYY-MM'), api_calls_total FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'ret' AND period_type = 'monthly' ORDER BY 1" | tr '\n' ' '; echo
[[ $(q -c "SELECT string_agg(api_calls_total::text, ',' ORDER BY period_start) FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'ret' AND period_type = 'monthly'") == "6,5,6" ]] \
    || fail "roll-ups of dropped months changed"
[[ $(q -c "SELECT count(*) FROM llm_usage.usage_events WHERE occurred_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'") == 6 ]] \
    || fail "calls inside retention were lost"
# calls older than retention are refused
out=$(q -c "SELECT llm_usage.track_usage('ret', 'chat', 'gpt-4o-mini', 1, 1, occurred_at => now() - interval '70 days')" 2>&1 || true)
echo "a call 70 days old with retention 1 month: $out"
[[ $out == *"older than llm_usage.event_retention"* ]] || fail "an old call was accepted"
set_retention 600

# history retention: finished runs and delivered alerts older than 90 days go; pending ones stay
q -o /dev/null <<'SQL'
SELECT llm_usage.add_provider_key('ret', 'openai', 'sk-admin-retention-test-0001');
INSERT INTO llm_usage.collector_runs (key_id, tenant_id, provider, trigger, status, window_from, window_to, finished_at)
SELECT 1, 'ret', 'openai', 'manual', s, now() - interval '200 days', now() - interval '199 days', now() - interval '100 days'
  FROM unnest(ARRAY['succeeded', 'failed']) s;
INSERT INTO llm_usage.collector_runs (key_id, tenant_id, provider, trigger, status, window_from, window_to, finished_at)
VALUES (1, 'ret', 'openai', 'manual', 'succeeded', now() - interval '2 days', now() - interval '1 day', now());
INSERT INTO llm_usage.alerts (tenant_id, kind, message, created_at, webhook_status)
VALUES ('ret', 'cost_anomaly', 'old, delivered', now() - interval '100 days', 'delivered'),
       ('ret', 'cost_anomaly', 'old, still pending', now() - interval '100 days', 'pending'),
       ('ret', 'cost_anomaly', 'new', now(), NULL);
SQL
pruned=$(q -c "SELECT llm_usage._prune_history()")
left=$(q -c "SELECT (SELECT count(*) FROM llm_usage.collector_runs) || ' runs, alerts: ' || (SELECT string_agg(message, ', ' ORDER BY message) FROM llm_usage.alerts)")
echo "history pruned: $pruned; left: $left"
[[ $pruned == 3 && $left == "1 runs, alerts: new, old, still pending" ]] || fail "history retention"
psql_q -d postgres -c "DROP DATABASE $DB"
echo "PASS"
