#!/usr/bin/env bash
# t_prices: every OpenAI and Anthropic chat, completion, responses and
# embedding model of LiteLLM's price map (../shared/data/
# litellm_model_prices.json, as shipped) is priced as a computation from that
# file gives, to 1e-9 USD.  test/price_check.py computes each cost from the
# raw JSON fields (decimal arithmetic, README "Prices" rules); the database
# prices the same calls with calculate_cost() (SQL) and track_usage() (C):
# five token mixes (plain; below, at and above the long-context threshold,
# with cache reads, 5-minute and 1-hour cache writes; above it without
# cache) x four service tiers x every model.
#   1. the shipped seed is the map: tools/gen_price_seed.py regenerates
#      src/sql/pre_install/prices.sql byte for byte, and importing the map
#      with import_price_map() adds nothing;
#   2. the shipped prices give the reference costs;
#   3. a map with every cost tripled, imported with import_price_map(),
#      adds a version to every model, with every dimension; calls from then
#      on give the tripled map's reference costs, calls before keep theirs.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
DB=llm_usage_prices
HERE=$(cd "$(dirname "$0")" && pwd)
MAP=${LLM_USAGE_PRICE_MAP:-/work/shared/data/litellm_model_prices.json}
[[ -r $MAP ]] || MAP=$CHECKOUT/../shared/data/litellm_model_prices.json
[[ -r $MAP ]] || fail "no price map (set LLM_USAGE_PRICE_MAP)"
T=$WORK/prices
mkdir -p "$T"
cp "$MAP" "$T/map.json"
chmod 644 "$T/map.json"

# 1a. the seed is generated from the map
if [[ -n ${CHECKOUT:-} && -r $CHECKOUT/tools/gen_price_seed.py ]]; then
    python3 "$CHECKOUT/tools/gen_price_seed.py" --install "$T/map.json" >"$T/seed.sql" 2>/dev/null
    cmp -s "$T/seed.sql" "$CHECKOUT/src/sql/pre_install/prices.sql" \
        || fail "src/sql/pre_install/prices.sql is not what tools/gen_price_seed.py makes of the map"
    echo "ok: the shipped seed is tools/gen_price_seed.py's output for the map"
fi

python3 "$HERE/price_check.py" mixes "$T/map.json" "$T/mixes.tsv"
python3 "$HERE/price_check.py" scale "$T/map.json" 3 "$T/map3.json"
chown -R "$TEST_USER" "$T"

fresh_db "$DB"
q() { psql_q -d "$DB" -At "$@"; }
q -o /dev/null <<SQL
CREATE EXTENSION llm_usage;
CREATE TABLE mixes (model text, i bigint, o bigint, rd bigint, w5 bigint, w1 bigint, tier text, n serial);
\copy mixes (model, i, o, rd, w5, w1, tier) FROM '$T/mixes.tsv'
CREATE TABLE maps (name text PRIMARY KEY, doc jsonb);
SQL
psql_q -d "$DB" -o /dev/null <<SQL
\\set m \`cat $T/map.json\`
INSERT INTO maps VALUES ('map', :'m');
\\set m \`cat $T/map3.json\`
INSERT INTO maps VALUES ('map3', :'m');
SQL

# 1b. importing the map the seed came from adds nothing
added=$(q -c "SET client_min_messages = warning" -c "SELECT count(*) FROM llm_usage.import_price_map((SELECT doc FROM maps WHERE name = 'map'))")
[[ $added == 0 ]] || fail "import_price_map of the shipped map added $added versions"
echo "ok: importing the shipped map adds no version"

# price every mix both ways at a time, write model, mix, tier, SQL cost, C cost
price_all() {   # price_all TENANT AT OUT
    q -o /dev/null <<SQL
SELECT llm_usage.create_tenant('$1', 'enterprise');
SELECT count(llm_usage.track_usage('$1', 'chat', m.model, m.i, m.o, m.rd, request_id => 'r' || m.n,
                                   occurred_at => $2, cache_write_tokens => m.w5, cache_write_1h_tokens => m.w1,
                                   service_tier => m.tier))
  FROM mixes m;
SQL
    q -F $'\t' -c "SELECT m.model, m.i, m.o, m.rd, m.w5, m.w1, m.tier,
                          llm_usage.calculate_cost(m.model, m.i, m.o, m.rd, $2, m.w5, m.w1, m.tier), e.cost_usd
                     FROM mixes m
                     LEFT JOIN llm_usage.usage_events e ON e.tenant_id = '$1' AND e.request_id = 'r' || m.n
                    ORDER BY m.n" >"$3"
    # the C path wrote them (a call within 28 days of now, valid arguments)
}

# 2. the shipped prices
price_all p_now "now() - interval '1 minute'" "$T/db.tsv"
python3 "$HERE/price_check.py" compare "$T/map.json" "$T/db.tsv" || fail "shipped prices differ from the map's"
echo "ok: shipped prices = the map, for every model, mix and tier (calculate_cost and track_usage)"

# 3. a changed map, imported now
q -c "SET client_min_messages = warning" -F ' ' -c "
    SELECT action, count(*), count(*) FILTER (WHERE 'input_usd_per_mtok' = ANY (changed)),
           count(*) FILTER (WHERE 'cached_input_long_context_usd_per_mtok' = ANY (changed)),
           count(*) FILTER (WHERE 'flex_cached_input_usd_per_mtok' = ANY (changed))
      FROM llm_usage.import_price_map((SELECT doc FROM maps WHERE name = 'map3'))
     GROUP BY action" >"$T/import.txt"
read -r action n n_in n_lc n_flex <"$T/import.txt"
models=$(q -c "SELECT count(DISTINCT model) FROM mixes")
[[ $action == changed && $n == "$models" && $n_in == "$models" ]] \
    || fail "import of the tripled map: expected $models models changed, got: $(cat "$T/import.txt")"
echo "ok: import_price_map of a tripled map added one version to each of the $n models (long-context cache reads changed in $n_lc, flex cache reads in $n_flex)"
price_all p_later "now()" "$T/db3.tsv"
python3 "$HERE/price_check.py" compare "$T/map3.json" "$T/db3.tsv" || fail "imported prices differ from the imported map's"
echo "ok: imported prices = the tripled map, for every model, mix and tier"
same=$(q -c "SELECT count(*) FILTER (WHERE e.cost_usd IS NOT DISTINCT FROM
                                            llm_usage.calculate_cost(e.model, e.input_tokens, e.output_tokens, e.cached_input_tokens,
                                                                     e.occurred_at, e.cache_write_tokens, e.cache_write_1h_tokens,
                                                                     e.service_tier))
               FROM llm_usage.usage_events e WHERE e.tenant_id = 'p_now'")
[[ $same == $(q -c "SELECT count(*) FROM mixes") ]] || fail "calls before the import changed price"
echo "ok: calls before the import keep their price"
psql_q -d postgres -c "DROP DATABASE $DB" >/dev/null
echo "PASS"
