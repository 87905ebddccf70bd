#!/usr/bin/env bash
# bench/rollup.sh — roll-up cost after 10,000 new calls on top of N existing
# ones (default 5,000,000), against a full recomputation, on the test
# cluster of test/lib.sh.  Prints medians of 3 runs each and their ratio.
#   usage: bash bench/rollup.sh [N]      (as root)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
N=${1:-5000000}
[[ $(id -u) -eq 0 ]] || die "run as root"
if [[ -z "${PGHOST:-}" ]]; then
    install_deps; build_install; ensure_user; start_cluster
fi
DB=llm_usage_bench_rollup
fresh_db "$DB"
q() { psql_q -At -d "$DB" "$@"; }
log "loading $N calls over 1,000 tenants and 120 days"
q -o /dev/null <<SQL
CREATE EXTENSION llm_usage;
INSERT INTO llm_usage.tenants (tenant_id, plan, timezone)
SELECT 'b' || i, 'enterprise', (ARRAY['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo'])[1 + i % 4]
  FROM generate_series(1, 1000) i;
SELECT llm_usage._ensure_partitions((now() - interval '125 days')::date, now()::date);
INSERT INTO llm_usage.usage_events (tenant_id, event_type, model, provider, input_tokens, output_tokens,
                                    cost_usd, latency_ms, result, occurred_at, recorded_at)
SELECT 'b' || (1 + g % 1000), 'chat', 'gpt-4o-mini', 'openai', 1000 + g % 500, 100 + g % 50,
       0.0002 + (g % 7) * 0.00001, 100 + g % 3000, CASE WHEN g % 50 = 0 THEN 'failure' ELSE 'success' END,
       now() - (g % (120 * 86400)) * interval '1 second', now() - interval '1 hour'
  FROM generate_series(1, $N) g;
VACUUM ANALYZE llm_usage.usage_events;
SQL
timed() {   # timed SQL: milliseconds
    q -c "DO \$\$ DECLARE t timestamptz := clock_timestamp(); BEGIN PERFORM $1; RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t) * 1000); END \$\$" 2>&1 \
        | sed -nE 's/.*ms=([0-9]+).*/\1/p'
}
median() { sort -n | sed -n 2p; }
full=()
inc=()
for i in 1 2 3; do
    full+=("$(timed "llm_usage.aggregate_usage_metrics('daily', since => '-infinity')")")
    q -c "DELETE FROM llm_usage.tenant_usage_metrics" >/dev/null
done
q -c "SELECT llm_usage.aggregate_usage_metrics('daily')" >/dev/null       # sets the watermark
for i in 1 2 3; do
    q -o /dev/null -c "INSERT INTO llm_usage.usage_events (tenant_id, event_type, model, input_tokens, output_tokens, cost_usd, latency_ms, occurred_at)
                       SELECT 'b' || (1 + g % 1000), 'chat', 'gpt-4o-mini', 900, 90, 0.0002, 200,
                              now() - (g % (3 * 86400)) * interval '1 second'
                         FROM generate_series(1, 10000) g"
    inc+=("$(timed "llm_usage.aggregate_usage_metrics('daily')")")
done
f=$(printf '%s\n' "${full[@]}" | median)
i=$(printf '%s\n' "${inc[@]}" | median)
echo "calls: $N; full daily recomputation: ${full[*]} ms (median $f); after 10,000 new calls: ${inc[*]} ms (median $i)"
python3 -c "import sys; print('incremental / full = %.4f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$i" "$f"
[[ -n "${KEEP_BENCH_DB:-}" ]] || psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
