/*-------------------------------------------------------------------------
 *
 * delivery.c
 *	  Deliver pending alerts by signed webhook (llm_usage.alert_webhook_url)
 *	  and by e-mail (llm_usage.alert_smtp_url), from the worker.  Ties the
 *	  alerts table to http.c and smtp.c.
 *
 * An alert is marked pending for a channel when it is raised while that
 * channel is configured.  Each pass reads up to 50 pending alerts in a
 * short transaction, sends them with no transaction open (the webhook with
 * retries and backoff, as every request), and records each outcome
 * (delivered or failed, attempts, error) in a transaction of its own.
 *
 * Webhook: POST of the alert as JSON, with headers
 *	 X-LLM-Usage-Timestamp: <Unix seconds>
 *	 X-LLM-Usage-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>"
 *							 under llm_usage.alert_webhook_secret>
 * so a receiver can check origin and freshness.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "llm_usage.h"

#define DELIVERY_BATCH 50

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
	bool		webhook;		/* webhook delivery pending */
	bool		email;			/* e-mail delivery pending */
} PendingAlert;

static void
tx_begin(const char *activity)
{
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
tx_commit(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	pgstat_report_activity(STATE_IDLE, NULL);
}

static char *
col(int row, int c)
{
	char	   *v = SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, c);

	return v ? pstrdup(v) : NULL;
}

static List *
load_pending(void)
{
	List	   *out = NIL;
	MemoryContext caller = CurrentMemoryContext;

	tx_begin("llm_usage: reading alerts to deliver");
	if (SPI_execute("SELECT a.id, a.tenant_id, a.kind, a.severity, a.message,"
					" jsonb_build_object('id', a.id, 'tenant_id', a.tenant_id, 'kind', a.kind,"
					"   'severity', a.severity, 'subject', a.subject, 'message', a.message,"
					"   'details', a.details, 'created_at', a.created_at)::text,"
					" a.webhook_status = 'pending', a.email_status = 'pending'"
					" FROM llm_usage.alerts a"
					" WHERE a.webhook_status = 'pending' OR a.email_status = 'pending'"
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
		out = lappend(out, a);
		MemoryContextSwitchTo(spi);
	}
	tx_commit();
	return out;
}

static void
record(int64 id, const char *channel, bool ok, int attempts, const char *error)
{
	Oid			types[4] = {INT8OID, BOOLOID, INT4OID, TEXTOID};
	Datum		args[4];
	char		nulls[4] = {' ', ' ', ' ', error ? ' ' : 'n'};
	char	   *sql;

	tx_begin("llm_usage: recording an alert delivery");
	args[0] = Int64GetDatum(id);
	args[1] = BoolGetDatum(ok);
	args[2] = Int32GetDatum(attempts);
	args[3] = error ? CStringGetTextDatum(error) : (Datum) 0;
	sql = psprintf("UPDATE llm_usage.alerts SET %s_status = CASE WHEN $2 THEN 'delivered' ELSE 'failed' END,"
				   " %s_attempts = %s_attempts + $3, %s_error = $4,"
				   " delivered_at = CASE WHEN $2 THEN now() ELSE delivered_at END"
				   " WHERE id = $1", channel, channel, channel, channel);
	if (SPI_execute_with_args(sql, 4, types, args, nulls, false, 0) != SPI_OK_UPDATE)
		elog(ERROR, "recording an alert delivery failed");
	tx_commit();
}

static void
send_webhook(PendingAlert *a)
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
	req.timeout_ms = llm_usage_http_timeout_ms;
	req.max_retries = llm_usage_max_retries;
	req.max_body = 64 * 1024;
	req.post_body = a->payload;
	req.expect_json = false;
	http_fetch(&req, &res);
	record(a->id, "webhook", res.ok, res.attempts, res.ok ? NULL : res.error);
}

static void
send_email(PendingAlert *a)
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
				   msg.data, llm_usage_http_timeout_ms, error, sizeof(error));
	record(a->id, "email", ok, 1, ok ? NULL : error);
}

/*
 * delivery_run
 *		Deliver up to one batch of pending alerts; returns how many alerts
 *		were handled.  Expects no transaction to be open.
 */
int
delivery_run(void)
{
	List	   *pending;
	ListCell   *lc;
	bool		webhook = llm_usage_alert_webhook_url && llm_usage_alert_webhook_url[0];
	bool		email = llm_usage_alert_smtp_url && llm_usage_alert_smtp_url[0] &&
		llm_usage_alert_email_to && llm_usage_alert_email_to[0];

	pending = load_pending();
	foreach(lc, pending)
	{
		PendingAlert *a = (PendingAlert *) lfirst(lc);

		CHECK_FOR_INTERRUPTS();
		if (a->webhook)
		{
			if (webhook)
				send_webhook(a);
			else
				record(a->id, "webhook", false, 0, "llm_usage.alert_webhook_url is no longer set");
		}
		if (a->email)
		{
			if (email)
				send_email(a);
			else
				record(a->id, "email", false, 0, "llm_usage.alert_smtp_url or alert_email_to is no longer set");
		}
	}
	return list_length(pending);
}
