#!/usr/bin/env bash
# t_master_rotation: master key rotation across sessions (issue 9).
#  - a session opened (and having used the master key) before
#    rotate_master_key() adds a key afterwards; a new session adds one too;
#  - both are sealed under the new version; the README's last step (remove
#    the old line from the key file) and a restart later, every key still
#    decrypts: the worker collects with each;
#  - a key is never sealed while a rotation runs (add_provider_key waits).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim
KEYFILE="$WORK/master.key"
ALL="$WORK/master.key.all"      # every version this test ever wrote, for the suites after it
cp -p "$KEYFILE" "$ALL"
add_version() {     # add_version N: a new master key line, in the file and in $ALL
    local line
    line=$(python3 -c "import secrets; print('$1:' + secrets.token_hex(32))")
    echo "$line" >>"$KEYFILE"
    echo "$line" >>"$ALL"
}
restore_keyfile() { cp -p "$ALL" "$KEYFILE"; }
trap 'restore_keyfile; kill $SIM_PID 2>/dev/null' EXIT

log_from=$(($(stat -c %s "$WORK/server.log") + 1))
wq -o /dev/null -c "SELECT llm_usage.create_tenant('rot', 'pro') WHERE NOT EXISTS (SELECT 1 FROM llm_usage.tenants WHERE tenant_id = 'rot')"
old_version=$(cut -d: -f1 "$KEYFILE" | sort -n | tail -1)

# session A, open before the rotation: it seals a key under the old version
mkfifo "$WORK/rot.$$.fifo"
as_user "$PGBIN/psql" -X -At -d "$WDB" <"$WORK/rot.$$.fifo" >>"$WORK/rot.$$.out" 2>&1 &
sessA=$!
exec 8>"$WORK/rot.$$.fifo"
in_a() {        # in_a SQL: run in session A, wait for its answer, print it
    local mark="done-$RANDOM$RANDOM"
    echo "$1;" >&8
    echo "SELECT '$mark';" >&8      # (psql flushes query results, not \echo)
    for _ in $(seq 1 100); do grep -q "$mark" "$WORK/rot.$$.out" && break; sleep 0.1; done
    sed -n "/^$mark\$/q;p" "$WORK/rot.$$.out" | tail -1
    : >"$WORK/rot.$$.out"
}
k0=$(in_a "SELECT llm_usage.add_provider_key('rot', 'openai', 'sk-admin-rotation-before-0000', 'before')")
[[ $k0 =~ ^[0-9]+$ ]] || fail "session A could not add a key: $k0"
echo "session A (pid $(in_a 'SELECT pg_backend_pid()')) added key $k0 under master key version $old_version"

# rotation: a new line in the file, rotate_master_key() in another session
new_version=$((old_version + 1))
add_version $new_version
n=$(wq -c "SELECT llm_usage.rotate_master_key()")
echo "rotate_master_key() re-wrapped $n key(s) under version $new_version"

# after the rotation: a key from session A, and one from a new session
k1=$(in_a "SELECT llm_usage.add_provider_key('rot', 'openai', 'sk-admin-rotation-oldsession-1111', 'old session')")
k2=$(wq -c "SELECT llm_usage.add_provider_key('rot', 'anthropic', 'sk-ant-admin01-rotation-newsession-2222', 'new session')")
[[ $k1 =~ ^[0-9]+$ && $k2 =~ ^[0-9]+$ ]] || fail "adding keys after the rotation failed: $k1 / $k2"
echo '\q' >&8
exec 8>&-
wait "$sessA" || true
versions=$(wq -c "SELECT string_agg(label || '=' || master_key_version, ', ' ORDER BY id) FROM llm_usage.provider_keys WHERE tenant_id = 'rot'")
echo "master key version of each key: $versions"
[[ $(wq -c "SELECT count(*) FROM llm_usage.provider_keys WHERE tenant_id = 'rot' AND master_key_version <> $new_version") == 0 ]] \
    || fail "a key added after the rotation was sealed under an old master key version ($versions)"

# the README's last step: remove the old line; then restart the server
grep "^$new_version:" "$KEYFILE" >"$KEYFILE.new"
chown "$TEST_USER" "$KEYFILE.new"; chmod 600 "$KEYFILE.new"; mv "$KEYFILE.new" "$KEYFILE"
echo "key file now holds versions: $(cut -d: -f1 "$KEYFILE" | tr '\n' ' ')"
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -m fast -w restart >/dev/null
for _ in $(seq 1 100); do [[ -n "$(worker_pid 2>/dev/null)" ]] && break; sleep 0.2; done
[[ -n "$(worker_pid)" ]] || fail "the worker did not come back after the restart"

# every key decrypts: the worker collects with each (the simulator checks the key)
for k in $k0 $k1 $k2; do
    r=$(wq -c "SELECT llm_usage.collect_now($k, '2026-10-01', '2026-10-01')")
    st=$(wait_run "$r")
    err=$(wq -c "SELECT coalesce(error, '') FROM llm_usage.collector_runs WHERE run_id = $r")
    echo "key $k: run $r $st $err"
    [[ $st == succeeded ]] || fail "key $k does not decrypt after the old master key line was removed and the server restarted"
done
[[ $(wq -c "SELECT count(*) FROM llm_usage.provider_usage WHERE key_id IN ($k0, $k1, $k2)") -gt 0 ]] || fail "nothing collected"

# a key is not sealed while a rotation holds the key store: it waits, then
# uses the version the rotation brought
restore_keyfile
newer=$((new_version + 1))
line=$(python3 -c "import secrets; print('$newer:' + secrets.token_hex(32))")
echo "$line" >>"$ALL"
( echo "BEGIN;"
  echo "LOCK TABLE llm_usage.provider_key_store IN SHARE ROW EXCLUSIVE MODE;"
  echo "SELECT pg_sleep(2);"
  echo "\\! echo '$line' >>$KEYFILE"
  echo "COMMIT;" ) >"$WORK/rot.lock.sql"
chown "$TEST_USER" "$WORK/rot.lock.sql"
as_user "$PGBIN/psql" -X -q -d "$WDB" -f "$WORK/rot.lock.sql" >/dev/null 2>&1 &
locker=$!
sleep 0.5
k3=$(wq -c "SELECT llm_usage.add_provider_key('rot', 'openai', 'sk-admin-rotation-waiting-3333', 'waited')")
wait "$locker" || true
v3=$(wq -c "SELECT master_key_version FROM llm_usage.provider_keys WHERE id = $k3")
echo "a key added while the key store was locked for a rotation waited and was sealed under version $v3"
[[ $v3 == "$newer" ]] || fail "the key was sealed before the rotation's file change (version $v3, expected $newer)"
wq -c "SELECT llm_usage.rotate_master_key()" >/dev/null

# the server log never holds a key
if tail -c +"$log_from" "$WORK/server.log" | grep -qE 'sk-admin-rotation|sk-ant-admin01-rotation'; then fail "a key reached the server log"; fi
retire_keys rot
wq -c "SELECT llm_usage.rotate_master_key()" >/dev/null 2>&1 || true
echo "PASS"
