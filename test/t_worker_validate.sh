#!/usr/bin/env bash
# t_worker_validate: add_provider_key(..., validate => true) makes one
# short, interruptible request inside the caller's transaction.  Against a
# provider that accepts the connection and never answers: pg_cancel_backend
# and statement_timeout end the call within a second, with nothing stored
# and the backend's socket to the provider closed (its /proc/<pid>/fd); left
# alone, the probe gives up after one attempt of at most 5 s (SQLSTATE 08000).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim
HANG=sk-admin-validate-hangs-forever-1
sim_mode "$HANG" slow 0 600
wq -c "SELECT llm_usage.create_tenant('wv', 'pro')" >/dev/null
simport=${SIM##*:}

# one session, fed through a FIFO, whose backend we watch from outside
mkfifo "$WORK/validate.$$.fifo"
as_user "$PGBIN/psql" -X -At -d "$WDB" <"$WORK/validate.$$.fifo" >"$WORK/validate.$$.out" 2>&1 &
session=$!
exec 7>"$WORK/validate.$$.fifo"
# (the key is a literal here: keep PostgreSQL from logging the failing statements)
echo "SET log_min_error_statement = panic;" >&7
echo "SELECT 'pid=' || pg_backend_pid();" >&7
for _ in $(seq 1 50); do grep -q '^pid=' "$WORK/validate.$$.out" && break; sleep 0.1; done
pid=$(sed -n 's/^pid=//p' "$WORK/validate.$$.out")
[[ -n $pid ]] || fail "no backend pid"
sockets() { find "/proc/$pid/fd" -lname 'socket:*' 2>/dev/null | wc -l; }
to_sim() { ss -tnp 2>/dev/null | grep -c ":$simport .*pid=$pid," || true; }
base=$(sockets)
echo "backend $pid: $base socket(s) open before validating, $(to_sim) to the provider"

wait_idle() {   # wait_idle: until the session's statement has ended; prints its state_change
    for _ in $(seq 1 400); do
        st=$(wq -c "SELECT state || '|' || state_change FROM pg_stat_activity WHERE pid = $pid")
        [[ $st == idle* ]] && { echo "${st#*|}"; return 0; }
        sleep 0.02
    done
    fail "the validating session did not return in 8 s"
}
wait_busy() {   # wait_busy: until the session is inside the probe, with its socket open
    for _ in $(seq 1 100); do
        [[ $(wq -c "SELECT state FROM pg_stat_activity WHERE pid = $pid") == active && $(sockets) -gt $base ]] && return 0
        sleep 0.05
    done
    fail "the probe never opened its connection"
}

# 1. pg_cancel_backend
echo "SELECT llm_usage.add_provider_key('wv', 'openai', '$HANG', 'cancelled', validate => true);" >&7
wait_busy
sleep 1
during=$(sockets)
echo "during the probe: $during socket(s), $(to_sim) to the provider"
cancelled_at=$(wq -c "SELECT clock_timestamp() FROM (SELECT pg_cancel_backend($pid)) c")
ended=$(wait_idle)
lat=$(wq -c "SELECT round(extract(epoch FROM '$ended'::timestamptz - '$cancelled_at'::timestamptz)::numeric, 3)")
echo "pg_cancel_backend: the call returned $lat s after the cancel; sockets now $(sockets), to the provider $(to_sim)"
[[ $(wq -c "SELECT $lat < 1.0") == t ]] || fail "cancel took $lat s"
[[ $(sockets) == "$base" && $(to_sim) == 0 ]] || fail "the probe's socket was left open after the cancel"

# 2. statement_timeout = 1s
echo "SET statement_timeout = '1s';" >&7
echo "SELECT llm_usage.add_provider_key('wv', 'openai', '$HANG', 'timed out', validate => true);" >&7
sleep 0.3
started=$(wq -c "SELECT query_start FROM pg_stat_activity WHERE pid = $pid")
ended=$(wait_idle)
took=$(wq -c "SELECT round(extract(epoch FROM '$ended'::timestamptz - '$started'::timestamptz)::numeric, 3)")
echo "statement_timeout = 1s: the call returned after $took s; sockets now $(sockets), to the provider $(to_sim)"
[[ $(wq -c "SELECT $took < 2.0") == t ]] || fail "statement_timeout took $took s to act (more than 1 s late)"
[[ $(sockets) == "$base" && $(to_sim) == 0 ]] || fail "the probe's socket was left open after the timeout"
echo "RESET statement_timeout;" >&7

# 3. left alone: one attempt, at most 5 s, SQLSTATE 08000
sim_reset
sim_mode "$HANG" slow 0 600
echo '\set VERBOSITY verbose' >&7
echo "SELECT llm_usage.add_provider_key('wv', 'openai', '$HANG', 'given up', validate => true);" >&7
sleep 0.3
started=$(wq -c "SELECT query_start FROM pg_stat_activity WHERE pid = $pid")
ended=$(wait_idle)
took=$(wq -c "SELECT round(extract(epoch FROM '$ended'::timestamptz - '$started'::timestamptz)::numeric, 3)")
attempts=$(curl -sf "$SIM/_sim/arrivals" | python3 -c "import json, sys; print(len(json.load(sys.stdin)))")
echo "no timeout set: the probe gave up after $took s, $attempts request(s) sent; sockets now $(sockets)"
[[ $(wq -c "SELECT $took BETWEEN 4.5 AND 6.0") == t ]] || fail "the probe did not give up after about 5 s ($took s)"
[[ $attempts == 1 ]] || fail "the probe retried ($attempts requests)"
[[ $(sockets) == "$base" ]] || fail "the probe's socket was left open"

echo "SELECT 'done';" >&7
echo '\q' >&7
exec 7>&-
wait "$session" || true
grep -E 'ERROR|SQLSTATE|canceling' "$WORK/validate.$$.out" | sed 's/^/  /'
grep -q 'canceling statement due to user request' "$WORK/validate.$$.out" || fail "no cancel error"
grep -q 'canceling statement due to statement timeout' "$WORK/validate.$$.out" || fail "no statement timeout error"
grep -q 'ERROR:  08000: could not validate the key with openai: timed out' "$WORK/validate.$$.out" || fail "no 08000 after the probe's own timeout"
[[ $(wq -c "SELECT count(*) FROM llm_usage.provider_keys WHERE tenant_id = 'wv'") == 0 ]] || fail "a key was stored"
grep -q "$HANG" "$WORK/server.log" && fail "the key reached the server log"
echo "PASS"
