/*-------------------------------------------------------------------------
 *
 * smtp.c
 *	  Send one e-mail through libcurl's SMTP (smtp:// or smtps://), for
 *	  alert delivery.  Knows nothing about alerts.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>

#include "llm_usage.h"

typedef struct UploadState
{
	const char *data;
	size_t		left;
} UploadState;

static size_t
read_message(char *buf, size_t size, size_t nitems, void *userdata)
{
	UploadState *u = (UploadState *) userdata;
	size_t		n = Min(size * nitems, u->left);

	memcpy(buf, u->data, n);
	u->data += n;
	u->left -= n;
	return n;
}

/*
 * smtp_send
 *		Send message (RFC 5322 headers and body, CRLF line ends) from "from"
 *		to every address of the comma-separated to_list.  Returns false with
 *		error filled on failure.  Never raises an ERROR.
 */
bool
smtp_send(const char *url, const char *from, const char *to_list, const char *message,
		  int timeout_ms, char *error, size_t error_size)
{
	CURL	   *h = curl_easy_init();
	struct curl_slist *rcpt = NULL;
	char	   *copy = strdup(to_list);
	char	   *save = NULL;
	UploadState up = {message, strlen(message)};
	CURLcode	rc;

	if (h == NULL || copy == NULL)
	{
		snprintf(error, error_size, "could not create a libcurl handle");
		free(copy);
		if (h)
			curl_easy_cleanup(h);
		return false;
	}
	for (char *a = strtok_r(copy, ",", &save); a; a = strtok_r(NULL, ",", &save))
	{
		while (*a == ' ')
			a++;
		if (*a)
			rcpt = curl_slist_append(rcpt, a);
	}
	free(copy);

	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
	curl_easy_setopt(h, CURLOPT_MAIL_FROM, from);
	curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(h, CURLOPT_READFUNCTION, read_message);
	curl_easy_setopt(h, CURLOPT_READDATA, &up);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_VERBOSE, 0L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
	curl_easy_setopt(h, CURLOPT_USE_SSL, (long) CURLUSESSL_TRY);
	rc = curl_easy_perform(h);
	if (rc != CURLE_OK)
		snprintf(error, error_size, "SMTP: %s", curl_easy_strerror(rc));
	curl_slist_free_all(rcpt);
	curl_easy_cleanup(h);
	return rc == CURLE_OK;
}
