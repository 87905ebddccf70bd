/*-------------------------------------------------------------------------
 *
 * track.c
 *	  track_usage() at the speed of a plain INSERT.
 *
 * The common call (valid arguments, a tenant the role may use, a recent
 * occurred_at) is checked in C, priced from a per-backend price cache and
 * written with one prepared INSERT (two with a request_id) run as the
 * function's owner, as the SQL version's SECURITY DEFINER does, under the
 * calling statement's snapshot (no second snapshot per call).  Anything
 * else goes to the SQL implementation, _track_usage_sql(), for its error
 * messages and rare cases: bad arguments, a repeated request_id, an
 * occurred_at more than 28 days back (retention checks) or ahead.
 *
 * Whether the calling role may track for a tenant comes from the tenant
 * directory of session_cache.c; the price and the cost from cost.c; what
 * an event type counts as from session_cache.c.  The quotas count what is
 * recorded (quota_settle() of quota.c, applied at commit); a tenant whose
 * counters are not in shared memory takes the SQL path, which settles in
 * the table, and so does a tenant on prepaid billing, whose credits the SQL
 * path deducts in the tracking transaction (src/sql/credits.sql).
 *
 * Every statement runs with search_path pinned to pg_catalog, pg_temp and
 * names every object, function and sequence with its schema, so that the
 * caller cannot redirect what runs as the owner (a shadowing nextval(text)
 * in the caller's schema, say).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "llm_usage.h"
#include "cost.h"
#include "quota.h"
#include "session_cache.h"

#define MODEL_MAX		200
#define NARGS			15
#define MAX_TOKENS		INT64CONST(1000000000)

static SPIPlanPtr insert_plan = NULL;
static SPIPlanPtr request_plan = NULL;
static SPIPlanPtr insert_with_id_plan = NULL;
static SPIPlanPtr fallback_plan = NULL;

#define EVENT_TYPE_MAX	64		/* characters */
static const char *const results[] = {"success", "failure", "rate_limited", NULL};

PG_FUNCTION_INFO_V1(llm_usage_track_usage);

static bool
in_list(const char *s, const char *const *list)
{
	for (int i = 0; list[i] != NULL; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/*
 * plain_event_type
 *		An event type the fast path takes: 1 to EVENT_TYPE_MAX printable
 *		ASCII characters (0x20 to 0x7e), not only spaces.  Every such name
 *		is valid by _check_event_type(); any other one (non-ASCII, too long,
 *		a control character, blank) goes to the SQL path, which accepts the
 *		other valid names (any character but a control character) and
 *		raises 22023 for the rest.
 */
static bool
plain_event_type(const char *t)
{
	size_t		len = strlen(t);
	bool		blank = true;

	if (len == 0 || len > EVENT_TYPE_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		if ((unsigned char) t[i] < 0x20 || (unsigned char) t[i] > 0x7e)
			return false;
		blank &= (t[i] == ' ');
	}
	return !blank;
}

static bool
plain_model_name(const char *m)
{
	size_t		len = strlen(m);

	if (len == 0 || len > MODEL_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char) m[i] < 0x21 || (unsigned char) m[i] > 0x7e)
			return false;
	return true;
}

static bool
count_ok(FunctionCallInfo fcinfo, int arg)
{
	return !PG_ARGISNULL(arg) && PG_GETARG_INT64(arg) >= 0 && PG_GETARG_INT64(arg) <= MAX_TOKENS;
}

/*
 * track_fast
 *		Write the call if it is a common one; false when the SQL path must
 *		take it (nothing has been written then).
 */
static bool
track_fast(FunctionCallInfo fcinfo, int64 *event_id)
{
	char	   *tenant;
	const SessionTenant *st;
	char	   *event_type;
	char	   *model = NULL;
	char	   *result;
	TimestampTz at;
	TimestampTz now = GetCurrentTransactionStartTimestamp();
	CostTokens	tok;
	CostTier	tier = COST_NTIERS;
	CostPrice  *p = NULL;
	Datum		values[19];
	char		nulls[19];
	Oid			save_userid;
	int			save_sec;
	int			level;
	bool		written = false;

	/*
	 * arguments: 0 tenant 1 event_type 2 model 3 input 4 output 5 cached
	 * 6 latency 7 status 8 result 9 metadata 10 request_id 11 occurred_at
	 * 12 cache_write 13 cache_write_1h 14 service_tier
	 */
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(8) || PG_ARGISNULL(9) || PG_ARGISNULL(11) ||
		PG_ARGISNULL(14))
		return false;
	if (!count_ok(fcinfo, 3) || !count_ok(fcinfo, 4) || !count_ok(fcinfo, 5) || !count_ok(fcinfo, 12) ||
		!count_ok(fcinfo, 13))
		return false;
	tok.input = PG_GETARG_INT64(3);
	tok.output = PG_GETARG_INT64(4);
	tok.cached = PG_GETARG_INT64(5);
	tok.write_5m = PG_GETARG_INT64(12);
	tok.write_1h = PG_GETARG_INT64(13);
	if (tok.cached + tok.write_5m + tok.write_1h > tok.input)
		return false;
	{
		char	   *t = text_to_cstring(PG_GETARG_TEXT_PP(14));

		for (int i = 0; i < COST_NTIERS; i++)
			if (strcmp(t, cost_tier_names[i]) == 0)
				tier = (CostTier) i;
		if (strcmp(t, "default") == 0)
			tier = COST_TIER_STANDARD;
		if (tier == COST_NTIERS)
			return false;
	}
	if (!PG_ARGISNULL(6) && (PG_GETARG_INT32(6) < 0 || PG_GETARG_INT32(6) > 86400000))
		return false;
	if (!PG_ARGISNULL(7) && (PG_GETARG_INT32(7) < 100 || PG_GETARG_INT32(7) > 599))
		return false;
	at = PG_GETARG_TIMESTAMPTZ(11);
	if (at > now + USECS_PER_HOUR || at < now - 28 * USECS_PER_DAY)
		return false;
	event_type = text_to_cstring(PG_GETARG_TEXT_PP(1));
	result = text_to_cstring(PG_GETARG_TEXT_PP(8));
	if (!plain_event_type(event_type) || !in_list(result, results))
		return false;
	{
		Jsonb	   *meta = PG_GETARG_JSONB_P(9);

		if (!JB_ROOT_IS_OBJECT(meta) || VARSIZE(meta) > 8192)
			return false;
	}
	if (!PG_ARGISNULL(2))
	{
		model = text_to_cstring(PG_GETARG_TEXT_PP(2));
		if (!plain_model_name(model))
			return false;
	}
	if (!PG_ARGISNULL(10))
	{
		char	   *rid = text_to_cstring(PG_GETARG_TEXT_PP(10));

		if (strlen(rid) == 0 || strlen(rid) > 255 || strspn(rid, " ") == strlen(rid))
			return false;
	}
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	st = session_cache_tenant(tenant);
	if (st == NULL)
		return false;			/* empty, too long, unknown or not the caller's */
	if (st->prepaid)
		return false;			/* the SQL path deducts its credits in this transaction */
	if (!quota_settle_ready(tenant))
		return false;			/* the SQL path settles in the table */

	if (model != NULL)
		p = cost_price_at(model, at);

	/* $1 tenant ... as in insert_plan; $17 event_id, $18 cache_write_1h, $19 service_tier */
	memset(nulls, ' ', sizeof(nulls));
	values[0] = PG_GETARG_DATUM(0);
	values[1] = PG_GETARG_DATUM(1);
	values[2] = PG_GETARG_DATUM(2);
	nulls[2] = PG_ARGISNULL(2) ? 'n' : ' ';
	values[3] = p ? CStringGetTextDatum(p->provider) : (Datum) 0;
	nulls[3] = p ? ' ' : 'n';
	values[4] = Int64GetDatum(tok.input);
	values[5] = Int64GetDatum(tok.output);
	values[6] = Int64GetDatum(tok.cached);
	values[7] = Int64GetDatum(tok.write_5m);
	values[8] = p ? cost_of(p, &tok, tier) : (Datum) 0;
	nulls[8] = p ? ' ' : 'n';
	values[9] = p ? Int64GetDatum(p->price_id) : (Datum) 0;
	nulls[9] = p ? ' ' : 'n';
	values[10] = PG_GETARG_DATUM(6);
	nulls[10] = PG_ARGISNULL(6) ? 'n' : ' ';
	values[11] = PG_GETARG_DATUM(7);
	nulls[11] = PG_ARGISNULL(7) ? 'n' : ' ';
	values[12] = PG_GETARG_DATUM(8);
	values[13] = PG_GETARG_DATUM(9);
	values[14] = PG_GETARG_DATUM(10);
	nulls[14] = PG_ARGISNULL(10) ? 'n' : ' ';
	values[15] = TimestampTzGetDatum(at);
	values[16] = (Datum) 0;		/* the event id, set below */
	values[17] = Int64GetDatum(tok.write_1h);
	values[18] = CStringGetTextDatum(cost_tier_names[tier]);

	/* write as the function's owner, with search_path pinned, as SECURITY DEFINER SET search_path would */
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(llm_usage_function_owner(fcinfo->flinfo->fn_oid), save_sec | SECURITY_LOCAL_USERID_CHANGE);
	level = session_cache_pin_search_path();
	SPI_connect();
	if (insert_plan == NULL)
	{
		Oid			types[19] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT8OID,
			NUMERICOID, INT8OID, INT4OID, INT4OID, TEXTOID, JSONBOID, TEXTOID, TIMESTAMPTZOID, INT8OID,
		INT8OID, TEXTOID};
		const char *cols = "INSERT INTO llm_usage.usage_events (tenant_id, event_type, model, provider, input_tokens, "
			"output_tokens, cached_input_tokens, cache_write_tokens, cost_usd, price_id, latency_ms, "
			"status_code, result, metadata, request_id, occurred_at, cache_write_1h_tokens, service_tier";

		insert_plan = session_cache_keep_plan(psprintf("%s) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $18, $19) "
													   "RETURNING event_id", cols), 19, types);
		insert_with_id_plan = session_cache_keep_plan(psprintf("%s, event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $18, $19, $17)",
															   cols), 19, types);
		request_plan = session_cache_keep_plan("INSERT INTO llm_usage.usage_requests (tenant_id, request_id, event_id, occurred_at) "
											   "VALUES ($1, $2, pg_catalog.nextval('llm_usage.usage_events_id_seq'::pg_catalog.regclass), $3) "
											   "ON CONFLICT DO NOTHING RETURNING event_id", 3,
											   (Oid[]) {TEXTOID, TEXTOID, TIMESTAMPTZOID});
	}
	if (PG_ARGISNULL(10))
	{
		bool		isnull;

		if (SPI_execute_snapshot(insert_plan, values, nulls, GetActiveSnapshot(), InvalidSnapshot, false, true, 0) != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
			elog(ERROR, "inserting into llm_usage.usage_events failed");
		*event_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		written = true;
	}
	else
	{
		Datum		rv[3] = {values[0], values[14], values[15]};

		if (SPI_execute_snapshot(request_plan, rv, NULL, GetActiveSnapshot(), InvalidSnapshot, false, true, 0) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "inserting into llm_usage.usage_requests failed");
		if (SPI_processed == 1)
		{
			bool		isnull;

			*event_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
			values[16] = Int64GetDatum(*event_id);
			if (SPI_execute_snapshot(insert_with_id_plan, values, nulls, GetActiveSnapshot(), InvalidSnapshot, false, true, 0) != SPI_OK_INSERT)
				elog(ERROR, "inserting into llm_usage.usage_events failed");
			written = true;
		}
		/* else: a repeated request; the SQL path returns the first event */
	}
	SPI_finish();
	session_cache_unpin_search_path(level);
	SetUserIdAndSecContext(save_userid, save_sec);
	if (written)
	{
		/* the quotas count what was recorded, at commit; its reservation is released */
		SettleAmounts a;

		a.tokens = tok.input + tok.output;
		a.cost_usd = p ? values[8] : (Datum) 0;
		a.counter = session_cache_event_counter(event_type);
		quota_settle(tenant, PG_ARGISNULL(10) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(10)), &a, at);
	}
	return written;
}

/* track_usage through the SQL implementation */
static int64
track_sql(FunctionCallInfo fcinfo)
{
	Datum		args[NARGS];
	char		argnulls[NARGS];
	Oid			types[NARGS] = {TEXTOID, TEXTOID, TEXTOID, INT8OID, INT8OID, INT8OID, INT4OID, INT4OID,
	TEXTOID, JSONBOID, TEXTOID, TIMESTAMPTZOID, INT8OID, INT8OID, TEXTOID};
	bool		isnull;
	int64		id;
	int			level;

	for (int i = 0; i < NARGS; i++)
	{
		argnulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
		args[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	level = session_cache_pin_search_path();
	SPI_connect();
	if (fallback_plan == NULL)
		fallback_plan = session_cache_keep_plan("SELECT llm_usage._track_usage_sql($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
												NARGS, types);
	if (SPI_execute_plan(fallback_plan, args, argnulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "llm_usage._track_usage_sql returned no row");
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	session_cache_unpin_search_path(level);
	return id;
}

/*
 * llm_usage.track_usage(...) RETURNS bigint — see design.md for the
 * arguments; returns the event id.
 */
Datum
llm_usage_track_usage(PG_FUNCTION_ARGS)
{
	int64		id;

	if (!track_fast(fcinfo, &id))
		id = track_sql(fcinfo);
	PG_RETURN_INT64(id);
}
