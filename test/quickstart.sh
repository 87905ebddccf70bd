#!/usr/bin/env bash
# test/quickstart.sh — set everything up on a fresh Debian machine (as root)
# and run a short demonstration of the SQL API on a throwaway cluster:
# installs packages, builds and installs llm_usage, starts PostgreSQL 15
# with shared_preload_libraries = 'llm_usage' as an unprivileged user, runs
# test/demo.sql and prints what a user would look at, then the collection
# demo (test/demo_collect.sql), and writes the HTML usage report to
# $LLM_USAGE_REPORT (default /tmp/llm_usage_report.html).
#
#   --keep   leave the cluster running afterwards and print how to connect
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and creates the test user)"
[[ "${1:-}" == "--keep" ]] && export LLM_USAGE_KEEP=1
install_deps
build_install
ensure_user
start_cluster
psql_q -d postgres -c "CREATE DATABASE llm_usage_demo" >/dev/null
cp "$ROOT/test/demo.sql" "$WORK/demo.sql"
chown "$TEST_USER" "$WORK/demo.sql"
as_user "$PGBIN/psql" -X -d llm_usage_demo -f "$WORK/demo.sql"

# the main job: the background worker collects from the provider APIs,
# here the local simulator on 127.0.0.1, in the collector's database
. "$ROOT/test/worker_lib.sh"
cp "$ROOT/test/demo_collect.sql" "$WORK/"
chown "$TEST_USER" "$WORK/demo_collect.sql"
start_sim
trap 'kill $SIM_PID 2>/dev/null; stop_cluster' EXIT
use_sim
log "collecting from the provider simulator at $SIM"
as_user "$PGBIN/psql" -X -d "$WDB" -v oa_key=sk-admin-quickstart-demo-0001 \
    -v an_key=sk-ant-admin01-quickstart-demo-0002 -f "$WORK/demo_collect.sql"
# the report a user looks at: every tenant, the last 7 days (what was collected)
REPORT=${LLM_USAGE_REPORT:-/tmp/llm_usage_report.html}
as_user "$PGBIN/psql" -X -d "$WDB" -Atc "SELECT llm_usage.usage_report_html(NULL, '7d')" >"$REPORT"
log "usage report written to $REPORT ($(wc -c <"$REPORT") bytes): open it in a browser"
if [[ -n "${LLM_USAGE_KEEP:-}" ]]; then
    trap - EXIT
    log "cluster left running: runuser -u $TEST_USER -- psql -h $PGHOST -p $PGPORT -U postgres llm_usage_demo"
    log "stop it with: runuser -u $TEST_USER -- $PGBIN/pg_ctl -D $WORK/data stop"
fi
