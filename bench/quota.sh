#!/usr/bin/env bash
# bench/quota.sh — the quota hot path under abuse and churn (issue 10), as root:
#
#   bash bench/quota.sh          (about 5 minutes on 2 cores with the defaults)
#
# Builds and installs the extension, starts a throwaway cluster with the
# library preloaded (test/lib.sh) and runs, in interleaved rounds so that
# machine noise hits all alike, 8 pgbench clients (prepared) of:
#
#   select1      SELECT 1, the baseline of every ratio
#   floor        SELECT * FROM pg_walfile_name_offset(...): a built-in C
#                function with OUT columns in FROM, what the executor
#                alone costs such a call (the ceiling of any enforce_quota)
#   denied       enforce_quota of one tenant whose limit (10 a day) is
#                spent: every call denied
#   verdict      the denied call selecting only `allowed` (no numeric
#                and timestamp output)
#   hot          enforce_quota of one tenant, every call admitted
#   spread       enforce_quota over 1,000 tenants, admitted
#   tenk         enforce_quota over 10,000 tenants, nothing changing
#   churn        enforce_quota over 10,000 tenants while another session
#                commits a plan change every second: update_tenant() moves
#                a tenant to another plan
#   churn_plan   the same while the plan change is set_plan_quota() on the
#                plan all 10,000 tenants are on
#
# and prints medians, the spread of the rounds, ratios to SELECT 1, and
# the audit events the denials left (at most one per tenant, quota and
# minute is the target).  Settings: BENCH_SECONDS (per run, 8),
# BENCH_ROUNDS (3).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
. "$ROOT/bench/lib.sh"
[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and creates the test user)"

SECS=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
DB=llm_usage_qbench
START=$(date +%s)

install_deps
build_install
ensure_user
start_cluster
# room for every tenant of the benchmark in shared memory
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM SET llm_usage.aggregate_interval = '1h'" \
    -c "ALTER SYSTEM SET llm_usage.quota_max_tenants = 20000"
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -m fast -w restart >/dev/null

B="$WORK/qbench"
mkdir -p "$B"
chown "$TEST_USER" "$B"
q() { psql_q -At -d "$DB" "$@"; }
fresh_db "$DB"

log "loading 11,002 tenants"
q -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('bench');
SELECT llm_usage.set_plan_quota('bench', 'api_calls', 1000000000, 'day');
SELECT llm_usage.set_plan_quota('bench', 'api_calls', 10000000000, 'month');
SELECT llm_usage.set_plan_quota('bench', 'tokens', 1000000000000, 'month');
SELECT llm_usage.create_plan('bench2');
SELECT llm_usage.set_plan_quota('bench2', 'api_calls', 2000000000, 'day');
SELECT llm_usage.create_plan('tiny');
SELECT llm_usage.set_plan_quota('tiny', 'api_calls', 10, 'day');
-- one INSERT, not a create_tenant() call (and its audit event) per tenant
INSERT INTO llm_usage.tenants (tenant_id, plan, timezone)
SELECT 'b' || i, 'bench', (ARRAY['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo'])[1 + i % 4]
  FROM generate_series(1, 1000) i;
INSERT INTO llm_usage.tenants (tenant_id, plan, timezone)
SELECT 'c' || i, 'bench', (ARRAY['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo'])[1 + i % 4]
  FROM generate_series(1, 10000) i;
INSERT INTO llm_usage.tenants (tenant_id, plan) VALUES ('hot', 'bench'), ('flood', 'tiny');
SQL

cat >"$B/select1.sql" <<'SQL'
SELECT 1;
SQL
cat >"$B/denied.sql" <<'SQL'
SELECT * FROM llm_usage.enforce_quota('flood', 'api_calls', 1);
SQL
cat >"$B/floor.sql" <<'SQL'
SELECT * FROM pg_catalog.pg_walfile_name_offset('0/16B3748');
SQL
cat >"$B/verdict.sql" <<'SQL'
SELECT allowed FROM llm_usage.enforce_quota('flood', 'api_calls', 1);
SQL
cat >"$B/hot.sql" <<'SQL'
SELECT * FROM llm_usage.enforce_quota('hot', 'api_calls', 1);
SQL
cat >"$B/spread.sql" <<'SQL'
\set t random(1, 1000)
SELECT * FROM llm_usage.enforce_quota('b' || :t, 'api_calls', 1);
SQL
cat >"$B/churn.sql" <<'SQL'
\set t random(1, 10000)
SELECT * FROM llm_usage.enforce_quota('c' || :t, 'api_calls', 1);
SQL
cp "$B/churn.sql" "$B/churn_plan.sql"
cp "$B/churn.sql" "$B/tenk.sql"
chown "$TEST_USER" "$B"/*.sql

changer() {     # changer KIND: one plan change committed every second until killed
    local i=0
    while :; do
        i=$((i + 1))
        if [[ $1 == churn ]]; then
            q -o /dev/null -c "SELECT llm_usage.update_tenant('c$(( (i * 7919) % 10000 + 1 ))', CASE WHEN $i % 2 = 0 THEN 'bench' ELSE 'bench2' END)"
        else
            q -o /dev/null -c "SELECT llm_usage.set_plan_quota('bench', 'tokens', 100000000000 + $i, 'month')"
        fi
        echo x >>"$B/changes.$1"
        sleep 1
    done
}
tps() {     # tps SCRIPT: transactions per second of one run, 8 clients
    local pid=
    if [[ $1 == churn* ]]; then
        changer "$1" &
        pid=$!
    fi
    as_user "$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -T "$SECS" -f "$B/$1.sql" "$DB" >"$B/$1.log" 2>&1 || true
    [[ -n $pid ]] && { kill "$pid"; wait "$pid" 2>/dev/null || true; }
    sed -nE 's/^tps = ([0-9.]+) .*/\1/p' "$B/$1.log"
}

log "warming up: every tenant's shared entry taken once"
q -o /dev/null -c "SELECT count(*) FROM llm_usage.tenants t, LATERAL llm_usage.enforce_quota(t.tenant_id, 'api_calls', 0) e WHERE t.plan <> 'tiny'"
for s in hot spread churn; do
    as_user "$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -T 2 -f "$B/$s.sql" "$DB" >/dev/null 2>&1
done
# the flood tenant's first 10 calls are admitted, every later one denied
denied_calls=-10

SCENARIOS="select1 floor denied verdict hot spread tenk churn churn_plan"
declare -A runs
for r in $(seq 1 "$ROUNDS"); do
    for s in $SCENARIOS; do
        t=$(tps "$s")
        runs[$s]+="$t "
        if [[ $s == denied || $s == verdict ]]; then
            denied_calls=$(( denied_calls + $(sed -nE 's/^number of transactions actually processed: ([0-9]+).*/\1/p' "$B/$s.log") ))
        fi
    done
    log "round $r: $(for s in $SCENARIOS; do printf '%s %s| ' "$s" "$(awk '{print $NF}' <<<"${runs[$s]}")"; done)"
done
declare -A med
declare -A spr
for s in $SCENARIOS; do
    med[$s]=$(tr ' ' '\n' <<<"${runs[$s]}" | grep . | median)
    spr[$s]=$(tr ' ' '\n' <<<"${runs[$s]}" | grep . | spread)
done

# what the denials left in the audit log (pending windows written first)
events_by_flood=$(q -c "SELECT count(*) FROM llm_usage.audit_events WHERE action = 'quota_exceeded'")
q -o /dev/null -c "SELECT llm_usage.flush_quota_denials()"
read -r events audited max_per_minute minutes < <(q -F ' ' -c "
    SELECT count(*), sum((details->>'denied_calls')::bigint),
           (SELECT max(n) FROM (SELECT count(*) AS n FROM llm_usage.audit_events a, jsonb_array_elements(a.details->'denied') d
                                 WHERE a.action = 'quota_exceeded'
                                 GROUP BY a.tenant_id, d->>'quota_type', d->>'period',
                                          date_trunc('minute', (a.details->>'first_at')::timestamptz)) x),
           count(DISTINCT date_trunc('minute', (details->>'first_at')::timestamptz))
      FROM llm_usage.audit_events WHERE action = 'quota_exceeded'")
changes_tenant=$(wc -l <"$B/changes.churn" 2>/dev/null || echo 0)
changes_plan=$(wc -l <"$B/changes.churn_plan" 2>/dev/null || echo 0)

r_denied=$(ratio "${med[denied]}" "${med[select1]}")
r_floor=$(ratio "${med[floor]}" "${med[select1]}")
r_verdict=$(ratio "${med[verdict]}" "${med[select1]}")
r_hot=$(ratio "${med[hot]}" "${med[select1]}")
r_spread=$(ratio "${med[spread]}" "${med[select1]}")
r_tenk=$(ratio "${med[tenk]}" "${med[select1]}")
r_churn=$(ratio "${med[churn]}" "${med[select1]}")
r_churn_plan=$(ratio "${med[churn_plan]}" "${med[select1]}")

cat <<TABLE

llm_usage quota benchmark — PostgreSQL $($PGBIN/postgres --version | awk '{print $3}'), $(nproc) cores, 8 pgbench clients, prepared protocol,
medians (and range) of $ROUNDS interleaved runs of ${SECS} s

| scenario | tps, median (range) | ratio to SELECT 1 | target | |
|---|---|---|---|---|
| SELECT 1 | ${med[select1]} (${spr[select1]}) | 1 | | |
| SELECT * FROM pg_walfile_name_offset(...), a built-in function with OUT columns | ${med[floor]} (${spr[floor]}) | $r_floor | | |
| enforce_quota, one tenant, every call denied | ${med[denied]} (${spr[denied]}) | $r_denied | >= 0.8 | $(pass "$r_denied >= 0.8") |
| enforce_quota, one tenant, every call denied, selecting only allowed | ${med[verdict]} (${spr[verdict]}) | $r_verdict | | |
| enforce_quota, one hot tenant admitted | ${med[hot]} (${spr[hot]}) | $r_hot | >= 0.8 | $(pass "$r_hot >= 0.8") |
| enforce_quota, 1,000 tenants | ${med[spread]} (${spr[spread]}) | $r_spread | >= 0.8 | $(pass "$r_spread >= 0.8") |
| enforce_quota, 10,000 tenants, nothing changed | ${med[tenk]} (${spr[tenk]}) | $r_tenk | | |
| enforce_quota, 10,000 tenants, a tenant's plan changed every second ($changes_tenant changes) | ${med[churn]} (${spr[churn]}) | $r_churn | >= 0.7 | $(pass "$r_churn >= 0.7") |
| enforce_quota, 10,000 tenants, their plan's quotas changed every second ($changes_plan changes) | ${med[churn_plan]} (${spr[churn_plan]}) | $r_churn_plan | >= 0.7 | $(pass "$r_churn_plan >= 0.7") |

audit of the denied runs: $denied_calls calls denied, $events quota_exceeded events over $minutes minute(s) ($events_by_flood written by the
denials themselves, the rest by the flush), counting $audited denied calls; at most $max_per_minute event(s) per tenant, quota and
minute (target <= 1: $(pass "$max_per_minute <= 1 and $audited == $denied_calls"))

runs (tps): $(for s in $SCENARIOS; do printf '%s %s; ' "$s" "${runs[$s]}"; done)
suite time: $(( $(date +%s) - START )) s
TABLE
