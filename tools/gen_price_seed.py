#!/usr/bin/env python3
"""Generate the shipped model prices from LiteLLM's price map.

Usage:
  python3 tools/gen_price_seed.py [--install | --update] [PATH/TO/litellm_model_prices.json]

  --install (default)  print src/sql/pre_install/prices.sql (the install seed)
  --update             print the block of src/sql/updates/1.2--1.3.sql that
                       brings the prices shipped by 1.2 up to this seed

Seeded: the entries whose litellm_provider is openai, text-completion-openai
(as openai) or anthropic, in the token-priced text modes (chat, completion,
responses, embedding), with an input and an output cost.  Every price
dimension llm_usage stores is taken from the entry; a missing field stays
NULL (README "Prices" says how such a rate is derived).  Per-token costs
become USD per million tokens, exactly (decimal arithmetic on the numbers
as written in the JSON).
"""
import json
import re
import sys
from decimal import Decimal

SOURCE = "litellm 2026-07-24"
MODES = ("chat", "completion", "responses", "embedding")
PROVIDERS = {"openai": "openai", "text-completion-openai": "openai", "anthropic": "anthropic"}

# column -> LiteLLM field; "{lc}" is the entry's _above_<N>k_tokens suffix
COLUMNS = [
    ("input_usd_per_mtok", "input_cost_per_token"),
    ("output_usd_per_mtok", "output_cost_per_token"),
    ("cached_input_usd_per_mtok", "cache_read_input_token_cost"),
    ("cache_write_usd_per_mtok", "cache_creation_input_token_cost"),
    ("cache_write_1h_usd_per_mtok", "cache_creation_input_token_cost_above_1hr"),
    ("batch_input_usd_per_mtok", "input_cost_per_token_batches"),
    ("batch_output_usd_per_mtok", "output_cost_per_token_batches"),
    ("input_long_context_usd_per_mtok", "input_cost_per_token{lc}"),
    ("output_long_context_usd_per_mtok", "output_cost_per_token{lc}"),
    ("cached_input_long_context_usd_per_mtok", "cache_read_input_token_cost{lc}"),
    ("cache_write_long_context_usd_per_mtok", "cache_creation_input_token_cost{lc}"),
    ("cache_write_1h_long_context_usd_per_mtok", "cache_creation_input_token_cost_above_1hr{lc}"),
    ("batch_cached_input_usd_per_mtok", "cache_read_input_token_cost_batches"),
    ("batch_cache_write_usd_per_mtok", "cache_creation_input_token_cost_batches"),
    ("flex_input_usd_per_mtok", "input_cost_per_token_flex"),
    ("flex_output_usd_per_mtok", "output_cost_per_token_flex"),
    ("flex_cached_input_usd_per_mtok", "cache_read_input_token_cost_flex"),
    ("flex_cache_write_usd_per_mtok", "cache_creation_input_token_cost_flex"),
    ("priority_input_usd_per_mtok", "input_cost_per_token_priority"),
    ("priority_output_usd_per_mtok", "output_cost_per_token_priority"),
    ("priority_cached_input_usd_per_mtok", "cache_read_input_token_cost_priority"),
    ("priority_cache_write_usd_per_mtok", "cache_creation_input_token_cost_priority"),
]
LC_KEY = re.compile(r"^(?:input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|"
                    r"cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)"
                    r"_above_([0-9]+k?)_tokens$")


def per_mtok(v):
    """USD per token (a Decimal as written) -> USD per million tokens, plain decimal."""
    d = (v * 1000000).normalize()
    s = format(d, "f")
    return s


def rows_of(path):
    with open(path) as f:
        data = json.load(f, parse_float=Decimal)
    rows = []
    for key, e in data.items():
        if not isinstance(e, dict) or key in ("sample_spec", "fallback_generalizations"):
            continue
        provider = PROVIDERS.get(e.get("litellm_provider"))
        if provider is None or e.get("mode") not in MODES:
            continue
        if e.get("input_cost_per_token") is None or e.get("output_cost_per_token") is None:
            continue
        ns = sorted({LC_KEY.match(k).group(1) for k in e if LC_KEY.match(k) and e[k] is not None})
        if len(ns) > 1:
            sys.exit("entry %s has more than one long-context threshold: %s" % (key, ns))
        lc = "_above_%s_tokens" % ns[0] if ns else None
        vals = []
        for col, field in COLUMNS:
            if "{lc}" in field:
                v = e.get(field.format(lc=lc)) if lc else None
            else:
                v = e.get(field)
            vals.append("NULL" if v is None else per_mtok(Decimal(v)))
        threshold = "NULL"
        if ns:
            threshold = str(int(ns[0][:-1]) * 1000) if ns[0].endswith("k") else ns[0]
        dep = e.get("deprecation_date")
        dep = "'%s'" % dep if isinstance(dep, str) and re.match(r"^\d{4}-\d{2}-\d{2}$", dep) else "NULL"
        rows.append((provider, key, e["mode"], vals, threshold, dep))
    rows.sort(key=lambda r: (r[0], r[1]))
    return rows


def values(rows, shipped_tail):
    out = []
    for provider, model, mode, vals, threshold, dep in rows:
        out.append("  ('%s', '%s', '%s', %s, %s, %s%s)"
                   % (provider, model, mode, ", ".join(vals), threshold, dep, shipped_tail))
    return ",\n".join(out)


COLS = ("provider, model, mode, " + ", ".join(c for c, _ in COLUMNS)
        + ", long_context_threshold, deprecation_date")


def wrap(cols, indent):
    words, lines, cur = cols.split(", "), [], ""
    for w in words:
        if cur and len(cur) + len(w) + 2 > 100:
            lines.append(cur + ",")
            cur = indent + w
        else:
            cur = (cur + ", " + w) if cur else indent + w
    lines.append(cur)
    return "\n".join(lines)


def install(rows):
    print("""/*
 * src/sql/pre_install/prices.sql — published model prices (install only)
 *
 * Generated by tools/gen_price_seed.py from the LiteLLM price map of
 * 2026-07-24 (../shared/data/litellm_model_prices.json): every dimension
 * llm_usage prices (README "Prices"); valid for all time until a new
 * version is set.  Shipped prices are not dumped.
 */

INSERT INTO llm_usage.model_price_versions""")
    print("  (" + wrap(COLS + ", is_shipped, source", "   ")[3:] + ")")
    print("VALUES")
    print(values(rows, ", true, '%s'" % SOURCE) + ";")


def update(rows):
    print("""-- The shipped prices of 1.3 carry every dimension of the price map (1.2
-- shipped input, output, cache and 200k rates only).  Where a model's
-- version in force is still the shipped one and the 1.3 seed differs from
-- it, a shipped version valid from the update is added: costs computed
-- before keep their price.  Models priced by the admin since are left
-- alone.  (Generated by tools/gen_price_seed.py --update.)
CREATE TEMPORARY TABLE llm_usage_seed_1_3 AS
SELECT """ + wrap(COLS, "       ")[7:] + """
  FROM llm_usage.model_price_versions WITH NO DATA;
INSERT INTO llm_usage_seed_1_3""")
    print("  (" + wrap(COLS, "   ")[3:] + ")")
    print("VALUES")
    print(values(rows, "") + ";")
    print("""INSERT INTO llm_usage.model_price_versions
  (""" + wrap(COLS + ", valid_from, is_shipped, source", "   ")[3:] + """)
SELECT """ + wrap(", ".join("s." + c for c in COLS.split(", ")), "       ")[7:] + """,
       pg_catalog.now(), true, '""" + SOURCE + """'
  FROM llm_usage_seed_1_3 s
  JOIN LATERAL (SELECT v.* FROM llm_usage.model_price_versions v
                 WHERE v.model OPERATOR(pg_catalog.=) s.model
                 ORDER BY v.valid_from DESC LIMIT 1) cur ON cur.is_shipped
 WHERE (""" + wrap(", ".join("s." + c for c, _ in COLUMNS) + ", s.long_context_threshold", "        ")[8:] + """)
       IS DISTINCT FROM
       (""" + wrap(", ".join("cur." + c for c, _ in COLUMNS) + ", cur.long_context_threshold", "        ")[8:] + """);
DROP TABLE llm_usage_seed_1_3;""")


def main(argv):
    mode = "--install"
    path = "../shared/data/litellm_model_prices.json"
    for a in argv:
        if a in ("--install", "--update"):
            mode = a
        else:
            path = a
    rows = rows_of(path)
    if mode == "--install":
        install(rows)
    else:
        update(rows)
    print("-- %d seeded models" % len(rows), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
