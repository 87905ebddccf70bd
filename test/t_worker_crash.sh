#!/usr/bin/env bash
# t_worker_crash: kill -9 the whole server while the worker is in the middle
# of a collection; after a restart the interrupted run is marked failed
# (with an alert), nothing of it was written, and re-running the window
# writes every row exactly once.  Also: SIGTERM stops the worker promptly,
# even in the middle of a slow request, and it is restarted.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim
KEY=sk-admin-crash-test-4242
wq -c "SELECT llm_usage.create_tenant('wcr', 'pro')" >/dev/null
id=$(wq -c "SELECT llm_usage.add_provider_key('wcr', 'openai', '$KEY')")

# a slow provider: 1.5 s per response; 20 days = 3 pages x 3 endpoints
sim_mode "$KEY" slow 0 1.5
r=$(wq -c "SELECT llm_usage.collect_now($id, '2026-09-01', '2026-09-20')")
for _ in $(seq 1 50); do
    [[ $(wq -c "SELECT status FROM llm_usage.collector_runs WHERE run_id = $r") == running ]] && break
    sleep 0.2
done
sleep 3.5      # a few pages fetched, not all
echo "run $r is $(wq -c "SELECT status FROM llm_usage.collector_runs WHERE run_id = $r"); kill -9 of every server process"
pm=$(head -1 "$WORK/data/postmaster.pid")
kids=$(pgrep -P "$pm" || true)
kill -9 "$pm" $kids
for _ in $(seq 1 50); do
    alive=$(for p in $pm $kids; do kill -0 "$p" 2>/dev/null && echo "$p"; done; true)
    [[ -z $alive ]] && break
    sleep 0.1
done
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 start >/dev/null || fail "restart failed"
for _ in $(seq 1 100); do [[ -n "$(worker_pid)" ]] && break; sleep 0.2; done
for _ in $(seq 1 50); do
    [[ $(wq -c "SELECT status FROM llm_usage.collector_runs WHERE run_id = $r") == failed ]] && break
    sleep 0.2
done
wq -c "SELECT run_id, status, error FROM llm_usage.collector_runs WHERE run_id = $r"
[[ $(wq -c "SELECT status FROM llm_usage.collector_runs WHERE run_id = $r") == failed ]] || fail "the interrupted run is not marked failed"
[[ $(wq -c "SELECT count(*) FROM llm_usage.provider_usage WHERE key_id = $id") == 0 ]] || fail "the interrupted run wrote rows"
[[ $(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE tenant_id = 'wcr' AND kind = 'collection_failed' AND details->>'run_id' = '$r'") == 1 ]] \
    || fail "no alert for the interrupted run"

# re-run: every row once, equal to the simulator's data
sim_mode "$KEY" none
for pass in 1 2; do
    r=$(wq -c "SELECT llm_usage.collect_now($id, '2026-09-01', '2026-09-20')")
    [[ $(wait_run "$r" 60) == succeeded ]] || fail "re-run $pass failed"
done
exp=$(curl -sf "$SIM/_sim/expected?key=$KEY&from=2026-09-01&to=2026-09-20")
want=$(python3 -c "import json,sys; e=json.loads(sys.argv[1]); print('%d|%d|%d|%s' % (e['completions']['rows'] + e['embeddings']['rows'], e['completions']['input_tokens'] + e['embeddings']['input_tokens'], e['costs']['rows'], e['costs']['usd']))" "$exp")
got=$(wq -c "SELECT (SELECT count(*) || '|' || sum(input_tokens) FROM llm_usage.provider_usage WHERE key_id = $id) || '|' ||
                (SELECT count(*) || '|' || sum(amount_usd) FROM llm_usage.provider_costs WHERE key_id = $id)")
echo "after restart and two re-runs: rows|input|cost rows|usd db=$got simulator=$want"
IFS='|' read -r gr gi gc gu <<<"$got"
IFS='|' read -r wr wi wc wu <<<"$want"
[[ $gr == "$wr" && $gi == "$wi" && $gc == "$wc" && $(wq -c "SELECT $gu::numeric = $wu::numeric") == t ]] \
    || fail "rows after the crash and re-runs differ from the provider's"

# SIGTERM in the middle of a slow request: the worker exits at once and is restarted
sim_mode "$KEY" slow 0 20
r=$(wq -c "SELECT llm_usage.collect_now($id, '2026-09-01', '2026-09-02')")
sleep 1.5
old=$(worker_pid)
t0=$(date +%s.%N)
kill -TERM "$old"
for _ in $(seq 1 100); do kill -0 "$old" 2>/dev/null || break; sleep 0.05; done
t1=$(date +%s.%N)
kill -0 "$old" 2>/dev/null && fail "the worker ignored SIGTERM"
python3 -c "import sys; d=float(sys.argv[2])-float(sys.argv[1]); print('worker %s stopped %.2f s after SIGTERM' % (sys.argv[3], d)); sys.exit(0 if d < 2 else 1)" "$t0" "$t1" "$old" \
    || fail "the worker took too long to stop"
sim_mode "$KEY" none
for _ in $(seq 1 100); do new=$(worker_pid); [[ -n $new && $new != "$old" ]] && break; sleep 0.2; done
echo "restarted as pid $new"
[[ -n $new && $new != "$old" ]] || fail "the worker was not restarted"
[[ $(wait_run "$r" 30) == failed ]] || fail "the run interrupted by SIGTERM is not marked failed"
retire_keys wcr
echo "PASS"
