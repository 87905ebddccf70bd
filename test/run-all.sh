#!/usr/bin/env bash
# test/run-all.sh — the whole llm_usage test suite, from a fresh Debian
# machine, as root: installs what it needs, builds, installs, starts a
# throwaway cluster with shared_preload_libraries = 'llm_usage' as an
# unprivileged user, runs every suite, and ends with "N passed, N failed".
set -uo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and creates the test user)"
set -e
install_deps
build_install
ensure_user
start_cluster
set +e

# Inputs are copied to where the unprivileged user can read them, whatever
# the permissions of the checkout (a clone under /root is mode 0700); the
# test user only ever reads $WORK/src.
mkdir -p "$WORK/src" "$WORK/regress"
cp -r "$ROOT/Makefile" "$ROOT/llm_usage.control" "$ROOT/sql" "$ROOT/expected" "$ROOT/test" "$WORK/src/"
chown -R "$TEST_USER" "$WORK/src" "$WORK/regress"
# the checkout itself, for suites (run as root) that compile its C sources
export LLM_USAGE_SOURCE_DIR="$ROOT"

passed=0
failed=0
failures=()

record() {      # record NAME STATUS
    if [[ $2 -eq 0 ]]; then
        passed=$((passed + 1)); printf 'ok      %s\n' "$1"
    else
        failed=$((failed + 1)); failures+=("$1"); printf 'FAILED  %s\n' "$1"
    fi
}

# 0. the SQL sources: one definition per object, released scripts frozen,
#    generated scripts made from the sources (reads the build)
python3 "$ROOT/test/check_sql_sources.py" "$ROOT"
record sql_sources $?

# 1. pg_regress suites (the list lives in the Makefile), the PGXS way and as
#    README describes it for your own server: `make installcheck` as the test
#    user, in a build directory it owns, inputs read from the copy (VPATH)
regress=$(make -s -C "$ROOT" PG_CONFIG=$PGBIN/pg_config print-regress)
log "make installcheck: $regress"
as_user make -C "$WORK/regress" -f "$WORK/src/Makefile" PG_CONFIG="$PGBIN/pg_config" \
    installcheck >"$WORK/regress.log" 2>&1
# every suite in the list must report "ok"; a missing line (pg_regress
# stopped early, or the suite never ran) is a failure too
for name in $regress; do
    if grep -qE "^test +$name +\.\.\. +ok" "$WORK/regress.log"; then
        record "regress/$name" 0
    else
        record "regress/$name" 1
    fi
done
if grep -qE '\.\.\. +(FAILED|failed|diff)' "$WORK/regress.log" || [[ $failed -gt 0 ]]; then
    cat "$WORK/regress.log"
    [[ -f "$WORK/regress/regression.diffs" ]] && head -c 20000 "$WORK/regress/regression.diffs"
fi

# 2. shell-driven suites against the same cluster: each prints what it
#    checked and exits non-zero on the first failed check.  A suite whose
#    output says "could not change directory" or "Permission denied" ran
#    something as the test user where that user cannot go: failed too.
for t in "$WORK"/src/test/t_*.sh; do
    name=$(basename "$t" .sh)
    log "$name"
    WORK="$WORK" CHECKOUT="$ROOT" bash "$t" >"$WORK/$name.out" 2>&1
    status=$?
    cat "$WORK/$name.out"
    if grep -qE 'could not change directory|Permission denied' "$WORK/$name.out"; then
        echo "FAIL: $name printed \"could not change directory\" or \"Permission denied\""
        status=1
    fi
    record "$name" $status
done

if ((failed)); then
    printf 'failed: %s\n' "${failures[*]}"
fi
printf '%d passed, %d failed\n' "$passed" "$failed"
[[ $failed -eq 0 ]]
