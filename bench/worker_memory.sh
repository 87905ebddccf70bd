#!/usr/bin/env bash
# bench/worker_memory.sh — does the llm_usage worker run for months?  As root:
#
#   bash bench/worker_memory.sh          (about 5 to 10 minutes on 2 cores)
#
# Builds and installs, starts a throwaway cluster (test/lib.sh), points the
# worker at the provider simulator and the alert receivers, and keeps it
# busy for WORKER_CYCLES cycles (10,000): each cycle carries out one
# collection run (8 in 10 succeed, 1 in 10 is refused with HTTP 401, 1 in
# 10 gets HTTP 500), every failure raises a collection_failed alert that is
# delivered by webhook and e-mail (some webhooks fail and are retried in
# later cycles), and maintenance runs every second.  Prints the worker's
# private memory (RssAnon) and resident set (VmRSS) after 1,000 cycles and
# at the end, and the growth in between; target: at most 2 % for RssAnon
# (VmRSS also counts the shared buffers the worker has touched, RssShmem,
# which grows with the data it reads, not with leaks).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
. "$ROOT/test/worker_lib.sh"
[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and creates the test user)"

CYCLES=${WORKER_CYCLES:-10000}
WARM=${WORKER_WARM_CYCLES:-1000}
BATCH=500
START=$(date +%s)

install_deps
build_install
ensure_user
start_cluster
trap 'cleanup_pids; stop_cluster' EXIT
start_sim
start_sinks
use_sim
wq -c "ALTER SYSTEM SET llm_usage.http_timeout_ms = 2000" -c "ALTER SYSTEM SET llm_usage.max_retries = 0" \
   -c "ALTER SYSTEM SET llm_usage.alert_throttle = 0" -c "ALTER SYSTEM SET llm_usage.aggregate_interval = '1s'" \
   -c "ALTER SYSTEM SET llm_usage.alert_webhook_url = '$HOOK/hooks/bench'" \
   -c "ALTER SYSTEM SET llm_usage.alert_webhook_secret = 'bench-secret'" \
   -c "ALTER SYSTEM SET llm_usage.alert_smtp_url = 'smtp://127.0.0.1:$SMTP_PORT'" \
   -c "ALTER SYSTEM SET llm_usage.alert_email_to = 'ops@example.test'" \
   -c "ALTER SYSTEM SET llm_usage.alert_retry_delay = '1s'" \
   -c "ALTER SYSTEM SET llm_usage.alert_delivery_attempts = 3" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
wq -o /dev/null <<'SQL'
SELECT llm_usage.create_tenant('mem', 'pro');
SELECT llm_usage.track_usage('mem', 'chat', 'gpt-4o-mini', 1000, 100, latency_ms => 300);
SQL
ok=$(wq -c "SELECT llm_usage.add_provider_key('mem', 'openai', 'sk-admin-bench-memory-ok')")
refused=$(wq -c "SELECT llm_usage.add_provider_key('mem', 'openai', 'sk-admin-bench-memory-401')")
broken=$(wq -c "SELECT llm_usage.add_provider_key('mem', 'anthropic', 'sk-ant-admin01-bench-memory-500')")
sim_mode sk-admin-bench-memory-401 401
sim_mode sk-ant-admin01-bench-memory-500 500 1000000000
pid=$(worker_pid)

queue() {       # queue N: N more runs, mixed
    wq -c "SELECT count(llm_usage.collect_now(CASE WHEN i % 10 = 3 THEN $refused WHEN i % 10 = 7 THEN $broken ELSE $ok END,
                                            '2026-10-01', '2026-10-01'))
             FROM generate_series(1, $1) i" >/dev/null
    curl -sf -X POST "$HOOK/_fail" -d '{"count": 10}' >/dev/null
}
done_runs() { wq -c "SELECT count(*) FROM llm_usage.collector_runs WHERE status IN ('succeeded', 'failed')"; }
mem() { awk '/^RssAnon:/ {a = $2} /^VmRSS:/ {r = $2} /^RssShmem:/ {s = $2} END {print a, r, s}' "/proc/$pid/status"; }

queued=0
warm=
t0=$(date +%s)
while :; do
    n=$(done_runs)
    if (( queued - n < BATCH / 2 && queued < CYCLES )); then
        queue $BATCH
        queued=$((queued + BATCH))
    fi
    if [[ -z $warm && $n -ge $WARM ]]; then warm=$(mem); warm_at=$n; log "after $n cycles: RssAnon/VmRSS $warm kB"; fi
    if (( n >= CYCLES )); then break; fi
    (( $(date +%s) - t0 < 3600 )) || die "the worker did not finish $CYCLES cycles in an hour"
    [[ $(worker_pid) == "$pid" ]] || die "the worker restarted (pid $pid -> $(worker_pid))"
    sleep 0.5
done
end=$(mem)
end_at=$(done_runs)
secs=$(( $(date +%s) - t0 ))
read -r wa wr ws <<<"$warm"
read -r ea er es <<<"$end"
stats=$(wq -c "SELECT count(*) FILTER (WHERE status = 'succeeded') || ' succeeded, ' || count(*) FILTER (WHERE status = 'failed') || ' failed'
                 FROM llm_usage.collector_runs")
alerts=$(wq -c "SELECT count(*) || ' alerts; webhooks ' || count(*) FILTER (WHERE webhook_status = 'delivered') || ' delivered ('
                       || coalesce(sum(webhook_attempts) FILTER (WHERE webhook_status = 'delivered'), 0) || ' attempts), e-mails '
                       || count(*) FILTER (WHERE email_status = 'delivered') || ' delivered'
                  FROM llm_usage.alerts WHERE kind = 'collection_failed'")
maint=$(wq -c "SELECT count(*) FROM llm_usage.tenant_usage_metrics WHERE tenant_id = 'mem'")
[[ $(worker_pid) == "$pid" ]] || die "the worker restarted"
growth=$(python3 -c "import sys; print('%+.2f' % (100 * (float(sys.argv[2]) / float(sys.argv[1]) - 1)))" "$wa" "$ea")
growth_rss=$(python3 -c "import sys; print('%+.2f' % (100 * (float(sys.argv[2]) / float(sys.argv[1]) - 1)))" "$wr" "$er")
met=$(python3 -c "import sys; print('met' if float(sys.argv[1]) <= 2 else 'NOT met')" "$growth")
cat <<TABLE

llm_usage worker memory — PostgreSQL $($PGBIN/postgres --version | awk '{print $3}'), libcurl $(curl-config --version | awk '{print $2}'), $(nproc) cores

| worker cycles | RssAnon (private) | VmRSS | of which RssShmem (shared buffers touched) |
|---|---|---|---|
| $warm_at | $wa kB | $wr kB | $ws kB |
| $end_at | $ea kB | $er kB | $es kB |
| growth | $growth % | $growth_rss % | |

target: RssAnon growth <= 2 % after the first $WARM cycles: $met
runs: $stats; $alerts; roll-up rows of the tenant: $maint
worker pid $pid throughout; $secs s for the cycles, $(( $(date +%s) - START )) s in all
TABLE
