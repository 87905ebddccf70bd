#!/usr/bin/env bash
# t_credits_path_switch: a prepaid tenant admitted on the table path (shared
# memory full) and then given a shared entry (another tenant deleted) keeps
# what its table-path admissions hold (README "Prepaid credits").
#
# A second cluster with llm_usage.quota_max_tenants = 100: 100 tenants take
# every entry, a prepaid tenant with 10 USD is admitted 9 USD on the table
# path (credit_holds), one tenant is deleted (its entry given back at
# commit), and the prepaid tenant's next admission of 9 USD (now in shared
# memory) must be denied: before the fix its shared mirror started with
# nothing held and admitted it, 18 USD admitted against 10 (two calls of
# 7.5 USD left 5 USD uncovered).  Then a 0.5 USD admission is allowed, the
# mirror equals the table, and the table-path hold is held until it expires.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
PS="$WORK/pathswitch"
port=$((PGPORT + 5))
as_user mkdir -p "$PS"
as_user "$PGBIN/initdb" -D "$PS/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
cat >>"$PS/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$PS'
port = $port
fsync = off
shared_preload_libraries = 'llm_usage'
max_worker_processes = 8
llm_usage.master_key_file = '$WORK/master.key'
llm_usage.quota_max_tenants = 100
log_min_messages = error
CONF
stop_ps() { as_user "$PGBIN/pg_ctl" -D "$PS/data" -m immediate -w stop >/dev/null 2>&1 || true; }
trap stop_ps EXIT
as_user "$PGBIN/pg_ctl" -D "$PS/data" -l "$PS/server.log" -w -t 60 start >/dev/null
psq() { PGOPTIONS="-c client_min_messages=error" as_user "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PS" -p "$port" -U postgres -d postgres "$@"; }

psq -o /dev/null 2>/dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.set_model_price('openai', 'switch-model', 2.5, 10);
SELECT count(llm_usage.create_tenant('f' || i, 'enterprise')) FROM generate_series(1, 100) i;
SELECT count(*) FROM generate_series(1, 100) i, llm_usage.enforce_quota('f' || i, 'tokens', 1);
SELECT llm_usage.create_tenant('p', 'enterprise');
SELECT llm_usage.set_prepaid_billing('p', true);
SELECT llm_usage.grant_credits('p', 10, 'start');
SQL
got=$(psq -c "SELECT entries || '/' || max_entries FROM llm_usage._shm_status()")
echo "  shared entries in use: $got"
[[ $got == 100/100 ]] || fail "the shared entries are not all in use ($got)"
got=$(psq -c "SELECT allowed || ' ' || used FROM llm_usage.enforce_quota('p', 'credits', 9, 'first')" \
          -c "SELECT count(*) FROM llm_usage.credit_holds WHERE tenant_id = 'p'" \
          -c "SELECT llm_usage._shm_credits('p') IS NULL" | paste -sd'|')
echo "  table path (shared memory full): admitted, held | table holds | not in shared memory: $got"
[[ $got == "true 9|1|t" ]] || fail "the first admission did not take the table path ($got)"
psq -c "DELETE FROM llm_usage.tenants WHERE tenant_id = 'f1'"
got=$(psq -c "SELECT allowed FROM llm_usage.enforce_quota('p', 'credits', 9, 'second')" \
          -c "SELECT (llm_usage._shm_credits('p')).held" | paste -sd'|')
echo "  after an entry was given back: a second 9 USD admission allowed | held in shared memory: $got"
[[ $got == "f|9" ]] || fail "the shared mirror does not hold the table path's 9 USD ($got)"
got=$(psq -c "SELECT allowed FROM llm_usage.enforce_quota('p', 'credits', 0.5, 'third')" \
          -c "SELECT b.balance = (s).balance AND (s).held = 9.5 FROM llm_usage.credit_balances b, llm_usage._shm_credits('p') s WHERE b.tenant_id = 'p'" | paste -sd'|')
echo "  a 0.5 USD admission allowed | mirror = table, 9.5 held: $got"
[[ $got == "t|t" ]] || fail "the shared mirror after the switch is wrong ($got)"
echo "t_credits_path_switch: ok"
