# bench/lib.sh — what the benchmarks share, sourced after test/lib.sh:
# interleaved rounds of pgbench runs and the medians, spreads and ratios of
# their results.

# median / spread: of numbers, one a line, on stdin
median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
spread() { sort -g | awk '{a[NR] = $1} END {printf "%.0f-%.0f", a[1], a[NR]}'; }
# ratio A B: A / B to three decimals; pass EXPR: "met" or "NOT met"
ratio() { python3 -c "import sys; print('%.3f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$1" "$2"; }
pass() { python3 -c "import sys; print('met' if eval(sys.argv[1]) else 'NOT met')" "$1"; }

# rounds SCENARIO...: $ROUNDS rounds, each running every scenario in turn
# (so that the machine's noise hits all alike) for $SECS s with 8 prepared
# pgbench clients of "$B/SCENARIO.sql" on $DB; writes "scenario round tps"
# lines to $B/results
rounds() {
    local round s tps
    : >"$B/results"
    for round in $(seq 1 "$ROUNDS"); do
        for s in "$@"; do
            tps=$(as_user "$PGBIN/pgbench" -n -M prepared -c 8 -j 2 -T "$SECS" -f "$B/$s.sql" "$DB" 2>&1 \
                  | sed -n 's/^tps = \([0-9.]*\).*/\1/p')
            echo "$s $round $tps" >>"$B/results"
            log "round $round $s: $tps tps"
        done
    done
}
# stat SCENARIO: its tps in each round, from $B/results
stat() { awk -v s="$1" '$1 == s { print $3 }' "$B/results"; }
