#!/usr/bin/env bash
# t_checkout_perms: the README's quick start works from a checkout the test
# user cannot enter, as a clone under /root (mode 0700) is.  A copy of the
# checkout in a fresh `mktemp -d` (mode 0700, owned by root) runs
# `bash test/quickstart.sh` from inside it, on a cluster of its own; it must
# exit 0, finish the demo, and print no "could not change directory" and no
# "Permission denied" (what psql, pg_ctl and python print when runuser
# leaves them in a directory they cannot enter).  .ci/run runs
# test/run-all.sh itself from such a copy.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
[[ -n "${CHECKOUT:-}" && -f "$CHECKOUT/test/quickstart.sh" ]] \
    || fail "CHECKOUT must name the checkout to copy (test/run-all.sh sets it)"

PRIV=$(mktemp -d /tmp/llm_usage_perms.XXXXXX)
trap 'rm -rf "$PRIV"' EXIT
chmod 700 "$PRIV"
(cd / && runuser -u "$TEST_USER" -- test -x "$PRIV") \
    && fail "$TEST_USER can enter $PRIV: the test would prove nothing"

failures=0
# as_user from a directory the test user cannot enter prints only the answer
out=$(cd "$PRIV" && as_user "$PGBIN/psql" -X -At -d postgres -c "SELECT 1" 2>&1) || true
echo "as_user psql from a 0700 directory: $out"
[[ $out == 1 ]] || { echo "  expected just 1"; failures=$((failures + 1)); }

# the quick start from a copy (build products included, so nothing is
# rebuilt; it reinstalls the same files), on another port and socket
# directory than this cluster
mkdir "$PRIV/llm_usage"
tar -C "$CHECKOUT" --exclude=./.git -cf - . | tar -C "$PRIV/llm_usage" -xf -
log="$WORK/checkout_perms.quickstart.log"
status=0
(cd "$PRIV/llm_usage" && env -u LLM_USAGE_KEEP -u WORK -u PGHOST -u CHECKOUT \
    LLM_USAGE_TEST_PORT=$((PGPORT + 1)) bash test/quickstart.sh) >"$log" 2>&1 || status=$?
bad=$(grep -cE 'could not change directory|Permission denied' "$log" || true)
# the demo's collection: two runs and two keys "succeeded"
collected=$(grep -cE '^ +[12] \| (openai|anthropic) +\| succeeded' "$log" || true)
echo "quickstart from $PRIV/llm_usage: exit $status, $(wc -l <"$log") lines," \
     "$bad polluted, $collected of 4 run/key lines succeeded"
if [[ $status -ne 0 || $bad -ne 0 || $collected -ne 4 ]]; then
    grep -m 5 -E 'could not change directory|Permission denied' "$log" || true
    tail -20 "$log"
    failures=$((failures + 1))
fi
[[ $failures -eq 0 ]] || fail "$failures of 2 checks from a 0700 checkout"
echo "PASS"
