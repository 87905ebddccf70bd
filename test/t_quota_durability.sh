#!/usr/bin/env bash
# t_quota_durability: the shared-memory quota counters survive restarts as
# the README says.
#  1. A clean restart loses nothing, even right after the last call.
#  2. A crash (kill -9 of a backend: the postmaster resets shared memory)
#     keeps everything saved up to llm_usage.quota_save_interval (1 s)
#     before it; consumption after the last save may be lost, never more.
#  3. A counter survives in the table copy (save_quota_counters) when the
#     saved file is gone.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_durable
q() { psql_q -At -d "$DB" "$@"; }

fresh_db "$DB"
q -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('durable');
SELECT llm_usage.set_plan_quota('durable', 'api_calls', 1000000, 'month');
SELECT llm_usage.create_tenant('dur', 'durable');
SQL
used() { q -c "SELECT used FROM llm_usage.quota_counters WHERE tenant_id = 'dur' AND quota_type = 'api_calls'"; }
consume() { q -o /dev/null -c "SELECT count(*) FROM generate_series(1, $1) g, LATERAL llm_usage.enforce_quota('dur', 'api_calls', 1 + 0 * g) e WHERE e.allowed"; }
wait_ready() {
    for _ in $(seq 1 150); do
        psql_q -d postgres -c "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail "the server did not come back"
}

# 1. clean restart right after the calls
consume 100
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -m fast -w restart >/dev/null
wait_ready
got=$(used)
echo "clean restart: used 100 before, $got after"
[[ $got == 100 ]] || fail "a clean restart lost consumption"

# 2. crash: 50 calls saved (wait > 1 s), 7 more just before kill -9
consume 50
sleep 2.5
consume 7
as_user "$PGBIN/psql" -X -q -d "$DB" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
for _ in $(seq 1 50); do
    victim=$(q -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' AND pid <> pg_backend_pid()")
    [[ -n $victim ]] && break
    sleep 0.1
done
[[ -n $victim ]] || fail "no backend to kill"
kill -9 "$victim"
wait || true
sleep 1
wait_ready
got=$(used)
echo "crash: used 157 before kill -9 (150 saved), $got after"
(( got >= 150 && got <= 157 )) || fail "after a crash used must be between 150 and 157"
grep -q "restored quota counters" "$WORK/server.log" || fail "no restore line in the server log"

# 3. the table copy when the file is gone
q -o /dev/null -c "SELECT llm_usage.save_quota_counters()"
before=$(used)
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null
rm -f "$WORK/data/pg_stat/llm_usage_quota.stat"
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null
wait_ready
consume 1
got=$(used)
echo "file removed: used $before in the table copy, $got after one more call"
[[ $got == $((before + 1)) ]] || fail "the table copy was not carried into shared memory"

psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
