#!/usr/bin/env bash
# t_worker_sources: custom usage sources against the simulator's usage
# service (README's worked example): /metrics/api-usage (usage per day and
# API-key purpose, cursor pages, bearer) and /api-keys (per-key totals,
# page numbers or has_more, a named header or a query parameter), with
# Unix and RFC 3339 windows.  Checks exact totals, re-collection in place,
# the faults of the built-in providers (429 + Retry-After, 500, malformed
# JSON, 401, a mapping function that raises), that the mapping function
# runs as the named role in a security-restricted operation (never as a
# superuser, refused when its role or function turn unsafe), hostile pages
# failing cleanly, and that the secrets reach no log, activity or table.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/worker_lib.sh"
start_sim
use_sim
SECRET_A=svc-bearer-4f1d9c2e7a
SECRET_B=svc-header-88b2e0d4c1
SECRET_C=svc-query-2c7e5a9f03

wq >/dev/null <<'SQL'
SELECT llm_usage.create_tenant('svc_org', 'pro'), llm_usage.create_tenant('team_checkout', 'pro'),
       llm_usage.create_tenant('team_search', 'pro');
DROP SCHEMA IF EXISTS usage_maps CASCADE;
DROP ROLE IF EXISTS usage_mapper;
CREATE ROLE usage_mapper NOLOGIN;
CREATE SCHEMA usage_maps;
GRANT USAGE ON SCHEMA usage_maps TO usage_mapper;
-- /metrics/api-usage: one row per UTC day and API-key purpose
CREATE FUNCTION usage_maps.api_usage(page jsonb, source_id bigint)
RETURNS SETOF llm_usage.usage_source_row
LANGUAGE sql STABLE AS $$
    SELECT u->>'purpose',
           (u->>'date')::date::timestamp AT TIME ZONE 'UTC',
           ((u->>'date')::date + 1)::timestamp AT TIME ZONE 'UTC',
           'requests', (u->>'requests')::numeric, 'requests', (u->>'cost')::numeric
      FROM jsonb_array_elements(page->'usage') u
$$;
-- /api-keys: per key, its total over the period the page is for
CREATE FUNCTION usage_maps.api_keys(page jsonb, source_id bigint)
RETURNS SETOF llm_usage.usage_source_row
LANGUAGE sql STABLE AS $$
    SELECT k->>'id', (page->'period'->>'from')::timestamptz, (page->'period'->>'to')::timestamptz,
           'requests', (k->>'total_requests')::numeric, 'requests', NULL::numeric
      FROM jsonb_array_elements(page->'keys') k
$$;
-- what the mapping function's session looks like
CREATE TABLE usage_maps.seen (who text, session_who text, super boolean, path text, set_role text,
                              temp_table text, window_from text, window_to text);
GRANT INSERT ON usage_maps.seen TO usage_mapper;
CREATE FUNCTION usage_maps.api_usage_watched(page jsonb, source_id bigint)
RETURNS SETOF llm_usage.usage_source_row
LANGUAGE plpgsql AS $$
DECLARE
    v_role text := 'allowed';
    v_temp text := 'allowed';
BEGIN
    BEGIN
        EXECUTE 'SET ROLE postgres';
    EXCEPTION WHEN OTHERS THEN v_role := SQLERRM;
    END;
    BEGIN
        EXECUTE 'CREATE TEMP TABLE mapper_tmp (x int)';
    EXCEPTION WHEN OTHERS THEN v_temp := SQLERRM;
    END;
    INSERT INTO usage_maps.seen
    VALUES (current_user, session_user, (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
            current_setting('search_path'), v_role, v_temp,
            current_setting('llm_usage.source_window_from'), current_setting('llm_usage.source_window_to'));
    RETURN QUERY SELECT * FROM usage_maps.api_usage(page, source_id);
END
$$;
CREATE FUNCTION usage_maps.raises(page jsonb, source_id bigint)
RETURNS SETOF llm_usage.usage_source_row
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'mapping refused: page has % usage rows', jsonb_array_length(page->'usage');
END
$$;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA usage_maps TO usage_mapper;
SQL
echo "registered a mapping role (NOLOGIN, no privileges but its functions) and 4 mapping functions"

A=$(bind_call "SELECT llm_usage.add_usage_source('svc_usage', 'svc_org', '$SIM', '/metrics/api-usage?from={from}&to={to}',
        'usage_maps.api_usage(jsonb,bigint)', 'usage_mapper', auth => 'bearer', secret => :key,
        pagination => '{\"type\": \"cursor\", \"cursor_path\": \"meta.next_cursor\", \"param\": \"cursor\"}')" \
        "$SECRET_A" -d "$WDB")
[[ $A == 0 ]] || fail "could not register source A"
B=$(bind_call "SELECT llm_usage.add_usage_source('svc_keys', 'svc_org', '$SIM', '/api-keys?from={from}&to={to}&per_page=2',
        'usage_maps.api_keys(jsonb,bigint)', 'usage_mapper', time_format => 'unix', auth => 'header',
        auth_name => 'X-Api-Key', secret => :key, per_day => true,
        pagination => '{\"type\": \"page_number\", \"items_path\": \"keys\"}')" "$SECRET_B" -d "$WDB")
[[ $B == 0 ]] || fail "could not register source B"
C=$(bind_call "SELECT llm_usage.add_usage_source('svc_keys_q', 'svc_org', '$SIM', '/api-keys?from={from}&to={to}&per_page=3',
        'usage_maps.api_keys(jsonb,bigint)', 'usage_mapper', auth => 'query', auth_name => 'api_key',
        secret => :key, per_day => true, pagination => '{\"type\": \"has_more\"}')" "$SECRET_C" -d "$WDB")
[[ $C == 0 ]] || fail "could not register source C"
D=$(bind_call "SELECT llm_usage.add_usage_source('svc_usage_1p', 'svc_org', '$SIM', '/metrics/api-usage?from={from}&to={to}&limit=31',
        'usage_maps.api_usage(jsonb,bigint)', 'usage_mapper', time_format => 'unix', auth => 'bearer',
        secret => :key)" "$SECRET_A" -d "$WDB")
[[ $D == 0 ]] || fail "could not register source D"
read -r SA SB SC SD <<<"$(wq -c "SELECT string_agg(id::text, ' ' ORDER BY id) FROM llm_usage.usage_sources")"
echo "sources: api-usage/bearer/cursor $SA, api-keys/header/page-number/unix/per-day $SB, api-keys/query/has_more $SC, api-usage/one page $SD"
wq -c "SELECT llm_usage.attribute_source_usage($SA, 'checkout', 'team_checkout'),
              llm_usage.attribute_source_usage($SA, 'search', 'team_search'),
              llm_usage.attribute_source_usage($SB, 'key_03', 'team_search')" >/dev/null

collect() {     # collect SOURCE FROM TO: queue, wait, print the status
    local r
    r=$(wq -c "SELECT llm_usage.collect_source_now($1, '$2', '$3')")
    wait_run "$r" 60
}
expected() { curl -sf "$SIM/_sim/custom_expected?key=$1&from=$2&to=$3"; }
jget() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

# 1. exact totals
for s in $SA $SB $SC $SD; do
    st=$(collect "$s" 2026-10-01 2026-10-05)
    [[ $st == succeeded ]] || fail "source $s: run $st: $(wq -c "SELECT error FROM llm_usage.collector_runs WHERE source_id = $s ORDER BY run_id DESC LIMIT 1")"
done
EA=$(expected $SECRET_A 2026-10-01 2026-10-05)
EB=$(expected $SECRET_B 2026-10-01 2026-10-05)
EC=$(expected $SECRET_C 2026-10-01 2026-10-05)
got_a=$(wq -c "SELECT count(*) || ' ' || sum(quantity) || ' ' || sum(cost_usd) FROM llm_usage.custom_usage WHERE source_id = $SA")
want_a="$(jget 'd["usage_rows"]' <<<"$EA") $(jget 'd["requests"]' <<<"$EA") $(jget 'd["cost"]' <<<"$EA")"
echo "api-usage (cursor pages): rows, requests, cost = $got_a; the service: $want_a"
[[ $got_a == "$want_a" ]] || fail "source A totals differ"
got_d=$(wq -c "SELECT count(*) || ' ' || sum(quantity) || ' ' || sum(cost_usd) FROM llm_usage.custom_usage WHERE source_id = $SD")
[[ $got_d == "$want_a" ]] || fail "source D (one page, unix) totals differ: $got_d"
for p in checkout search support; do
    g=$(wq -c "SELECT sum(quantity) FROM llm_usage.custom_usage WHERE source_id = $SA AND attribution = '$p'")
    w=$(jget "d['by_purpose']['$p']" <<<"$EA")
    [[ $g == "$w" ]] || fail "purpose $p: $g, want $w"
done
got_b=$(wq -c "SELECT string_agg(attribution || '=' || q, ' ' ORDER BY attribution) FROM
                 (SELECT attribution, sum(quantity) q FROM llm_usage.custom_usage WHERE source_id = $SB GROUP BY 1) x")
want_b=$(jget "' '.join('%s=%d' % kv for kv in sorted(d['by_key'].items()))" <<<"$EB")
echo "api-keys (page numbers, per day, header): $got_b; the service: $want_b"
[[ $got_b == "$want_b" ]] || fail "source B per-key totals differ"
got_c=$(wq -c "SELECT string_agg(attribution || '=' || q, ' ' ORDER BY attribution) FROM
                 (SELECT attribution, sum(quantity) q FROM llm_usage.custom_usage WHERE source_id = $SC GROUP BY 1) x")
want_c=$(jget "' '.join('%s=%d' % kv for kv in sorted(d['by_key'].items()))" <<<"$EC")
[[ $got_c == "$want_c" ]] || fail "source C (query auth, has_more) per-key totals differ: $got_c vs $want_c"
[[ $(wq -c "SELECT count(*) FROM llm_usage.custom_usage WHERE source_id = $SB") == 25 ]] || fail "source B: not one row per key and day"
tenants=$(wq -c "SELECT string_agg(DISTINCT tenant_id || ':' || attributed_by, ' ' ORDER BY tenant_id || ':' || attributed_by) FROM llm_usage.custom_usage WHERE source_id IN ($SA, $SB)")
echo "tenants and why: $tenants"
[[ $tenants == "svc_org:source team_checkout:mapping team_search:mapping" ]] || fail "attribution: $tenants"
reqs=$(curl -sf "$SIM/_sim/requests" | python3 -c "
import json,sys
r=[x for x in json.load(sys.stdin) if x['path'] in ('/metrics/api-usage','/api-keys')]
print(len(r), sum(1 for x in r if 'cursor=' in x['query']), sum(1 for x in r if 'page=' in x['query']),
      sum(1 for x in r if 'api_key=' in x['query']), sum(1 for x in r if not x['auth_ok']))")
echo "requests to the service: total, with a cursor, with a page number, with the key as query parameter, refused: $reqs"
read -r n_all n_cur n_page n_q n_bad <<<"$reqs"
[[ $n_cur -ge 2 && $n_page -ge 10 && $n_q -ge 5 && $n_bad == 0 ]] || fail "pagination or authentication not as registered"

# 2. re-collecting the same window updates in place
before=$(wq -c "SELECT count(*) || '/' || sum(quantity) || '/' || sum(cost_usd) FROM llm_usage.custom_usage")
[[ $(collect "$SA" 2026-10-01 2026-10-05) == succeeded ]] || fail "re-collection failed"
after=$(wq -c "SELECT count(*) || '/' || sum(quantity) || '/' || sum(cost_usd) FROM llm_usage.custom_usage")
last=$(wq -c "SELECT max(run_id) FROM llm_usage.collector_runs WHERE source_id = $SA")
moved=$(wq -c "SELECT count(*) FROM llm_usage.custom_usage WHERE source_id = $SA AND run_id = $last")
echo "re-collected: rows/requests/cost $before -> $after; rows now of the new run: $moved"
[[ $before == "$after" && $moved == "$(jget 'd["usage_rows"]' <<<"$EA")" ]] || fail "re-collection duplicated or missed rows"

snapshot() { wq -c "SELECT md5(string_agg(source_id || attribution || bucket_start || metric || quantity || coalesce(cost_usd::text, '') || run_id, ',' ORDER BY usage_id)) FROM llm_usage.custom_usage"; }

# 3. faults of the built-in providers
sim_mode $SECRET_A 429 1 1
[[ $(collect "$SA" 2026-10-06 2026-10-06) == succeeded ]] || fail "a 429 with Retry-After was not survived"
att=$(wq -c "SELECT http_attempts FROM llm_usage.collector_runs WHERE source_id = $SA ORDER BY run_id DESC LIMIT 1")
sim_mode $SECRET_A 500 2
[[ $(collect "$SA" 2026-10-07 2026-10-07) == succeeded ]] || fail "two 500s were not survived"
att2=$(wq -c "SELECT http_attempts FROM llm_usage.collector_runs WHERE source_id = $SA ORDER BY run_id DESC LIMIT 1")
echo "429 + Retry-After: succeeded in $att requests; 2 x 500: succeeded in $att2 requests"
[[ $att == 2 && $att2 == 3 ]] || fail "retries not as expected"
snap=$(snapshot)
for mode in malformed wrong_type 401; do
    sim_mode $SECRET_A $mode
    st=$(collect "$SA" 2026-10-08 2026-10-09)
    err=$(wq -c "SELECT error FROM llm_usage.collector_runs WHERE source_id = $SA ORDER BY run_id DESC LIMIT 1")
    echo "  $mode: $st: $err"
    [[ $st == failed && $(snapshot) == "$snap" ]] || fail "$mode: the run did not fail cleanly"
    sim_mode $SECRET_A none
done
wq -c "SELECT llm_usage.set_usage_source_mapping($SA, 'usage_maps.raises(jsonb,bigint)', 'usage_mapper')" >/dev/null
st=$(collect "$SA" 2026-10-08 2026-10-09)
err=$(wq -c "SELECT error FROM llm_usage.collector_runs WHERE source_id = $SA ORDER BY run_id DESC LIMIT 1")
echo "  a mapping function that raises: $st: $err"
[[ $st == failed && $err == *"mapping refused: page has"* && $(snapshot) == "$snap" ]] || fail "the raising mapping function"
alerts=$(wq -c "SELECT count(*) FROM llm_usage.alerts WHERE kind = 'collection_failed' AND details->>'source_id' = '$SA'")
echo "collection_failed alerts for the source: $alerts"
[[ $alerts -ge 1 ]] || fail "no collection_failed alert"

# 4. who the mapping function runs as
wq -c "SELECT llm_usage.set_usage_source_mapping($SA, 'usage_maps.api_usage_watched(jsonb,bigint)', 'usage_mapper')" >/dev/null
[[ $(collect "$SA" 2026-10-08 2026-10-08) == succeeded ]] || fail "the watched mapping failed"
seen=$(wq -F ' | ' -c "SELECT DISTINCT who, session_who, super, path, set_role, temp_table, window_from, window_to FROM usage_maps.seen")
echo "the mapping function saw: $seen"
[[ $seen == "usage_mapper | postgres | f | pg_catalog, pg_temp | cannot set parameter \"role\" within security-definer function | cannot create temporary table within security-restricted operation | 2026-10-08T00:00:00Z | 2026-10-09T00:00:00Z" ]] \
    || fail "the mapping function did not run as usage_mapper in a security-restricted operation"
calls=$(wq -c "SELECT count(*) FROM usage_maps.seen")
for change in "ALTER ROLE usage_mapper SUPERUSER|SUPERUSER|ALTER ROLE usage_mapper NOSUPERUSER" \
              "ALTER ROLE usage_mapper BYPASSRLS|BYPASSRLS|ALTER ROLE usage_mapper NOBYPASSRLS" \
              "GRANT pg_write_all_data TO usage_mapper|pg_write_all_data|REVOKE pg_write_all_data FROM usage_mapper" \
              "ALTER FUNCTION usage_maps.api_usage_watched(jsonb, bigint) SECURITY DEFINER|SECURITY DEFINER|ALTER FUNCTION usage_maps.api_usage_watched(jsonb, bigint) SECURITY INVOKER" \
              "REVOKE EXECUTE ON FUNCTION usage_maps.api_usage_watched(jsonb, bigint) FROM usage_mapper, PUBLIC|may not execute|GRANT EXECUTE ON FUNCTION usage_maps.api_usage_watched(jsonb, bigint) TO usage_mapper"; do
    IFS='|' read -r do_sql want undo_sql <<<"$change"
    wq -c "$do_sql" >/dev/null
    st=$(collect "$SA" 2026-10-08 2026-10-08)
    err=$(wq -c "SELECT error FROM llm_usage.collector_runs WHERE source_id = $SA ORDER BY run_id DESC LIMIT 1")
    wq -c "$undo_sql" >/dev/null
    echo "  after \"$do_sql\": $st: $err"
    [[ $st == failed && $err == *"$want"* ]] || fail "the run did not refuse: $do_sql"
done
[[ $(wq -c "SELECT count(*) FROM usage_maps.seen") == "$calls" ]] || fail "the mapping function ran although refused"
echo "the refused runs never called the mapping function ($calls calls before and after)"
wq -c "SELECT llm_usage.set_usage_source_mapping($SA, 'usage_maps.api_usage(jsonb,bigint)', 'usage_mapper')" >/dev/null

# 5. hostile pages, to the cursor source and the has_more source
wq -c "ALTER SYSTEM SET llm_usage.max_pages = 40" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.5
kinds=$(python3 -c "
import sys; sys.path.insert(0, '$WORK'); import provider_sim; print(' '.join(provider_sim.CUSTOM_FUZZ_KINDS))")
snap=$(snapshot)
n=0
for k in $kinds; do
    for s in $SA $SC; do
        secret=$([[ $s == "$SA" ]] && echo $SECRET_A || echo $SECRET_C)
        curl -sf -X POST "$SIM/_sim/mode" -H 'Content-Type: application/json' \
            -d "{\"key\": \"$secret\", \"mode\": \"cfuzz\", \"kind\": \"$k\"}" >/dev/null
        st=$(collect "$s" 2026-10-10 2026-10-11)
        err=$(wq -c "SELECT error FROM llm_usage.collector_runs WHERE source_id = $s ORDER BY run_id DESC LIMIT 1")
        sim_mode "$secret" none
        printf '  %-22s source %s: %s: %.150s\n' "$k" "$s" "$st" "$err"
        [[ $st == failed && -n $err && $(snapshot) == "$snap" ]] || fail "hostile page $k (source $s) was not refused cleanly"
        n=$((n + 1))
    done
done
wq -c "ALTER SYSTEM RESET llm_usage.max_pages" -c "SELECT pg_reload_conf()" >/dev/null
[[ -n $(worker_pid) ]] || fail "the worker died"
echo "$n hostile pages: every run failed with a reason and changed nothing; the worker runs"

# 6. the secrets: only ciphertext, never in the log, activity or the runs
wq -c "SELECT id, name, auth, auth_name, secret_preview FROM llm_usage.usage_sources ORDER BY id" | sed 's/^/  /'
for s in $SECRET_A $SECRET_B $SECRET_C; do
    grep -q -- "$s" "$WORK/server.log" && fail "a secret is in the server log"
    [[ $(wq -c "SELECT count(*) FROM llm_usage.collector_runs WHERE error LIKE '%$s%'") == 0 ]] || fail "a secret is in a run's error"
    [[ $(wq -c "SELECT count(*) FROM llm_usage.provider_key_store WHERE position(convert_to('$s', 'UTF8') in key_ciphertext) > 0") == 0 ]] \
        || fail "a secret is stored in plaintext"
    [[ $(wq -c "SELECT count(*) FROM llm_usage.usage_source_store s WHERE s::text LIKE '%$s%'") == 0 ]] || fail "a secret is in the source table"
done
sim_mode $SECRET_C slow 1 2
r=$(wq -c "SELECT llm_usage.collect_source_now($SC, '2026-10-12', '2026-10-12')")
sleep 1
act=$(wq -c "SELECT coalesce(string_agg(query, ' / '), '') FROM pg_stat_activity WHERE backend_type = 'llm_usage collector' OR application_name = 'llm_usage collector'")
echo "the collector's activity during a query-authenticated request: $act"
[[ $act == *"custom source"* && $act != *"$SECRET_C"* && $act != *"api_key"* ]] || fail "pg_stat_activity: $act"
[[ $(wait_run "$r") == succeeded ]] || fail "the slow run failed"
echo "no secret in the server log, the runs, the source table, the activity; provider_key_store holds ciphertext"

# 7. the worker goes only where a superuser allows: with
#    llm_usage.source_url_prefixes no longer covering the simulator, a run
#    fails before any request, and registering there is refused
sim_requests() { curl -sf "$SIM/_sim/requests" | python3 -c "import json,sys; print(len(json.load(sys.stdin)))"; }
before=$(sim_requests)
wq -c "ALTER SYSTEM SET llm_usage.source_url_prefixes = 'https://usage.example.test'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
r=$(wq -c "SELECT llm_usage.collect_source_now($SC, '2026-10-12', '2026-10-12')")
st=$(wait_run "$r")
err=$(wq -c "SELECT error FROM llm_usage.collector_runs WHERE run_id = $r")
echo "a source outside llm_usage.source_url_prefixes: run $st: $err; requests made: $(( $(sim_requests) - before ))"
[[ $st == failed && $err == *"not allowed by llm_usage.source_url_prefixes"* && $(sim_requests) == "$before" ]] \
    || fail "the worker fetched a source outside llm_usage.source_url_prefixes"
out=$(wq -c "SELECT llm_usage.add_usage_source('elsewhere', 'svc_org', '$SIM', '/x?f={from}&t={to}', 'usage_maps.api_usage(jsonb,bigint)', 'usage_mapper')" 2>&1 || true)
echo "registering there: $out"
[[ $out == *"not allowed by llm_usage.source_url_prefixes"* ]] || fail "a source outside llm_usage.source_url_prefixes was registered"
wq -c "ALTER SYSTEM RESET llm_usage.source_url_prefixes" -c "SELECT pg_reload_conf()" >/dev/null

wq -c "SELECT count(llm_usage.deactivate_usage_source(id)) FROM llm_usage.usage_sources WHERE is_active" >/dev/null
echo "PASS"
