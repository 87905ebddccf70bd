/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every PostgreSQL and libcurl version difference llm_usage cares about,
 *	  in one place.
 *
 * llm_usage targets PostgreSQL 15 and later on Unix-like systems (it uses
 * mmap/madvise for the master key ring and gmtime_r; Windows is not
 * supported); shared memory is requested in shmem_request_hook, which
 * exists from 15 on.  InitMaterializedSRF() was called SetSingleFuncCall()
 * in 15.0.
 *
 * libcurl: 7.68.0 and later (Ubuntu 20.04 has 7.68, RHEL 9 7.76, Ubuntu
 * 22.04 7.81, Debian 12 7.88).  The code uses nothing newer than 7.68
 * except through the macros below, each with its older equivalent:
 *
 *	 LLM_CURL_SET_PROTOCOLS	 CURLOPT_PROTOCOLS_STR / CURLOPT_REDIR_PROTOCOLS_STR
 *							 (7.85, which deprecates the bitmask options) or
 *							 CURLOPT_PROTOCOLS / CURLOPT_REDIR_PROTOCOLS
 *
 * Response headers are read with a header callback rather than
 * curl_easy_header()/curl_easy_nextheader() (7.83/7.84), so no guard is
 * needed for them.  The curl section applies only to files that include
 * <curl/curl.h> before this header.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LLM_USAGE_COMPAT_H
#define LLM_USAGE_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "llm_usage requires PostgreSQL 15 or later"
#endif

#if PG_VERSION_NUM < 150001
#define InitMaterializedSRF(fcinfo, flags) SetSingleFuncCall((fcinfo), (flags))
#endif

#ifdef LIBCURL_VERSION_NUM

/*
 * LLM_CURL_VERSION_NUM: the libcurl version the guards go by; a test build
 * (test/t_libcurl_versions.sh) may pretend to be older to compile the
 * branches an older libcurl takes.
 */
#ifdef LLM_USAGE_PRETEND_LIBCURL_VERSION_NUM
#define LLM_CURL_VERSION_NUM LLM_USAGE_PRETEND_LIBCURL_VERSION_NUM
#else
#define LLM_CURL_VERSION_NUM LIBCURL_VERSION_NUM
#endif

#if LLM_CURL_VERSION_NUM < 0x074400
#error "llm_usage requires libcurl 7.68.0 or later"
#endif

/*
 * LLM_CURL_SET_PROTOCOLS(handle, "http,https", CURLPROTO_HTTP | CURLPROTO_HTTPS)
 *		Restrict the protocols a handle may use (and follow redirects to:
 *		the same list, although llm_usage never follows redirects).
 */
#if LLM_CURL_VERSION_NUM >= 0x075500	/* 7.85.0 */
#define LLM_CURL_SET_PROTOCOLS(h, names, mask) \
	(curl_easy_setopt((h), CURLOPT_PROTOCOLS_STR, (names)) == CURLE_OK && \
	 curl_easy_setopt((h), CURLOPT_REDIR_PROTOCOLS_STR, (names)) == CURLE_OK)
#else
#define LLM_CURL_SET_PROTOCOLS(h, names, mask) \
	(curl_easy_setopt((h), CURLOPT_PROTOCOLS, (long) (mask)) == CURLE_OK && \
	 curl_easy_setopt((h), CURLOPT_REDIR_PROTOCOLS, (long) (mask)) == CURLE_OK)
#endif

#endif							/* LIBCURL_VERSION_NUM */

#endif							/* LLM_USAGE_COMPAT_H */
