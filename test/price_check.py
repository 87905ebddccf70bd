#!/usr/bin/env python3
"""Reference costs from LiteLLM's price map, for t_prices.sh.

  price_check.py mixes MAP.json OUT.tsv     every OpenAI and Anthropic chat,
                                            completion, responses and embedding
                                            model x token mix x service tier
  price_check.py scale MAP.json FACTOR OUT.json
                                            the same map with every cost of
                                            those models multiplied by FACTOR
  price_check.py compare MAP.json DB.tsv    compare the database's costs
                                            (calculate_cost and the C
                                            track_usage) with the reference

The reference is computed here, from the raw JSON fields, with Python's
decimal arithmetic (50 digits), by the rules of README "Prices":

  * each kind of token at its own rate: uncached input, cache reads,
    5-minute and 1-hour cache writes, output;
  * standard tier: a missing cache-read or 5-minute write rate is the input
    rate, a missing 1-hour write rate the 5-minute write rate;
  * above the entry's long-context threshold (the N of its
    *_above_Nk_tokens fields; input tokens strictly greater): the
    long-context rate of each kind, or the normal rate of that kind times
    long-context input / input, or the band's fallback;
  * batch, flex, priority: the tier's own rate, or the standard rate of
    that kind times tier input / input (when the tier has an input rate),
    else times 0.5 (batch) or 1 (flex, priority); above the threshold a
    tier rate is multiplied by that kind's long-context factor.
"""
import json
import re
import sys
from decimal import Decimal, getcontext

getcontext().prec = 50
PROVIDERS = ("openai", "text-completion-openai", "anthropic")
MODES = ("chat", "completion", "responses", "embedding")
TIERS = ("standard", "batch", "flex", "priority")
SUFFIX = {"batch": "_batches", "flex": "_flex", "priority": "_priority"}
LC = re.compile(r"^(?:input_cost_per_token|output_cost_per_token|cache_read_input_token_cost|"
                r"cache_creation_input_token_cost|cache_creation_input_token_cost_above_1hr)_above_([0-9]+k?)_tokens$")
TOL = Decimal("1e-9")


def load(path):
    with open(path) as f:
        return json.load(f, parse_float=Decimal)


def models(data):
    for key in sorted(data):
        e = data[key]
        if not isinstance(e, dict) or key in ("sample_spec", "fallback_generalizations"):
            continue
        if e.get("litellm_provider") not in PROVIDERS or e.get("mode") not in MODES:
            continue
        if e.get("input_cost_per_token") is None or e.get("output_cost_per_token") is None:
            continue
        yield key, e


def threshold(e):
    ns = {LC.match(k).group(1) for k in e if LC.match(k) and e[k] is not None}
    if not ns:
        return None, None
    assert len(ns) == 1, ns
    n = ns.pop()
    return (int(n[:-1]) * 1000 if n.endswith("k") else int(n)), "_above_%s_tokens" % n


def rate(e, field):
    """USD per million tokens, or None when the entry has no such field."""
    v = e.get(field)
    return None if v is None else Decimal(v) * 1000000


def first(*xs):
    for x in xs:
        if x is not None:
            return x
    return None


def rates(e, tier, long_context):
    """(input, output, cached, write_5m, write_1h) in USD per million tokens."""
    s_in, s_out = rate(e, "input_cost_per_token"), rate(e, "output_cost_per_token")
    s_rd, s_w5 = rate(e, "cache_read_input_token_cost"), rate(e, "cache_creation_input_token_cost")
    s_w1 = rate(e, "cache_creation_input_token_cost_above_1hr")
    n_rd = first(s_rd, s_in)
    n_w5 = first(s_w5, s_in)
    n_w1 = first(s_w1, n_w5)
    normal = (s_in, s_out, n_rd, n_w5, n_w1)

    band = normal
    if long_context:
        _, sfx = threshold(e)
        l_in = rate(e, "input_cost_per_token" + sfx)
        g = l_in / s_in if l_in is not None and s_in != 0 else Decimal(1)

        def scale(x):
            return None if x is None else x * g
        b_in = first(l_in, s_in)
        b_out = first(rate(e, "output_cost_per_token" + sfx), scale(s_out))
        b_rd = first(rate(e, "cache_read_input_token_cost" + sfx), scale(s_rd), b_in)
        b_w5 = first(rate(e, "cache_creation_input_token_cost" + sfx), scale(s_w5), b_in)
        b_w1 = first(rate(e, "cache_creation_input_token_cost_above_1hr" + sfx), scale(s_w1), b_w5)
        band = (b_in, b_out, b_rd, b_w5, b_w1)
    if tier == "standard":
        return band

    sfx = SUFFIX[tier]
    t_in = rate(e, "input_cost_per_token" + sfx)
    h = t_in / s_in if t_in is not None and s_in != 0 else (Decimal("0.5") if tier == "batch" else Decimal(1))

    def tscale(x):
        return None if x is None else x * h
    r_in = first(t_in, s_in * h)
    r_out = first(rate(e, "output_cost_per_token" + sfx), tscale(s_out))
    r_rd = first(rate(e, "cache_read_input_token_cost" + sfx), tscale(s_rd), r_in)
    r_w5 = first(rate(e, "cache_creation_input_token_cost" + sfx), tscale(s_w5), r_in)
    r_w1 = first(tscale(s_w1), r_w5)
    tiered = [r_in, r_out, r_rd, r_w5, r_w1]
    if long_context:
        tiered = [t * b / n if n != 0 else t for t, b, n in zip(tiered, band, normal)]
    return tuple(tiered)


def cost(e, mix, tier):
    i, o, rd, w5, w1 = mix
    t, _ = threshold(e)
    r = rates(e, tier, t is not None and i > t)
    return ((i - rd - w5 - w1) * r[0] + rd * r[2] + w5 * r[3] + w1 * r[4] + o * r[1]) / 1000000


def mixes(e):
    """Token mixes (input, output, cache read, 5-minute write, 1-hour write):
    plain, below and above the long-context threshold (200k when none)."""
    t, _ = threshold(e)
    t = t or 200000
    below, above = t - 1000, t + 123457
    return [
        (1000, 500, 0, 0, 0),
        (below, 4321, below // 5, below // 7, below // 11),
        (t, 999, t // 3, 0, t // 13),                      # at the threshold: not above it
        (above, 23456, above // 4, above // 9, above // 17),
        (above, 0, 0, 0, 0),
    ]


def cmd_mixes(path, out):
    n = 0
    with open(out, "w") as f:
        for key, e in models(load(path)):
            for mix in mixes(e):
                for tier in TIERS:
                    f.write("%s\t%s\t%s\n" % (key, "\t".join(map(str, mix)), tier))
                    n += 1
    print("%d calls" % n)


def cmd_scale(path, factor, out):
    data = load(path)
    factor = Decimal(factor)
    for key, e in models(data):
        for k, v in list(e.items()):
            if isinstance(v, Decimal) and ("cost_per_token" in k or "token_cost" in k):
                e[k] = v * factor
    # numbers as exact decimal text (json cannot write a Decimal itself)
    text = json.dumps(data, default=lambda d: "__decimal__%s" % d)
    with open(out, "w") as f:
        f.write(re.sub(r'"__decimal__([^"]+)"', r"\1", text))


def cmd_compare(path, db):
    data = dict(models(load(path)))
    worst, bad, n, seen = Decimal(0), [], 0, set()
    with open(db) as f:
        for line in f:
            key, i, o, rd, w5, w1, tier, calc, tracked = line.rstrip("\n").split("\t")
            mix = tuple(int(x) for x in (i, o, rd, w5, w1))
            want = cost(data[key], mix, tier)
            seen.add(key)
            for side, got in (("calculate_cost", calc), ("track_usage", tracked)):
                n += 1
                if got in ("", "\\N"):
                    bad.append((key, mix, tier, side, "NULL", want))
                    continue
                d = abs(Decimal(got) - want)
                worst = max(worst, d)
                if d > TOL:
                    bad.append((key, mix, tier, side, got, want))
    missing = set(data) - seen
    print("%d models (%d with a long-context threshold, %d with flex or priority rates), %d costs compared, "
          "largest difference %s USD"
          % (len(seen), sum(1 for k in seen if threshold(data[k])[0]),
             sum(1 for k in seen if any(f in data[k] for f in ("input_cost_per_token_flex", "input_cost_per_token_priority"))),
             n, worst))
    for b in bad[:20]:
        print("MISMATCH %s %s %s %s: got %s, expected %s" % b)
    if missing:
        print("NOT PRICED by the database: %s" % ", ".join(sorted(missing)[:20]))
    return 1 if bad or missing else 0


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "mixes":
        cmd_mixes(a[1], a[2])
    elif a[0] == "scale":
        cmd_scale(a[1], a[2], a[3])
    elif a[0] == "compare":
        sys.exit(cmd_compare(a[1], a[2]))
