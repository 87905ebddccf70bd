#!/usr/bin/env bash
# t_no_preload: on a server that does not have llm_usage in
# shared_preload_libraries, CREATE EXTENSION and the SQL API work: the
# library loads into the backend without a FATAL, quotas are counted in the
# counters' table, provider keys are sealed (the master key file is read per
# operation), build_info() says the library is not preloaded, and what needs
# the worker says so.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
NP="$WORK/nopreload"
port=$((PGPORT + 3))
as_user mkdir -p "$NP"
as_user "$PGBIN/initdb" -D "$NP/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$NP/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$NP'
port = $port
fsync = off
llm_usage.master_key_file = '$WORK/master.key'
llm_usage.quota_max_tenants = 500
CONF
stop_np() { as_user "$PGBIN/pg_ctl" -D "$NP/data" -m immediate -w stop >/dev/null 2>&1 || true; }
trap stop_np EXIT
as_user "$PGBIN/pg_ctl" -D "$NP/data" -l "$NP/server.log" -w -t 60 start >/dev/null
npq() { as_user "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$NP" -p "$port" -U postgres -d postgres "$@"; }

npq -c "CREATE EXTENSION llm_usage" -c "SELECT llm_usage.create_tenant('np', 'trial')" >/dev/null
got=$(npq -c "SELECT version FROM llm_usage.build_info() WHERE component = 'preloaded'")
echo "build_info: preloaded = $got"
[[ $got == off ]] || fail "build_info does not say the library is not preloaded"
got=$(npq -c "SELECT string_agg(CASE WHEN e.allowed THEN 't' ELSE 'f' END, ',' ORDER BY i) FROM generate_series(1, 12) i,
                     LATERAL llm_usage.enforce_quota('np', 'api_calls', i - i + 1) e")
echo "12 enforce_quota calls against the trial plan's 10 a minute: $got"
[[ $got == "t,t,t,t,t,t,t,t,t,t,f,f" ]] || fail "the table path did not admit exactly 10"
got=$(npq -c "SELECT count(*) || ' ' || max(used) FROM llm_usage.quota_counters_table
               WHERE tenant_id = 'np' AND quota_type = 'api_calls'")
echo "counters in quota_counters_table (count, highest used): $got"
[[ $got == "2 10" ]] || fail "the counters are not rows of the table"
got=$(npq -c "SELECT llm_usage.track_usage('np', 'chat', 'gpt-4o', 1000, 100) > 0" \
          -c "SELECT cost_usd FROM llm_usage.usage_events WHERE tenant_id = 'np'" | paste -sd'|')
echo "track_usage and its cost: $got"
[[ $got == "t|0.0035" ]] || fail "track_usage on a server without the library preloaded"
got=$(npq -c "SELECT llm_usage.add_provider_key('np', 'openai', 'sk-admin-nopreload-0000000001') > 0" \
          -c "SELECT key_preview FROM llm_usage.provider_keys" | paste -sd'|')
echo "a provider key sealed without preloading: $got"
[[ $got == "t|…0001" ]] || fail "add_provider_key without preloading"
got=$(npq -c "SELECT llm_usage.collect_now()" 2>&1 || true)
echo "collect_now without the worker: ${got%%$'\n'*}"
[[ $got == *ERROR* ]] || fail "collect_now did not refuse without the worker"
grep -q FATAL "$NP/server.log" && fail "the server log has a FATAL: $(grep -m1 FATAL "$NP/server.log")"
echo "PASS"
