#!/usr/bin/env bash
# t_worker_pmdeath: kill -9 of the postmaster alone (its children left
# running) while the collector is in the middle of a run whose pages take
# 2 s each.  Every llm_usage process (the collector in its HTTP wait, the
# quota saver) must be gone within 1 s; the server must restart at once
# (pg_ctl start fails while an orphan holds the shared memory); the run
# committed nothing after the postmaster died; and after the restart the
# interrupted window is collected exactly once.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim
KEY=sk-admin-pmdeath-test-5151
wq -c "SELECT llm_usage.create_tenant('wpm', 'pro')" >/dev/null
id=$(wq -c "SELECT llm_usage.add_provider_key('wpm', 'openai', '$KEY')")

# 2 s per response; 20 days = 3 pages x 3 endpoints = 18 s of fetching
sim_mode "$KEY" slow 0 2
r=$(wq -c "SELECT llm_usage.collect_now($id, '2026-09-01', '2026-09-20')")
for _ in $(seq 1 50); do
    [[ $(wq -c "SELECT status FROM llm_usage.collector_runs WHERE run_id = $r") == running ]] && break
    sleep 0.2
done
sleep 2.5   # a page or two fetched
pm=$(head -1 "$WORK/data/postmaster.pid")
collector=$(worker_pid)
saver=$(pgrep -P "$pm" -f 'llm_usage quota saver' || true)
kids=$(pgrep -P "$pm" | tr '\n' ' ')
[[ -n $collector && -n $saver ]] || fail "collector ($collector) or quota saver ($saver) not found"
echo "run $r is $(wq -c "SELECT status FROM llm_usage.collector_runs WHERE run_id = $r"); postmaster $pm, collector $collector, quota saver $saver, children: $kids"

# kill -9 of the postmaster only, 0.2 s after the collector's next request
# went out (so 1.8 s of its 2 s are left: the collector must notice in the
# middle of the transfer, not after it); time how long each child outlives it
python3 - "$SIM" "$pm" "$collector" "$saver" $kids >"$WORK/pmdeath.$$.out" <<'PY'
import json, os, signal, sys, time, urllib.request
sim = sys.argv[1]
pm, collector, saver, kids = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), [int(k) for k in sys.argv[5:]]
arrivals = lambda: len(json.load(urllib.request.urlopen(sim + "/_sim/arrivals")))
n0 = arrivals()
while arrivals() == n0:
    time.sleep(0.01)
time.sleep(0.2)
def alive(p):
    try:
        os.kill(p, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    try:
        with open("/proc/%d/stat" % p) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
t0 = time.monotonic()
os.kill(pm, signal.SIGKILL)
gone = {}
while len(gone) < len(kids) and time.monotonic() - t0 < 30:
    for k in kids:
        if k not in gone and not alive(k):
            gone[k] = time.monotonic() - t0
    time.sleep(0.01)
for k in kids:
    print(k, "%.3f" % gone[k] if k in gone else "alive")
PY
cat "$WORK/pmdeath.$$.out" | while read -r p t; do
    name=$(if [[ $p == "$collector" ]]; then echo "llm_usage collector"; elif [[ $p == "$saver" ]]; then echo "llm_usage quota saver"; else echo "other"; fi)
    echo "  pid $p ($name) gone after $t s"
done
for p in $collector $saver; do
    t=$(awk -v p="$p" '$1 == p {print $2}' "$WORK/pmdeath.$$.out")
    [[ $t != alive ]] || fail "llm_usage process $p still alive 30 s after the postmaster died"
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) <= 1.0 else 1)" "$t" \
        || fail "llm_usage process $p outlived the postmaster by $t s (more than 1 s)"
done
grep -q alive "$WORK/pmdeath.$$.out" && fail "a server process outlived the postmaster by 30 s"

# the server restarts at once: no orphan holds the shared memory.  (The dead
# postmaster's own pid must be reaped by init first, or the new one takes it
# for a live postmaster; how fast that happens is up to the machine's init.)
for _ in $(seq 1 100); do kill -0 "$pm" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pm" 2>/dev/null && fail "the killed postmaster $pm was not reaped in 10 s"
t0=$(date +%s.%N)
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 start >/dev/null \
    || fail "pg_ctl start failed right after the postmaster died"
t1=$(date +%s.%N)
python3 -c "import sys; print('pg_ctl start succeeded in %.2f s' % (float(sys.argv[2]) - float(sys.argv[1])))" "$t0" "$t1"
for _ in $(seq 1 100); do [[ -n "$(worker_pid)" ]] && break; sleep 0.2; done
for _ in $(seq 1 50); do
    [[ $(wq -c "SELECT status FROM llm_usage.collector_runs WHERE run_id = $r") == failed ]] && break
    sleep 0.2
done
wq -c "SELECT run_id, status, pages, error FROM llm_usage.collector_runs WHERE run_id = $r"
[[ $(wq -c "SELECT status FROM llm_usage.collector_runs WHERE run_id = $r") == failed ]] \
    || fail "the interrupted run was not left running (and then failed by the restarted worker)"
[[ $(wq -c "SELECT (SELECT count(*) FROM llm_usage.provider_usage WHERE key_id = $id) + (SELECT count(*) FROM llm_usage.provider_costs WHERE key_id = $id)") == 0 ]] \
    || fail "the interrupted run wrote rows"

# the window collected afterwards: every row once
sim_mode "$KEY" none
r2=$(wq -c "SELECT llm_usage.collect_now($id, '2026-09-01', '2026-09-20')")
[[ $(wait_run "$r2" 60) == succeeded ]] || fail "the re-run failed"
exp=$(curl -sf "$SIM/_sim/expected?key=$KEY&from=2026-09-01&to=2026-09-20")
want=$(python3 -c "import json,sys; e=json.loads(sys.argv[1]); print('%d|%d|%d|%s' % (e['completions']['rows'] + e['embeddings']['rows'], e['completions']['input_tokens'] + e['embeddings']['input_tokens'], e['costs']['rows'], e['costs']['usd']))" "$exp")
got=$(wq -c "SELECT (SELECT count(*) || '|' || sum(input_tokens) FROM llm_usage.provider_usage WHERE key_id = $id) || '|' ||
                (SELECT count(*) || '|' || sum(amount_usd) FROM llm_usage.provider_costs WHERE key_id = $id)")
echo "after the restart: rows|input|cost rows|usd db=$got simulator=$want"
IFS='|' read -r gr gi gc gu <<<"$got"
IFS='|' read -r wr wi wc wu <<<"$want"
[[ $gr == "$wr" && $gi == "$wi" && $gc == "$wc" && $(wq -c "SELECT $gu::numeric = $wu::numeric") == t ]] \
    || fail "the window was not collected exactly once"
retire_keys wpm
echo "PASS"
