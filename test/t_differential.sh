#!/usr/bin/env bash
# t_differential: the C fast paths and their SQL twins agree.  Random calls
# from a fixed seed (LLM_USAGE_DIFF_SEED), at least 2,000 per function, go
# through both: enforce_quota (C, shared memory) against _enforce_quota_sql
# (table), enforce_quotas over _shm_consume against _consume_table,
# enforce_quota with request ids and track_usage settling them (shared
# memory, settled at commit, against the table), track_usage (C) against
# _track_usage_sql, calculate_cost against the cost
# the C track_usage writes, and C period bounds against _period_bounds in
# coming years, and _shm_consume against _consume_table on a fixed list of
# malformed and edge arguments.  Results are compared column by column
# (errors by SQLSTATE and message), then the rows written (counters,
# quota_status, denial audit, usage_events).  How and what is forgiven: test/differential.sql.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_diff
SEED=${LLM_USAGE_DIFF_SEED:-0.4242}
SEQS=84         # sequences per function (84 x 25: over 2,000 calls each)
CALLS=25        # calls per sequence
PB_SEQS=20      # sequences of period-bound probes (4 periods each)
fresh_db "$DB"
t0=$(date +%s.%N)
psql_q -d "$DB" -o /dev/null -c "CREATE EXTENSION llm_usage" -f "$(dirname "$0")/differential.sql" \
    -c "SELECT difftest.generate($SEED, $SEQS, $CALLS, $PB_SEQS)"
for fn in enforce_quota enforce_quotas settle track_usage calculate_cost period_bounds consume_args; do
    psql_q -d "$DB" -c "SET track_functions = 'all'" -c "SET client_min_messages = warning" \
        -c "CALL difftest.run('$fn')"
done
psql_q -d "$DB" -o /dev/null -c "SELECT difftest.compare()"
t1=$(date +%s.%N)

q() { psql_q -d "$DB" -At -F ' | ' -c "$1"; }
echo "seed $SEED, $SEQS sequences of $CALLS calls per function ($PB_SEQS of period-bound probes), $(awk "BEGIN { printf \"%.1f\", $t1 - $t0 }") s"
echo "function | pairs compared | C side: c path, sql path, error, none | states compared | retried sequences | mismatches"
q "SELECT d.fn, (SELECT count(*) FROM difftest.compared c WHERE c.fn = d.fn AND c.what = 'call'),
          (SELECT concat_ws(', ', count(*) FILTER (WHERE c_path = 'c'), count(*) FILTER (WHERE c_path = 'sql'),
                            count(*) FILTER (WHERE c_path = 'error'), count(*) FILTER (WHERE c_path = 'none'))
             FROM difftest.compared c WHERE c.fn = d.fn AND c.what = 'call'),
          (SELECT count(*) FROM difftest.compared c WHERE c.fn = d.fn AND c.what <> 'call'),
          count(*) FILTER (WHERE d.att > 1),
          (SELECT count(*) FROM difftest.mismatches m WHERE m.fn = d.fn)
     FROM difftest.done d GROUP BY d.fn ORDER BY min(d.seq), d.fn"
echo "outcomes on the SQL side (allowed/denied, or SQLSTATE):"
q "SELECT fn, string_agg(k || ' ' || n, ', ' ORDER BY k)
     FROM (SELECT fn, coalesce(s->>'sqlstate', CASE WHEN s ? 'allowed' THEN 'allowed=' || (s->>'allowed')
                                                     WHEN s ? 'row' THEN 'row' WHEN s ? 'same_event_as_call' THEN 'repeat'
                                                     WHEN s ? 'cost' THEN CASE WHEN s->'cost' = 'null' THEN 'unpriced' ELSE 'cost' END
                                                     ELSE 'ok' END) AS k, count(*) AS n
             FROM difftest.compared WHERE what = 'call' GROUP BY 1, 2) x
    GROUP BY fn ORDER BY fn"
echo "forgiven, not mismatches: amounts below a millionth rounded up for the SQL twin: $(q "SELECT count(*) FROM difftest.compared WHERE what = 'call' AND fn IN ('enforce_quota', 'enforce_quotas') AND input::text ~ '\.[0-9]{7,}'")," \
     "known saturation of a shared counter above 9223372036854.775807 (unlimited quota): $(q "SELECT count(*) FROM difftest.compared WHERE nc = ns AND uc IS DISTINCT FROM us")," \
     "equal values shown with other trailing zeros: $(q "SELECT count(*) FROM difftest.compared WHERE nc = ns AND nc::text <> ns::text")"
echo "example of trailing zeros: $(q "SELECT c->>'used' || ' (C) vs ' || (s->>'used') || ' (SQL)' FROM difftest.compared WHERE fn = 'enforce_quota' AND what = 'call' AND nc = ns AND nc::text <> ns::text ORDER BY seq, i LIMIT 1")"

n=$(q "SELECT count(*) FROM difftest.mismatches")
if [[ $n -ne 0 ]]; then
    echo "MISMATCHES ($n; first 20): function | sequence | call | what | input | C side | SQL side"
    q "SELECT fn, seq, i, what, left(input::text, 300), left(c_side::text, 400), left(sql_side::text, 400)
         FROM difftest.mismatches ORDER BY fn, seq, i NULLS LAST LIMIT 20"
    fail "the C and SQL paths disagree on $n of the compared results"
fi
short=$(q "SELECT string_agg(fn, ', ') FROM (SELECT fn FROM difftest.compared WHERE what = 'call' GROUP BY fn
                                              HAVING count(*) < CASE fn WHEN 'period_bounds' THEN 500 WHEN 'consume_args' THEN 16 ELSE 2000 END) x")
[[ -z "$short" ]] || fail "fewer than 2,000 calls compared for: $short"
[[ -n ${LLM_USAGE_KEEP_DIFF:-} ]] || psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
