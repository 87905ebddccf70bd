#!/usr/bin/env bash
# t_schedule_cron: llm_usage.next_collection() against an independent cron
# implementation, Debian's python3-croniter (installed if missing), with
# Python's zoneinfo for the time zone (test/schedule_reference.py): several
# thousand random expressions (lists, ranges, steps, names, macros,
# day-of-month/day-of-week combinations) at random instants from 1995 to
# 2060 in nine zones, half of them within two days of a daylight-saving
# change (New York, Berlin, London, Lord Howe's half hour, Chatham's
# 45-minute offset, Santiago's and Sao Paulo's changes at midnight).  Every
# answer must be the same, refusals included (an expression that can never
# fire is refused by us and finds no time in croniter).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${CRON_CASES:-4000}
SEED=${CRON_SEED:-1126}
if ! /usr/bin/python3 -c 'import croniter' 2>/dev/null; then
    log "installing python3-croniter"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-croniter >/dev/null 2>&1 \
        || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-croniter >/dev/null; } \
        || fail "python3-croniter could not be installed"
fi
REF="$(dirname "$0")/schedule_reference.py"
DB=llm_usage_cron
fresh_db $DB
psql_q -d $DB -c "CREATE EXTENSION llm_usage" >/dev/null

/usr/bin/python3 "$REF" gen "$N" "$SEED" >"$WORK/cron.$$.cases"
chmod 644 "$WORK/cron.$$.cases"
t0=$(date +%s.%N)
/usr/bin/python3 "$REF" ref "$WORK/cron.$$.cases" >"$WORK/cron.$$.ref"
t1=$(date +%s.%N)
psql_q -At -d $DB >"$WORK/cron.$$.ours" <<SQL
CREATE TEMP TABLE cases (i int, expr text, after timestamptz, zone text);
\copy cases FROM '$WORK/cron.$$.cases'
CREATE FUNCTION pg_temp.nc(e text, a timestamptz, z text) RETURNS text LANGUAGE plpgsql AS \$\$
DECLARE r timestamptz;
BEGIN
    r := llm_usage.next_collection(e, a, z);
    RETURN coalesce(to_char(r AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), 'never');
EXCEPTION WHEN invalid_parameter_value THEN
    RETURN 'refused';
END \$\$;
SELECT i || E'\t' || pg_temp.nc(expr, after, zone) FROM cases ORDER BY i;
SQL
t2=$(date +%s.%N)
python3 - "$WORK/cron.$$.cases" "$WORK/cron.$$.ref" "$WORK/cron.$$.ours" "$t0" "$t1" "$t2" <<'PY' || fail "next_collection() and croniter disagree"
import datetime as dt, sys
from zoneinfo import ZoneInfo
cases = {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in open(sys.argv[1])}
ref = {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in open(sys.argv[2])}
ours = dict(l.rstrip("\n").split("\t") for l in open(sys.argv[3]))
t0, t1, t2 = map(float, sys.argv[4:7])
bad, croniter_wrong, stats = [], [], {"time": 0, "refused": 0, "dst": 0, "or": 0, "and": 0}
for i, (expr, after, zone) in cases.items():
    (r, p), o = ref[i], ours.get(i)
    same = (r == o) or (o == "refused" and (r == "never" or r.startswith("refused:")))
    if not same and o == p and r > p and r not in ("never",) and not r.startswith("refused"):
        # croniter skipped a time that the plain evaluation of croniter's own
        # parse finds, and that is ours
        croniter_wrong.append("case %s: %r after %s in %s: ours and plain %s, croniter %s" % (i, expr, after, zone, o, r))
        continue
    if not same:
        bad.append("case %s: %r after %s in %s: ours %s, croniter %s, plain %s" % (i, expr, after, zone, o, r, p))
        continue
    if o == "refused":
        stats["refused"] += 1
        continue
    stats["time"] += 1
    f = expr.split()
    if len(f) == 5 and f[2] != "*" and f[4] != "*":
        stats["or" if not (f[2].startswith("*") or f[4].startswith("*")) else "and"] += 1
    # the answer within 3 days of an offset change of the zone
    tz, a = ZoneInfo(zone), dt.datetime.fromisoformat(after)
    if o != "never":
        n = dt.datetime.fromisoformat(o).replace(tzinfo=dt.timezone.utc)
        if n - a < dt.timedelta(days=3) and a.astimezone(tz).utcoffset() != n.astimezone(tz).utcoffset():
            stats["dst"] += 1
print("%d cases: %d next times equal (%d across a DST change, %d with OR-ed days, %d with AND-ed days), %d refused by both"
      % (len(cases), stats["time"], stats["dst"], stats["or"], stats["and"], stats["refused"]))
print("croniter + zoneinfo: %.1f s; next_collection(): %.1f s" % (t1 - t0, t2 - t1))
print("%d case(s) where croniter 1.3.5 skips a matching day (its February bug) and the plain evaluation agrees with ours:" % len(croniter_wrong))
for c in croniter_wrong:
    print("  " + c)
for b in bad[:25]:
    print("MISMATCH " + b)
sys.exit(1 if bad or stats["dst"] == 0 else 0)
PY
psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
