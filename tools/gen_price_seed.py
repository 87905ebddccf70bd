#!/usr/bin/env python3
"""Print the model price seed of the install script from ../shared/data/model_prices.csv.

Usage: python3 tools/gen_price_seed.py PATH/TO/model_prices.csv > /tmp/seed.sql

Only the token-priced text modes are seeded (chat, completion, responses,
embedding); empty cells stay NULL ("the source gives no value").
"""
import csv
import sys

MODES = ("chat", "completion", "responses", "embedding")
COLS = ("input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok",
        "cache_write_5m_usd_per_mtok", "cache_write_1h_usd_per_mtok",
        "batch_input_usd_per_mtok", "batch_output_usd_per_mtok",
        "input_above_200k_usd_per_mtok", "output_above_200k_usd_per_mtok")


def lit(v):
    return "NULL" if v == "" else v


def main(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["mode"] not in MODES:
                continue
            if r["input_usd_per_mtok"] == "" or r["output_usd_per_mtok"] == "":
                continue
            dep = "NULL" if r["deprecation_date"] == "" else "'%s'" % r["deprecation_date"]
            vals = ", ".join(lit(r[c]) for c in COLS)
            rows.append("  ('%s', '%s', '%s', %s, %s)" % (r["provider"], r["model"], r["mode"], vals, dep))
    print("INSERT INTO llm_usage.model_price_versions")
    print("  (provider, model, mode, input_usd_per_mtok, output_usd_per_mtok, cached_input_usd_per_mtok,")
    print("   cache_write_usd_per_mtok, cache_write_1h_usd_per_mtok, batch_input_usd_per_mtok,")
    print("   batch_output_usd_per_mtok, input_above_200k_usd_per_mtok, output_above_200k_usd_per_mtok,")
    print("   deprecation_date)")
    print("VALUES")
    print(",\n".join(rows) + ";")
    print("-- %d seeded models" % len(rows), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/model_prices.csv")
