/*-------------------------------------------------------------------------
 *
 * http.c
 *	  One libcurl wrapper for every provider request: GET with timeouts,
 *	  TLS verification, http/https only, no redirects, a response size cap,
 *	  and retries of 408/409/429/5xx and timeouts with exponential backoff
 *	  and jitter that honour Retry-After.  Knows nothing about providers.
 *
 * Secrets: the caller's headers may carry an API key.  Curl's verbose
 * mode is never enabled, no header is ever copied into an error message
 * or a log line, and error texts name only the status or curl's error.
 *
 * Waits between attempts sleep on the process latch, so SIGTERM stops a
 * worker within a second even in the middle of a backoff; a transfer in
 * progress is aborted through the progress callback when the process is
 * asked to die or cancel.  No transaction state is needed or touched.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "common/pg_prng.h"
#include "storage/latch.h"
#include "utils/wait_event.h"

#include "llm_usage.h"

#define BACKOFF_BASE_MS 500
#define BACKOFF_CAP_MS 30000
#define RETRY_AFTER_CAP_S 120

typedef struct WriteState
{
	StringInfo	body;
	size_t		max_body;
	bool		too_big;
} WriteState;

static bool curl_initialised = false;

static size_t
write_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	WriteState *ws = (WriteState *) userdata;
	size_t		n = size * nmemb;

	if (ws->body->len + n > ws->max_body)
	{
		ws->too_big = true;
		return 0;				/* makes curl fail with CURLE_WRITE_ERROR */
	}
	appendBinaryStringInfo(ws->body, data, (int) n);
	return n;
}

static int
progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
	/* abort the transfer when the process is asked to stop */
	return (ProcDiePending || QueryCancelPending) ? 1 : 0;
}

/* seconds from Retry-After (seconds or an HTTP date) or retry-after-ms; -1 if none */
static long
retry_after_ms(CURL *h)
{
	struct curl_header *hdr;

	if (curl_easy_header(h, "retry-after-ms", 0, CURLH_HEADER, -1, &hdr) == CURLHE_OK)
	{
		long		ms = strtol(hdr->value, NULL, 10);

		if (ms >= 0)
			return ms;
	}
	if (curl_easy_header(h, "retry-after", 0, CURLH_HEADER, -1, &hdr) == CURLHE_OK)
	{
		char	   *end;
		long		s = strtol(hdr->value, &end, 10);

		if (end != hdr->value && s >= 0)
			return s * 1000;
		else
		{
			time_t		when = curl_getdate(hdr->value, NULL);

			if (when > 0)
				return Max(0, (long) (when - time(NULL))) * 1000;
		}
	}
	return -1;
}

static bool
retryable_status(long status)
{
	return status == 408 || status == 409 || status == 429 || status >= 500;
}

static void
sleep_ms(long ms)
{
	while (ms > 0)
	{
		long		step = Min(ms, 1000);

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 step, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		ms -= step;
	}
}

/*
 * http_fetch
 *		GET (or POST req->post_body to) req->url; on return res->ok says
 *		whether a 2xx answer came (with a JSON body when req->expect_json).  Otherwise res->error says why, and res->status is the
 *		last HTTP status (0 when no response came).
 */
void
http_fetch(const HttpRequest *req, HttpResult *res)
{
	CURL	   *h;
	struct curl_slist *headers = NULL;
	char		errbuf[CURL_ERROR_SIZE];
	WriteState ws;

	if (!curl_initialised)
	{
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not initialise libcurl")));
		curl_initialised = true;
	}

	memset(res, 0, sizeof(*res));
	res->body = makeStringInfo();

	h = curl_easy_init();
	if (h == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not create a libcurl handle")));
	for (const char *const *hp = req->headers; hp && *hp; hp++)
		headers = curl_slist_append(headers, *hp);

	curl_easy_setopt(h, CURLOPT_URL, req->url);
	if (req->post_body != NULL)
	{
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->post_body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long) strlen(req->post_body));
	}
	else
		curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long) req->timeout_ms);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long) Min(req->timeout_ms, 10000));
	curl_easy_setopt(h, CURLOPT_USERAGENT, "llm_usage/" LLM_USAGE_VERSION " (PostgreSQL extension)");
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &ws);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);

	for (int attempt = 0; attempt <= req->max_retries; attempt++)
	{
		CURLcode	rc;
		bool		retry = false;
		long		wait_ms = -1;
		char	   *ctype = NULL;

		resetStringInfo(res->body);
		ws.body = res->body;
		ws.max_body = req->max_body;
		ws.too_big = false;
		errbuf[0] = '\0';
		res->status = 0;
		res->attempts++;

		rc = curl_easy_perform(h);
		CHECK_FOR_INTERRUPTS();

		if (rc == CURLE_OK)
		{
			curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &res->status);
			curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ctype);
			if (res->status >= 200 && res->status < 300)
			{
				if (req->expect_json &&
					(ctype == NULL || pg_strncasecmp(ctype, "application/json", 16) != 0))
					snprintf(res->error, sizeof(res->error),
							 "HTTP %ld with content type \"%s\", not application/json",
							 res->status, ctype ? ctype : "(none)");
				else
					res->ok = true;
				break;
			}
			snprintf(res->error, sizeof(res->error), "HTTP %ld", res->status);
			if (res->status == 401 || res->status == 403)
				break;			/* the key is refused: retrying cannot help */
			retry = retryable_status(res->status);
			wait_ms = retry_after_ms(h);
		}
		else if (ws.too_big)
		{
			snprintf(res->error, sizeof(res->error),
					 "response body larger than llm_usage.http_max_response_kb (%zu kB)",
					 req->max_body / 1024);
			break;
		}
		else
		{
			snprintf(res->error, sizeof(res->error), "%s%s",
					 rc == CURLE_OPERATION_TIMEDOUT ? "timed out: " : "request failed: ",
					 curl_easy_strerror(rc));
			retry = (rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_COULDNT_CONNECT ||
					 rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR ||
					 rc == CURLE_SEND_ERROR || rc == CURLE_PARTIAL_FILE);
		}

		if (!retry || attempt == req->max_retries)
			break;
		if (wait_ms > (long) RETRY_AFTER_CAP_S * 1000)
		{
			snprintf(res->error + strlen(res->error), sizeof(res->error) - strlen(res->error),
					 "; Retry-After asks for %ld s, more than %d s", wait_ms / 1000, RETRY_AFTER_CAP_S);
			break;
		}
		if (wait_ms < 0)
		{
			long		backoff = Min((long) BACKOFF_CAP_MS, (long) BACKOFF_BASE_MS << attempt);

			/* full jitter in [backoff/2, backoff] */
			wait_ms = backoff / 2 + (long) pg_prng_uint64_range(&pg_global_prng_state, 0, backoff / 2);
		}
		sleep_ms(wait_ms);
	}

	curl_easy_cleanup(h);
	curl_slist_free_all(headers);
}
