#!/usr/bin/env bash
# t_concurrency: quotas are never over-admitted under real concurrency.
#
#  1. 16 pgbench sessions send 3,000 enforce_quota(..., 1) calls against a
#     limit of 1,000 (day) under a second limit (month): exactly 1,000 are
#     admitted, each admission saw a distinct count 1..1,000, the counters
#     say 1,000, and the 2,000 denials are audited (aggregated: the events
#     count 2,000 denied calls, at most one event per minute).  Run twice.
#  2. 16 sessions send 1,000 enforce_quotas('{"tokens": 3, "api_calls": 1}')
#     against tokens 300 / api_calls 1,000: exactly 100 admitted, and no
#     quota moved for a denied call (all or nothing).
#  3. Across a period boundary: 16 sessions send 6,000 calls against 1,000
#     per minute, starting two seconds before the minute ends: no minute admits
#     more than 1,000, the later one exactly 1,000, and every admitted call
#     reports the minute it was counted in (counts 1..n per minute).  Once
#     on the shared-memory counters, once (a tenant id over 255 bytes) on
#     the table.
#  Everything else runs on the shared-memory counters (nothing in the table).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_conc

fresh_db "$DB"
psql_q -d "$DB" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('conc');
SELECT llm_usage.set_plan_quota('conc', 'api_calls', 1000, 'day');
SELECT llm_usage.set_plan_quota('conc', 'api_calls', 100000, 'month');
SELECT llm_usage.set_plan_quota('conc', 'tokens', 300, 'day');
-- a zone at least two hours from midnight, so the day cannot end mid-test
SELECT llm_usage.create_tenant(t, 'conc',
           CASE WHEN extract(hour FROM now() AT TIME ZONE 'UTC') BETWEEN 2 AND 21 THEN 'UTC' ELSE 'Asia/Tokyo' END)
  FROM unnest(ARRAY['hot1', 'hot2', 'multi']) t;
SELECT llm_usage.create_plan('edge');
SELECT llm_usage.set_plan_quota('edge', 'api_calls', 1000, 'minute');
SELECT llm_usage.create_tenant('edge', 'edge');
CREATE TABLE results (tenant text, allowed boolean, used numeric, resets_at timestamptz);
CREATE SEQUENCE seq_hot1;
CREATE SEQUENCE seq_hot2;
CREATE SEQUENCE seq_multi;
SQL

run_single() {      # run_single TENANT
    local t=$1 script
    script=$(mktemp "$WORK/pgbench.XXXXXX.sql")
    cat >"$script" <<SCRIPT
SELECT nextval('seq_$t') AS n \\gset
\\if :n <= 3000
INSERT INTO results SELECT '$t', allowed, used FROM llm_usage.enforce_quota('$t', 'api_calls', 1);
\\endif
SCRIPT
    chown "$TEST_USER" "$script"
    # 16 clients x 188 transactions = 3,008 numbers drawn, 3,000 calls made
    as_user "$PGBIN/pgbench" -n -c 16 -j 4 -t 188 -f "$script" "$DB" >"$WORK/pgbench_$t.log" 2>&1 \
        || { cat "$WORK/pgbench_$t.log"; fail "pgbench failed"; }
    local got events
    psql_q -d "$DB" -o /dev/null -c "SELECT llm_usage.flush_quota_denials()"
    got=$(psql_q -At -d "$DB" -c "
        SELECT count(*), count(*) FILTER (WHERE allowed),
               count(DISTINCT used) FILTER (WHERE allowed), max(used) FILTER (WHERE allowed),
               (SELECT string_agg(used::text, ',' ORDER BY period) FROM llm_usage.quota_counters
                 WHERE tenant_id = '$t' AND quota_type = 'api_calls'),
               (SELECT sum((details->>'denied_calls')::bigint) FROM llm_usage.audit_events
                 WHERE tenant_id = '$t' AND action = 'quota_exceeded')
          FROM results WHERE tenant = '$t'")
    events=$(psql_q -At -d "$DB" -c "
        SELECT count(*) || ' events over ' || count(DISTINCT date_trunc('minute', (details->>'first_at')::timestamptz)) || ' minute(s)'
          FROM llm_usage.audit_events WHERE tenant_id = '$t' AND action = 'quota_exceeded'")
    echo "$t: calls|admitted|distinct counts|max count|counters day,month|denials audited = $got ($events)"
    [[ $got == "3000|1000|1000|1000|1000,1000|2000" ]] || fail "$t: expected 3000|1000|1000|1000|1000,1000|2000"
    [[ $events =~ ^([0-9]+)\ events\ over\ ([0-9]+) ]] && (( BASH_REMATCH[1] == BASH_REMATCH[2] )) \
        || fail "$t: more than one denial event in a minute"
}

run_single hot1
run_single hot2

script=$(mktemp "$WORK/pgbench.XXXXXX.sql")
cat >"$script" <<'SCRIPT'
SELECT nextval('seq_multi') AS n \gset
\if :n <= 1000
INSERT INTO results SELECT 'multi', allowed, (results->'tokens'->>'used')::numeric
  FROM llm_usage.enforce_quotas('multi', '{"tokens": 3, "api_calls": 1}');
\endif
SCRIPT
chown "$TEST_USER" "$script"
as_user "$PGBIN/pgbench" -n -c 16 -j 4 -t 63 -f "$script" "$DB" >"$WORK/pgbench_multi.log" 2>&1 \
    || { cat "$WORK/pgbench_multi.log"; fail "pgbench failed"; }
got=$(psql_q -At -d "$DB" -c "
    SELECT count(*), count(*) FILTER (WHERE allowed),
           (SELECT string_agg(quota_type || '/' || period || '=' || used, ',' ORDER BY quota_type, period)
              FROM llm_usage.quota_counters WHERE tenant_id = 'multi')
      FROM results WHERE tenant = 'multi'")
echo "multi: calls|admitted|counters = $got"
[[ $got == "1000|100|api_calls/day=100,api_calls/month=100,tokens/day=300" ]] \
    || fail "multi: expected 1000|100|api_calls/day=100,api_calls/month=100,tokens/day=300"

# the edge tenant counts in shared memory; edge_table (an id of 110
# characters, 310 bytes: over 255) takes the table path, in the same
# transactions
EDGE_TABLE="edge_table_$(printf '€%.0s' {1..100})"
psql_q -d "$DB" -o /dev/null -c "SELECT llm_usage.create_tenant('$EDGE_TABLE', 'edge')"
script=$(mktemp "$WORK/pgbench.XXXXXX.sql")
cat >"$script" <<SCRIPT
INSERT INTO results SELECT 'edge', allowed, used, resets_at FROM llm_usage.enforce_quota('edge', 'api_calls', 1);
INSERT INTO results SELECT 'edge_table', allowed, used, resets_at FROM llm_usage.enforce_quota('$EDGE_TABLE', 'api_calls', 1);
SCRIPT
chown "$TEST_USER" "$script"
# start two seconds before a minute ends (16 sessions take most of a second to start)
while [[ $(date +%S) != 58 ]]; do sleep 0.1; done
as_user "$PGBIN/pgbench" -n -c 16 -j 4 -t 375 -f "$script" "$DB" >"$WORK/pgbench_edge.log" 2>&1 \
    || { cat "$WORK/pgbench_edge.log"; fail "pgbench failed"; }
for t in edge edge_table; do
    # per minute reported (resets_at): admitted, distinct counts seen, highest count
    got=$(psql_q -At -d "$DB" -c "
        SELECT string_agg(n || '/' || d || '/' || m, ',' ORDER BY r) FROM (
            SELECT resets_at AS r, count(*) AS n, count(DISTINCT used) AS d, max(used) AS m FROM results
             WHERE tenant = '$t' AND allowed GROUP BY 1) x")
    echo "$t: admitted/distinct counts/highest count per minute = $got (of 6000 calls)"
    [[ $got =~ ^([0-9]+)/([0-9]+)/([0-9]+),1000/1000/1000$ ]] \
        || fail "$t: expected two minutes, the second with exactly 1000 admitted, counts 1..1000"
    a=${BASH_REMATCH[1]}
    (( a <= 1000 && BASH_REMATCH[2] == a && BASH_REMATCH[3] == a )) \
        || fail "$t: the first minute admitted more than 1000, or counts that are not 1..$a"
done
got=$(psql_q -At -d "$DB" -c "
    SELECT (SELECT string_agg(used::text, ',') FROM llm_usage.quota_counters WHERE tenant_id = 'edge'),
           (SELECT string_agg(used::text, ',') FROM llm_usage.quota_counters_table WHERE tenant_id = '$EDGE_TABLE')")
echo "edge counters: shared memory, table = $got"
[[ $got == "1000|1000" ]] || fail "edge: counters of the last minute should both say 1000"

got=$(psql_q -At -d "$DB" -c "SELECT count(*) FROM llm_usage.quota_counters_table WHERE tenant_id <> '$EDGE_TABLE'")
echo "other tenants' rows in the counters' table: $got (the shared-memory path counted everything)"
[[ $got == 0 ]] || fail "calls were counted in the table"

psql_q -d postgres -c "DROP DATABASE $DB"
echo "PASS"
