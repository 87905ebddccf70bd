#!/usr/bin/env bash
# t_periods: hourly, daily and monthly periods in eight zones around every
# 2026 change of UTC offset (America/Havana, America/Santiago, Asia/Beirut,
# Africa/Cairo, Australia/Lord_Howe, Pacific/Chatham, Asia/Kathmandu,
# Europe/Berlin; and around the first of April and October), against an
# independent computation with Python's zoneinfo on the same tzdata
# (test/period_check.py walks the local clock minute by minute):
#   1. period bounds at every probe instant: SQL _period_bounds and the C
#      quota path's period_bounds (_period_bounds_c);
#   2. the quota paths, C (shared memory) and SQL (table): a counter set to
#      a period of 2027 around that year's changes is consumed in that
#      period, and both report its start and resets_at as zoneinfo does;
#      and enforce_quota's resets_at now, in every zone;
#   3. roll-ups: one call at every probe; incremental runs after each of
#      five batches of calls in shuffled order (late calls into periods
#      already rolled up), then a full recomputation (since): calls per
#      tenant, period type and period start = zoneinfo's grouping, both;
#   4. a tenant's zone changed: its roll-ups are recomputed in the new zone,
#      no call counted twice, and again equal zoneinfo's grouping.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_periods
HERE=$(cd "$(dirname "$0")" && pwd)
T=$WORK/periods
mkdir -p "$T"
now=$(date +%s)
python3 "$HERE/period_check.py" probes 2026 "$now" "$T/probes.tsv"
python3 "$HERE/period_check.py" expect "$T/probes.tsv" "$T/expect.tsv"
python3 "$HERE/period_check.py" groups "$T/expect.tsv" "$T/groups.tsv"
python3 "$HERE/period_check.py" probes 2027 9999999999 "$T/probes27.tsv" >/dev/null
python3 "$HERE/period_check.py" expect "$T/probes27.tsv" "$T/expect27.tsv"
chown -R "$TEST_USER" "$T"

fresh_db "$DB"
q() { psql_q -d "$DB" -At "$@"; }
q -o /dev/null <<SQL
CREATE EXTENSION llm_usage;
CREATE TABLE probes (zone text, p bigint);
\copy probes FROM '$T/probes.tsv'
CREATE TABLE expect27 (zone text, p bigint, unit text, s bigint, e bigint);
\copy expect27 FROM '$T/expect27.tsv'
CREATE TABLE zones AS SELECT zone, 'pz' || row_number() OVER (ORDER BY zone) AS tenant FROM (SELECT DISTINCT zone FROM probes) z;
SELECT llm_usage.create_plan('pz_plan');
SELECT llm_usage.set_plan_quota('pz_plan', 'tokens', 1000000000000, p) FROM unnest(ARRAY['hour', 'day', 'month']) p;
SELECT llm_usage.create_tenant(tenant, 'pz_plan', zone) FROM zones;
-- each tenant's twin: an id of more than 255 bytes, always counted in the table
INSERT INTO llm_usage.tenants (tenant_id, plan, timezone) SELECT tenant || '_' || repeat(chr(28450), 90), 'pz_plan', zone FROM zones;
SQL

# 1. bounds at every probe, SQL and C
q -F $'\t' -c "SELECT p.zone, p.p, u, s, extract(epoch FROM b.period_start)::bigint, extract(epoch FROM b.period_end)::bigint
                 FROM probes p CROSS JOIN unnest(ARRAY['hour', 'day', 'month']) u
                CROSS JOIN LATERAL (VALUES ('sql'), ('c')) w(s)
                CROSS JOIN LATERAL (SELECT * FROM llm_usage._period_bounds(u, to_timestamp(p.p), p.zone) WHERE w.s = 'sql'
                                    UNION ALL
                                    SELECT * FROM llm_usage._period_bounds_c(u, to_timestamp(p.p), p.zone) WHERE w.s = 'c') b" \
    >"$T/bounds.tsv"
python3 "$HERE/period_check.py" compare "$T/expect.tsv" "$T/bounds.tsv" || fail "period bounds differ from zoneinfo's"
echo "ok: hour, day and month bounds at $(wc -l <"$T/probes.tsv") instants, SQL and C, equal zoneinfo's"

# 2. the quota paths in 2027's periods: a counter in a period to come is consumed there
q -F $'\t' -o "$T/quota.tsv" <<'SQL'
CREATE FUNCTION pz_consume(p_zone text, p_unit text, p_start timestamptz) RETURNS TABLE (c_start bigint, c_end bigint, s_start bigint, s_end bigint)
LANGUAGE plpgsql AS $$
DECLARE
    a text := (SELECT tenant FROM zones WHERE zone = p_zone);
    b text := a || '_' || repeat(chr(28450), 90);
    tb llm_usage.tenants;
BEGIN
    SELECT * INTO tb FROM llm_usage.tenants WHERE tenant_id = b;
    PERFORM llm_usage._shm_set_counter(a, 'tokens', p_unit, p_start, 0);
    INSERT INTO llm_usage.quota_counters_table AS q (tenant_id, quota_type, period, period_start, used)
    VALUES (b, 'tokens', p_unit, p_start, 0)
    ON CONFLICT (tenant_id, quota_type, period) DO UPDATE SET period_start = EXCLUDED.period_start, used = 0;
    RETURN QUERY
    SELECT extract(epoch FROM c.period_start)::bigint, extract(epoch FROM c.period_end)::bigint,
           extract(epoch FROM s.period_start)::bigint, extract(epoch FROM s.period_end)::bigint
      FROM llm_usage._shm_consume(a, ARRAY['tokens'], ARRAY[1::numeric]) c
      JOIN llm_usage._consume_table(tb, ARRAY['tokens'], ARRAY[1::numeric]) s USING (period)
     WHERE c.period = p_unit;
END
$$;
SELECT x.zone, x.unit, x.s, x.e, r.*
  FROM (SELECT DISTINCT zone, unit, s, e FROM expect27) x
 CROSS JOIN LATERAL pz_consume(x.zone, x.unit, to_timestamp(x.s)) r
 ORDER BY 1, 2, 3;
SQL
read -r periods bad <<<"$(awk -F'\t' '{n++} $3 != $5 || $4 != $6 || $3 != $7 || $4 != $8 {b++} END {print n, b+0}' "$T/quota.tsv")"
[[ $bad == 0 && $periods -gt 500 ]] || { awk -F'\t' '$3 != $5 || $4 != $6 || $3 != $7 || $4 != $8' "$T/quota.tsv" | head; fail "$bad of $periods quota periods differ"; }
echo "ok: $periods periods of 2027 consumed by the C and the SQL quota path, start and resets_at as zoneinfo's"
# and now: counters of an old period count as empty, the current period is counted
q -F $'\t' -c "SELECT z.zone, extract(epoch FROM now())::bigint, u, r.*
                 FROM zones z CROSS JOIN unnest(ARRAY['hour', 'day', 'month']) u
                CROSS JOIN LATERAL pz_consume(z.zone, u, '2000-01-01') r" >"$T/now.tsv"
awk -F'\t' '{print $1 "\t" $2}' "$T/now.tsv" | sort -u >"$T/now_probes.tsv"
python3 "$HERE/period_check.py" expect "$T/now_probes.tsv" "$T/now_expect.tsv"
awk -F'\t' 'NR == FNR {s[$1 FS $3] = $4; e[$1 FS $3] = $5; next}
             {k = $1 FS $3; if ($4 != s[k] || $5 != e[k] || $6 != s[k] || $7 != e[k]) {print "now, " $3 " in " $1 ": " $0; bad++}}
             END {exit bad > 0}' "$T/now_expect.tsv" "$T/now.tsv" || fail "the current periods of the quota paths differ from zoneinfo's"
echo "ok: the current hour, day and month of the C and SQL quota paths (resets_at) in every zone = zoneinfo's"

# 3. roll-ups: incremental in shuffled batches, then full
q -o /dev/null <<'SQL'
SELECT llm_usage.aggregate_usage_metrics(t) FROM unnest(ARRAY['hourly', 'daily', 'monthly']) t;
CREATE TABLE calls AS
SELECT z.tenant, p.p, (abs(hashtext(p.zone || p.p)) % 5) AS batch
  FROM probes p JOIN zones z USING (zone);
SQL
for batch in 3 0 4 1 2; do
    q -o /dev/null -c "SELECT count(llm_usage.track_usage(c.tenant, 'chat', 'gpt-4o-mini', 100, 10, occurred_at => to_timestamp(c.p)))
                         FROM calls c WHERE c.batch = $batch" \
                   -c "SELECT llm_usage.aggregate_usage_metrics(t) FROM unnest(ARRAY['hourly', 'daily', 'monthly']) t"
done
rollups() {
    q -F $'\t' -c "SELECT z.zone, m.period_type, extract(epoch FROM m.period_start)::bigint, m.api_calls_total
                     FROM llm_usage.tenant_usage_metrics m JOIN zones z ON z.tenant = m.tenant_id
                    ORDER BY 1, 2, 3" >"$1"
}
rollups "$T/incremental.tsv"
cmp -s "$T/groups.tsv" "$T/incremental.tsv" || { diff "$T/groups.tsv" "$T/incremental.tsv" | head -20; fail "incremental roll-ups differ from zoneinfo's periods"; }
echo "ok: incremental roll-ups (5 shuffled batches, late calls included): $(wc -l <"$T/groups.tsv") periods, calls per period = zoneinfo's"
q -o /dev/null -c "DELETE FROM llm_usage.tenant_usage_metrics" \
               -c "SELECT llm_usage.aggregate_usage_metrics(t, since => '2025-06-01') FROM unnest(ARRAY['hourly', 'daily', 'monthly']) t"
rollups "$T/full.tsv"
cmp -s "$T/groups.tsv" "$T/full.tsv" || { diff "$T/groups.tsv" "$T/full.tsv" | head -20; fail "full roll-ups differ from zoneinfo's periods"; }
echo "ok: full roll-ups equal zoneinfo's periods too"

# 4. a zone change: Berlin's tenant moves to Havana; its calls regrouped, none twice
berlin=$(q -c "SELECT tenant FROM zones WHERE zone = 'Europe/Berlin'")
awk -F'\t' '$1 == "Europe/Berlin" {print "America/Havana\t" $2}' "$T/probes.tsv" >"$T/moved.tsv"
python3 "$HERE/period_check.py" expect "$T/moved.tsv" "$T/moved_expect.tsv"
python3 "$HERE/period_check.py" groups "$T/moved_expect.tsv" "$T/moved_groups.tsv"
q -o /dev/null -c "SELECT llm_usage.update_tenant('$berlin', timezone => 'America/Havana')"
q -F $'\t' -c "SELECT 'America/Havana', m.period_type, extract(epoch FROM m.period_start)::bigint, m.api_calls_total
                 FROM llm_usage.tenant_usage_metrics m WHERE m.tenant_id = '$berlin' ORDER BY 2, 3" >"$T/rekeyed.tsv"
cmp -s "$T/moved_groups.tsv" "$T/rekeyed.tsv" || { diff "$T/moved_groups.tsv" "$T/rekeyed.tsv" | head -20; fail "roll-ups after the zone change differ from zoneinfo's periods in the new zone"; }
again=$(q -c "SELECT sum(llm_usage.aggregate_usage_metrics(t)) FROM unnest(ARRAY['hourly', 'daily', 'monthly']) t")
twice=$(q -c "SELECT count(*) FROM (SELECT period_type FROM llm_usage.tenant_usage_metrics WHERE tenant_id = '$berlin'
                                     GROUP BY period_type HAVING sum(api_calls_total) <> (SELECT count(*) FROM calls c WHERE c.tenant = '$berlin')) x")
[[ $twice == 0 && $again == 0 ]] || fail "after the zone change: $twice period types do not sum to the calls, a roll-up wrote $again rows"
echo "ok: a zone change (Europe/Berlin to America/Havana) re-keys the roll-ups: zoneinfo's periods in the new zone, every call once, a later roll-up changes nothing"
psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
