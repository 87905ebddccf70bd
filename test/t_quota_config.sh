#!/usr/bin/env bash
# t_quota_config: enforce_quota() caches each tenant's limits and access in
# every session; a change made in another session (override, plan quota,
# the tenant's plan, access, a price) applies to the very next call of a
# session that has them cached.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_cfg
fresh_db "$DB"
psql_q -d "$DB" -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('p10');
SELECT llm_usage.set_plan_quota('p10', 'api_calls', 10, 'day');
SELECT llm_usage.create_plan('p5');
SELECT llm_usage.set_plan_quota('p5', 'api_calls', 5, 'day');
SELECT llm_usage.create_tenant('cfg', 'p10');
CREATE ROLE cfg_app LOGIN IN ROLE llm_usage_app;
SELECT llm_usage.grant_tenant_access('cfg_app', 'cfg');
SELECT llm_usage.set_model_price('openai', 'cfg-model', 1, 2);
SQL

other="$PGBIN/psql -X -q -At -d $DB -c"
script="$WORK/cfg_session.sql"
cat >"$script" <<SQL
\\pset format unaligned
\\pset tuples_only on
\\set VERBOSITY terse
SET ROLE cfg_app;
SELECT 'plan 10: ' || quota_limit FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
\\! $other "SELECT llm_usage.set_custom_quota('cfg', 'api_calls', 3, 'day')" >/dev/null
SELECT 'override 3: ' || quota_limit FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
\\! $other "SELECT llm_usage.clear_custom_quota('cfg', 'api_calls', 'day')" >/dev/null
SELECT 'override cleared: ' || quota_limit FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
\\! $other "SELECT llm_usage.set_plan_quota('p10', 'api_calls', 20, 'day')" >/dev/null
SELECT 'plan quota 20: ' || quota_limit FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
\\! $other "SELECT llm_usage.update_tenant('cfg', 'p5')" >/dev/null
SELECT 'moved to plan 5: ' || allowed || ' ' || quota_limit FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
SELECT 'price 1/2: ' || llm_usage.calculate_cost('cfg-model', 1000000, 1000000);
\\! $other "SELECT llm_usage.set_model_price('openai', 'cfg-model', 3, 4)" >/dev/null
SELECT 'price 3/4: ' || llm_usage.calculate_cost('cfg-model', 1000000, 1000000);
\\! $other "SELECT llm_usage.revoke_tenant_access('cfg_app', 'cfg')" >/dev/null
SELECT 'after revoke: ' || allowed FROM llm_usage.enforce_quota('cfg', 'api_calls', 1);
SQL
chown "$TEST_USER" "$script"
out=$(as_user "$PGBIN/psql" -X -q -d "$DB" -f "$script" 2>&1 || true)
echo "$out"
expected="plan 10: 10
override 3: 3
override cleared: 10
plan quota 20: 20
moved to plan 5: true 5
price 1/2: 3
price 3/4: 7
psql:$script:18: ERROR:  permission denied for tenant \"cfg\""
[[ "$out" == "$expected" ]] || fail "a change was not seen by the next call of a session"
psql_q -d postgres -c "DROP DATABASE $DB" -c "DROP ROLE cfg_app" >/dev/null
echo "PASS"
