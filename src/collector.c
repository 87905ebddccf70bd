/*-------------------------------------------------------------------------
 *
 * collector.c
 *	  One collection run: one provider key, one window.  The only file that
 *	  ties the providers, HTTP, crypto and SPI together.
 *
 * A run goes through three steps, and no transaction is open while the
 * network is used:
 *
 *	1. claim (short transaction): llm_usage._claim_next_run() marks the
 *	   oldest queued run "running" and hands over the key's ciphertext;
 *	2. fetch (no transaction): decrypt the key into run memory, fetch every
 *	   page of every endpoint, parse each with jsonb; zero the key;
 *	3. write (one transaction): llm_usage._ingest_page() upserts the rows
 *	   of every page on their natural keys, llm_usage._finish_run() records
 *	   the run; commit.  All rows of the run, or none.
 *
 * Any error in 2 or 3 is caught: the write transaction (if open) is rolled
 * back and the run is recorded as failed in a new transaction, which also
 * raises a collection_failed alert.  A crash leaves the run "running"; the
 * worker marks such runs failed when it starts, and the next run of the
 * window writes everything once, because writes are upserts.
 *
 * Memory: everything of a run lives in its own context, deleted at the end.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "llm_usage.h"

#define MAX_PAGES_PER_ENDPOINT 500

typedef struct Run
{
	int64		run_id;
	int64		key_id;
	char	   *provider;
	TimestampTz window_from;
	TimestampTz window_to;
	bytea	   *ciphertext;
	bytea	   *wrapped_dek;
	int			master_version;
	char	   *aad;
	int			pages;
	int			attempts;
	char	   *where;			/* what the run was doing, for its error */
	List	   *page_endpoints;	/* char * per page */
	List	   *page_bodies;	/* Jsonb * per page */
} Run;

PG_FUNCTION_INFO_V1(llm_usage_probe_key);

static void
begin_tx(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
commit_tx(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

static Datum
copy_col(int col, bool *isnull, Oid typid)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);

	if (*isnull)
		return (Datum) 0;
	return typid == TEXTOID || typid == BYTEAOID ? PointerGetDatum(PG_DETOAST_DATUM_COPY(d)) : d;
}

/* step 1: claim the next queued run into *run (allocated in ctx); false if none */
static bool
claim(Run *run, MemoryContext ctx)
{
	bool		isnull;
	bool		found;

	begin_tx("llm_usage: claiming a collection run");
	if (SPI_execute("SELECT run_id, key_id, provider, window_from, window_to, key_ciphertext,"
					" wrapped_dek, master_key_version, aad FROM llm_usage._claim_next_run()",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "llm_usage._claim_next_run() failed");
	found = SPI_processed > 0;
	if (found)
	{
		MemoryContext old = MemoryContextSwitchTo(ctx);

		run->run_id = DatumGetInt64(copy_col(1, &isnull, INT8OID));
		run->key_id = DatumGetInt64(copy_col(2, &isnull, INT8OID));
		run->provider = TextDatumGetCString(copy_col(3, &isnull, TEXTOID));
		run->window_from = DatumGetTimestampTz(copy_col(4, &isnull, TIMESTAMPTZOID));
		run->window_to = DatumGetTimestampTz(copy_col(5, &isnull, TIMESTAMPTZOID));
		run->ciphertext = DatumGetByteaPP(copy_col(6, &isnull, BYTEAOID));
		run->wrapped_dek = DatumGetByteaPP(copy_col(7, &isnull, BYTEAOID));
		run->master_version = DatumGetInt32(copy_col(8, &isnull, INT4OID));
		run->aad = TextDatumGetCString(copy_col(9, &isnull, TEXTOID));
		MemoryContextSwitchTo(old);
	}
	commit_tx();
	return found;
}

static HttpRequest
make_request(const char *url, char **headers)
{
	HttpRequest req;

	req.url = url;
	req.headers = (const char *const *) headers;
	req.timeout_ms = llm_usage_http_timeout_ms;
	req.max_retries = llm_usage_max_retries;
	req.max_body = (size_t) llm_usage_http_max_response_kb * 1024;
	req.post_body = NULL;
	req.expect_json = true;
	return req;
}

/* step 2: every page of every endpoint, parsed, into run->page_* */
static void
fetch(Run *run)
{
	const Provider *p = provider_lookup(run->provider);
	char	   *key;
	char	  **headers;
	pg_time_t	from = timestamptz_to_time_t(run->window_from);
	pg_time_t	to = timestamptz_to_time_t(run->window_to);

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("provider \"%s\" has no usage API adapter", run->provider)));

	run->where = "decrypting the key";
	key = llm_usage_decrypt_provider_key(run->ciphertext, run->wrapped_dek, run->master_version, run->aad);
	headers = p->auth_headers(key);
	explicit_bzero(key, strlen(key));

	PG_TRY();
	{
		for (int e = 0; e < p->nendpoints; e++)
		{
			const ProviderEndpoint *ep = &p->endpoints[e];
			char	   *cursor = NULL;
			int			n;

			for (n = 0; n < MAX_PAGES_PER_ENDPOINT; n++)
			{
				HttpRequest req = make_request(provider_page_url(p, ep, from, to, cursor), headers);
				HttpResult	res;
				bool		has_more;
				Jsonb	   *page;

				run->where = psprintf("%s %s page %d", run->provider, ep->name, n + 1);
				pgstat_report_activity(STATE_RUNNING,
									   psprintf("llm_usage: run " INT64_FORMAT ", %s", run->run_id, run->where));
				http_fetch(&req, &res);
				run->attempts += res.attempts;
				if (!res.ok)
					ereport(ERROR,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("%s", res.error)));
				page = provider_parse_page(res.body->data, &has_more, &cursor);
				run->pages++;
				run->page_endpoints = lappend(run->page_endpoints, (char *) ep->name);
				run->page_bodies = lappend(run->page_bodies, page);
				if (!has_more)
					break;
			}
			if (n == MAX_PAGES_PER_ENDPOINT)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("%s %s: more than %d pages", run->provider, ep->name, MAX_PAGES_PER_ENDPOINT)));
		}
	}
	PG_FINALLY();
	{
		provider_free_headers(headers);
	}
	PG_END_TRY();
}

/* step 3: write every page and the run's success in one transaction */
static void
store(Run *run)
{
	ListCell   *lc1;
	ListCell   *lc2;
	int64		rows = 0;
	Oid			argtypes[3] = {INT8OID, TEXTOID, JSONBOID};

	run->where = "writing the rows";
	begin_tx(psprintf("llm_usage: writing run " INT64_FORMAT, run->run_id));
	forboth(lc1, run->page_endpoints, lc2, run->page_bodies)
	{
		Datum		args[3];
		bool		isnull;

		args[0] = Int64GetDatum(run->run_id);
		args[1] = CStringGetTextDatum((char *) lfirst(lc1));
		args[2] = JsonbPGetDatum((Jsonb *) lfirst(lc2));
		if (SPI_execute_with_args("SELECT llm_usage._ingest_page($1, $2, $3)",
								  3, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "llm_usage._ingest_page() failed");
		rows += DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	{
		Oid			ftypes[4] = {INT8OID, INT4OID, INT8OID, INT4OID};
		Datum		fargs[4];

		fargs[0] = Int64GetDatum(run->run_id);
		fargs[1] = Int32GetDatum(run->pages);
		fargs[2] = Int64GetDatum(rows);
		fargs[3] = Int32GetDatum(run->attempts);
		if (SPI_execute_with_args("SELECT llm_usage._finish_run($1, 'succeeded', $2, $3, $4, NULL)",
								  4, ftypes, fargs, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "llm_usage._finish_run() failed");
	}
	commit_tx();
	ereport(LOG,
			(errmsg("llm_usage: run " INT64_FORMAT " (key " INT64_FORMAT ", %s) succeeded: %d pages, " INT64_FORMAT " rows, %d requests",
					run->run_id, run->key_id, run->provider, run->pages, rows, run->attempts)));
}

static void
record_failure(Run *run, const char *message)
{
	Oid			argtypes[4] = {INT8OID, INT4OID, INT4OID, TEXTOID};
	Datum		args[4];

	ereport(LOG,
			(errmsg("llm_usage: run " INT64_FORMAT " (key " INT64_FORMAT ", %s) failed: %s",
					run->run_id, run->key_id, run->provider, message)));
	begin_tx(psprintf("llm_usage: recording failed run " INT64_FORMAT, run->run_id));
	args[0] = Int64GetDatum(run->run_id);
	args[1] = Int32GetDatum(run->pages);
	args[2] = Int32GetDatum(run->attempts);
	args[3] = CStringGetTextDatum(message);
	if (SPI_execute_with_args("SELECT llm_usage._finish_run($1, 'failed', $2, 0, $3, $4)",
							  4, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "llm_usage._finish_run() failed");
	commit_tx();
}

/*
 * collector_run_next
 *		Claim and carry out the oldest queued run; false when none is queued.
 *		Expects no transaction to be open.  Errors of the run itself are
 *		recorded on the run; only a failure to claim or to record escapes.
 */
bool
collector_run_next(void)
{
	MemoryContext runctx = AllocSetContextCreate(TopMemoryContext, "llm_usage run",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(runctx);
	Run		   *run = palloc0(sizeof(Run));
	char	   *failure = NULL;

	if (!claim(run, runctx))
	{
		MemoryContextSwitchTo(old);
		MemoryContextDelete(runctx);
		return false;
	}

	PG_TRY();
	{
		MemoryContextSwitchTo(runctx);
		fetch(run);
		store(run);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(runctx);
		edata = CopyErrorData();
		FlushErrorState();
		AbortOutOfAnyTransaction();
		failure = run->where ? psprintf("%s: %s", run->where, edata->message) : pstrdup(edata->message);
	}
	PG_END_TRY();

	if (failure != NULL)
	{
		MemoryContextSwitchTo(runctx);
		record_failure(run, failure);
	}
	MemoryContextSwitchTo(old);
	MemoryContextDelete(runctx);
	return true;
}

/*
 * llm_usage._probe_key(provider text, api_key text) RETURNS void
 *		One cheap authenticated request with a key before it is stored;
 *		raises 28000 when the provider refuses it and 08000 when it cannot
 *		be checked.  Runs in the caller's transaction (add_provider_key).
 */
Datum
llm_usage_probe_key(PG_FUNCTION_ARGS)
{
	char	   *provider = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *key = text_to_cstring(PG_GETARG_TEXT_PP(1));
	const Provider *p = provider_lookup(provider);
	pg_time_t	now = (pg_time_t) time(NULL);
	char	  **headers;
	HttpRequest req;
	HttpResult	res;

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("keys of provider \"%s\" cannot be validated", provider)));
	headers = p->auth_headers(key);
	explicit_bzero(key, strlen(key));
	req = make_request(provider_page_url(p, p->probe, now - now % 86400 - 86400, now - now % 86400, NULL), headers);
	PG_TRY();
	{
		http_fetch(&req, &res);
	}
	PG_FINALLY();
	{
		provider_free_headers(headers);
	}
	PG_END_TRY();

	if (res.status == 401 || res.status == 403)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("%s refused the key (HTTP %ld)", provider, res.status),
				 errhint("Use an organization admin key: sk-admin-... for OpenAI, sk-ant-admin... for Anthropic.")));
	if (!res.ok)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_EXCEPTION),
				 errmsg("could not validate the key with %s: %s", provider, res.error),
				 errhint("Add the key with validate => false to store it without checking.")));
	PG_RETURN_VOID();
}
