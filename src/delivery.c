/*-------------------------------------------------------------------------
 *
 * delivery.c
 *	  Deliver pending alerts by signed webhook (llm_usage.alert_webhook_url)
 *	  and by e-mail (llm_usage.alert_smtp_url), from the worker.  Ties the
 *	  alerts table to http.c and smtp.c.
 *
 * An alert is marked pending for a channel when it is raised while that
 * channel is configured.  A pass reads up to DELIVERY_BATCH alerts that are
 * due on some channel in a short transaction, then, with no transaction
 * open, makes one attempt per due channel, and records each outcome in a
 * transaction of its own:
 *
 *	- delivered: status 'delivered';
 *	- failed, attempts left (llm_usage.alert_delivery_attempts in all): it
 *	  stays 'pending', with the error, and is due again after a backoff of
 *	  llm_usage.alert_retry_delay doubling with each attempt (at most an
 *	  hour, or the delay if that is longer), so a receiver that is down
 *	  for a while still gets the alert, in a later cycle;
 *	- failed, no attempt left, or the channel no longer configured: 'failed'.
 *
 * A pass is bounded in time so that collection and maintenance are never
 * starved: attempts start only within DELIVERY_PASS_MS of the pass's
 * start, each attempt lasts at most DELIVERY_ATTEMPT_MS (or
 * llm_usage.http_timeout_ms when shorter), and nothing sleeps; what is
 * left waits for the next cycle.
 *
 * Webhook: POST of the alert as JSON, with headers
 *	 X-LLM-Usage-Timestamp: <Unix seconds>
 *	 X-LLM-Usage-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>"
 *							 under llm_usage.alert_webhook_secret>
 * so a receiver can check origin and freshness.
 *
 * All SQL here runs in the worker's superuser session, with search_path
 * pinned by the worker and every name and operator schema-qualified.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "llm_usage.h"

#define DELIVERY_BATCH 50
#define DELIVERY_PASS_MS 10000
#define DELIVERY_ATTEMPT_MS 10000
#define DELIVERY_BACKOFF_CAP_S 3600

char	   *llm_usage_alert_webhook_url = NULL;
char	   *llm_usage_alert_webhook_secret = NULL;
char	   *llm_usage_alert_smtp_url = NULL;
char	   *llm_usage_alert_email_from = NULL;
char	   *llm_usage_alert_email_to = NULL;

typedef struct PendingAlert
{
	int64		id;
	char	   *tenant_id;
	char	   *kind;
	char	   *severity;
	char	   *message;
	char	   *payload;		/* the alert as JSON */
	bool		webhook;		/* webhook delivery due */
	bool		email;			/* e-mail delivery due */
	int			webhook_attempts;	/* made so far */
	int			email_attempts;
} PendingAlert;

static char *
col(int row, int c)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, c);

	return v ? pstrdup(v) : NULL;
}

/*
 * the alerts due on some channel (at most DELIVERY_BATCH, oldest first),
 * allocated in the caller's context; *next_due: the earliest later due time
 * of any pending delivery (DT_NOEND if none)
 */
static List *
load_pending(TimestampTz *next_due)
{
	List	   *out = NIL;
	MemoryContext caller = worker_tx_begin("llm_usage: reading alerts to deliver");
	bool		isnull;
	Datum		d;

	if (SPI_execute("SELECT a.id, a.tenant_id, a.kind, a.severity, a.message,"
					" pg_catalog.jsonb_build_object('id', a.id, 'tenant_id', a.tenant_id, 'kind', a.kind,"
					"   'severity', a.severity, 'subject', a.subject, 'message', a.message,"
					"   'details', a.details, 'created_at', a.created_at)::pg_catalog.text,"
					" a.webhook_status OPERATOR(pg_catalog.=) 'pending'"
					"   AND (a.webhook_next_at IS NULL OR a.webhook_next_at OPERATOR(pg_catalog.<=) pg_catalog.now()),"
					" a.email_status OPERATOR(pg_catalog.=) 'pending'"
					"   AND (a.email_next_at IS NULL OR a.email_next_at OPERATOR(pg_catalog.<=) pg_catalog.now()),"
					" a.webhook_attempts, a.email_attempts"
					" FROM llm_usage.alerts a"
					" WHERE (a.webhook_status OPERATOR(pg_catalog.=) 'pending'"
					"        OR a.email_status OPERATOR(pg_catalog.=) 'pending')"
					"   AND ((a.webhook_status OPERATOR(pg_catalog.=) 'pending'"
					"         AND (a.webhook_next_at IS NULL OR a.webhook_next_at OPERATOR(pg_catalog.<=) pg_catalog.now()))"
					"     OR (a.email_status OPERATOR(pg_catalog.=) 'pending'"
					"         AND (a.email_next_at IS NULL OR a.email_next_at OPERATOR(pg_catalog.<=) pg_catalog.now())))"
					" ORDER BY a.id LIMIT " CppAsString2(DELIVERY_BATCH), true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading pending alerts failed");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		MemoryContext spi = MemoryContextSwitchTo(caller);
		PendingAlert *a = palloc0(sizeof(PendingAlert));
		char	   *w;
		char	   *e;

		a->id = strtoll(SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1), NULL, 10);
		a->tenant_id = col(i, 2);
		a->kind = col(i, 3);
		a->severity = col(i, 4);
		a->message = col(i, 5);
		a->payload = col(i, 6);
		w = col(i, 7);
		e = col(i, 8);
		a->webhook = w && w[0] == 't';
		a->email = e && e[0] == 't';
		a->webhook_attempts = atoi(col(i, 9));
		a->email_attempts = atoi(col(i, 10));
		out = lappend(out, a);
		MemoryContextSwitchTo(spi);
	}

	if (SPI_execute("SELECT pg_catalog.min(t) FROM ("
					" SELECT a.webhook_next_at FROM llm_usage.alerts a"
					"  WHERE a.webhook_status OPERATOR(pg_catalog.=) 'pending'"
					"    AND a.webhook_next_at OPERATOR(pg_catalog.>) pg_catalog.now()"
					" UNION ALL"
					" SELECT a.email_next_at FROM llm_usage.alerts a"
					"  WHERE a.email_status OPERATOR(pg_catalog.=) 'pending'"
					"    AND a.email_next_at OPERATOR(pg_catalog.>) pg_catalog.now()) s(t)",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading pending alerts failed");
	d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	*next_due = isnull ? DT_NOEND : DatumGetTimestampTz(d);
	worker_tx_commit(caller);
	return out;
}

/* the wait before attempt n + 1, after n failed attempts (n >= 1), in seconds */
static int64
backoff_s(int attempts_made)
{
	int64		cap = Max((int64) DELIVERY_BACKOFF_CAP_S, (int64) llm_usage_alert_retry_delay);
	int64		wait = llm_usage_alert_retry_delay;

	for (int i = 1; i < attempts_made && wait < cap; i++)
		wait *= 2;
	return Min(wait, cap);
}

/*
 * record one attempt (attempts = 1) or a give-up without attempt
 * (attempts = 0) for one channel; returns when the channel is due again
 * (DT_NOEND when it is not pending any more)
 */
static TimestampTz
record(PendingAlert *a, const char *channel, bool ok, int attempts, int made_before, bool give_up,
	   const char *error)
{
	Oid			types[6] = {INT8OID, TEXTOID, TEXTOID, INT4OID, TEXTOID, TIMESTAMPTZOID};
	Datum		args[6];
	char		nulls[6] = {' ', ' ', ' ', ' ', error ? ' ' : 'n', ' '};
	const char *status;
	TimestampTz next = DT_NOEND;
	char	   *sql;
	MemoryContext caller;
	int			made = made_before + attempts;

	if (ok)
		status = "delivered";
	else if (give_up || made >= llm_usage_alert_delivery_attempts)
		status = "failed";
	else
	{
		status = "pending";
		next = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), backoff_s(made) * 1000);
	}
	if (next == DT_NOEND)
		nulls[5] = 'n';

	caller = worker_tx_begin("llm_usage: recording an alert delivery");
	args[0] = Int64GetDatum(a->id);
	args[1] = CStringGetTextDatum(a->tenant_id);
	args[2] = CStringGetTextDatum(status);
	args[3] = Int32GetDatum(attempts);
	args[4] = error ? CStringGetTextDatum(error) : (Datum) 0;
	args[5] = TimestampTzGetDatum(next);
	sql = psprintf("UPDATE llm_usage.alerts SET %s_status = $3, %s_attempts = %s_attempts OPERATOR(pg_catalog.+) $4,"
				   " %s_error = $5, %s_next_at = $6,"
				   " delivered_at = CASE WHEN $3 OPERATOR(pg_catalog.=) 'delivered' THEN pg_catalog.now() ELSE delivered_at END"
				   " WHERE tenant_id OPERATOR(pg_catalog.=) $2 AND id OPERATOR(pg_catalog.=) $1",
				   channel, channel, channel, channel, channel);
	if (SPI_execute_with_args(sql, 6, types, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "recording an alert delivery failed");
	worker_tx_commit(caller);
	return next;
}

/* one webhook attempt of at most timeout_ms */
static TimestampTz
send_webhook(PendingAlert *a, int timeout_ms)
{
	HttpRequest req;
	HttpResult	res;
	char		ts[32];
	const char *headers[6];
	int			n = 0;

	snprintf(ts, sizeof(ts), "%lld", (long long) time(NULL));
	headers[n++] = "Content-Type: application/json";
	headers[n++] = psprintf("X-LLM-Usage-Timestamp: %s", ts);
	headers[n++] = psprintf("X-LLM-Usage-Alert-Id: " INT64_FORMAT, a->id);
	if (llm_usage_alert_webhook_secret && llm_usage_alert_webhook_secret[0])
	{
		char	   *signed_text = psprintf("%s.%s", ts, a->payload);

		headers[n++] = psprintf("X-LLM-Usage-Signature: sha256=%s",
								llm_usage_hmac_sha256_hex(llm_usage_alert_webhook_secret,
														  signed_text, strlen(signed_text)));
	}
	headers[n] = NULL;

	req.url = llm_usage_alert_webhook_url;
	req.headers = headers;
	req.timeout_ms = timeout_ms;
	req.max_retries = 0;		/* retried in later cycles, not here */
	req.max_body = 64 * 1024;
	req.post_body = a->payload;
	req.expect_json = false;
	http_fetch(&req, &res);
	return record(a, "webhook", res.ok, 1, a->webhook_attempts, false, res.ok ? NULL : res.error);
}

/* one e-mail attempt of at most timeout_ms */
static TimestampTz
send_email(PendingAlert *a, int timeout_ms)
{
	StringInfoData msg;
	char		date[64];
	char		error[256] = "";
	time_t		now = time(NULL);
	struct tm	tm;
	bool		ok;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	initStringInfo(&msg);
	appendStringInfo(&msg,
					 "From: %s\r\nTo: %s\r\nSubject: [llm_usage] %s %s: tenant %s\r\n"
					 "Date: %s\r\nMessage-ID: <llm_usage-alert-" INT64_FORMAT "-%lld@llm_usage>\r\n"
					 "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
					 "%s\r\n\r\n%s\r\n",
					 llm_usage_alert_email_from, llm_usage_alert_email_to,
					 a->severity, a->kind, a->tenant_id, date, a->id, (long long) now,
					 a->message, a->payload);
	ok = smtp_send(llm_usage_alert_smtp_url, llm_usage_alert_email_from, llm_usage_alert_email_to,
				   msg.data, timeout_ms, error, sizeof(error));
	return record(a, "email", ok, 1, a->email_attempts, false, ok ? NULL : error);
}

/* milliseconds from now to t, at least 0 */
static long
ms_until(TimestampTz t)
{
	TimestampTz now = GetCurrentTimestamp();

	return t <= now ? 0 : (long) Min((t - now) / 1000, (TimestampTz) PG_INT32_MAX);
}

/*
 * delivery_run
 *		One pass of deliveries, bounded in time (see the file header).
 *		Returns when the next pending delivery is due (DT_NOEND if none);
 *		*more is set when due deliveries were left for the next cycle.
 *		Expects no transaction to be open; allocates in the current
 *		(per-cycle) memory context.
 */
TimestampTz
delivery_run(TimestampTz deadline, bool *more)
{
	List	   *pending;
	ListCell   *lc;
	TimestampTz next_due;
	TimestampTz pass_end = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), DELIVERY_PASS_MS);
	bool		webhook = llm_usage_alert_webhook_url && llm_usage_alert_webhook_url[0];
	bool		email = llm_usage_alert_smtp_url && llm_usage_alert_smtp_url[0] &&
		llm_usage_alert_email_to && llm_usage_alert_email_to[0];

	if (deadline > pass_end)
		deadline = pass_end;
	*more = false;
	pending = load_pending(&next_due);
	if (list_length(pending) == DELIVERY_BATCH)
		*more = true;
	foreach(lc, pending)
	{
		PendingAlert *a = (PendingAlert *) lfirst(lc);
		TimestampTz next;

		for (int channel = 0; channel < 2; channel++)
		{
			bool		due = channel == 0 ? a->webhook : a->email;
			bool		configured = channel == 0 ? webhook : email;
			int			timeout_ms;

			if (!due)
				continue;
			llm_usage_exit_if_orphaned();
			CHECK_FOR_INTERRUPTS();
			if (!configured)
			{
				/* recorded as failed for good: nothing more is due for it */
				(void) record(a, channel == 0 ? "webhook" : "email", false, 0, 0, true,
							  channel == 0 ? "llm_usage.alert_webhook_url is no longer set"
							  : "llm_usage.alert_smtp_url or alert_email_to is no longer set");
				continue;
			}
			timeout_ms = (int) Min(Min((long) llm_usage_http_timeout_ms, (long) DELIVERY_ATTEMPT_MS),
								   ms_until(deadline));
			if (timeout_ms < 200)
			{
				*more = true;
				return next_due;
			}
			next = channel == 0 ? send_webhook(a, timeout_ms) : send_email(a, timeout_ms);
			if (next < next_due)
				next_due = next;
		}
	}
	return next_due;
}
