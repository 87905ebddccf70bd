#!/usr/bin/env bash
# t_worker_schedule: collect_now() wakes the worker at once; with a
# per-minute llm_usage.collect_schedule the worker queues and completes
# scheduled runs on its own; SIGHUP picks up the new schedule.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim
wq -c "SELECT llm_usage.create_tenant('wsch', 'pro')" >/dev/null
id=$(wq -c "SELECT llm_usage.add_provider_key('wsch', 'openai', 'sk-admin-schedule-test-7777')")

# collect_now: the run starts within a second of the commit
r=$(wq -c "SELECT llm_usage.collect_now($id, '2026-10-01', '2026-10-02')")
[[ $(wait_run "$r" 30) == succeeded ]] || fail "manual run failed"
lag=$(wq -c "SELECT round(extract(epoch FROM started_at - queued_at)::numeric, 3) FROM llm_usage.collector_runs WHERE run_id = $r")
echo "collect_now: run $r started ${lag}s after it was queued"
[[ $(wq -c "SELECT $lag < 1.0") == t ]] || fail "collect_now did not wake the worker promptly"

# a per-minute schedule: a scheduled run appears and succeeds within ~70 s
wq -c "ALTER SYSTEM SET llm_usage.collect_schedule = '* * * * *'" -c "SELECT pg_reload_conf()" >/dev/null
found=""
for _ in $(seq 1 80); do
    found=$(wq -c "SELECT run_id FROM llm_usage.collector_runs WHERE key_id = $id AND trigger = 'schedule' ORDER BY run_id LIMIT 1")
    [[ -n $found ]] && break
    sleep 1
done
[[ -n $found ]] || fail "no scheduled run within 80 s"
[[ $(wait_run "$found" 30) == succeeded ]] || fail "scheduled run failed"
wq -c "SELECT run_id, trigger, status, window_from::date, window_to::date, requested_by, extract(second FROM queued_at) < 5 AS at_minute_start
         FROM llm_usage.collector_runs WHERE run_id = $found"
[[ $(wq -c "SELECT extract(second FROM queued_at) < 5 FROM llm_usage.collector_runs WHERE run_id = $found") == t ]] \
    || fail "the scheduled run was not queued at the start of a minute"
# the default window ends with the previous full day (UTC here)
[[ $(wq -c "SELECT window_to = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' FROM llm_usage.collector_runs WHERE run_id = $found") == t ]] \
    || fail "the scheduled window does not end with yesterday"

wq -c "ALTER SYSTEM RESET llm_usage.collect_schedule" -c "SELECT pg_reload_conf()" >/dev/null
# a bad schedule, or one that can never fire, is refused and the old one stays
for bad in '61 * * * *' '0 0 31 2 *' '4294967296 * * * *'; do
    if wq -c "ALTER SYSTEM SET llm_usage.collect_schedule = '$bad'" 2>"$WORK/sched.err"; then
        fail "the schedule '$bad' was accepted"
    fi
    grep -E 'ERROR|DETAIL' "$WORK/sched.err" | tr '\n' ' '; echo
done
# a macro is accepted, and the worker's next run is what next_collection() says
wq -c "ALTER SYSTEM SET llm_usage.collect_schedule = '@daily'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
[[ $(wq -c "SELECT llm_usage.next_collection() = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '1 day'") == t ]] \
    || fail "next_collection() does not follow llm_usage.collect_schedule"
wq -c "ALTER SYSTEM RESET llm_usage.collect_schedule" -c "SELECT pg_reload_conf()" >/dev/null
retire_keys wsch
echo "PASS"
