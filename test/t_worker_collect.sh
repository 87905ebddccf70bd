#!/usr/bin/env bash
# t_worker_collect: the worker collects real HTTP pages from the simulator
# for an OpenAI and an Anthropic key, over several pages, and the rows match
# the simulator's data exactly (tokens, requests, USD); re-collecting the
# same window leaves the same rows; a partial bucket is updated in place.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim

OA=sk-admin-collect-test-0001
AN=sk-ant-admin01-collect-test-0002
wq -o /dev/null <<SQL
SELECT llm_usage.create_tenant('wc', 'pro');
SQL
oa_id=$(wq -c "SELECT llm_usage.add_provider_key('wc', 'openai', '$OA', 'org key', validate => true)")
an_id=$(wq -c "SELECT llm_usage.add_provider_key('wc', 'anthropic', '$AN', validate => true)")
echo "keys stored: openai=$oa_id anthropic=$an_id"
wq -c "SELECT id, provider, key_preview, is_active FROM llm_usage.provider_keys WHERE tenant_id = 'wc' ORDER BY id"

check_totals() {    # check_totals KEY_ID KEY LABEL: DB sums equal the simulator's for 2026-10-01..10
    local key_id=$1 key=$2 exp got want
    exp=$(curl -sf "$SIM/_sim/expected?key=$key&from=2026-10-01&to=2026-10-10")
    for ep in completions embeddings messages; do
        want=$(python3 -c "import json,sys; e=json.loads(sys.argv[1]).get('$ep'); print('' if e is None else '%d|%d|%d|%d|%d|%d' % (e['rows'], e['input_tokens'], e['cached_input_tokens'], e['cache_write_tokens'], e['output_tokens'], e['requests']))" "$exp")
        [[ -z $want ]] && continue
        got=$(wq -c "SELECT count(*) || '|' || sum(input_tokens) || '|' || sum(cached_input_tokens) || '|' || sum(cache_write_tokens) || '|' || sum(output_tokens) || '|' || sum(requests)
                       FROM llm_usage.provider_usage WHERE key_id = $key_id AND endpoint = '$ep'
                        AND bucket_start >= '2026-10-01' AND bucket_start < '2026-10-11'")
        echo "  $3 $ep rows|input|cached|cache_write|output|requests: db=$got simulator=$want"
        [[ $got == "$want" ]] || fail "$3 $ep totals differ"
    done
    want=$(python3 -c "import json,sys; e=json.loads(sys.argv[1])['costs']; print('%d|%s' % (e['rows'], e['usd']))" "$exp")
    got=$(wq -c "SELECT count(*) = ${want%%|*} AND sum(amount_usd) = ${want#*|}
                   FROM llm_usage.provider_costs WHERE key_id = $key_id
                    AND bucket_start >= '2026-10-01' AND bucket_start < '2026-10-11'")
    echo "  $3 costs rows|usd: simulator=$want, db equal: $got"
    [[ $got == t ]] || { wq -c "SELECT count(*), sum(amount_usd) FROM llm_usage.provider_costs WHERE key_id = $key_id"; fail "$3 costs differ"; }
}

# 1. collect ten days: two pages (limit 7) per endpoint
pid0=$(worker_pid)
stat_ins() { wq -c "SELECT pg_stat_clear_snapshot(); SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relid = 'llm_usage.provider_usage'::regclass" | tail -1; }
ins0=$(stat_ins)
run=$(wq -c "SELECT llm_usage.collect_now($oa_id, '2026-10-01', '2026-10-10')")
run2=$(wq -c "SELECT llm_usage.collect_now($an_id, '2026-10-01', '2026-10-10')")
[[ $(wait_run "$run") == succeeded ]] || { wq -c "SELECT * FROM llm_usage.collector_runs WHERE run_id = $run"; fail "openai run failed"; }
[[ $(wait_run "$run2") == succeeded ]] || { wq -c "SELECT * FROM llm_usage.collector_runs WHERE run_id = $run2"; fail "anthropic run failed"; }
wq -c "SELECT run_id, provider, status, pages, rows_written, http_attempts, window_from::date, window_to::date FROM llm_usage.collector_runs WHERE run_id IN ($run, $run2) ORDER BY run_id"
[[ $(wq -c "SELECT pages || '/' || http_attempts FROM llm_usage.collector_runs WHERE run_id = $run") == "6/6" ]] || fail "openai: expected 6 pages in 6 requests"
[[ $(wq -c "SELECT pages || '/' || http_attempts FROM llm_usage.collector_runs WHERE run_id = $run2") == "4/4" ]] || fail "anthropic: expected 4 pages in 4 requests"
check_totals "$oa_id" "$OA" openai
check_totals "$an_id" "$AN" anthropic
# the worker reports its writes to the cumulative statistics (autovacuum's
# input) while it runs, not only when it exits
for _ in $(seq 1 50); do [[ $(( $(stat_ins) - ins0 )) -ge 100 ]] && break; sleep 0.1; done
echo "provider_usage rows inserted or updated per pg_stat_user_tables: $(( $(stat_ins) - ins0 )) (worker still pid $(worker_pid))"
[[ $(( $(stat_ins) - ins0 )) -ge 100 && $(worker_pid) == "$pid0" ]] || fail "the worker's writes do not reach the statistics"

# the requests were the real wire format: brackets, URL-encoded cursor, auth
reqs=$(curl -sf "$SIM/_sim/requests")
python3 - "$reqs" <<'PY' || fail "request format"
import json, sys
reqs = json.loads(sys.argv[1])
oa = [r for r in reqs if r["path"] == "/v1/organization/usage/completions"]
assert len(oa) >= 2, oa
assert all(r["auth_ok"] and r["status"] == 200 for r in reqs if r["path"].startswith("/v1/")), reqs
assert "group_by%5B%5D=model" in oa[0]["query"] and "start_time=1790812800" in oa[0]["query"], oa[0]
assert any("page=page_" in r["query"] and "%3D" in r["query"] for r in oa), "cursor not URL-encoded"
an = [r for r in reqs if r["path"] == "/v1/organizations/usage_report/messages"]
assert "starting_at=2026-10-01T00%3A00%3A00Z" in an[0]["query"], an[0]
print("  wire format: group_by[] brackets, Unix seconds, RFC 3339, URL-encoded cursors, auth on every request")
PY

# 2. the same window again: same rows, updated in place
before=$(wq -c "SELECT count(*) || '/' || sum(input_tokens) FROM llm_usage.provider_usage WHERE key_id IN ($oa_id, $an_id)")
run=$(wq -c "SELECT llm_usage.collect_now($oa_id, '2026-10-01', '2026-10-10')")
[[ $(wait_run "$run") == succeeded ]] || fail "second openai run failed"
run=$(wq -c "SELECT llm_usage.collect_now($an_id, '2026-10-01', '2026-10-10')")
[[ $(wait_run "$run") == succeeded ]] || fail "second anthropic run failed"
after=$(wq -c "SELECT count(*) || '/' || sum(input_tokens) FROM llm_usage.provider_usage WHERE key_id IN ($oa_id, $an_id)")
echo "re-collected the same window: rows/input before $before, after $after"
[[ $before == "$after" ]] || fail "re-collecting changed the rows"
check_totals "$oa_id" "$OA" openai

# 3. a partial (still filling) last bucket, then the full one: updated, not duplicated
sim_mode "$OA" partial
run=$(wq -c "SELECT llm_usage.collect_now($oa_id, '2026-10-01', '2026-10-10')")
[[ $(wait_run "$run") == succeeded ]] || fail "partial run failed"
partial=$(wq -c "SELECT count(*) || '/' || sum(input_tokens) FROM llm_usage.provider_usage WHERE key_id = $oa_id")
sim_mode "$OA" none
run=$(wq -c "SELECT llm_usage.collect_now($oa_id, '2026-10-01', '2026-10-10')")
[[ $(wait_run "$run") == succeeded ]] || fail "full run failed"
full=$(wq -c "SELECT count(*) || '/' || sum(input_tokens) FROM llm_usage.provider_usage WHERE key_id = $oa_id")
echo "partial last bucket: rows/input $partial; filled in later: $full"
[[ ${partial%/*} == "${full%/*}" && ${partial#*/} -lt ${full#*/} ]] || fail "partial bucket was not updated in place"
check_totals "$oa_id" "$OA" openai

# 4. the key row records the sync
wq -c "SELECT id, provider, last_sync_status, collected_through, last_error IS NULL AS no_error FROM llm_usage.provider_keys WHERE tenant_id = 'wc' ORDER BY id"
[[ $(wq -c "SELECT count(*) FROM llm_usage.provider_keys WHERE tenant_id = 'wc' AND last_sync_status = 'succeeded' AND collected_through = '2026-10-10'") == 2 ]] \
    || fail "keys do not record the sync"
retire_keys wc
echo "PASS"
