#!/usr/bin/env bash
# t_rollup_visibility: an event written by a transaction that is still open
# while aggregate_usage_metrics() runs is invisible to that run, and must be
# counted by the next incremental run (the watermark waits for it).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_vis

fresh_db "$DB"
psql_q -d "$DB" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_tenant('v1', 'enterprise');
SELECT llm_usage.track_usage('v1', 'chat', 'gpt-4o-mini', 10, 1, occurred_at => '2026-03-01 12:00+00');
SELECT llm_usage.aggregate_usage_metrics('daily');
SQL

# a writer that tracks an event in an old period and stays open for 4 s
as_user "$PGBIN/psql" -X -q -d "$DB" -c "BEGIN;
    SELECT llm_usage.track_usage('v1', 'chat', 'gpt-4o-mini', 20, 2, occurred_at => '2026-03-01 13:00+00');
    SELECT pg_sleep(4);
    COMMIT;" >/dev/null &
writer=$!
sleep 1.5
during=$(psql_q -At -d "$DB" -c "SELECT llm_usage.aggregate_usage_metrics('daily')")
calls_during=$(psql_q -At -d "$DB" -c "SELECT api_calls_total FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'v1' AND period_type = 'daily'")
wait "$writer"
after=$(psql_q -At -d "$DB" -c "SELECT llm_usage.aggregate_usage_metrics('daily')")
calls_after=$(psql_q -At -d "$DB" -c "SELECT api_calls_total FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'v1' AND period_type = 'daily'")
again=$(psql_q -At -d "$DB" -c "SELECT llm_usage.aggregate_usage_metrics('daily')")
echo "run while the writer was open: $during row(s), calls=$calls_during; run after commit: $after row(s), calls=$calls_after; run again: $again row(s)"
[[ "$during|$calls_during|$after|$calls_after|$again" == "0|1|1|2|0" ]] || fail "expected 0|1|1|2|0"
psql_q -d postgres -c "DROP DATABASE $DB"
echo "PASS"
