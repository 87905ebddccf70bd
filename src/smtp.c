/*-------------------------------------------------------------------------
 *
 * smtp.c
 *	  Send one e-mail through libcurl's SMTP (smtp:// or smtps://), for
 *	  alert delivery.  Knows nothing about alerts.
 *
 * TLS: smtps:// is TLS from the start.  On smtp://, STARTTLS is used when
 * the server offers it; when the URL carries a password, TLS is required
 * (CURLUSESSL_ALL: no STARTTLS, no login, the mail is not sent), except to
 * a loopback address (localhost, 127.0.0.0/8, ::1), where a local relay
 * without TLS is accepted.
 *
 * The transfer runs through http.c's interruptible loop: SIGTERM,
 * cancellation and postmaster death act within a fraction of a second,
 * and no ERROR ever jumps through libcurl (the read callback only copies
 * from memory the caller owns).  Error texts never contain the URL (it may
 * hold the password).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
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

/* is host (as in a URL; IPv6 in brackets) a loopback address? */
static bool
host_is_loopback(const char *host)
{
	unsigned char addr[16];
	char		buf[64];
	size_t		len = strlen(host);

	if (pg_strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, addr) == 1)
		return addr[0] == 127;
	if (len >= 2 && len < sizeof(buf) + 2 && host[0] == '[' && host[len - 1] == ']')
	{
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		if (inet_pton(AF_INET6, buf, addr) == 1)
		{
			static const unsigned char loop6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
			static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

			return memcmp(addr, loop6, 16) == 0 ||
				(memcmp(addr, mapped, 12) == 0 && addr[12] == 127);
		}
	}
	return false;
}

/*
 * smtp_tls_policy
 *		CURLUSESSL_ALL when url carries a password and names a host other
 *		than a loopback address, else CURLUSESSL_TRY; *implicit_tls when the
 *		scheme is smtps.  An unparsable URL gets CURLUSESSL_ALL.
 */
static long
smtp_tls_policy(const char *url, bool *implicit_tls)
{
	CURLU	   *u = curl_url();
	char	   *password = NULL;
	char	   *host = NULL;
	char	   *scheme = NULL;
	long		policy = CURLUSESSL_ALL;

	*implicit_tls = false;
	if (u == NULL)
		return policy;
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK)
	{
		bool		has_password = curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK &&
			password != NULL && password[0] != '\0';

		*implicit_tls = pg_strcasecmp(scheme, "smtps") == 0;
		policy = (has_password && !host_is_loopback(host)) ? CURLUSESSL_ALL : CURLUSESSL_TRY;
	}
	if (password != NULL)
	{
		explicit_bzero(password, strlen(password));
		curl_free(password);
	}
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	return policy;
}

/*
 * smtp_send
 *		Send message (RFC 5322 headers and body, CRLF line ends) from "from"
 *		to every address of the comma-separated to_list, within timeout_ms.
 *		Returns false with error filled on failure.  Raises only for
 *		interrupts (and exits on postmaster death); no transaction needed.
 */
bool
smtp_send(const char *url, const char *from, const char *to_list, const char *message,
		  int timeout_ms, char *error, size_t error_size)
{
	CURL	   *volatile h = NULL;
	CURLM	   *volatile m = NULL;
	struct curl_slist *volatile rcpt = NULL;
	UploadState up = {message, strlen(message)};
	volatile CURLcode rc = CURLE_OK;
	volatile long policy;
	bool		implicit_tls;

	llm_usage_curl_init();
	policy = smtp_tls_policy(url, &implicit_tls);
	error[0] = '\0';
	PG_TRY();
	{
		char	   *copy = pstrdup(to_list);
		char	   *save = NULL;
		bool		ok;

		h = curl_easy_init();
		m = curl_multi_init();
		if (h == NULL || m == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not create a libcurl handle")));
		for (char *a = strtok_r(copy, ",", &save); a; a = strtok_r(NULL, ",", &save))
		{
			while (*a == ' ')
				a++;
			if (*a)
			{
				struct curl_slist *n = curl_slist_append(rcpt, a);

				if (n == NULL)
					ereport(ERROR,
							(errcode(ERRCODE_OUT_OF_MEMORY),
							 errmsg("out of memory building the recipient list")));
				rcpt = n;
			}
		}
		pfree(copy);

		ok = curl_easy_setopt(h, CURLOPT_URL, url) == CURLE_OK &&
			LLM_CURL_SET_PROTOCOLS(h, "smtp,smtps", CURLPROTO_SMTP | CURLPROTO_SMTPS) &&
			curl_easy_setopt(h, CURLOPT_MAIL_FROM, from) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_MAIL_RCPT, rcpt) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_UPLOAD, 1L) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_READFUNCTION, read_message) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_READDATA, &up) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_VERBOSE, 0L) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long) timeout_ms) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long) Min(timeout_ms, 10000)) == CURLE_OK &&
			curl_easy_setopt(h, CURLOPT_USE_SSL, policy) == CURLE_OK;
		if (!ok)
			snprintf(error, error_size, "SMTP: libcurl refused an option (it may lack smtp support)");
		else
			rc = llm_usage_curl_perform(m, h);
	}
	PG_FINALLY();
	{
		if (h != NULL)
			curl_easy_cleanup(h);
		if (m != NULL)
			curl_multi_cleanup(m);
		curl_slist_free_all(rcpt);
	}
	PG_END_TRY();

	if (error[0] != '\0')
		return false;
	if (rc == CURLE_USE_SSL_FAILED && policy == CURLUSESSL_ALL && !implicit_tls)
		snprintf(error, error_size,
				 "SMTP: the server offers no STARTTLS, and a password is only sent over TLS (use smtps://, a server with STARTTLS, or a loopback relay)");
	else if (rc != CURLE_OK)
		snprintf(error, error_size, "SMTP: %s", curl_easy_strerror(rc));
	return rc == CURLE_OK;
}
