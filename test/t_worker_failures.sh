#!/usr/bin/env bash
# t_worker_failures: every failure mode of a provider, each leaving a clean
# state: 429 with and without Retry-After then success, 500 twice then
# success, 401 failing without retry while another key succeeds, malformed
# JSON, a wrong content type, an oversized body and a timeout failing the
# run with a collection_failed alert and a NOTIFY; nothing of a failed run
# is written, and the worker keeps running throughout.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim
# the response cap stays below PostgreSQL's largest allocation (1 GB)
if wq -c "ALTER SYSTEM SET llm_usage.http_max_response_kb = 1048576" 2>"$WORK/cap.$$.err"; then
    fail "a response cap of 1 GB was accepted"
fi
grep ERROR "$WORK/cap.$$.err"
wq -c "ALTER SYSTEM SET llm_usage.http_timeout_ms = 1500" -c "ALTER SYSTEM SET llm_usage.max_retries = 3" \
   -c "ALTER SYSTEM SET llm_usage.http_max_response_kb = 1024" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
pid0=$(worker_pid)
wq -c "SELECT llm_usage.create_tenant('wf', 'pro')" >/dev/null

declare -A KEY ID
for name in r429 bare429 e500 e401 ok malformed wrongtype big slow; do
    if [[ $name == ok ]]; then KEY[$name]=sk-ant-admin01-failures-$name; prov=anthropic
    else KEY[$name]=sk-admin-failures-$name; prov=openai; fi
    ID[$name]=$(wq -c "SELECT llm_usage.add_provider_key('wf', '$prov', '${KEY[$name]}', '$name')")
done

# a session listening for alerts while the runs happen (fed through a FIFO)
mkfifo "$WORK/listen.$$.fifo"
as_user "$PGBIN/psql" -X -d "$WDB" <"$WORK/listen.$$.fifo" >"$WORK/listen.$$.out" 2>&1 &
listener=$!
exec 7>"$WORK/listen.$$.fifo"
echo "LISTEN llm_usage_alerts;" >&7
sleep 0.5

collect() {     # collect NAME: queue a 3-day run for the key, print its run id
    wq -c "SELECT llm_usage.collect_now(${ID[$1]}, '2026-10-01', '2026-10-03')"
}
run_row() { wq -c "SELECT status || '|' || pages || '|' || http_attempts || '|' || coalesce(error, '') FROM llm_usage.collector_runs WHERE run_id = $1"; }
rows_of() { wq -c "SELECT (SELECT count(*) FROM llm_usage.provider_usage WHERE key_id = ${ID[$1]}) + (SELECT count(*) FROM llm_usage.provider_costs WHERE key_id = ${ID[$1]})"; }
expect() {      # expect NAME RUN STATUS ATTEMPTS ERROR-PATTERN
    local st row
    st=$(wait_run "$2" 60)
    row=$(run_row "$2")
    echo "  $1: $row"
    [[ $st == "$3" ]] || fail "$1: expected $3, got $st"
    [[ -z $4 || $(cut -d'|' -f3 <<<"$row") == "$4" ]] || fail "$1: expected $4 HTTP requests"
    [[ -z $5 || $row =~ $5 ]] || fail "$1: error does not match /$5/"
}

# 429 with Retry-After: 1 s, once; then success (3 endpoints x 1 page + 1 retry)
sim_mode "${KEY[r429]}" 429 1 1
t0=$(date +%s.%N)
r=$(collect r429); expect "429 Retry-After" "$r" succeeded 4 ""
t1=$(date +%s.%N)
python3 -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); print('  waited %.1f s (Retry-After: 1)' % d); sys.exit(0 if d >= 1.0 else 1)" "$t0" "$t1" \
    || fail "Retry-After was not honoured"
# 429 without Retry-After, twice: exponential backoff with jitter
sim_mode "${KEY[bare429]}" 429_bare 2
r=$(collect bare429); expect "429 no Retry-After" "$r" succeeded 5 ""
# 500 twice, then success
sim_mode "${KEY[e500]}" 500 2
r=$(collect e500); expect "500 twice" "$r" succeeded 5 ""
[[ $(rows_of e500) -gt 0 ]] || fail "the 500-then-success run wrote nothing"

# 401: no retry, failed, while the next key (queued after it) succeeds
sim_mode "${KEY[e401]}" 401
r401=$(collect e401)
rok=$(collect ok)
expect "401" "$r401" failed 1 "openai completions page 1: HTTP 401"
expect "other key after the 401" "$rok" succeeded 2 ""
[[ $(rows_of e401) -eq 0 ]] || fail "a failed run wrote rows"

sim_mode "${KEY[malformed]}" malformed
r=$(collect malformed); expect "malformed JSON" "$r" failed 1 "openai completions page 1: invalid input syntax for type json"
sim_mode "${KEY[wrongtype]}" wrong_type
r=$(collect wrongtype); expect "wrong content type" "$r" failed 1 "content type \"text/html\""
sim_mode "${KEY[big]}" oversized
r=$(collect big); expect "oversized body" "$r" failed 1 "larger than llm_usage.http_max_response_kb"
sim_mode "${KEY[slow]}" slow 0 3
r=$(collect slow); expect "timeout" "$r" failed 4 "timed out"
for n in malformed wrongtype big slow; do
    [[ $(rows_of $n) -eq 0 ]] || fail "failed run of $n wrote rows"
done

# every failed run raised an alert, and the worker never restarted
alerts=$(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = 'wf' AND kind = 'collection_failed'")
echo "collection_failed alerts: $alerts"
[[ $alerts -eq 5 ]] || fail "expected 5 collection_failed alerts"
wq -c "SELECT kind, severity, message FROM llm_usage.alerts WHERE tenant_id = 'wf' ORDER BY id"
wq -c "SELECT label, last_sync_status FROM llm_usage.provider_key_store WHERE tenant_id = 'wf' ORDER BY key_id" | tr '\n' ' '; echo
[[ $(worker_pid) == "$pid0" ]] || fail "the worker restarted (pid $pid0 -> $(worker_pid))"
echo "worker still running as pid $pid0"

echo "SELECT 1;" >&7      # psql prints notifications that arrived when the next command ends
echo '\q' >&7
exec 7>&-
wait "$listener" || true
n=$(grep -c 'Asynchronous notification "llm_usage_alerts" with payload' "$WORK/listen.$$.out" || true)
echo "NOTIFY llm_usage_alerts received by a listening session: $n"
[[ $n -ge 5 ]] || { cat "$WORK/listen.$$.out"; fail "expected 5 notifications"; }
grep -m1 'collection_failed' "$WORK/listen.$$.out" | cut -c1-240
wq -c "ALTER SYSTEM RESET llm_usage.http_timeout_ms" -c "ALTER SYSTEM RESET llm_usage.max_retries" \
   -c "ALTER SYSTEM RESET llm_usage.http_max_response_kb" -c "SELECT pg_reload_conf()" >/dev/null
retire_keys wf
echo "PASS"
