#!/usr/bin/env bash
# t_collect_queued: collect_now() in a database that is not the collector's
# (llm_usage.database) queues its runs, keeps them queued and says so, with
# a hint naming the function to call in the collector's database
# (llm_usage._wake_worker_for_runs, shared by collect_now and
# collect_source_now); nothing is collected there.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_queued
fresh_db "$DB"
out=$(psql_q -At -d "$DB" 2>&1 <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_tenant('queued', 'pro');
SELECT llm_usage.add_provider_key('queued', 'openai', 'sk-admin-queued-key-0001') IS NOT NULL;
SELECT llm_usage.collect_now() IS NOT NULL AS queued;
SELECT status || ' ' || count(*) FROM llm_usage.collector_runs GROUP BY status;
SQL
)
echo "$out" | sed 's/^/  /'
worker_db=$(psql_q -At -d "$DB" -c "SHOW llm_usage.database")
grep -qF "WARNING:  the llm_usage collector works in database \"$worker_db\", not in this one; these runs stay queued" <<<"$out" \
    || fail "no warning that the runs stay queued"
grep -qF "HINT:  Store keys and call collect_now() in the database named by llm_usage.database." <<<"$out" \
    || fail "no hint naming collect_now()"
sleep 1
test "$(psql_q -At -d "$DB" -c "SELECT string_agg(status, ',') FROM llm_usage.collector_runs")" == queued \
    || fail "the run did not stay queued"
echo "t_collect_queued: ok"
