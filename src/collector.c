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
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/ruleutils.h"
#include "utils/syscache.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"
#include "catalog/pg_proc.h"
#include "access/htup_details.h"

#include "llm_usage.h"

/* the most a run keeps in memory (rows and their keys) before it fails */
#define MAX_RUN_BYTES ((Size) 256 * 1024 * 1024)

/* a key probe is one attempt of at most this long (and never longer than http_timeout_ms) */
#define PROBE_TIMEOUT_MS 5000

/* the most rows a mapping function may make of one page */
#define MAX_SOURCE_ROWS_PER_PAGE 100000

/* a page of a custom source, kept for its mapping function */
typedef struct SourcePage
{
	Jsonb	   *page;
	pg_time_t	from;			/* the window (or day) it was fetched for */
	pg_time_t	to;
} SourcePage;

typedef struct Run
{
	int64		run_id;
	int64		key_id;			/* 0 for a custom source without a secret */
	int64		source_id;		/* 0 for a provider key's run */
	CustomSource *source;
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
	List	   *source_pages;	/* SourcePage *: a custom source's pages */
} Run;

PG_FUNCTION_INFO_V1(llm_usage_probe_key);

static void check_page_limit(Run *run);
static void finish_success(Run *run, int64 rows);

static Datum
copy_col(int col, bool *isnull, Oid typid)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, isnull);

	if (*isnull)
		return (Datum) 0;
	return typid == TEXTOID || typid == BYTEAOID ? PointerGetDatum(PG_DETOAST_DATUM_COPY(d)) : d;
}

/* a text column of the first row, copied into the current context; NULL when null */
static char *
text_col(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? NULL : TextDatumGetCString(d);
}

/* how to fetch custom source source_id (in the claim's transaction), allocated in ctx */
static CustomSource *
load_source(int64 source_id, MemoryContext ctx)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		args[1];
	CustomSource *s;
	MemoryContext old;
	char	   *t;
	bool		isnull;

	args[0] = Int64GetDatum(source_id);
	if (SPI_execute_with_args("SELECT base_url, path_template, time_format, per_day, auth, auth_name, pagination,"
							  " page_param, cursor_path, has_more_path, next_path, items_path, first_page, url_allowed"
							  " FROM llm_usage._source_for_run($1)", 1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT ||
		SPI_processed != 1)
		elog(ERROR, "llm_usage._source_for_run(" INT64_FORMAT ") failed", source_id);
	old = MemoryContextSwitchTo(ctx);
	s = palloc0(sizeof(CustomSource));
	s->source_id = source_id;
	s->base_url = text_col(1);
	s->path_template = text_col(2);
	s->unix_time = strcmp(text_col(3), "unix") == 0;
	s->per_day = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull));
	t = text_col(5);
	s->auth = strcmp(t, "bearer") == 0 ? CA_BEARER : strcmp(t, "header") == 0 ? CA_HEADER :
		strcmp(t, "query") == 0 ? CA_QUERY : CA_NONE;
	s->auth_name = text_col(6);
	t = text_col(7);
	s->pagination = strcmp(t, "cursor") == 0 ? CP_CURSOR : strcmp(t, "has_more") == 0 ? CP_HAS_MORE :
		strcmp(t, "page_number") == 0 ? CP_PAGE_NUMBER : CP_NONE;
	s->page_param = text_col(8);
	s->cursor_path = text_col(9);
	s->has_more_path = text_col(10);
	s->next_path = text_col(11);
	s->items_path = text_col(12);
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 13, &isnull);

		s->first_page = isnull ? 1 : DatumGetInt32(d);
	}
	{
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 14, &isnull);

		s->url_allowed = !isnull && DatumGetBool(d);
	}
	MemoryContextSwitchTo(old);
	return s;
}

/* step 1: claim the next queued run into *run (allocated in ctx); false if none */
static bool
claim(Run *run, MemoryContext ctx)
{
	bool		isnull;
	bool		found;
	MemoryContext caller = worker_tx_begin("llm_usage: claiming a collection run");

	if (SPI_execute("SELECT run_id, key_id, provider, window_from, window_to, key_ciphertext,"
					" wrapped_dek, master_key_version, aad, source_id FROM llm_usage._claim_next_run()",
					false, 1) != SPI_OK_SELECT)
		elog(ERROR, "llm_usage._claim_next_run() failed");
	found = SPI_processed > 0;
	if (found)
	{
		MemoryContext old = MemoryContextSwitchTo(ctx);

		Datum		d;

		run->run_id = DatumGetInt64(copy_col(1, &isnull, INT8OID));
		d = copy_col(2, &isnull, INT8OID);
		run->key_id = isnull ? 0 : DatumGetInt64(d);
		run->provider = TextDatumGetCString(copy_col(3, &isnull, TEXTOID));
		run->window_from = DatumGetTimestampTz(copy_col(4, &isnull, TIMESTAMPTZOID));
		run->window_to = DatumGetTimestampTz(copy_col(5, &isnull, TIMESTAMPTZOID));
		if (run->key_id != 0)
		{
			run->ciphertext = DatumGetByteaPP(copy_col(6, &isnull, BYTEAOID));
			run->wrapped_dek = DatumGetByteaPP(copy_col(7, &isnull, BYTEAOID));
			run->master_version = DatumGetInt32(copy_col(8, &isnull, INT4OID));
			run->aad = TextDatumGetCString(copy_col(9, &isnull, TEXTOID));
		}
		d = copy_col(10, &isnull, INT8OID);
		run->source_id = isnull ? 0 : DatumGetInt64(d);
		MemoryContextSwitchTo(old);
		if (run->source_id != 0)
			run->source = load_source(run->source_id, ctx);
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
	char	  **volatile headers = NULL;

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
				check_page_limit(run);

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

/* the run fails past llm_usage.max_pages pages */
static void
check_page_limit(Run *run)
{
	if (run->pages >= llm_usage_max_pages)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the run needs more than %d pages (llm_usage.max_pages)", llm_usage_max_pages)));
}

/*
 * step 2 for a custom source: every page of the window (or of each of its
 * UTC days), checked (provider_custom.c) and kept whole for the mapping
 * function.  The secret lives, registered, only as long as the requests:
 * as headers (wiped at the end), or for query authentication in every
 * page's URL (each wiped after its request).
 */
static void
fetch_custom(Run *run)
{
	CustomSource *s = run->source;
	char	  **volatile headers = NULL;
	char	   *volatile secret = NULL;
	char	   *volatile url = NULL;
	pg_time_t	wfrom = timestamptz_to_time_t(run->window_from);
	pg_time_t	wto = timestamptz_to_time_t(run->window_to);

	if (!s->url_allowed)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("the source's base URL is not allowed by llm_usage.source_url_prefixes"),
				 errhint("A superuser lists the URL prefixes custom sources may use in llm_usage.source_url_prefixes.")));
	PG_TRY();
	{
		if (s->auth != CA_NONE)
		{
			run->where = "decrypting the source's secret";
			secret = llm_usage_decrypt_provider_key(run->ciphertext, run->wrapped_dek,
													run->master_version, run->aad);
			secret_register_string(secret);
			headers = custom_auth_headers(s, secret);
			provider_register_headers(headers);
			if (s->auth != CA_QUERY)
			{
				secret_release(secret);
				secret = NULL;
			}
		}
		for (pg_time_t from = wfrom, to; from < wto; from = to)
		{
			char	   *next = NULL;
			List	   *tokens = NIL;
			int			number = s->first_page;

			to = s->per_day ? Min(from - from % 86400 + 86400, wto) : wto;
			if (s->pagination == CP_PAGE_NUMBER)
				next = psprintf("%d", number);
			for (;;)
			{
				HttpRequest req;
				HttpResult	res;
				CustomPage	page;
				SourcePage *kept;
				ListCell   *lc;
				int			page_no = run->pages + 1;

				llm_usage_exit_if_orphaned();
				CHECK_FOR_INTERRUPTS();
				check_page_limit(run);

				url = custom_page_url(s, from, to, next, secret);
				if (secret != NULL)
					secret_register_string(url);
				req = make_request(url, headers);
				run->where = psprintf("custom source " INT64_FORMAT " page %d", s->source_id, page_no);
				pgstat_report_activity(STATE_RUNNING,
									   psprintf("llm_usage: run " INT64_FORMAT ", %s", run->run_id, run->where));
				http_fetch(&req, &res);
				secret_release(url);
				pfree(url);
				url = NULL;
				run->attempts += res.attempts;
				if (!res.ok)
					ereport(ERROR,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("%s", res.error)));
				custom_parse_page(s, res.body, res.body_len, page_no, number, &page);
				pfree(res.body);

				run->pages++;
				kept = palloc(sizeof(SourcePage));
				kept->page = page.page;
				kept->from = from;
				kept->to = to;
				run->source_pages = lappend(run->source_pages, kept);
				run->kept_bytes += VARSIZE(page.page) + sizeof(SourcePage) + sizeof(ListCell);
				if (run->kept_bytes > MAX_RUN_BYTES)
					ereport(ERROR,
							(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
							 errmsg("the run's pages take more than %zu MB of memory", MAX_RUN_BYTES / (1024 * 1024)),
							 errhint("Collect a shorter window with llm_usage.collect_source_now(source_id, from_date, to_date).")));
				if (page.next == NULL)
					break;
				foreach(lc, tokens)
				{
					if (strcmp((char *) lfirst(lc), page.next) == 0)
						ereport(ERROR,
								(errcode(ERRCODE_INVALID_JSON_TEXT),
								 errmsg("malformed response of custom source " INT64_FORMAT " (page %d): the next page's token repeats an earlier one; pagination would never end",
										s->source_id, page_no)));
				}
				tokens = lappend(tokens, page.next);
				next = page.next;
				number++;
			}
		}
	}
	PG_FINALLY();
	{
		secret_release(url);
		provider_free_headers(headers);
		secret_release(secret);
	}
	PG_END_TRY();
}

/* RFC 3339 UTC text of t */
static char *
rfc3339(pg_time_t t)
{
	struct pg_tm *tm = pg_gmtime(&t);

	return psprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", tm->tm_year + 1900, tm->tm_mon + 1, tm->tm_mday,
					tm->tm_hour, tm->tm_min, tm->tm_sec);
}

/*
 * A mapping function may catch the statement timeout's cancel (EXCEPTION
 * WHEN query_canceled) and go on: MAPPING_DIE_GRACE_MS later the worker
 * ends itself as pg_terminate_backend() would (a FATAL no function can
 * catch); the postmaster starts it again and the run is recorded as
 * interrupted.
 */
#define MAPPING_DIE_GRACE_MS	5000

static TimeoutId mapping_die_timeout = 0;	/* registered on first use */

static void
mapping_die_handler(void)
{
	ProcDiePending = true;
	InterruptPending = true;
	SetLatch(MyLatch);
}

/*
 * Call the mapping function on one page as role role_id: the current user
 * is that role, inside a security-restricted operation (no SET ROLE, no
 * temporary objects, no changes to the session), with search_path pinned
 * to pg_catalog, pg_temp; the window is in llm_usage.source_window_from
 * and _to; it may run for llm_usage.mapping_timeout.  Everything is
 * restored before returning; on an error, the transaction's abort restores
 * it.  Returns the rows as an array of
 * llm_usage.usage_source_row (NULL when none) and its type in *array_type.
 */
static Datum
map_page(Run *run, const char *call_sql, Oid role_id, SourcePage *sp, int page_no, Oid *array_type, bool *isnull)
{
	Oid			save_userid;
	int			save_sec_context;
	int			save_nestlevel;
	Oid			argtypes[2] = {JSONBOID, INT8OID};
	Datum		args[2];
	Datum		rows;
	int64		count;
	bool		cnull;
	TimestampTz start;
	MemoryContext run_ctx = CurrentMemoryContext;

	(void) set_config_option("llm_usage.source_window_from", rfc3339(sp->from), PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, 0, false);
	(void) set_config_option("llm_usage.source_window_to", rfc3339(sp->to), PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, 0, false);

	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	SetUserIdAndSecContext(role_id, save_sec_context | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	save_nestlevel = NewGUCNestLevel();
	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);

	args[0] = JsonbPGetDatum(sp->page);
	args[1] = Int64GetDatum(run->source_id);

	/*
	 * The worker serves every tenant: a mapping function that never returns
	 * (a loop, pg_sleep, a lock wait) may not hold it.  The statement
	 * timeout (nothing else arms it in the worker) cancels the call after
	 * llm_usage.mapping_timeout, and the run fails saying so.
	 */
	start = GetCurrentTimestamp();
	if (mapping_die_timeout == 0)
		mapping_die_timeout = RegisterTimeout(USER_TIMEOUT, mapping_die_handler);
	enable_timeout_after(STATEMENT_TIMEOUT, llm_usage_mapping_timeout_ms);
	enable_timeout_after(mapping_die_timeout, llm_usage_mapping_timeout_ms + MAPPING_DIE_GRACE_MS);
	PG_TRY();
	{
		if (SPI_execute_with_args(call_sql, 2, argtypes, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "calling the mapping function failed");
	}
	PG_CATCH();
	{
		disable_timeout(STATEMENT_TIMEOUT, false);
		disable_timeout(mapping_die_timeout, false);
		if (geterrcode() == ERRCODE_QUERY_CANCELED &&
			TimestampDifferenceExceeds(start, GetCurrentTimestamp(), llm_usage_mapping_timeout_ms))
		{
			MemoryContextSwitchTo(run_ctx);
			FlushErrorState();
			ereport(ERROR,
					(errcode(ERRCODE_QUERY_CANCELED),
					 errmsg("the mapping function took longer than llm_usage.mapping_timeout (%d ms)",
							llm_usage_mapping_timeout_ms)));
		}
		PG_RE_THROW();
	}
	PG_END_TRY();
	disable_timeout(STATEMENT_TIMEOUT, false);
	disable_timeout(mapping_die_timeout, false);

	AtEOXact_GUC(false, save_nestlevel);
	SetUserIdAndSecContext(save_userid, save_sec_context);

	count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &cnull));
	if (count > MAX_SOURCE_ROWS_PER_PAGE)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("the mapping function made more than %d rows of page %d", MAX_SOURCE_ROWS_PER_PAGE, page_no)));
	*array_type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
	rows = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, isnull);
	return rows;
}

/*
 * step 3 for a custom source, in one transaction: check the mapping
 * function and its role again, map every page and upsert its rows
 * (llm_usage._ingest_source_rows), record the run's success; commit.
 */
static void
store_custom(Run *run)
{
	Oid			argtypes[3] = {INT8OID, INT4OID, InvalidOid};
	Datum		args[3];
	bool		isnull;
	Oid			fn;
	Oid			role_id;
	HeapTuple	proc;
	char	   *call_sql;
	int64		rows = 0;
	int			page_no = 0;
	ListCell   *lc;
	MemoryContext caller;

	run->where = "checking the mapping function";
	caller = worker_tx_begin(psprintf("llm_usage: writing run " INT64_FORMAT, run->run_id));
	argtypes[0] = INT8OID;
	args[0] = Int64GetDatum(run->source_id);
	if (SPI_execute_with_args("SELECT fn, role_id FROM llm_usage._source_mapping_for_run($1)",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "llm_usage._source_mapping_for_run() failed");
	fn = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	role_id = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	proc = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	if (!HeapTupleIsValid(proc))
		elog(ERROR, "cache lookup failed for function %u", fn);
	call_sql = psprintf("SELECT pg_catalog.array_agg(m), pg_catalog.count(*)"
						" FROM (SELECT m FROM %s($1, $2) AS m LIMIT %d) s",
						quote_qualified_identifier(get_namespace_name(((Form_pg_proc) GETSTRUCT(proc))->pronamespace),
												   NameStr(((Form_pg_proc) GETSTRUCT(proc))->proname)),
						MAX_SOURCE_ROWS_PER_PAGE + 1);
	ReleaseSysCache(proc);

	foreach(lc, run->source_pages)
	{
		SourcePage *sp = (SourcePage *) lfirst(lc);
		Oid			array_type;
		Datum		mapped;
		bool		none;

		page_no++;
		run->where = psprintf("mapping page %d", page_no);
		mapped = map_page(run, call_sql, role_id, sp, page_no, &array_type, &none);
		if (none)
			continue;
		run->where = psprintf("writing the rows of page %d", page_no);
		argtypes[0] = INT8OID;
		argtypes[1] = INT4OID;
		argtypes[2] = array_type;
		args[0] = Int64GetDatum(run->run_id);
		args[1] = Int32GetDatum(page_no);
		args[2] = mapped;
		if (SPI_execute_with_args("SELECT llm_usage._ingest_source_rows($1, $2, $3)",
								  3, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "llm_usage._ingest_source_rows() failed");
		rows += DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	(void) set_config_option("llm_usage.source_window_from", "", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, 0, false);
	(void) set_config_option("llm_usage.source_window_to", "", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SET, true, 0, false);
	run->where = "writing the rows";
	finish_success(run, rows);
	worker_tx_commit(caller);
	ereport(LOG,
			(errmsg("llm_usage: run " INT64_FORMAT " (custom source " INT64_FORMAT ") succeeded: %d pages, " INT64_FORMAT " rows, %d requests",
					run->run_id, run->source_id, run->pages, rows, run->attempts)));
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

/* record the run's success (in its write transaction) */
static void
finish_success(Run *run, int64 rows)
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
	finish_success(run, rows);
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

	if (run->source_id != 0)
		ereport(LOG,
				(errmsg("llm_usage: run " INT64_FORMAT " (custom source " INT64_FORMAT ") failed: %s",
						run->run_id, run->source_id, message)));
	else
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
		if (run->source_id != 0)
		{
			fetch_custom(run);
			store_custom(run);
		}
		else
		{
			fetch(run);
			check_duplicates(run);
			store(run);
		}
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
