#!/usr/bin/env bash
# t_worker_fuzz: a hostile provider.  For both providers, the simulator
# serves every mutation kind of its FUZZ_KINDS (types changed, nulls,
# missing keys, negative and 10^30 numbers, 10,000-level nesting, megabyte
# strings, NUL escapes, invalid UTF-8, duplicate, inverted and out-of-window
# buckets, endless or looping pagination, gzip bombs, redirects, slow drip,
# resets, absurd Retry-After, ...), seeded (FUZZ_SEED) for which endpoint,
# bucket, result and field each hits.  Asserted: the worker never crashes
# or restarts; every run ends (no stuck run); a kind that must fail fails
# with a recorded error, writes no row and does not mark the window
# collected; a harmless kind collects exact totals; afterwards a normal key
# of each provider still collects exact totals.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
SEED=${FUZZ_SEED:-20261126}
start_sim
use_sim
wq -c "ALTER SYSTEM SET llm_usage.http_timeout_ms = 1500" -c "ALTER SYSTEM SET llm_usage.max_retries = 1" \
   -c "ALTER SYSTEM SET llm_usage.http_max_response_kb = 2048" -c "ALTER SYSTEM SET llm_usage.max_pages = 20" \
   -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
pid0=$(worker_pid)
log_from=$(stat -c %s "$WORK/server.log")
wq -c "SELECT llm_usage.create_tenant('wfz', 'pro')" >/dev/null
FROM=2026-10-01
TO=2026-10-10      # 10 days: two pages per endpoint

kinds=$(curl -sf "$SIM/_sim/fuzz_kinds")
# one key per kind and provider, each with its mutation
python3 - "$kinds" "$SEED" >"$WORK/fuzz.$$.keys" <<'PY'
import hashlib, json, sys
kinds, seed = json.loads(sys.argv[1]), sys.argv[2]
for provider, prefix in (("openai", "sk-admin-fuzz"), ("anthropic", "sk-ant-admin01-fuzz")):
    for kind, (verdict, _) in sorted(kinds.items()):
        s = int(hashlib.sha256(("%s/%s/%s" % (seed, provider, kind)).encode()).hexdigest()[:8], 16)
        print(provider, kind, verdict, s, "%s-%s-%d" % (prefix, kind.replace("_", "-"), s % 100000))
PY
nkinds=$(python3 -c "import json,sys; print(len(json.loads(sys.argv[1])))" "$kinds")
echo "fuzz seed $SEED: $nkinds mutation kinds x 2 providers = $(wc -l <"$WORK/fuzz.$$.keys") runs"
while read -r provider kind verdict s key; do
    curl -sf -X POST "$SIM/_sim/mode" -H 'Content-Type: application/json' \
        -d "{\"key\": \"$key\", \"mode\": \"fuzz\", \"kind\": \"$kind\", \"seed\": $s}" >/dev/null || fail "sim mode"
    echo "SELECT llm_usage.add_provider_key('wfz', '$provider', '$key', '$provider:$kind');"
done <"$WORK/fuzz.$$.keys" | wq >/dev/null
t0=$(date +%s)
first=$(wq -c "SELECT min(llm_usage.collect_now(id, '$FROM', '$TO')) FROM llm_usage.provider_keys WHERE tenant_id = 'wfz' AND label LIKE '%:%'")
n=$(wc -l <"$WORK/fuzz.$$.keys")
for _ in $(seq 1 600); do
    left=$(wq -c "SELECT count(*) FROM llm_usage.collector_runs WHERE run_id >= $first AND tenant_id = 'wfz' AND status IN ('queued', 'running')")
    [[ $left == 0 ]] && break
    sleep 1
done
echo "all runs ended after $(( $(date +%s) - t0 )) s ($left left)"
[[ $left == 0 ]] || fail "$left fuzz runs never ended (stuck)"
[[ $(worker_pid) == "$pid0" ]] || fail "the worker crashed or restarted (pid $pid0 -> $(worker_pid))"

# every run, its rows and the expected totals
wq -c "SELECT json_agg(json_build_object(
          'label', k.label, 'provider', k.provider, 'key_id', k.id, 'status', r.status, 'error', r.error,
          'seconds', extract(epoch FROM r.finished_at - r.started_at), 'collected_through', k.collected_through,
          'usage', (SELECT json_object_agg(endpoint, json_build_array(n, i, c, w, o, q)) FROM (
                      SELECT endpoint, count(*) n, sum(input_tokens) i, sum(cached_input_tokens) c,
                             sum(cache_write_tokens) w, sum(output_tokens) o, sum(requests) q
                        FROM llm_usage.provider_usage u WHERE u.key_id = k.id GROUP BY endpoint) x),
          'costs', (SELECT json_build_array(count(*), sum(amount_usd)::text) FROM llm_usage.provider_costs c WHERE c.key_id = k.id)))
        FROM llm_usage.provider_keys k JOIN llm_usage.collector_runs r ON r.key_id = k.id AND r.run_id >= $first
       WHERE k.tenant_id = 'wfz' AND k.label LIKE '%:%'" >"$WORK/fuzz.$$.runs"

check_totals() {    # check_totals RUNS-JSON: exact totals for every run with verdict "collect"
    python3 - "$1" "$SIM" "$FROM" "$TO" "$kinds" <<'PY'
import json, sys, urllib.request
from decimal import Decimal
runs, sim, frm, to, kinds = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4], json.loads(sys.argv[5])
keys = {l.split()[4]: l.split() for l in open(sys.argv[1].replace(".runs", ".keys"))}
bad, table = [], {}
for r in runs:
    provider, kind = r["label"].split(":")
    verdict = kinds.get(kind, ["normal"])[0]
    key = [k for k, v in keys.items() if v[0] == provider and v[1] == kind]
    table.setdefault(kind, {})[provider] = r
    usage = r["usage"] or {}
    nrows = sum(v[0] for v in usage.values()) + r["costs"][0]
    if r["seconds"] is None or r["seconds"] > 60:
        bad.append("%s: run took %s s" % (r["label"], r["seconds"]))
    if verdict == "fail":
        if r["status"] != "failed" or not r["error"]:
            bad.append("%s: must fail, got %s (%s)" % (r["label"], r["status"], r["error"]))
        if nrows != 0:
            bad.append("%s: a failed run wrote %d rows" % (r["label"], nrows))
        if r["collected_through"] is not None:
            bad.append("%s: a failed run marked the window collected" % r["label"])
        if r["error"] and len(r["error"]) > 1000:
            bad.append("%s: error of %d characters" % (r["label"], len(r["error"])))
        continue
    if r["status"] != "succeeded":
        bad.append("%s: must collect, got %s (%s)" % (r["label"], r["status"], r["error"]))
        continue
    k = key[0] if key else r["key"]
    e = json.load(urllib.request.urlopen("%s/_sim/expected?key=%s&from=%s&to=%s" % (sim, k, frm, to)))
    for ep, v in e.items():
        if ep == "costs":
            got = (r["costs"][0], Decimal(r["costs"][1] or 0))
            want = (v["rows"], Decimal(v["usd"]))
        else:
            u = usage.get(ep, [0, 0, 0, 0, 0, 0])
            got = tuple(u)
            want = (v["rows"], v["input_tokens"], v["cached_input_tokens"], v["cache_write_tokens"], v["output_tokens"], v["requests"])
        if got != want:
            bad.append("%s: %s totals %s, expected %s" % (r["label"], ep, got, want))
json.dump({"bad": bad, "table": {k: {p: [x["status"], (x["error"] or "")[:110]] for p, x in v.items()} for k, v in table.items()}},
          open(sys.argv[1] + ".verdict", "w"))
for kind in sorted(table):
    for p in ("openai", "anthropic"):
        x = table[kind].get(p)
        if x:
            print("  %-30s %-9s %-9s %s" % (kind, p, x["status"], (x["error"] or "exact totals")[:140]))
for b in bad:
    print("BAD: " + b)
sys.exit(1 if bad else 0)
PY
}
check_totals "$WORK/fuzz.$$.runs" || fail "a fuzz run broke a rule (see BAD lines)"
python3 -c "
import json, sys
runs = json.load(open(sys.argv[1]))
kinds = json.loads(sys.argv[2])
failed = sum(1 for r in runs if r['status'] == 'failed')
ok = sum(1 for r in runs if r['status'] == 'succeeded')
print('%d runs: %d failed as required, each with its error and no row; %d harmless ones collected exact totals; %d kinds per provider' % (len(runs), failed, ok, len(kinds)))
" "$WORK/fuzz.$$.runs" "$kinds"

# nothing crashed, nothing leaked, nothing bad reached the log
tail -c +$((log_from + 1)) "$WORK/server.log" >"$WORK/fuzz.$$.log"
if grep -E 'terminated by signal|server process .* was terminated|secret\(s\) of run .* were not released|TRAP:' "$WORK/fuzz.$$.log"; then
    fail "a crash or an unreleased secret during fuzzing"
fi
if LC_ALL=C grep -qaP '[\x00-\x08\x0e-\x1f]|\xff|\xc0\xaf' "$WORK/fuzz.$$.log"; then
    fail "raw bytes from a provider reached the server log"
fi
wq -c "SELECT count(*) FROM llm_usage.collector_runs WHERE tenant_id = 'wfz' AND error !~ '^[[:print:][:space:]]*$'" | grep -qx 0 \
    || fail "an error text holds unprintable characters"

# memory stays bounded while paging: 150 pages of 200 kB raise the worker's
# peak RSS by far less than they weigh (only the parsed rows are kept)
id=$(wq -c "SELECT llm_usage.add_provider_key('wfz', 'openai', 'sk-admin-fuzz-filler-pages', 'filler')")
sim_mode sk-admin-fuzz-filler-pages filler 200
wq -c "ALTER SYSTEM SET llm_usage.max_pages = 1000" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
hwm() { awk '/^VmHWM:/ {print $2}' "/proc/$pid0/status"; }
before=$(hwm)
r=$(wq -c "SELECT llm_usage.collect_now($id, '2025-10-27', '2026-10-10')")
[[ $(wait_run "$r" 120) == succeeded ]] || fail "the run of 150 large pages failed"
after=$(hwm)
pages=$(wq -c "SELECT pages FROM llm_usage.collector_runs WHERE run_id = $r")
echo "$pages pages of 200 kB ($((pages * 200 / 1024)) MB): worker peak RSS $before kB before, $after kB after (+$((after - before)) kB)"
[[ $pages -ge 150 ]] || fail "expected at least 150 pages"
[[ $((after - before)) -lt 16384 ]] || fail "the worker's memory grew with the pages (+$((after - before)) kB)"
wq -c "ALTER SYSTEM SET llm_usage.max_pages = 20" -c "SELECT pg_reload_conf()" >/dev/null

# a normal key of each provider still collects exact totals
for k in sk-admin-fuzz-after-normal-1 sk-ant-admin01-fuzz-after-normal-2; do
    p=openai; [[ $k == sk-ant-* ]] && p=anthropic
    id=$(wq -c "SELECT llm_usage.add_provider_key('wfz', '$p', '$k', 'normal')")
    r=$(wq -c "SELECT llm_usage.collect_now($id, '$FROM', '$TO')")
    [[ $(wait_run "$r" 60) == succeeded ]] || fail "a normal $p key failed after the fuzzing"
done
wq -c "SELECT json_agg(json_build_object('label', 'normal:' || k.provider, 'provider', k.provider, 'key_id', k.id, 'status', r.status,
          'error', r.error, 'seconds', extract(epoch FROM r.finished_at - r.started_at), 'collected_through', k.collected_through,
          'key', CASE k.provider WHEN 'openai' THEN 'sk-admin-fuzz-after-normal-1' ELSE 'sk-ant-admin01-fuzz-after-normal-2' END,
          'usage', (SELECT json_object_agg(endpoint, json_build_array(n, i, c, w, o, q)) FROM (
                      SELECT endpoint, count(*) n, sum(input_tokens) i, sum(cached_input_tokens) c,
                             sum(cache_write_tokens) w, sum(output_tokens) o, sum(requests) q
                        FROM llm_usage.provider_usage u WHERE u.key_id = k.id GROUP BY endpoint) x),
          'costs', (SELECT json_build_array(count(*), sum(amount_usd)::text) FROM llm_usage.provider_costs c WHERE c.key_id = k.id)))
        FROM llm_usage.provider_keys k JOIN llm_usage.collector_runs r ON r.key_id = k.id
       WHERE k.tenant_id = 'wfz' AND k.label = 'normal'" >"$WORK/fuzz.$$.normal.runs"
cp "$WORK/fuzz.$$.keys" "$WORK/fuzz.$$.normal.keys"
check_totals "$WORK/fuzz.$$.normal.runs" || fail "a normal key did not collect exact totals after the fuzzing"
[[ $(worker_pid) == "$pid0" ]] || fail "the worker restarted"
echo "worker still pid $pid0; normal keys of both providers collect exact totals"

wq -c "ALTER SYSTEM RESET llm_usage.http_timeout_ms" -c "ALTER SYSTEM RESET llm_usage.max_retries" \
   -c "ALTER SYSTEM RESET llm_usage.http_max_response_kb" -c "ALTER SYSTEM RESET llm_usage.max_pages" \
   -c "SELECT pg_reload_conf()" >/dev/null
retire_keys wfz
echo "PASS"
