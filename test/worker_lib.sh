# test/worker_lib.sh — helpers for the collector tests (sourced after lib.sh):
# a provider simulator on 127.0.0.1, the worker pointed at it, and waits.
WDB=llm_usage_worker

# processes a suite started, stopped when it exits
CLEANUP_PIDS=()
cleanup_pids() { local p; for p in "${CLEANUP_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup_pids EXIT

# start_sim: the simulator as the test user; sets SIM (base URL) and SIM_PID
start_sim() {
    local portfile="$WORK/sim.$$.port"
    # run a copy the test user can read, wherever the checkout is
    cp "$(dirname "${BASH_SOURCE[0]}")/provider_sim.py" "$WORK/provider_sim.py"
    chown "$TEST_USER" "$WORK/provider_sim.py"
    as_user /usr/bin/python3 "$WORK/provider_sim.py" "$portfile" --max-seconds 1800 \
        >"$WORK/sim.$$.log" 2>&1 &
    SIM_PID=$!
    for _ in $(seq 1 100); do [[ -s "$portfile" ]] && break; sleep 0.1; done
    [[ -s "$portfile" ]] || fail "the provider simulator did not start"
    SIM="http://127.0.0.1:$(cat "$portfile")"
    SIM_PID=$(cat "$portfile.pid")
    CLEANUP_PIDS+=("$SIM_PID")
}

# start_sinks [PUBLIC-HOST]: the alert receivers (test/alert_sinks.py); sets
# HOOK (webhook base URL), SMTP_PORT, PUBLIC_SMTP_PORT (on PUBLIC-HOST, 0 if none)
start_sinks() {
    local ports="$WORK/sinks.$$.port"
    cp "$(dirname "${BASH_SOURCE[0]}")/alert_sinks.py" "$WORK/alert_sinks.py"
    chown "$TEST_USER" "$WORK/alert_sinks.py"
    as_user /usr/bin/python3 "$WORK/alert_sinks.py" "$ports" --max-seconds 900 ${1:+--public-host "$1"} \
        >"$WORK/sinks.$$.log" 2>&1 &
    for _ in $(seq 1 100); do [[ -s "$ports" ]] && break; sleep 0.1; done
    [[ -s "$ports" ]] || fail "the alert sinks did not start"
    read -r HTTP_PORT SMTP_PORT PUBLIC_SMTP_PORT <"$ports" || true   # no trailing newline
    CLEANUP_PIDS+=("$(cat "$ports.pid")")
    HOOK="http://127.0.0.1:$HTTP_PORT"
}

sim_mode() {    # sim_mode KEY MODE [COUNT] [SECONDS]
    curl -sf -X POST "$SIM/_sim/mode" -H 'Content-Type: application/json' \
        -d "{\"key\": \"$1\", \"mode\": \"$2\", \"count\": ${3:-0}, \"seconds\": ${4:-1}}" >/dev/null \
        || fail "could not set simulator mode"
}

sim_reset() { curl -sf -X POST "$SIM/_sim/reset" >/dev/null; }

wq() { psql_q -At -d "$WDB" "$@"; }      # query the worker's database

# point the worker (and this database) at the simulator
use_sim() {
    wq -c "CREATE EXTENSION IF NOT EXISTS llm_usage" >/dev/null 2>&1
    wq -c "ALTER SYSTEM SET llm_usage.openai_base_url = '$SIM'" \
       -c "ALTER SYSTEM SET llm_usage.anthropic_base_url = '$SIM'" \
       -c "SELECT pg_reload_conf()" >/dev/null
    for _ in $(seq 1 50); do
        [[ "$(wq -c 'SHOW llm_usage.openai_base_url')" == "$SIM" ]] && break
        sleep 0.1
    done
    sleep 0.5     # the worker reloads on its own SIGHUP
    # the worker may still be starting (it is restarted 5 s after a failed start)
    for _ in $(seq 1 100); do [[ -n "$(worker_pid)" ]] && break; sleep 0.2; done
    [[ -n "$(worker_pid)" ]] || fail "the collector worker is not running"
}

# wait_run RUN_ID [SECONDS]: until the run has ended; prints its status
wait_run() {
    local s
    for _ in $(seq 1 $((${2:-60} * 5))); do
        s=$(wq -c "SELECT status FROM llm_usage.collector_runs WHERE run_id = $1")
        [[ $s == succeeded || $s == failed ]] && { echo "$s"; return 0; }
        sleep 0.2
    done
    echo "timeout($s)"
}

worker_pid() { wq -c "SELECT llm_usage._worker_pid()"; }

# retire_keys TENANT: deactivate a test's keys so later tests' scheduled runs skip them
retire_keys() {
    wq -c "SELECT count(llm_usage.deactivate_provider_key(id)) FROM llm_usage.provider_keys WHERE tenant_id = '$1' AND is_active" >/dev/null
}

# bind_call SQL KEY [PGBENCH-ARGS...]: run SQL once with :key sent as a bind
# parameter (pgbench -M extended), as an application would; prints 0 or 1
bind_call() {
    local sql=$1 key=$2 script
    shift 2
    script=$(mktemp "$WORK/bind.XXXXXX.sql")
    echo "$sql" >"$script"
    chown "$TEST_USER" "$script"
    as_user "$PGBIN/pgbench" -n -M extended -t 1 -c 1 -D key="$key" -f "$script" "$@" >"$script.out" 2>&1 && echo 0 || echo 1
}
