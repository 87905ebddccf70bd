#!/usr/bin/env bash
# t_worker_secrets: with log_min_messages = debug5 and statement logging at
# its default, no plaintext key reaches the server log: not when
# add_provider_key (called with a bind parameter) stores a key or fails
# validation, not when a key is rotated, not during collection; nor
# pg_stat_activity, the tables, or pg_dump output.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim

GOOD=sk-admin-SECRETgood1111aaaa
REFUSED=sk-admin-SECRETrefused2222bbbb
ROTATED=sk-admin-SECRETrotated3333cccc
ANTH=sk-ant-admin01-SECRETanth4444dddd
sim_mode "$REFUSED" 401
wq -c "SELECT llm_usage.create_tenant('wsec', 'pro')" >/dev/null
log_from=$(stat -c %s "$WORK/server.log")
wq -c "ALTER SYSTEM SET log_min_messages = debug5" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1

[[ $(bind_call "SELECT llm_usage.add_provider_key('wsec', 'openai', :key, 'good', validate => true);" "$GOOD" "$WDB") == 0 ]] \
    || fail "storing a valid key failed"
[[ $(bind_call "SELECT llm_usage.add_provider_key('wsec', 'openai', :key, 'refused', validate => true);" "$REFUSED" "$WDB") == 1 ]] \
    || fail "a refused key was stored"
[[ $(bind_call "SELECT llm_usage.add_provider_key('wsec', 'anthropic', :key, 'anthropic');" "$ANTH" "$WDB") == 0 ]] \
    || fail "storing an anthropic key failed"
grep -h "refused the key" "$WORK"/bind.*.out | head -1
[[ $(wq -c "SELECT count(*) FROM llm_usage.provider_keys WHERE tenant_id = 'wsec'") == 2 ]] || fail "expected 2 stored keys"
oid=$(wq -c "SELECT id FROM llm_usage.provider_keys WHERE tenant_id = 'wsec' AND label = 'good'")
aid=$(wq -c "SELECT id FROM llm_usage.provider_keys WHERE tenant_id = 'wsec' AND label = 'anthropic'")

# collect with both keys; look at pg_stat_activity while the worker is in a request
sim_mode "$GOOD" slow 2 1
r1=$(wq -c "SELECT llm_usage.collect_now($oid, '2026-10-01', '2026-10-02')")
sleep 0.5
activity=$(wq -c "SELECT string_agg(coalesce(query, ''), ' | ') FROM pg_stat_activity WHERE backend_type = 'llm_usage collector'")
echo "collector's pg_stat_activity: $activity"
[[ $activity == *"openai completions page 1"* ]] || fail "the collector does not report its activity"
r2=$(wq -c "SELECT llm_usage.collect_now($aid, '2026-10-01', '2026-10-02')")
[[ $(wait_run "$r1") == succeeded && $(wait_run "$r2") == succeeded ]] || fail "collection failed"

# runs that fail after the key is in use: refused (401), and a malformed page
FAILKEY=sk-admin-SECRETfails5555eeee
MALKEY=sk-ant-admin01-SECRETmalformed6666ffff
[[ $(bind_call "SELECT llm_usage.add_provider_key('wsec', 'openai', :key, 'fails');" "$FAILKEY" "$WDB") == 0 ]] || fail "storing a key failed"
[[ $(bind_call "SELECT llm_usage.add_provider_key('wsec', 'anthropic', :key, 'malformed');" "$MALKEY" "$WDB") == 0 ]] || fail "storing a key failed"
sim_mode "$FAILKEY" 401
sim_mode "$MALKEY" malformed
for label in fails malformed; do
    r=$(wq -c "SELECT llm_usage.collect_now(id, '2026-10-01', '2026-10-02') FROM llm_usage.provider_keys WHERE tenant_id = 'wsec' AND label = '$label'")
    [[ $(wait_run "$r") == failed ]] || fail "the $label run did not fail"
done

# rotation with a bind parameter, then collect with the rotated key
[[ $(bind_call "SELECT llm_usage.rotate_provider_key($oid, :key);" "$ROTATED" "$WDB") == 0 ]] || fail "rotation failed"
r3=$(wq -c "SELECT llm_usage.collect_now($oid, '2026-10-01', '2026-10-02')")
[[ $(wait_run "$r3") == succeeded ]] || fail "collection with the rotated key failed"
reqs=$(curl -sf "$SIM/_sim/requests")
wq -c "ALTER SYSTEM RESET log_min_messages" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5

# the worker's own memory holds no plaintext key after its runs, on the
# success paths and the error paths alike: its copies, the request headers
# and libcurl's buffers are wiped (scanned: every private writable mapping)
wpid=$(worker_pid)
python3 - "$wpid" "$GOOD" "$ROTATED" "$ANTH" "$FAILKEY" "$MALKEY" <<'PY' || fail "a plaintext key is left in the worker's memory"
import re, sys
pid, keys = int(sys.argv[1]), [k.encode() for k in sys.argv[2:]]
found, scanned = [], 0
with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
    for line in maps:
        f = line.split()
        if not f[1].startswith("rw") or f[1][3] != "p":
            continue
        a, b = (int(x, 16) for x in f[0].split("-"))
        try:
            mem.seek(a)
            data = mem.read(b - a)
        except (OSError, ValueError):
            continue
        scanned += len(data)
        for k in keys:
            if k in data:
                found.append("%s in %s %s" % (k[:14].decode(), f[0], f[5] if len(f) > 5 else "[anon]"))
            if k[-12:] in data:
                found.append("the tail of %s in %s" % (k[:14].decode(), f[0]))
print("worker %d: %.1f MB of private memory scanned for %d keys: %s" % (pid, scanned / 1e6, len(keys), ", ".join(found) or "none found"))
sys.exit(1 if found else 0)
PY

# the log of this test: plenty of debug output, no key
tail -c +$((log_from + 1)) "$WORK/server.log" >"$WORK/secrets.log"
echo "server log lines written at debug5: $(wc -l <"$WORK/secrets.log"), DEBUG lines: $(grep -c DEBUG "$WORK/secrets.log")"
[[ $(grep -c DEBUG "$WORK/secrets.log") -gt 100 ]] || fail "debug5 logging was not on"
grep -q 'refused the key' "$WORK/secrets.log" || fail "the refused key's error is not in the log"
for k in "$GOOD" "$REFUSED" "$ROTATED" "$ANTH" "$FAILKEY" "$MALKEY" SECRET; do
    if grep -q "$k" "$WORK/secrets.log"; then
        grep -n "$k" "$WORK/secrets.log" | head -3
        fail "the server log contains a key"
    fi
done
echo "no key in the server log"

# the tables and the view hold ciphertext and a 4-character preview only
wq -c "SELECT id, label, key_preview FROM llm_usage.provider_keys WHERE tenant_id = 'wsec' ORDER BY id" | tr '\n' ' '; echo
for k in "$GOOD" "$ROTATED" "$ANTH"; do
    n=$(wq -c "SELECT count(*) FROM llm_usage.provider_key_store
                WHERE position(convert_to('$k', 'UTF8') in key_ciphertext) > 0
                   OR position(convert_to('$k', 'UTF8') in wrapped_dek) > 0
                   OR key_preview LIKE '%' || left('$k', 8) || '%'")
    [[ $n == 0 ]] || fail "a key is stored in the clear"
done
# pg_dump: ciphertext only
as_user "$PGBIN/pg_dump" -d "$WDB" -f "$WORK/secrets.dump.sql"
grep -q "provider_key_store" "$WORK/secrets.dump.sql" || fail "pg_dump lost the key table"
if grep -q SECRET "$WORK/secrets.dump.sql"; then fail "pg_dump output contains a key"; fi
echo "pg_dump output ($(wc -c <"$WORK/secrets.dump.sql") bytes) holds no key"
# the provider really received the keys (so the checks above are not vacuous)
python3 -c "
import json, sys
reqs = json.loads(sys.argv[1])
ok = [r for r in reqs if r['path'].startswith('/v1/') and r['auth_ok'] and r['status'] == 200]
assert len(ok) >= 7, len(ok)
print('provider saw %d authenticated requests' % len(ok))" "$reqs"
retire_keys wsec
echo "PASS"
