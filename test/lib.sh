# test/lib.sh — shared by test/quickstart.sh and test/run-all.sh.
#
# Everything here runs as root (as sessions and CI do); PostgreSQL itself
# runs as an unprivileged OS user, in a throwaway cluster under /tmp that
# listens on a Unix socket only.

PGMAJOR=15
# LLM_USAGE_PGBIN: another PostgreSQL 15 bindir (e.g. a relocated copy, so that
# several checkouts can test side by side); LLM_USAGE_TEST_PORT likewise.
PGBIN=${LLM_USAGE_PGBIN:-/usr/lib/postgresql/$PGMAJOR/bin}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TEST_USER=${LLM_USAGE_TEST_USER:-llmusage}
PGPORT=${LLM_USAGE_TEST_PORT:-54329}
export PGPORT

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Install the packages the build and the tests need (apt-get update first,
# and only when something is missing).
install_deps() {
    local pkgs=(postgresql-$PGMAJOR postgresql-contrib postgresql-server-dev-$PGMAJOR
                libcurl4-openssl-dev libssl-dev libipc-run-perl make gcc python3 curl gdb)
    local missing=() p
    for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

build_install() {
    log "building and installing llm_usage"
    make -s -C "$ROOT" PG_CONFIG=$PGBIN/pg_config >/dev/null
    make -s -C "$ROOT" PG_CONFIG=$PGBIN/pg_config install >/dev/null
}

ensure_user() {
    id "$TEST_USER" >/dev/null 2>&1 || useradd --system --create-home --shell /bin/bash "$TEST_USER"
}

# as_user CMD...: run CMD as the test user, always from $WORK (from / before
# the cluster exists), never from the caller's directory: runuser keeps the
# working directory, and in a checkout the test user cannot enter (one under
# /root, mode 0700) psql, pg_ctl and python would print "could not change
# directory to ...: Permission denied" into the output the tests compare.
# Pass absolute paths; a command that writes into its working directory
# writes into $WORK (pgbench -l: use --log-prefix).
as_user() (
    cd "${WORK:-/}" || exit
    exec runuser -u "$TEST_USER" -- env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=postgres "$@"
)

# start_cluster: a fresh cluster in $WORK/data with the library preloaded.
# Sets WORK and PGHOST; stop_cluster (registered on EXIT) removes it all.
start_cluster() {
    WORK=$(mktemp -d /tmp/llm_usage_test.XXXXXX)
    chown "$TEST_USER" "$WORK"
    chmod 755 "$WORK"
    PGHOST=$WORK
    export PGHOST
    trap stop_cluster EXIT
    log "starting a throwaway cluster in $WORK (port $PGPORT, socket only)"
    as_user "$PGBIN/initdb" -D "$WORK/data" -U postgres -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null
    # a fresh random master key (version 1), readable by the server user only
    (umask 077; python3 -c 'import secrets; print("1:" + secrets.token_hex(32))' >"$WORK/master.key")
    chown "$TEST_USER" "$WORK/master.key"
    cat >>"$WORK/data/postgresql.conf" <<CONF
listen_addresses = ''
unix_socket_directories = '$WORK'
port = $PGPORT
shared_preload_libraries = 'llm_usage'
max_connections = 60
max_prepared_transactions = 10
fsync = off
synchronous_commit = off
full_page_writes = off
timezone = 'UTC'
log_min_messages = warning
logging_collector = off
llm_usage.database = 'llm_usage_worker'
llm_usage.master_key_file = '$WORK/master.key'
llm_usage.http_timeout_ms = 5000
# the regression suites use fixed 2026 dates; keep them inside retention
llm_usage.event_retention = 600
# custom usage sources of the suites and the quick start: the local simulator
llm_usage.source_url_prefixes = 'http://127.0.0.1:'
CONF
    as_user "$PGBIN/pg_ctl" -D "$WORK/data" -l "$WORK/server.log" -w -t 60 start >/dev/null \
        || { cat "$WORK/server.log" >&2; die "the test cluster did not start"; }
    # the database the collector works in (it waits there for the extension)
    psql_q -d postgres -c "CREATE DATABASE llm_usage_worker" >/dev/null
}

stop_cluster() {
    if [[ -n "${WORK:-}" && -d "$WORK/data" ]]; then
        as_user "$PGBIN/pg_ctl" -D "$WORK/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    if [[ -n "${WORK:-}" && -z "${LLM_USAGE_KEEP:-}" ]]; then
        rm -rf "$WORK"
    fi
}

psql_q() { as_user "$PGBIN/psql" -X -v ON_ERROR_STOP=1 -q "$@"; }

fail() { echo "FAIL: $*"; exit 1; }

# fresh_db NAME: drop and create a database on the test cluster
fresh_db() { psql_q -d postgres -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" 2>/dev/null; }
