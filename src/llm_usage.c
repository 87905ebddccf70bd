/*-------------------------------------------------------------------------
 *
 * llm_usage.c
 *	  Entry point of the llm_usage library: module magic, _PG_init and the
 *	  settings (GUCs) that exist in this version.
 *
 * The library is meant to be listed in shared_preload_libraries; the
 * background worker and the shared-memory quota path (later versions)
 * need it.  Everything in this version also works when the library is
 * loaded on first use by a backend, and build_info() reports which of the
 * two happened.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "llm_usage.h"

PG_MODULE_MAGIC;

bool		llm_usage_preloaded = false;

/* GUC: write a quota_exceeded audit event when enforce_quota() denies */
static bool llm_usage_audit_quota_denials = true;

void		_PG_init(void);

/*
 * _PG_init
 *		Define the settings and remember how the library was loaded.
 */
void
_PG_init(void)
{
	llm_usage_preloaded = process_shared_preload_libraries_in_progress;

	DefineCustomBoolVariable("llm_usage.audit_quota_denials",
							 "Writes a quota_exceeded audit event for every denied enforce_quota() call.",
							 "Denials are audited in the caller's transaction, so they are kept when it commits.",
							 &llm_usage_audit_quota_denials,
							 true,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	MarkGUCPrefixReserved("llm_usage");
}
