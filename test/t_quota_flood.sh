#!/usr/bin/env bash
# t_quota_flood: a tenant flooding past its limit leaves a handful of audit
# events, not one per call (issue 10).
#
# 8 pgbench sessions of an application role make 50,000 enforce_quota()
# calls each against a limit of 10 a day, starting two seconds before a
# minute ends.  Then:
#  - 10 calls were admitted, the other 399,990 denied, answered in shared
#    memory (the table path was never taken);
#  - a denial in the new minute wrote the old minute's window itself (an
#    event exists before anything flushes);
#  - after flush_quota_denials() there is exactly one quota_exceeded event
#    per minute the flood touched, each within its minute, written by the
#    extension for the application role, and their counts add up to exactly
#    399,990 denied calls (denied_calls, and the quota's own "denials");
#  - check_alerts() raises one quota_exceeded alert carrying that count.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_flood
CLIENTS=8
CALLS=50000

fresh_db "$DB"
psql_q -d postgres -o /dev/null -c "DROP ROLE IF EXISTS flood_app" -c "CREATE ROLE flood_app LOGIN IN ROLE llm_usage_app"
psql_q -d "$DB" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('flood');
SELECT llm_usage.set_plan_quota('flood', 'api_calls', 10, 'day');
-- a zone at least two hours from midnight, so the day cannot end mid-test
SELECT llm_usage.create_tenant('flood', 'flood',
           CASE WHEN extract(hour FROM now() AT TIME ZONE 'UTC') BETWEEN 2 AND 21 THEN 'UTC' ELSE 'Asia/Tokyo' END);
SELECT llm_usage.grant_tenant_access('flood_app', 'flood');
SQL
script="$WORK/flood.sql"
echo "SELECT * FROM llm_usage.enforce_quota('flood', 'api_calls', 1);" >"$script"
chown "$TEST_USER" "$script"

while [[ $(date +%S) != 58 ]]; do sleep 0.1; done
t0=$(psql_q -At -d "$DB" -c "SELECT clock_timestamp()")
as_user "$PGBIN/pgbench" -n -M prepared -U flood_app -c "$CLIENTS" -j 2 -t "$CALLS" -f "$script" "$DB" >"$WORK/pgbench_flood.log" 2>&1 \
    || { cat "$WORK/pgbench_flood.log"; fail "pgbench failed"; }
t1=$(psql_q -At -d "$DB" -c "SELECT clock_timestamp()")
echo "$((CLIENTS * CALLS)) calls: $(sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$WORK/pgbench_flood.log") tps, $t0 to $t1"

q() { psql_q -At -d "$DB" -c "$1"; }
got=$(q "SELECT (SELECT string_agg(used::text, ',') FROM llm_usage.quota_counters WHERE tenant_id = 'flood'),
                (SELECT count(*) FROM llm_usage.quota_counters_table),
                (SELECT count(*) FROM llm_usage.quota_denials_pending)")
echo "counted in shared memory | counter rows in the table | table path windows: $got"
[[ $got == "10|0|0" ]] || fail "expected 10 admitted in shared memory and nothing on the table path"

spanned=$(q "SELECT date_trunc('minute', '$t1'::timestamptz) > date_trunc('minute', '$t0'::timestamptz)")
before=$(q "SELECT count(*) FROM llm_usage.audit_events WHERE tenant_id = 'flood' AND action = 'quota_exceeded'")
echo "events written by the flood itself (a denial in a later minute writes the earlier window): $before (run spanned a minute boundary: $spanned)"
if [[ $spanned == t ]]; then
    (( before >= 1 )) || fail "a denial in a new minute did not write the previous minute's window"
fi

psql_q -d "$DB" -o /dev/null -c "SELECT llm_usage.flush_quota_denials()"
got=$(q "SELECT count(*), count(DISTINCT date_trunc('minute', (details->>'first_at')::timestamptz)),
                bool_and(date_trunc('minute', (details->>'first_at')::timestamptz) = date_trunc('minute', (details->>'last_at')::timestamptz)),
                sum((details->>'denied_calls')::bigint),
                sum((details->'denied'->0->>'denials')::bigint),
                bool_and(origin = 'llm_usage' AND result = 'denied' AND role_name = 'flood_app'
                         AND details->'roles' = '[\"flood_app\"]' AND jsonb_array_length(details->'denied') = 1)
           FROM llm_usage.audit_events WHERE tenant_id = 'flood' AND action = 'quota_exceeded'")
echo "events | minutes touched | each within its minute | denied calls | the quota's denials | extension's records for flood_app: $got"
IFS='|' read -r events minutes within denied quota_denials records <<<"$got"
(( events >= 1 && events <= 3 )) || fail "expected a handful of events (one per minute), got $events"
[[ $events == "$minutes" && $within == t ]] || fail "more than one event in a minute, or an event across minutes"
[[ $denied == $((CLIENTS * CALLS - 10)) && $quota_denials == "$denied" ]] \
    || fail "the events must count exactly $((CLIENTS * CALLS - 10)) denied calls"
[[ $records == t ]] || fail "the events are not the extension's records of flood_app's denials"

alert=$(q "SELECT llm_usage.check_alerts()" >/dev/null;
        q "SELECT count(*) || '|' || max((details->>'denials')::bigint) FROM llm_usage.alerts WHERE tenant_id = 'flood' AND kind = 'quota_exceeded'")
echo "quota_exceeded alerts | denials in the alert: $alert"
[[ $alert == "1|$((CLIENTS * CALLS - 10))" ]] || fail "expected one quota_exceeded alert counting every denial"

psql_q -d postgres -o /dev/null -c "DROP DATABASE $DB" -c "DROP ROLE flood_app"
echo "PASS"
