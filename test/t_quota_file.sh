#!/usr/bin/env bash
# t_quota_file: a damaged quota counters file (pg_stat/llm_usage_quota.stat)
# does not stop the server nor put garbage into shared memory: it is
# refused with a WARNING (SQLSTATE XX001) and the counters start empty.
#  1. a file truncated in the middle of an entry
#  2. a file whose count of entries is garbage
#  3. a file whose tenant id has no terminating NUL (256 bytes of 'A')
#  4. and an intact file is still read back after all that
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_qfile
FILE="$WORK/data/pg_stat/llm_usage_quota.stat"
q() { psql_q -At -d "$DB" "$@"; }
wait_ready() {
    for _ in $(seq 1 150); do
        psql_q -d postgres -c "SELECT 1" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    fail "the server did not come back"
}
stop() { as_user "$PGBIN/pg_ctl" -D "$WORK/data" -m fast -w stop >/dev/null; }
start() { as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w start >/dev/null || true; wait_ready; }

fresh_db "$DB"
q -o /dev/null <<'SQL'
CREATE EXTENSION llm_usage;
SELECT llm_usage.create_plan('qfile');
SELECT llm_usage.set_plan_quota('qfile', 'api_calls', 1000, 'month');
SELECT llm_usage.create_tenant('qf1', 'qfile');
SELECT llm_usage.create_tenant('qf2', 'qfile');
SELECT llm_usage.enforce_quota('qf1', 'api_calls', 3);
SELECT llm_usage.enforce_quota('qf2', 'api_calls', 5);
SQL
# a clean stop writes the file; keep the intact copy
stop
cp "$FILE" "$WORK/quota.good"
entries=$(python3 -c "import struct,sys; print(struct.unpack('<3I', open(sys.argv[1],'rb').read(12))[2])" "$WORK/quota.good")
size=$(stat -c %s "$WORK/quota.good")
[[ $entries -ge 2 ]] || fail "the saved file holds $entries entries, want at least 2"
record=$(( (size - 12) / entries ))
echo "saved file: $entries entries of $record bytes"

check_refused() {   # check_refused WHAT: the server is up, the warning logged, nothing loaded
    local what=$1 from n long
    from=$(( $(wc -l <"$WORK/server.log") + 1 ))
    start
    n=$(q -c "SELECT entries FROM llm_usage._shm_status()")
    long=$(q -c "SELECT count(*) FROM llm_usage._shm_counters() WHERE length(tenant_id) > 255")
    tail -n +"$from" "$WORK/server.log" | grep -q "WARNING:  llm_usage: ignoring corrupt quota counters file" \
        || fail "$what: no warning about the corrupt file in the server log"
    echo "$what: server up, warning logged, shared entries after start (all databases): $n (tenant ids over 255 bytes: $long)"
    [[ $n == 0 && $long == 0 ]] || fail "$what: the corrupt file was (partly) loaded"
    stop
}

# 1. truncated in the middle of the second entry
head -c $(( 12 + record + record / 2 )) "$WORK/quota.good" >"$FILE"
check_refused "truncated file"

# 2. garbage count of entries
python3 - "$WORK/quota.good" "$FILE" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[8:12] = (0xfffffff0).to_bytes(4, 'little')
open(sys.argv[2], 'wb').write(b)
PY
check_refused "garbage count"

# 3. a tenant id without its terminating NUL (key: dbid, tenants_relid, tenant[256])
python3 - "$WORK/quota.good" "$FILE" <<'PY'
import sys
b = bytearray(open(sys.argv[1], 'rb').read())
b[12 + 8:12 + 8 + 256] = b'A' * 256
open(sys.argv[2], 'wb').write(b)
PY
check_refused "tenant id without NUL"

# 4. the intact file is read back
cp "$WORK/quota.good" "$FILE"
chown "$TEST_USER" "$FILE"
from=$(( $(wc -l <"$WORK/server.log") + 1 ))
start
got=$(q -c "SELECT string_agg(tenant_id || '=' || used, ',' ORDER BY tenant_id) FROM llm_usage._shm_counters() WHERE quota_type = 'api_calls'")
echo "intact file: $got"
[[ $got == "qf1=3,qf2=5" ]] || fail "the intact file was not read back ($got)"
tail -n +"$from" "$WORK/server.log" | grep -q "ignoring corrupt" && fail "the intact file was refused"

psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
