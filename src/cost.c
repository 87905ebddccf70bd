/*-------------------------------------------------------------------------
 *
 * cost.c
 *	  Model prices and the cost of a call, for track_usage()'s C path.
 *
 * The price cache holds every row of llm_usage.model_price_versions, read
 * with one query the first time a backend needs a price, and again when
 * the prices' generation (session_cache_prices_gen()) moved: a price change
 * committed by anyone, or made by this backend.  The query runs with
 * search_path pinned, under a snapshot taken after the generation was read.
 *
 * cost_of() is the SQL function llm_usage._cost() (src/sql/tracking.sql,
 * whose header states the rules) in C: the same numeric operations on the
 * same operands in the same order, so that both give the same digits --
 * t_differential.sh checks it.  Multiplications and additions of numeric
 * are exact; a rate derived by scaling divides once, (rate x num) / den,
 * at numeric_div's precision, in both.
 *
 * Backend-local state only; no locks.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "cost.h"
#include "session_cache.h"

#define MODEL_MAX		200

const char *const cost_tier_names[COST_NTIERS] = {"standard", "batch", "flex", "priority"};

typedef struct ModelPrices
{
	char		model[MODEL_MAX + 1];	/* hash key, zero-padded */
	int			n;
	CostPrice  *versions;		/* newest valid_from first */
} ModelPrices;

static HTAB *price_cache = NULL;
static MemoryContext price_ctx = NULL;
static SPIPlanPtr prices_plan = NULL;
static uint64 prices_gen = 0;	/* session_cache_prices_gen() when the prices were read */

/* numeric constants, in TopMemoryContext */
static Datum per_token = (Datum) 0;		/* 0.000001: rates are per million tokens */
static Datum half = (Datum) 0;			/* 0.5: the Batch API's default factor */
static Datum zero = (Datum) 0;

/*
 * The columns read, in this order: model, valid_from, price_id, provider,
 * long_context_threshold, then the rates of rate_columns[tier][kind]
 * (NULL where a tier has no column of that kind) and long_context_columns.
 */
static const char *const rate_columns[COST_NTIERS][COST_NKINDS] = {
	{"input_usd_per_mtok", "output_usd_per_mtok", "cached_input_usd_per_mtok",
	"cache_write_usd_per_mtok", "cache_write_1h_usd_per_mtok"},
	{"batch_input_usd_per_mtok", "batch_output_usd_per_mtok", "batch_cached_input_usd_per_mtok",
	"batch_cache_write_usd_per_mtok", NULL},
	{"flex_input_usd_per_mtok", "flex_output_usd_per_mtok", "flex_cached_input_usd_per_mtok",
	"flex_cache_write_usd_per_mtok", NULL},
	{"priority_input_usd_per_mtok", "priority_output_usd_per_mtok", "priority_cached_input_usd_per_mtok",
	"priority_cache_write_usd_per_mtok", NULL},
};
static const char *const long_context_columns[COST_NKINDS] = {
	"input_long_context_usd_per_mtok", "output_long_context_usd_per_mtok",
	"cached_input_long_context_usd_per_mtok", "cache_write_long_context_usd_per_mtok",
	"cache_write_1h_long_context_usd_per_mtok"
};

/* drop the price cache (session_cache.c calls it when the configuration changes) */
static void
reset_prices(void)
{
	price_cache = NULL;
	if (price_ctx != NULL)
		MemoryContextReset(price_ctx);
}

static Datum
numeric_const(const char *s)
{
	Datum		d;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	d = DirectFunctionCall3(numeric_in, CStringGetDatum(s), ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
	MemoryContextSwitchTo(old);
	return d;
}

static Datum
rate_of(HeapTuple tup, TupleDesc desc, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(tup, desc, col, &isnull);

	return isnull ? (Datum) 0 : datumCopy(d, false, -1);
}

/*
 * load_prices
 *		Load every price version into the cache with one query.  Expects a
 *		transaction; reads pending invalidations (SPI) and resets the cache
 *		before filling it.  The cache is published when complete: an error
 *		while it is filled leaves none (read again by the next call).
 */
static void
load_prices(void)
{
	HTAB	   *cache;
	HASHCTL		info;
	MemoryContext old;
	uint64		gen;
	int			level;

	if (price_ctx == NULL)
		price_ctx = AllocSetContextCreate(CacheMemoryContext, "llm_usage price cache", ALLOCSET_SMALL_SIZES);
	session_cache_register(reset_prices);
	gen = session_cache_prices_gen();
	if (per_token == (Datum) 0)
	{
		per_token = numeric_const("0.000001");
		half = numeric_const("0.5");
		zero = numeric_const("0");
	}
	level = session_cache_pin_search_path();
	SPI_connect();
	if (prices_plan == NULL)
	{
		StringInfoData sql;

		initStringInfo(&sql);
		appendStringInfoString(&sql, "SELECT model, valid_from, price_id, provider, long_context_threshold");
		for (int t = 0; t < COST_NTIERS; t++)
			for (int k = 0; k < COST_NKINDS; k++)
				if (rate_columns[t][k] != NULL)
					appendStringInfo(&sql, ", %s", rate_columns[t][k]);
		for (int k = 0; k < COST_NKINDS; k++)
			appendStringInfo(&sql, ", %s", long_context_columns[k]);
		appendStringInfoString(&sql, " FROM llm_usage.model_price_versions ORDER BY model, valid_from DESC");
		prices_plan = session_cache_keep_plan(sql.data, 0, NULL);
	}
	if (SPI_execute_snapshot(prices_plan, NULL, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading llm_usage.model_price_versions failed");

	reset_prices();
	memset(&info, 0, sizeof(info));
	info.keysize = MODEL_MAX + 1;
	info.entrysize = sizeof(ModelPrices);
	info.hcxt = price_ctx;
	/* filled first, published (price_cache set) only once complete */
	cache = hash_create("llm_usage price cache", 256, &info, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	old = MemoryContextSwitchTo(price_ctx);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		char	   *model = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
		char		key[MODEL_MAX + 1];
		ModelPrices *mp;
		bool		found;
		CostPrice  *v;
		Datum		threshold;
		int			col = 6;

		if (strlen(model) > MODEL_MAX)
			continue;
		memset(key, 0, sizeof(key));
		strlcpy(key, model, sizeof(key));
		mp = hash_search(cache, key, HASH_ENTER, &found);
		if (!found)
		{
			mp->n = 0;
			mp->versions = palloc(sizeof(CostPrice) * 4);
		}
		else if ((mp->n & (mp->n - 1)) == 0 && mp->n >= 4)
			mp->versions = repalloc(mp->versions, sizeof(CostPrice) * mp->n * 2);
		v = &mp->versions[mp->n++];
		memset(v, 0, sizeof(*v));
		v->valid_from = DatumGetTimestampTz(SPI_getbinval(tup, desc, 2, &isnull));
		v->price_id = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		v->provider = TextDatumGetCString(SPI_getbinval(tup, desc, 4, &isnull));
		threshold = SPI_getbinval(tup, desc, 5, &isnull);
		v->long_context_threshold = isnull ? 0 : DatumGetInt64(threshold);
		for (int t = 0; t < COST_NTIERS; t++)
			for (int k = 0; k < COST_NKINDS; k++)
				if (rate_columns[t][k] != NULL)
					v->rate[t][k] = rate_of(tup, desc, col++);
		for (int k = 0; k < COST_NKINDS; k++)
			v->long_context[k] = rate_of(tup, desc, col++);
	}
	MemoryContextSwitchTo(old);
	SPI_finish();
	session_cache_unpin_search_path(level);
	price_cache = cache;
	prices_gen = gen;
}

/*
 * cost_price_at
 *		The version of a model valid at "at", or NULL.  Loads the cache if
 *		needed (expects a transaction then).
 */
CostPrice *
cost_price_at(const char *model, TimestampTz at)
{
	char		key[MODEL_MAX + 1];
	ModelPrices *mp;

	if (price_cache == NULL || prices_gen != session_cache_prices_gen())
		load_prices();
	if (strlen(model) > MODEL_MAX)
		return NULL;
	memset(key, 0, sizeof(key));
	strlcpy(key, model, sizeof(key));
	mp = hash_search(price_cache, key, HASH_FIND, NULL);
	if (mp == NULL)
		return NULL;
	for (int i = 0; i < mp->n; i++)
		if (mp->versions[i].valid_from <= at)
			return &mp->versions[i];
	return NULL;
}

/* a * b */
static Datum
mul(Datum a, Datum b)
{
	return DirectFunctionCall2(numeric_mul, a, b);
}

/* the first of a, b, c that is set (SQL coalesce); c may be 0 too */
static Datum
first_of(Datum a, Datum b, Datum c)
{
	return a ? a : (b ? b : c);
}

/* _rate_scaled(): rate x num / den, or rate when num or den is missing or den is 0 */
static Datum
scaled(Datum rate, Datum num, Datum den)
{
	if (rate == (Datum) 0)
		return (Datum) 0;
	if (num == (Datum) 0 || den == (Datum) 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, den, zero)) == 0)
		return rate;
	return DirectFunctionCall2(numeric_div, mul(rate, num), den);
}

/* rate x d, where d is the tier's default factor (1: the rate itself) */
static Datum
by_default(Datum rate, bool halve)
{
	if (rate == (Datum) 0 || !halve)
		return rate;
	return mul(rate, half);
}

/*
 * rates_of
 *		The five rates a call is billed at, by the rules of _rates() in
 *		src/sql/tracking.sql, step for step.
 */
static void
rates_of(const CostPrice *p, CostTier tier, bool lc, Datum *r)
{
	const Datum *s = p->rate[COST_TIER_STANDARD];
	Datum		s_in = s[COST_INPUT];
	Datum		l_in = lc ? p->long_context[COST_INPUT] : (Datum) 0;
	Datum		n_rd,
				n_w5,
				n_w1,
				b[COST_NKINDS];

	n_rd = first_of(s[COST_CACHED], s_in, 0);
	n_w5 = first_of(s[COST_WRITE_5M], s_in, 0);
	n_w1 = first_of(s[COST_WRITE_1H], n_w5, 0);

	b[COST_INPUT] = first_of(l_in, s_in, 0);
	b[COST_OUTPUT] = first_of(lc ? p->long_context[COST_OUTPUT] : 0, scaled(s[COST_OUTPUT], l_in, s_in), 0);
	b[COST_CACHED] = first_of(lc ? p->long_context[COST_CACHED] : 0, scaled(s[COST_CACHED], l_in, s_in), b[COST_INPUT]);
	b[COST_WRITE_5M] = first_of(lc ? p->long_context[COST_WRITE_5M] : 0, scaled(s[COST_WRITE_5M], l_in, s_in), b[COST_INPUT]);
	b[COST_WRITE_1H] = first_of(lc ? p->long_context[COST_WRITE_1H] : 0, scaled(s[COST_WRITE_1H], l_in, s_in), b[COST_WRITE_5M]);

	if (tier == COST_TIER_STANDARD)
	{
		memcpy(r, b, sizeof(b));
		return;
	}
	else
	{
		const Datum *t = p->rate[tier];
		bool		halve = (tier == COST_TIER_BATCH);

		if (t[COST_INPUT] == (Datum) 0 ||
			DatumGetInt32(DirectFunctionCall2(numeric_cmp, s_in, zero)) == 0)
		{
			r[COST_INPUT] = first_of(t[COST_INPUT], by_default(s_in, halve), 0);
			r[COST_OUTPUT] = first_of(t[COST_OUTPUT], by_default(s[COST_OUTPUT], halve), 0);
			r[COST_CACHED] = first_of(t[COST_CACHED], by_default(s[COST_CACHED], halve), r[COST_INPUT]);
			r[COST_WRITE_5M] = first_of(t[COST_WRITE_5M], by_default(s[COST_WRITE_5M], halve), r[COST_INPUT]);
			r[COST_WRITE_1H] = first_of(by_default(s[COST_WRITE_1H], halve), r[COST_WRITE_5M], 0);
		}
		else
		{
			r[COST_INPUT] = t[COST_INPUT];
			r[COST_OUTPUT] = first_of(t[COST_OUTPUT], scaled(s[COST_OUTPUT], t[COST_INPUT], s_in), 0);
			r[COST_CACHED] = first_of(t[COST_CACHED], scaled(s[COST_CACHED], t[COST_INPUT], s_in), r[COST_INPUT]);
			r[COST_WRITE_5M] = first_of(t[COST_WRITE_5M], scaled(s[COST_WRITE_5M], t[COST_INPUT], s_in), r[COST_INPUT]);
			r[COST_WRITE_1H] = first_of(scaled(s[COST_WRITE_1H], t[COST_INPUT], s_in), r[COST_WRITE_5M], 0);
		}
		if (lc)
		{
			r[COST_INPUT] = scaled(r[COST_INPUT], b[COST_INPUT], s_in);
			r[COST_OUTPUT] = scaled(r[COST_OUTPUT], b[COST_OUTPUT], s[COST_OUTPUT]);
			r[COST_CACHED] = scaled(r[COST_CACHED], b[COST_CACHED], n_rd);
			r[COST_WRITE_5M] = scaled(r[COST_WRITE_5M], b[COST_WRITE_5M], n_w5);
			r[COST_WRITE_1H] = scaled(r[COST_WRITE_1H], b[COST_WRITE_1H], n_w1);
		}
	}
}

static Datum
times(int64 tokens, Datum rate_usd)
{
	return mul(NumericGetDatum(int64_to_numeric(tokens)), rate_usd);
}

/*
 * cost_of
 *		USD for one call at price p in a tier, as llm_usage._cost()
 *		computes it.  Counts must be valid (non-negative, cached and writes
 *		within input).
 */
Datum
cost_of(const CostPrice *p, const CostTokens *t, CostTier tier)
{
	Datum		r[COST_NKINDS];
	bool		lc = p->long_context_threshold > 0 && t->input > p->long_context_threshold;
	Datum		sum;

	rates_of(p, tier, lc, r);
	sum = times(t->input - t->cached - t->write_5m - t->write_1h, r[COST_INPUT]);
	sum = DirectFunctionCall2(numeric_add, sum, times(t->cached, r[COST_CACHED]));
	sum = DirectFunctionCall2(numeric_add, sum, times(t->write_5m, r[COST_WRITE_5M]));
	sum = DirectFunctionCall2(numeric_add, sum, times(t->write_1h, r[COST_WRITE_1H]));
	sum = DirectFunctionCall2(numeric_add, sum, times(t->output, r[COST_OUTPUT]));
	sum = mul(sum, per_token);
	return DirectFunctionCall1(numeric_trim_scale, sum);
}
