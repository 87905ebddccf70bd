#!/usr/bin/env bash
# t_quota_import: a tenant's counters kept in the table are carried into
# its shared-memory entry when that is created, even when the first call
# is cancelled while it waits for them.
#  1. A first enforce_quota() cancelled (statement_timeout) while another
#     session holds the tenant's table rows takes no shared entry: the next
#     call, once the rows are free, starts from the table's figures.
#  2. The carried counters are stamped with the time they were carried
#     (updated_at), also those of slots the call did not consume.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_import
q() { psql_q -At -d "$DB" "$@"; }

fresh_db "$DB"
q -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('imp');
SELECT llm_usage.set_plan_quota('imp', 'api_calls', 100, 'month');
SELECT llm_usage.create_tenant('imp', 'imp', timezone => 'UTC');
-- counted in the table (as after pg_dump, or while shared memory was full)
INSERT INTO llm_usage.quota_counters_table (tenant_id, quota_type, period, period_start, used, updated_at)
VALUES ('imp', 'api_calls', 'month', date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 40, now() - interval '5 days'),
       ('imp', 'tokens', 'month', date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', 7, now() - interval '5 days');
SQL

# 1. another session holds the rows; the first call times out waiting for them
as_user "$PGBIN/psql" -X -q -d "$DB" -c "BEGIN" \
    -c "SELECT 1 FROM llm_usage.quota_counters_table WHERE tenant_id = 'imp' FOR UPDATE" \
    -c "SELECT pg_sleep(3)" -c "COMMIT" >/dev/null &
holder=$!
for _ in $(seq 1 50); do
    locked=$(q -c "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3)' AND datname = '$DB'")
    [[ $locked == 1 ]] && break
    sleep 0.1
done
[[ $locked == 1 ]] || fail "the session holding the rows did not start"
err=$(q -v VERBOSITY=verbose -c "SET statement_timeout = '300ms'" \
        -c "SELECT allowed FROM llm_usage.enforce_quota('imp', 'api_calls', 1)" 2>&1 || true)
echo "first call while the rows are held: $(grep -o 'ERROR:  [0-9A-Z]*: [a-z ]*' <<<"$err" | head -1)"
grep -q "ERROR:  57014" <<<"$err" || fail "the first call was not cancelled by statement_timeout: $err"
entries=$(q -c "SELECT count(*) FROM llm_usage._shm_counters('imp')")
echo "shared counters of the tenant after the cancelled call: $entries"
[[ $entries == 0 ]] || fail "the cancelled call left a shared entry without the table's counters"
wait "$holder"

got=$(q -c "SELECT used FROM llm_usage.enforce_quota('imp', 'api_calls', 1)")
echo "next call: used $got (40 in the table + 1)"
[[ $got == 41 ]] || fail "the table's counters were not carried into the shared entry (used $got, want 41)"

# 2. updated_at of the carried slots: when they were carried, not never
stamp=$(q -c "SELECT updated_at > now() - interval '1 minute' FROM llm_usage._shm_counters('imp') WHERE quota_type = 'tokens'")
echo "tokens counter carried, used $(q -c "SELECT used FROM llm_usage._shm_counters('imp') WHERE quota_type = 'tokens'"), updated_at recent: $stamp"
[[ $stamp == t ]] || fail "a carried counter has no updated_at"

psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
