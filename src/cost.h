/*-------------------------------------------------------------------------
 *
 * cost.h
 *	  Model prices and the cost of a call, in C (cost.c): a per-backend
 *	  cache of llm_usage.model_price_versions and the formula of the SQL
 *	  function llm_usage._cost().
 *
 *-------------------------------------------------------------------------
 */
#ifndef LLM_USAGE_COST_H
#define LLM_USAGE_COST_H

#include "datatype/timestamp.h"

/* service tiers, as usage_events.service_tier spells them */
typedef enum CostTier
{
	COST_TIER_STANDARD = 0,
	COST_TIER_BATCH,
	COST_TIER_FLEX,
	COST_TIER_PRIORITY,
	COST_NTIERS
} CostTier;

/* the kinds of token a call is billed for */
typedef enum CostKind
{
	COST_INPUT = 0,				/* uncached input */
	COST_OUTPUT,
	COST_CACHED,				/* cache reads */
	COST_WRITE_5M,				/* cache writes, 5-minute TTL */
	COST_WRITE_1H,				/* cache writes, 1-hour TTL */
	COST_NKINDS
} CostKind;

/*
 * One price version.  Rates are numeric Datums in the cache's context,
 * (Datum) 0 where the column is NULL.  Tiers have no 1-hour write rate of
 * their own (tier[COST_TIER_STANDARD] is the standard rates).
 */
typedef struct CostPrice
{
	TimestampTz valid_from;
	int64		price_id;
	char	   *provider;
	Datum		rate[COST_NTIERS][COST_NKINDS];
	Datum		long_context[COST_NKINDS];	/* standard tier above the threshold */
	int64		long_context_threshold; /* 0: none */
} CostPrice;

/* the counts of one call */
typedef struct CostTokens
{
	int64		input;			/* all input */
	int64		output;
	int64		cached;
	int64		write_5m;
	int64		write_1h;
} CostTokens;

extern const char *const cost_tier_names[COST_NTIERS];

extern CostPrice *cost_price_at(const char *model, TimestampTz at);
extern Datum cost_of(const CostPrice *p, const CostTokens *t, CostTier tier);

#endif							/* LLM_USAGE_COST_H */
