#!/usr/bin/env bash
# bench/run.sh — the llm_usage benchmark suite, one command, as root:
#
#   bash bench/run.sh            (about 6 to 9 minutes on 2 cores)
#
# Builds and installs the extension, starts a throwaway cluster with the
# library preloaded (test/lib.sh), loads data and runs pgbench scenarios,
# each against a baseline measured in the same run, rounds interleaved so
# that machine noise hits both alike.  Prints a table of medians and
# ratios.  Settings: BENCH_SECONDS (per pgbench run, 8), BENCH_ROUNDS (3),
# BENCH_EVENTS (5,000,000), BENCH_CYCLES (1,000 worker collection cycles).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/../test/lib.sh"
. "$ROOT/bench/lib.sh"
. "$ROOT/test/worker_lib.sh"
[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and creates the test user)"

SECS=${BENCH_SECONDS:-8}
ROUNDS=${BENCH_ROUNDS:-3}
EVENTS=${BENCH_EVENTS:-5000000}
CYCLES=${BENCH_CYCLES:-1000}
DB=llm_usage_bench
START=$(date +%s)

install_deps
build_install
ensure_user
start_cluster
# room for 5 M calls in memory, as a production server would have
psql_q -d postgres -c "ALTER SYSTEM SET shared_buffers = '1GB'" -c "ALTER SYSTEM SET max_wal_size = '8GB'" \
    -c "ALTER SYSTEM SET llm_usage.aggregate_interval = '1h'" >/dev/null
as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -m fast -w restart >/dev/null

B="$WORK/bench"
mkdir -p "$B"
chown "$TEST_USER" "$B"
q() { psql_q -At -d "$DB" "$@"; }
fresh_db "$DB"

log "loading tenants and the baseline table"
MODELS="ARRAY['gpt-4o', 'gpt-4o-mini', 'claude-sonnet-4-5', 'claude-haiku-4-5']"
q -o /dev/null <<SQL
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('bench');
SELECT llm_usage.set_plan_quota('bench', 'api_calls', 1000000000, 'day');
SELECT llm_usage.set_plan_quota('bench', 'api_calls', 10000000000, 'month');
SELECT llm_usage.set_plan_quota('bench', 'tokens', 1000000000000, 'month');
SELECT llm_usage.create_tenant('b' || i, 'bench', (ARRAY['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo'])[1 + i % 4])
  FROM generate_series(1, 1000) i;
SELECT llm_usage.create_tenant('hot', 'bench');
SELECT llm_usage._ensure_partitions((now() - interval '125 days')::date, now()::date + 31);
-- the bare-INSERT baseline: usage_events' columns, defaults, checks,
-- partitioning and per-partition indexes
CREATE TABLE llm_usage.bench_events (LIKE llm_usage.usage_events INCLUDING ALL) PARTITION BY RANGE (occurred_at);
CREATE TABLE llm_usage.bench_events_now PARTITION OF llm_usage.bench_events
    FOR VALUES FROM (date_trunc('month', now())) TO (date_trunc('month', now()) + interval '1 month');
CREATE TABLE llm_usage.bench_events_default PARTITION OF llm_usage.bench_events DEFAULT;
SELECT llm_usage._partition_indexes('bench_events_now');
SELECT llm_usage._partition_indexes('bench_events_default');
SQL

cat >"$B/select1.sql" <<'SQL'
SELECT 1;
SQL
cat >"$B/enforce_hot.sql" <<'SQL'
SELECT * FROM llm_usage.enforce_quota('hot', 'api_calls', 1);
SQL
cat >"$B/enforce_spread.sql" <<'SQL'
\set t random(1, 1000)
SELECT * FROM llm_usage.enforce_quota('b' || :t, 'api_calls', 1);
SQL
cat >"$B/insert.sql" <<SQL
\\set t random(1, 1000)
\\set m random(1, 4)
INSERT INTO llm_usage.bench_events (tenant_id, event_type, model, provider, input_tokens, output_tokens,
                                    cached_input_tokens, cache_write_tokens, cost_usd, price_id, latency_ms,
                                    status_code, result, metadata, request_id, occurred_at)
VALUES ('b' || :t, 'chat', ($MODELS)[:m], 'openai', 1000, 200, 0, 0, 0.00123, 1, 300, 200, 'success', '{}', NULL, now());
SQL
cat >"$B/track.sql" <<SQL
\\set t random(1, 1000)
\\set m random(1, 4)
SELECT llm_usage.track_usage('b' || :t, 'chat', ($MODELS)[:m], 1000, 200, latency_ms => 300);
SQL
chown "$TEST_USER" "$B"/*.sql

tps() {     # tps SCRIPT: transactions per second of one run, 8 clients
    as_user "$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -T "$SECS" -f "$B/$1.sql" "$DB" 2>&1 \
        | sed -nE 's/^tps = ([0-9.]+) .*/\1/p'
}

log "warming up (each session caches the 1,000 tenants)"
for s in enforce_spread track insert; do
    as_user "$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -T 3 -f "$B/$s.sql" "$DB" >/dev/null 2>&1
done

declare -A runs
for r in $(seq 1 "$ROUNDS"); do
    for s in select1 enforce_hot enforce_spread insert track; do
        runs[$s]+="$(tps $s) "
    done
    log "round $r: select1 ${runs[select1]}| hot ${runs[enforce_hot]}| spread ${runs[enforce_spread]}| insert ${runs[insert]}| track ${runs[track]}"
done
declare -A med
for s in select1 enforce_hot enforce_spread insert track; do
    med[$s]=$(tr ' ' '\n' <<<"${runs[$s]}" | grep . | median)
done

# the roll-up and dashboard scenarios: a database of exactly $EVENTS calls
DB=llm_usage_bench_events
fresh_db "$DB"
log "loading $EVENTS calls over 1,000 tenants and 120 days"
q -o /dev/null <<SQL
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('bench');
SELECT llm_usage.create_tenant('b' || i, 'bench', (ARRAY['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Tokyo'])[1 + i % 4])
  FROM generate_series(1, 1000) i;
SELECT llm_usage._ensure_partitions((now() - interval '125 days')::date, now()::date + 31);
INSERT INTO llm_usage.usage_events (tenant_id, event_type, model, provider, input_tokens, output_tokens,
                                    cost_usd, latency_ms, result, occurred_at, recorded_at)
SELECT 'b' || (1 + g % 1000), 'chat', ($MODELS)[1 + g % 4], 'openai', 1000 + g % 500, 100 + g % 50,
       0.0002 + (g % 7) * 0.00001, 100 + g % 3000, CASE WHEN g % 50 = 0 THEN 'failure' ELSE 'success' END,
       now() - (g % (120 * 86400)) * interval '1 second', now() - interval '1 hour'
  FROM generate_series(1, $EVENTS) g;
VACUUM ANALYZE llm_usage.usage_events;
SQL

timed() {   # timed SQL: milliseconds
    q -c "DO \$\$ DECLARE t timestamptz := clock_timestamp(); BEGIN PERFORM $1; RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t) * 1000); END \$\$" 2>&1 \
        | sed -nE 's/.*ms=([0-9]+).*/\1/p'
}
log "roll-up: full recomputation, then after 10,000 new calls"
full=()
inc=()
for r in $(seq 1 "$ROUNDS"); do
    full+=("$(timed "llm_usage.aggregate_usage_metrics('daily', since => '-infinity')")")
done
q -c "SELECT llm_usage.aggregate_usage_metrics('daily')" >/dev/null      # sets the watermark
for r in $(seq 1 "$ROUNDS"); do
    q -o /dev/null -c "INSERT INTO llm_usage.usage_events (tenant_id, event_type, model, provider, input_tokens, output_tokens, cost_usd, latency_ms, occurred_at)
                       SELECT 'b' || (1 + g % 1000), 'chat', 'gpt-4o-mini', 'openai', 900, 90, 0.0002, 200,
                              now() - (g % (3 * 86400)) * interval '1 second'
                         FROM generate_series(1, 10000) g"
    inc+=("$(timed "llm_usage.aggregate_usage_metrics('daily')")")
done
med[rollup_full]=$(printf '%s\n' "${full[@]}" | median)
med[rollup_inc]=$(printf '%s\n' "${inc[@]}" | median)
log "full: ${full[*]} ms; incremental: ${inc[*]} ms"

log "dashboards at $EVENTS calls: latency of usage_overview(tenant, '30d') and top_consumers"
q -o /dev/null -c "SELECT llm_usage.aggregate_usage_metrics(p) FROM unnest(ARRAY['hourly', 'monthly']) p"
cat >"$B/overview.sql" <<'SQL'
\set t random(1, 1000)
SELECT llm_usage.usage_overview('b' || :t, '30d');
SQL
cat >"$B/top.sql" <<'SQL'
SELECT * FROM llm_usage.top_consumers('cost', 'daily', 10);
SQL
chown "$TEST_USER" "$B"/*.sql
latency() {     # latency SCRIPT: "p50 p95" in ms over a 1-client run
    rm -f "$B"/pgbench_log.*
    as_user "$PGBIN/pgbench" -n -M prepared -c 1 -T "$SECS" -l --log-prefix="$B/pgbench_log" -f "$B/$1.sql" "$DB" >/dev/null 2>&1
    cat "$B"/pgbench_log.* | awk '{print $3 / 1000}' | sort -g \
        | awk '{a[NR] = $1} END {printf "%.2f %.2f %d\n", a[int(NR * 0.5) + 1], a[int(NR * 0.95) + 1], NR}'
}
read -r ov50 ov95 ovn < <(latency overview)
read -r top50 top95 topn < <(latency top)

log "worker memory over $CYCLES collection cycles against the simulator"
start_sim
trap 'kill $SIM_PID 2>/dev/null; stop_cluster' EXIT
use_sim
KEY=sk-admin-bench-rss-0001
wq -c "SELECT llm_usage.create_tenant('rss', 'pro')" >/dev/null
key_id=$(wq -c "SELECT llm_usage.add_provider_key('rss', 'openai', '$KEY')")
first=$(wq -c "SELECT min(llm_usage.collect_now($key_id, '2026-10-01', '2026-10-01')) FROM generate_series(1, $CYCLES)")
pid=$(worker_pid)
rss_at() { awk '/^RssAnon:/ {print $2}' "/proc/$pid/status"; }
rss100=
rssend=
t0=$(date +%s)
while :; do
    done_runs=$(wq -c "SELECT count(*) FROM llm_usage.collector_runs WHERE run_id >= $first AND status IN ('succeeded', 'failed')")
    if [[ -z $rss100 && $done_runs -ge 100 ]]; then rss100=$(rss_at); fi
    if [[ $done_runs -ge $CYCLES ]]; then rssend=$(rss_at); break; fi
    (( $(date +%s) - t0 < 600 )) || die "the worker did not finish $CYCLES runs in 10 minutes"
    sleep 0.2
done
failed_runs=$(wq -c "SELECT count(*) FROM llm_usage.collector_runs WHERE run_id >= $first AND status = 'failed'")
cycle_secs=$(( $(date +%s) - t0 ))
[[ $(worker_pid) == "$pid" ]] || die "the worker restarted during the memory run"

pct() { python3 -c "import sys; print('%+.1f %%' % (100 * (float(sys.argv[1]) / float(sys.argv[2]) - 1)))" "$1" "$2"; }
r_hot=$(ratio "${med[enforce_hot]}" "${med[select1]}")
r_spread=$(ratio "${med[enforce_spread]}" "${med[select1]}")
r_track=$(ratio "${med[track]}" "${med[insert]}")
r_roll=$(python3 -c "import sys; print('%.4f' % (float(sys.argv[1]) / float(sys.argv[2])))" "${med[rollup_inc]}" "${med[rollup_full]}")
growth=$(python3 -c "import sys; print(100 * (float(sys.argv[1]) / float(sys.argv[2]) - 1))" "$rssend" "$rss100")

cat <<TABLE

llm_usage benchmark — PostgreSQL $($PGBIN/postgres --version | awk '{print $3}'), $(nproc) cores, 8 pgbench clients, prepared protocol,
medians of $ROUNDS runs of ${SECS} s; $EVENTS calls for the roll-up and dashboards

| scenario | measured (median) | baseline (median) | ratio | target | |
|---|---|---|---|---|---|
| enforce_quota, one hot tenant | ${med[enforce_hot]} tps | SELECT 1: ${med[select1]} tps | $r_hot | >= 0.8 | $(pass "$r_hot >= 0.8") |
| enforce_quota, 1,000 tenants | ${med[enforce_spread]} tps | SELECT 1: ${med[select1]} tps | $r_spread | >= 0.8 | $(pass "$r_spread >= 0.8") |
| track_usage, random tenants and models | ${med[track]} tps | bare INSERT: ${med[insert]} tps | $r_track | >= 0.85 | $(pass "$r_track >= 0.85") |
| roll-up after 10,000 new calls | ${med[rollup_inc]} ms | full recomputation: ${med[rollup_full]} ms | $r_roll | <= 0.02 | $(pass "$r_roll <= 0.02") |
| usage_overview(tenant, '30d') | p50 $ov50 ms, p95 $ov95 ms ($ovn calls) | | | p95 <= 10 ms | $(pass "$ov95 <= 10") |
| top_consumers('cost', 'daily', 10) | p50 $top50 ms, p95 $top95 ms ($topn calls) | | | | |
| worker RssAnon, $CYCLES collection cycles | ${rss100} kB after 100, ${rssend} kB after $CYCLES ($failed_runs failed, ${cycle_secs} s) | | $(pct "$rssend" "$rss100") | growth <= 5 % | $(pass "$growth <= 5") |

runs (tps): select1 ${runs[select1]}; hot ${runs[enforce_hot]}; spread ${runs[enforce_spread]}; insert ${runs[insert]}; track ${runs[track]}
roll-up (ms): full ${full[*]}; incremental ${inc[*]}
suite time: $(( $(date +%s) - START )) s
TABLE
