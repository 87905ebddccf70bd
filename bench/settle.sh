#!/usr/bin/env bash
# bench/settle.sh — the two hot paths of reserve, then settle (issue 11),
# and the prepaid admission check (issue 12), as root:
#
#   bash bench/settle.sh          (about 2 minutes on 2 cores with the defaults)
#
# Builds and installs the extension, starts a throwaway cluster with the
# library preloaded (test/lib.sh) and runs, in interleaved rounds so that
# machine noise hits all alike, 8 pgbench clients (prepared) of:
#
#   select1        SELECT 1, the baseline of the admission checks
#   insert         a bare INSERT of a call's columns into a table with
#                  usage_events' partitioning and indexes (as bench/run.sh):
#                  the baseline of the tracking calls
#   reserve        enforce_quota(t, 'tokens', 500, request_id): a
#                  reservation (request ids drawn from 2,000, so that the
#                  open reservations stay bounded)
#   track          track_usage of a call without a request id (settles
#                  what it used, nothing to release)
#   reserve_track  enforce_quota(..., request_id) then track_usage(...,
#                  request_id) of the same new request, one transaction
#                  each: a full reserve-and-settle cycle (two calls)
#   credits        enforce_quota(t, 'credits', 0.01) of a prepaid tenant
#                  (bench/credits.sh measures the credits check alone)
#
# and prints medians, the spread (min..max) of the rounds and ratios to
# the baseline.  Settings: BENCH_SECONDS (per run, 6), BENCH_ROUNDS (3).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
. "$ROOT/bench/lib.sh"
[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and creates the test user)"

SECS=${BENCH_SECONDS:-6}
ROUNDS=${BENCH_ROUNDS:-3}
DB=llm_usage_sbench

install_deps
build_install
ensure_user
start_cluster
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM SET llm_usage.aggregate_interval = '1h'"
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -m fast -w reload >/dev/null

B="$WORK/sbench"
mkdir -p "$B"
chown "$TEST_USER" "$B"
q() { psql_q -At -d "$DB" "$@"; }
fresh_db "$DB"
q -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('bench');
SELECT llm_usage.set_plan_quota('bench', 'tokens', 1000000000000, 'day');
SELECT llm_usage.set_plan_quota('bench', 'api_calls', 1000000000, 'day');
SELECT llm_usage.set_plan_quota('bench', 'cost_usd', 1000000000, 'month');
SELECT llm_usage.create_tenant('bt', 'bench');
SELECT llm_usage._ensure_partitions(now()::date - 1, now()::date + 31);
-- the bare-INSERT baseline (as bench/run.sh): usage_events' columns,
-- defaults, checks, partitioning and per-partition indexes
CREATE TABLE llm_usage.bench_events (LIKE llm_usage.usage_events INCLUDING ALL) PARTITION BY RANGE (occurred_at);
CREATE TABLE llm_usage.bench_events_now PARTITION OF llm_usage.bench_events
    FOR VALUES FROM (date_trunc('month', now())) TO (date_trunc('month', now()) + interval '1 month');
CREATE TABLE llm_usage.bench_events_default PARTITION OF llm_usage.bench_events DEFAULT;
SELECT llm_usage._partition_indexes('bench_events_now');
SELECT llm_usage._partition_indexes('bench_events_default');
SQL
has_credits=$(q -c "SELECT count(*) FROM pg_proc WHERE proname = 'set_prepaid_billing'")
if [[ $has_credits -eq 1 ]]; then
    q -o /dev/null -c "SELECT llm_usage.create_tenant('bp', 'bench')" \
        -c "SELECT llm_usage.set_prepaid_billing('bp', true)" \
        -c "SELECT llm_usage.grant_credits('bp', 1000000000, 'bench')"
fi

script() { printf '%s\n' "$2" >"$B/$1.sql"; chown "$TEST_USER" "$B/$1.sql"; }
script select1 'SELECT 1;'
script insert "INSERT INTO llm_usage.bench_events (tenant_id, event_type, model, provider, input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, cost_usd, price_id, latency_ms, status_code, result, metadata, request_id, occurred_at) VALUES ('bt', 'chat', 'gpt-4o', 'openai', 400, 100, 0, 0, 0.002, 1, 300, 200, 'success', '{}', NULL, now());"
script reserve '\set k random(1, 2000)
SELECT allowed FROM llm_usage.enforce_quota('"'bt'"', '"'tokens'"', 500, '"'k'"' || :k);'
script track "SELECT llm_usage.track_usage('bt', 'chat', 'gpt-4o', 400, 100);"
script reserve_track '\set r random(1, 9000000000000000)
SELECT allowed FROM llm_usage.enforce_quota('"'bt'"', '"'tokens'"', 500, '"'r'"' || :client_id || '"'-'"' || :r);
SELECT llm_usage.track_usage('"'bt'"', '"'chat'"', '"'gpt-4o'"', 400, 100, request_id => '"'r'"' || :client_id || '"'-'"' || :r);'
script credits "SELECT allowed FROM llm_usage.enforce_quota('bp', 'credits', 0.01);"
scenarios="select1 insert reserve track reserve_track"
[[ $has_credits -eq 1 ]] && scenarios="$scenarios credits"

rounds $scenarios

base_sel=$(stat select1 | median)
base_ins=$(stat insert | median)
echo
echo "scenario | median tps | rounds min..max | ratio to baseline"
for s in $scenarios; do
    m=$(stat "$s" | median)
    lo=$(stat "$s" | sort -n | head -1)
    hi=$(stat "$s" | sort -n | tail -1)
    case $s in
        select1|reserve|credits) base=$base_sel; bn="SELECT 1" ;;
        *) base=$base_ins; bn="INSERT" ;;
    esac
    # reserve_track is two calls a transaction: calls per second are twice its tps
    awk -v s="$s" -v m="$m" -v lo="$lo" -v hi="$hi" -v b="$base" -v bn="$bn" \
        'BEGIN { printf "%s | %.0f | %.0f..%.0f | %.2f x %s%s\n", s, m, lo, hi, m / b, bn, (s == "reserve_track") ? " (per pair of calls)" : "" }'
done
echo "open reservations left: $(q -c "SELECT entries FROM llm_usage._shm_status()") tenants in shared memory"
