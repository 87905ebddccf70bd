#!/usr/bin/env bash
# t_quota_shmem: the shared quota counters stay within what they asked for,
# give back what nobody can use, and are saved only when something changed
# (issue 10, item 7).  Restarts the server with a small
# llm_usage.quota_max_tenants and puts the settings back at the end.
#
#  1. Bound: with M entries allowed, tenants beyond M are counted in the
#     table (correct answers, one WARNING) and never more than M entries
#     are in use.
#  2. Deleted tenants: their entries are given back when the deleting
#     transaction commits (not when it, or a savepoint, rolls back); a
#     tenant that was counted in the table then moves into shared memory
#     with its count.
#  3. DROP EXTENSION and DROP DATABASE give back their entries at commit
#     (a rolled-back DROP EXTENSION does not).
#  4. The sweep (_shm_reclaim()) gives back what commit-time reclaiming
#     could not see: a tenant deleted with triggers off, and a dropped
#     database's entries brought back by a crash from the last saved file.
#  5. The saver writes the file only when something changed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
A=llm_usage_shm_a
B=llm_usage_shm_b
C=llm_usage_shm_c
FILE="$WORK/data/pg_stat/llm_usage_quota.stat"

restart() {
    as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -m fast -w restart >/dev/null
}
wait_ready() {
    for _ in $(seq 1 150); do
        psql_q -d postgres -c "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail "the server did not come back"
}
cleanup() {
    psql_q -d postgres -o /dev/null -c "ALTER SYSTEM RESET llm_usage.quota_max_tenants" \
        -c "ALTER SYSTEM RESET llm_usage.quota_save_interval" -c "ALTER SYSTEM RESET llm_usage.enabled" 2>/dev/null || true
    restart 2>/dev/null || true
    for d in $A $B $C; do psql_q -d postgres -o /dev/null -c "DROP DATABASE IF EXISTS $d" 2>/dev/null || true; done
}
trap cleanup EXIT

for d in $A $B $C; do fresh_db "$d"; done
q() { local db=$1; shift; psql_q -At -d "$db" -c "$*"; }
status() { q "$A" "SELECT entries FROM llm_usage._shm_status()"; }

q "$A" "CREATE EXTENSION llm_usage" >/dev/null
q "$A" "SELECT llm_usage._shm_reclaim()" >/dev/null     # what earlier suites left of dropped databases
before=$(status)
M=$(( before + 25 > 100 ? before + 25 : 100 ))
# the worker's maintenance sweeps too: off while this runs, so that what is
# swept here is what this test left to sweep
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM SET llm_usage.quota_max_tenants = $M" -c "ALTER SYSTEM SET llm_usage.enabled = off"
restart
wait_ready
in_use=$(status)
room=$(( M - in_use ))
N=$(( room + 5 ))
echo "llm_usage.quota_max_tenants = $M, $in_use entries in use by other databases: room for $room, $N tenants made"

# ------------------------------------------------------------------ 1. bound
psql_q -d "$A" -o /dev/null <<SQL
SELECT llm_usage.create_plan('shm');
SELECT llm_usage.set_plan_quota('shm', 'api_calls', 1000, 'day');
-- one INSERT, not a create_tenant() call (and its audit event) per tenant
INSERT INTO llm_usage.tenants (tenant_id, plan) SELECT 's' || i, 'shm' FROM generate_series(1, $N) i;
SQL
out=$(psql_q -At -v VERBOSITY=verbose -d "$A" -c "SELECT count(*) FROM generate_series(1, $N) i, LATERAL llm_usage.enforce_quota('s' || i, 'api_calls', 1) e WHERE e.allowed" 2>&1)
# with its SQLSTATE (configuration_limit_exceeded)
warnings=$(grep -c "WARNING:  53400: llm_usage: shared quota counters are full" <<<"$out" || true)
for _ in 1 2; do q "$A" "SELECT count(*) FROM generate_series(1, $N) i, LATERAL llm_usage.enforce_quota('s' || i, 'api_calls', 1) e WHERE e.allowed" >/dev/null 2>&1; done
got=$(q "$A" "SELECT (SELECT entries || '/' || max_entries FROM llm_usage._shm_status()),
                     (SELECT count(*) FROM llm_usage._shm_counters()),
                     (SELECT count(*) FROM llm_usage.quota_counters_table),
                     (SELECT count(*) FILTER (WHERE used = 3) || '/' || count(*) FROM llm_usage.quota_counters)")
echo "entries in use/allowed | tenants in shared memory | in the table | tenants at 3 of 3 calls: $got (warnings: $warnings)"
[[ $got == "$M/$M|$room|5|$N/$N" ]] || fail "expected $M/$M entries, $room tenants in shared memory, 5 in the table, every count 3"
[[ $warnings == 1 ]] || fail "expected one WARNING that shared memory is full"
psql_q -d "$A" -o /dev/null -c "SELECT llm_usage.save_quota_counters()"   # so that table and shared memory agree later

# -------------------------------------------------------- 2. deleted tenants
q "$A" "BEGIN; DELETE FROM llm_usage.tenants WHERE tenant_id IN ('s1', 's2'); ROLLBACK" >/dev/null
q "$A" "BEGIN; SAVEPOINT x; DELETE FROM llm_usage.tenants WHERE tenant_id = 's1'; ROLLBACK TO SAVEPOINT x; COMMIT" >/dev/null
after_rollbacks=$(status)
q "$A" "DELETE FROM llm_usage.tenants WHERE tenant_id IN ('s1', 's2', 's3', 's5', 's6', 's7')" >/dev/null
after_delete=$(status)
echo "entries after rolled-back deletes: $after_rollbacks; after deleting 6 tenants: $after_delete"
[[ $after_rollbacks == "$M" && $after_delete == $((M - 6)) ]] || fail "entries must go at commit of the delete, not at a rollback"
# a tenant counted in the table moves into shared memory, with its count
got=$(q "$A" "SELECT used FROM llm_usage.enforce_quota('s$N', 'api_calls', 1)")
moved=$(q "$A" "SELECT count(*) FROM llm_usage._shm_counters('s$N')")
echo "s$N (counted in the table): used $got after one more call, in shared memory now: $moved, entries $(status)"
[[ $got == 4 && $moved == 1 && $(status) == $((M - 5)) ]] || fail "the table's count was not carried into shared memory"

# ----------------------------------------------- 3. DROP EXTENSION, DATABASE
for d in $B $C; do
    psql_q -d "$d" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
INSERT INTO llm_usage.tenants (tenant_id, plan) VALUES ('x1', 'trial'), ('x2', 'trial');
SELECT count(*) FROM llm_usage.enforce_quota('x1', 'api_calls', 1) a, llm_usage.enforce_quota('x2', 'api_calls', 1) b;
SQL
done
with_bc=$(status)
q "$B" "BEGIN; DROP EXTENSION llm_usage CASCADE; ROLLBACK" >/dev/null 2>&1
after_rollback=$(status)
q "$B" "DROP EXTENSION llm_usage CASCADE" >/dev/null 2>&1
after_drop_ext=$(status)
psql_q -d postgres -o /dev/null -c "DROP DATABASE $C"
after_drop_db=$(status)
echo "entries with two tenants in each of two more databases: $with_bc; DROP EXTENSION rolled back: $after_rollback; dropped: $after_drop_ext; DROP DATABASE: $after_drop_db"
[[ $with_bc == $((M - 5 + 4)) && $after_rollback == "$with_bc" && $after_drop_ext == $((with_bc - 2)) && $after_drop_db == $((with_bc - 4)) ]] \
    || fail "DROP EXTENSION and DROP DATABASE must give their entries back at commit"

# --------------------------------------------------------------- 4. the sweep
q "$A" "SET session_replication_role = replica; DELETE FROM llm_usage.tenants WHERE tenant_id = 's4'" >/dev/null
missed=$(status)
swept_recent=$(q "$A" "SELECT llm_usage._shm_reclaim()")
swept=$(q "$A" "SELECT llm_usage._shm_reclaim('0')")
echo "a tenant deleted with triggers off: entries $missed; swept (unused for 10 minutes): $swept_recent; swept (any): $swept, entries $(status)"
[[ $missed == $((M - 5)) && $swept_recent == 0 && $swept == 1 && $(status) == $((M - 6)) ]] || fail "the sweep did not give back a deleted tenant's entry"
# a dropped database brought back by a crash from the last saved file
fresh_db "$C"
psql_q -d "$C" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
INSERT INTO llm_usage.tenants (tenant_id, plan) VALUES ('y1', 'trial'), ('y2', 'trial');
SELECT count(*) FROM llm_usage.enforce_quota('y1', 'api_calls', 1) a, llm_usage.enforce_quota('y2', 'api_calls', 1) b;
SQL
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM SET llm_usage.quota_save_interval = '60s'"
restart          # a clean restart saves the file with C's entries
wait_ready
saved=$(status)
f0=$(date -r "$FILE" +%s%N)
psql_q -d postgres -o /dev/null -c "DROP DATABASE $C"
dropped=$(status)
as_user "$PGBIN/psql" -X -q -d "$A" -c "SELECT pg_sleep(60)" >/dev/null 2>&1 &
victim=
for _ in $(seq 1 50); do
    victim=$(q "$A" "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%' AND pid <> pg_backend_pid()")
    [[ -n $victim ]] && break
    sleep 0.1
done
[[ -n $victim ]] || fail "no backend to kill"
[[ $(date -r "$FILE" +%s%N) == "$f0" ]] || fail "the saver wrote the file within its 60 s interval: the test cannot go on"
kill -9 "$victim"
wait || true
sleep 1
wait_ready
restored=$(status)
swept=$(q "$A" "SELECT llm_usage._shm_reclaim()")
echo "entries with database $C: $saved; after DROP DATABASE: $dropped; after a crash restored the saved file: $restored; swept: $swept, entries $(status)"
[[ $dropped == $((saved - 2)) && $restored == "$saved" && $swept == 2 && $(status) == "$dropped" ]] \
    || fail "the sweep did not give back the entries of a database that no longer exists"

# ------------------------------------------------- 5. saving only on change
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM SET llm_usage.quota_save_interval = '100ms'" -c "SELECT pg_reload_conf()"
sleep 1
m0=$(date -r "$FILE" +%s%N)
sleep 1.5
m1=$(date -r "$FILE" +%s%N)
q "$A" "SELECT count(*) FROM llm_usage.enforce_quota('s10', 'api_calls', 1)" >/dev/null
sleep 1
m2=$(date -r "$FILE" +%s%N)
echo "quota file written while idle (1.5 s at 100 ms): $([[ $m0 == "$m1" ]] && echo no || echo yes); after one call: $([[ $m2 != "$m1" ]] && echo yes || echo no)"
[[ $m0 == "$m1" ]] || fail "the saver wrote the file although nothing changed"
[[ $m2 != "$m1" ]] || fail "the saver did not write a change"

echo "PASS"
