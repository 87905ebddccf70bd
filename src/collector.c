/*-------------------------------------------------------------------------
 *
 * collector.c
 *	  One collection run: one provider key, one window.  The only file that
 *	  ties the providers, HTTP, crypto and SPI together.  Also the key probe
 *	  of add_provider_key(..., validate => true).
 *
 * A run goes through three steps, and no transaction is open while the
 * network is used:
 *
 *	1. claim (short transaction): llm_usage._claim_next_run() marks the
 *	   oldest queued run "running" and hands over the key's ciphertext;
 *	2. fetch (no transaction): decrypt the key into registered secret
 *	   memory, fetch every page of every endpoint; each page is checked and
 *	   reduced to its rows at once (provider.c) and its body freed; the key
 *	   and the headers carrying it are wiped on every path;
 *	3. write (one transaction): llm_usage._ingest_rows() upserts the rows
 *	   of every page on their natural keys, llm_usage._finish_run() records
 *	   the run; commit.  All rows of the run, or none.
 *
 * A run fails, writing nothing, when a page is implausible, when a bucket
 * or a row comes twice (within a page or across pages), when a cursor comes
 * back, or past llm_usage.max_pages pages or MAX_RUN_BYTES of kept rows.
 * Any error in 2 or 3 is caught: the write transaction (if open) is rolled
 * back and the run is recorded as failed in a new transaction, which also
 * raises a collection_failed alert.  A crash leaves the run "running"; the
 * worker marks such runs failed when it starts, and the next run of the
 * window writes everything once, because writes are upserts.
 *
 * Postmaster death: the HTTP loop, every page and every transaction start
 * and commit check for it and end the process without committing.
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
#include "utils/timestamp.h"

#include "llm_usage.h"

/* the most a run keeps in memory (rows and their keys) before it fails */
#define MAX_RUN_BYTES ((Size) 256 * 1024 * 1024)

/* a key probe is one attempt of at most this long (and never longer than http_timeout_ms) */
#define PROBE_TIMEOUT_MS 5000

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
	Size		kept_bytes;
	char	   *where;			/* what the run was doing, for its error */
	List	   *page_endpoints; /* char * per page */
	List	   *page_rows;		/* Jsonb * per page: the kept rows */
	List	   *keys;			/* char *: natural keys of every bucket and row */
} Run;

PG_FUNCTION_INFO_V1(llm_usage_probe_key);

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
	MemoryContext caller = worker_tx_begin("llm_usage: claiming a collection run");

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
	worker_tx_commit(caller);
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

/*
 * the key's authentication headers, registered as secrets; the plaintext key
 * is wiped before this returns, whatever happens
 */
static char **
auth_headers_for(const Provider *p, char *key)
{
	char	  **headers = NULL;

	secret_register_string(key);
	PG_TRY();
	{
		headers = provider_auth_headers(p, key);
	}
	PG_FINALLY();
	{
		secret_release(key);
	}
	PG_END_TRY();
	return headers;
}

/* step 2: every page of every endpoint, checked and reduced, into run->page_* */
static void
fetch(Run *run)
{
	const Provider *p = provider_lookup(run->provider);
	char	  **volatile headers = NULL;
	pg_time_t	from = timestamptz_to_time_t(run->window_from);
	pg_time_t	to = timestamptz_to_time_t(run->window_to);

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("provider \"%s\" has no usage API adapter", run->provider)));

	run->where = "decrypting the key";
	PG_TRY();
	{
		headers = auth_headers_for(p, llm_usage_decrypt_provider_key(run->ciphertext, run->wrapped_dek,
																	 run->master_version, run->aad));
		for (int e = 0; e < p->nendpoints; e++)
		{
			const ProviderEndpoint *ep = &p->endpoints[e];
			char	   *cursor = NULL;
			List	   *cursors = NIL;

			for (int n = 1;; n++)
			{
				HttpRequest req;
				HttpResult	res;
				ProviderPage page;
				ListCell   *lc;

				llm_usage_exit_if_orphaned();
				CHECK_FOR_INTERRUPTS();
				if (run->pages >= llm_usage_max_pages)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("the run needs more than %d pages (llm_usage.max_pages)", llm_usage_max_pages)));

				req = make_request(provider_page_url(p, ep, from, to, cursor), headers);
				run->where = psprintf("%s %s page %d", run->provider, ep->name, n);
				pgstat_report_activity(STATE_RUNNING,
									   psprintf("llm_usage: run " INT64_FORMAT ", %s", run->run_id, run->where));
				http_fetch(&req, &res);
				run->attempts += res.attempts;
				if (!res.ok)
					ereport(ERROR,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("%s", res.error)));
				provider_parse_page(p, ep, res.body, res.body_len, run->window_from, run->window_to, &page);
				pfree(res.body);
				pfree((char *) req.url);

				run->pages++;
				run->page_endpoints = lappend(run->page_endpoints, (char *) ep->name);
				run->page_rows = lappend(run->page_rows, page.rows);
				run->kept_bytes += VARSIZE(page.rows);
				foreach(lc, page.keys)
					run->kept_bytes += strlen((char *) lfirst(lc)) + 1 + sizeof(ListCell);
				run->keys = list_concat(run->keys, page.keys);
				list_free(page.keys);
				if (run->kept_bytes > MAX_RUN_BYTES)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("the run's rows take more than %zu MB of memory", MAX_RUN_BYTES / (1024 * 1024)),
							 errhint("Collect a shorter window with llm_usage.collect_now(key_id, from_date, to_date).")));
				if (!page.has_more)
					break;
				foreach(lc, cursors)
				{
					if (strcmp((char *) lfirst(lc), page.next_page) == 0)
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_JSON_TEXT),
								 errmsg("malformed provider response (%s): \"next_page\" repeats an earlier cursor; pagination would never end",
										ep->name)));
				}
				cursors = lappend(cursors, page.next_page);
				cursor = page.next_page;
			}
		}
	}
	PG_FINALLY();
	{
		provider_free_headers(headers);
	}
	PG_END_TRY();
}

static int
cmp_keys(const ListCell *a, const ListCell *b)
{
	return strcmp((const char *) lfirst(a), (const char *) lfirst(b));
}

/* no bucket and no row may come twice within a run */
static void
check_duplicates(Run *run)
{
	ListCell   *lc;
	const char *prev = NULL;

	run->where = "checking the pages";
	list_sort(run->keys, cmp_keys);
	foreach(lc, run->keys)
	{
		const char *k = (const char *) lfirst(lc);

		if (prev != NULL && strcmp(prev, k) == 0)
		{
			char	   *endpoint = pstrdup(k + 2);
			char	   *sep = strchr(endpoint, '\x1f');
			pg_time_t	start;

			if (sep == NULL)
				elog(ERROR, "malformed natural key");
			*sep = '\0';
			start = (pg_time_t) strtoll(sep + 1, NULL, 10);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_JSON_TEXT),
					 errmsg("malformed provider response (%s): the %s starting %s comes twice in the run",
							endpoint, k[0] == 'B' ? "bucket" : "same row of the bucket",
							timestamptz_to_str(time_t_to_timestamptz(start)))));
		}
		prev = k;
	}
	list_free_deep(run->keys);
	run->keys = NIL;
}

/* step 3: write every page and the run's success in one transaction */
static void
store(Run *run)
{
	ListCell   *lc1;
	ListCell   *lc2;
	int64		rows = 0;
	Oid			argtypes[3] = {INT8OID, TEXTOID, JSONBOID};
	MemoryContext caller;

	run->where = "writing the rows";
	caller = worker_tx_begin(psprintf("llm_usage: writing run " INT64_FORMAT, run->run_id));
	forboth(lc1, run->page_endpoints, lc2, run->page_rows)
	{
		Datum		args[3];
		bool		isnull;

		args[0] = Int64GetDatum(run->run_id);
		args[1] = CStringGetTextDatum((char *) lfirst(lc1));
		args[2] = JsonbPGetDatum((Jsonb *) lfirst(lc2));
		if (SPI_execute_with_args("SELECT llm_usage._ingest_rows($1, $2, $3)",
								  3, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "llm_usage._ingest_rows() failed");
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
	worker_tx_commit(caller);
	ereport(LOG,
			(errmsg("llm_usage: run " INT64_FORMAT " (key " INT64_FORMAT ", %s) succeeded: %d pages, " INT64_FORMAT " rows, %d requests",
					run->run_id, run->key_id, run->provider, run->pages, rows, run->attempts)));
}

static void
record_failure(Run *run, const char *message)
{
	Oid			argtypes[4] = {INT8OID, INT4OID, INT4OID, TEXTOID};
	Datum		args[4];
	MemoryContext caller;

	ereport(LOG,
			(errmsg("llm_usage: run " INT64_FORMAT " (key " INT64_FORMAT ", %s) failed: %s",
					run->run_id, run->key_id, run->provider, message)));
	caller = worker_tx_begin(psprintf("llm_usage: recording failed run " INT64_FORMAT, run->run_id));
	args[0] = Int64GetDatum(run->run_id);
	args[1] = Int32GetDatum(run->pages);
	args[2] = Int32GetDatum(run->attempts);
	args[3] = CStringGetTextDatum(message);
	if (SPI_execute_with_args("SELECT llm_usage._finish_run($1, 'failed', $2, 0, $3, $4)",
							  4, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "llm_usage._finish_run() failed");
	worker_tx_commit(caller);
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
	MemoryContext caller = CurrentMemoryContext;
	MemoryContext runctx = AllocSetContextCreate(caller, "llm_usage run", ALLOCSET_DEFAULT_SIZES);
	Run		   *run = MemoryContextAllocZero(runctx, sizeof(Run));
	char	   *volatile failure = NULL;

	/* on an escaping error runctx goes with the caller's (per-cycle) context */
	if (!claim(run, runctx))
	{
		MemoryContextDelete(runctx);
		return false;
	}

	PG_TRY();
	{
		MemoryContextSwitchTo(runctx);
		fetch(run);
		check_duplicates(run);
		store(run);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(runctx);
		edata = CopyErrorData();
		FlushErrorState();
		worker_tx_abort(runctx);
		failure = run->where ? psprintf("%s: %s", run->where, edata->message) : pstrdup(edata->message);
	}
	PG_END_TRY();

	if (secret_live_count() != 0)
	{
		/* a bug: say so, and wipe them while their memory is still there */
		elog(WARNING, "llm_usage: %d secret(s) of run " INT64_FORMAT " were not released",
			 secret_live_count(), run->run_id);
		secret_release_all();
	}
	if (failure != NULL)
		record_failure(run, failure);
	MemoryContextSwitchTo(caller);
	MemoryContextDelete(runctx);
	return true;
}

/*
 * llm_usage._probe_key(provider text, api_key text) RETURNS void
 *		One cheap authenticated request with a key before it is stored:
 *		one attempt, at most PROBE_TIMEOUT_MS, cancellable (statement_timeout,
 *		pg_cancel_backend) within a fraction of a second; raises 28000 when
 *		the provider refuses the key and 08000 when it cannot be checked.
 *		Runs in the caller's transaction (add_provider_key); the key's copies
 *		are wiped and the connection closed on every path.
 */
Datum
llm_usage_probe_key(PG_FUNCTION_ARGS)
{
	char	   *provider = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const Provider *p = provider_lookup(provider);
	pg_time_t	now = (pg_time_t) time(NULL);
	char	  **volatile headers = NULL;
	HttpRequest req;
	HttpResult	res;

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("keys of provider \"%s\" cannot be validated", provider)));
	PG_TRY();
	{
		headers = auth_headers_for(p, text_to_cstring(PG_GETARG_TEXT_PP(1)));
		req = make_request(provider_page_url(p, p->probe, now - now % 86400 - 86400, now - now % 86400, NULL),
						   headers);
		req.max_retries = 0;
		req.timeout_ms = Min(PROBE_TIMEOUT_MS, llm_usage_http_timeout_ms);
		req.max_body = Min(req.max_body, (size_t) 1024 * 1024);
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
				 errhint("Add the key with validate => false to store it without checking; the worker's first run will show whether it works.")));
	PG_RETURN_VOID();
}
