/*-------------------------------------------------------------------------
 *
 * build_info.c
 *	  llm_usage.build_info(): what this server's llm_usage library was built
 *	  and linked with, and how it was loaded.
 *
 * The versions come from the libraries themselves at run time
 * (curl_version_info, OpenSSL_version), so they show what is really linked,
 * not what the headers said at build time.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"

#include "llm_usage.h"

PG_FUNCTION_INFO_V1(llm_usage_build_info);

static void
put_row(ReturnSetInfo *rsinfo, const char *component, const char *value)
{
	Datum		values[2];
	bool		nulls[2] = {false, false};

	values[0] = CStringGetTextDatum(component);
	values[1] = CStringGetTextDatum(value);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * llm_usage.build_info() RETURNS TABLE(component text, version text)
 *		One row per component.  Takes no locks; needs no transaction state
 *		beyond the caller's.
 */
Datum
llm_usage_build_info(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	curl_version_info_data *curl = curl_version_info(CURLVERSION_NOW);

	InitMaterializedSRF(fcinfo, 0);

	put_row(rsinfo, "llm_usage", LLM_USAGE_VERSION);
	put_row(rsinfo, "postgresql", PG_VERSION);
	put_row(rsinfo, "libcurl", curl->version);
	put_row(rsinfo, "libcurl_ssl", curl->ssl_version ? curl->ssl_version : "none");
	put_row(rsinfo, "openssl", OpenSSL_version(OPENSSL_VERSION));
	put_row(rsinfo, "preloaded", llm_usage_preloaded ? "on" : "off");

	return (Datum) 0;
}
