#!/usr/bin/env bash
# bench/credits.sh — the prepaid admission check (issue 12), as root:
#
#   bash bench/credits.sh          (about 1 minute on 2 cores with the defaults)
#
# Builds and installs the extension, starts a throwaway cluster with the
# library preloaded (test/lib.sh) and runs, in interleaved rounds so that
# machine noise hits all alike, 8 pgbench clients (prepared) of:
#
#   select1        SELECT 1, the baseline
#   credits        enforce_quota(t, 'credits', 0.01) of a prepaid tenant
#                  counted in shared memory (each admission holds its
#                  estimate until llm_usage.reservation_ttl)
#   credits_rid    the same with a request id drawn from 2,000, so that
#                  the open reservations stay bounded
#   credits_table  enforce_quota(t, 'credits', 0.01, request_id) of a
#                  prepaid tenant on the table path (an id over 255 bytes):
#                  for comparison, the path without shared memory
#
# and prints medians, the spread (min..max) of the rounds and ratios to
# SELECT 1.  Settings: BENCH_SECONDS (per run, 5), BENCH_ROUNDS (3).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
. "$ROOT/bench/lib.sh"
[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and creates the test user)"

SECS=${BENCH_SECONDS:-5}
ROUNDS=${BENCH_ROUNDS:-3}
DB=llm_usage_cbench
LONG=$(python3 -c 'print("\u4e2d" * 91)')

install_deps
build_install
ensure_user
start_cluster
psql_q -d postgres -o /dev/null -c "ALTER SYSTEM SET llm_usage.aggregate_interval = '1h'"
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -m fast -w reload >/dev/null

B="$WORK/cbench"
mkdir -p "$B"
chown "$TEST_USER" "$B"
q() { psql_q -At -d "$DB" "$@"; }
fresh_db "$DB"
q -o /dev/null <<SQL
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_tenant(t, 'enterprise') FROM unnest(ARRAY['bp', 'x_$LONG']) t;
SELECT llm_usage.set_prepaid_billing(t, true) FROM unnest(ARRAY['bp', 'x_$LONG']) t;
SELECT llm_usage.grant_credits(t, 1000000000, 'bench') FROM unnest(ARRAY['bp', 'x_$LONG']) t;
SQL

script() { printf '%s\n' "$2" >"$B/$1.sql"; chown "$TEST_USER" "$B/$1.sql"; }
script select1 'SELECT 1;'
script credits "SELECT allowed FROM llm_usage.enforce_quota('bp', 'credits', 0.01);"
script credits_rid '\set k random(1, 2000)
SELECT allowed FROM llm_usage.enforce_quota('"'bp'"', '"'credits'"', 0.01, '"'k'"' || :k);'
script credits_table '\set k random(1, 2000)
SELECT allowed FROM llm_usage.enforce_quota('"'x_$LONG'"', '"'credits'"', 0.01, '"'k'"' || :k);'
scenarios="select1 credits credits_rid credits_table"

rounds $scenarios

base=$(stat select1 | median)
echo
echo "scenario | median tps | rounds min..max | ratio to SELECT 1 (median) | ratio per round"
for s in $scenarios; do
    m=$(stat "$s" | median)
    lo=$(stat "$s" | sort -n | head -1)
    hi=$(stat "$s" | sort -n | tail -1)
    per=$(paste -d' ' <(stat "$s") <(stat select1) | awk '{ printf "%s%.2f", (NR > 1 ? ", " : ""), $1 / $2 }')
    awk -v s="$s" -v m="$m" -v lo="$lo" -v hi="$hi" -v b="$base" -v per="$per" \
        'BEGIN { printf "%s | %.0f | %.0f..%.0f | %.2f | %s\n", s, m, lo, hi, m / b, per }'
done
echo "mirror of the shared-memory tenant: $(q -c "SELECT known || ', balance ' || balance || ', held ' || held FROM llm_usage._shm_credits('bp')")"
