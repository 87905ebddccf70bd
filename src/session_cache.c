/*-------------------------------------------------------------------------
 *
 * session_cache.c
 *	  Per-session caches of the extension's configuration, and their
 *	  invalidation.
 *
 * The tenant directory: for the calling role (llm_usage_caller_id(): the
 * current user when the API is entered, not the outer user, so that another
 * role's SECURITY DEFINER function or a maintenance command never finds the
 * directory loaded for its caller), every tenant it may act on, with its
 * time zone and the quotas in force, read with one _quota_configs() query.
 * A tenant missing from it is one the role may not use or that does not
 * exist; the SQL paths raise the right error for those.  quota.c builds its limits from the directory, track.c asks it
 * whether the caller may track for a tenant.
 *
 * Invalidation: a statement trigger on every table the configuration
 * comes from (tenants, plans, plan quotas, overrides, access, prices)
 * sends a relcache invalidation for llm_usage.tenants, which every
 * backend reads at commit of the change and at the start of its next
 * call; role membership changes come as syscache invalidations.  Either
 * drops the directory and calls the reset function each module that keeps
 * a cache of its own has registered (quota.c's limits, track.c's prices).
 *
 * Everything here is backend-local; nothing is locked.  The caches live
 * under CacheMemoryContext and survive transactions; they are filled
 * inside a transaction (they run SPI queries and read catalogs).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "llm_usage.h"
#include "session_cache.h"

#define MAX_RESETS	8

static SessionCacheReset resets[MAX_RESETS];
static int	nresets = 0;
static bool callbacks_registered = false;
static Oid	tenants_relid = InvalidOid;

/* the tenant directory; everything in it lives in directory_ctx */
static HTAB *directory = NULL;
static MemoryContext directory_ctx = NULL;
static Oid	directory_userid = InvalidOid;	/* the role it was loaded for */
static SPIPlanPtr directory_plan = NULL;

/* drop the directory and every registered cache */
static void
reset_all(void)
{
	directory = NULL;
	directory_userid = InvalidOid;
	tenants_relid = InvalidOid;
	if (directory_ctx != NULL)
		MemoryContextReset(directory_ctx);
	for (int i = 0; i < nresets; i++)
		resets[i] ();
}

static void
relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == tenants_relid)
		reset_all();
}

static void
syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	reset_all();
}

/* the invalidation callbacks, registered once per backend */
static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	directory_ctx = AllocSetContextCreate(CacheMemoryContext, "llm_usage tenant directory",
										  ALLOCSET_SMALL_SIZES);
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, syscache_callback, (Datum) 0);
	callbacks_registered = true;
}

/*
 * session_cache_register
 *		Have reset called whenever the configuration changes (registering
 *		the same function again does nothing).  A module calls it before it
 *		fills its cache.  Expects a transaction: it looks up
 *		llm_usage.tenants, whose invalidation is the signal.
 */
void
session_cache_register(SessionCacheReset reset)
{
	int			i;

	register_callbacks();
	for (i = 0; i < nresets; i++)
		if (resets[i] == reset)
			break;
	if (i == nresets)
	{
		if (nresets >= MAX_RESETS)
			elog(ERROR, "too many llm_usage session caches");
		resets[nresets++] = reset;
	}
	(void) session_cache_tenants_relid();
}

/*
 * session_cache_tenants_relid
 *		The OID of llm_usage.tenants (looked up again after every reset, so
 *		that a re-created extension is noticed), with the invalidation
 *		callbacks registered.  Expects a transaction.
 */
Oid
session_cache_tenants_relid(void)
{
	register_callbacks();
	if (OidIsValid(tenants_relid))
		return tenants_relid;
	tenants_relid = get_relname_relid("tenants", get_namespace_oid("llm_usage", false));
	if (!OidIsValid(tenants_relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("table llm_usage.tenants does not exist")));
	return tenants_relid;
}

/*
 * session_cache_keep_plan
 *		Prepare a statement for SPI once and keep it for the session; the
 *		caller is connected to SPI.
 */
SPIPlanPtr
session_cache_keep_plan(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare(sql, nargs, types);

	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	SPI_keepplan(plan);
	return plan;
}

/* a text[] column as a palloc'd array of C strings */
static char **
text_array(Datum arr, int *n)
{
	Datum	   *elems;
	char	  **out;

	deconstruct_array(DatumGetArrayTypeP(arr), TEXTOID, -1, false, TYPALIGN_INT, &elems, NULL, n);
	out = palloc(sizeof(char *) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
		out[i] = TextDatumGetCString(elems[i]);
	return out;
}

/* one row of _quota_configs() into the directory (in directory_ctx) */
static void
directory_add(HeapTuple tup, TupleDesc desc)
{
	char		key[SESSION_TENANT_MAX + 1];
	SessionTenant *t;
	bool		isnull;
	char	   *tenant = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	Datum	   *limits;
	int			ntypes,
				nperiods,
				nlimits;

	if (strlen(tenant) > SESSION_TENANT_MAX)
		return;					/* counted in the table, through SQL */
	memset(key, 0, sizeof(key));
	strlcpy(key, tenant, sizeof(key));
	t = hash_search(directory, key, HASH_ENTER, NULL);
	t->timezone = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
	t->quota_types = text_array(SPI_getbinval(tup, desc, 3, &isnull), &ntypes);
	t->periods = text_array(SPI_getbinval(tup, desc, 4, &isnull), &nperiods);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, 5, &isnull)), NUMERICOID, -1, false,
					  TYPALIGN_INT, &limits, &t->limit_nulls, &nlimits);
	t->nquotas = Min(ntypes, Min(nperiods, nlimits));
	t->limits = palloc(sizeof(Datum) * Max(t->nquotas, 1));
	for (int i = 0; i < t->nquotas; i++)
		t->limits[i] = t->limit_nulls[i] ? (Datum) 0 : datumCopy(limits[i], false, -1);
}

/*
 * load_directory
 *		Fill the directory for the current role with one _quota_configs()
 *		query.  Every registered cache is reset too: invalidations read
 *		while the query ran may have reset some of them already.
 */
static void
load_directory(void)
{
	HASHCTL		info;
	MemoryContext old;

	SPI_connect();
	if (directory_plan == NULL)
		directory_plan = session_cache_keep_plan("SELECT tenant_id, timezone, quota_types, periods, limits "
												 "FROM llm_usage._quota_configs()", 0, NULL);
	if (SPI_execute_plan(directory_plan, NULL, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "llm_usage._quota_configs() failed");

	reset_all();
	(void) session_cache_tenants_relid();
	memset(&info, 0, sizeof(info));
	info.keysize = SESSION_TENANT_MAX + 1;
	info.entrysize = sizeof(SessionTenant);
	info.hcxt = directory_ctx;
	directory = hash_create("llm_usage tenant directory", Max(SPI_processed, 64), &info,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	old = MemoryContextSwitchTo(directory_ctx);
	for (uint64 i = 0; i < SPI_processed; i++)
		directory_add(SPI_tuptable->vals[i], SPI_tuptable->tupdesc);
	MemoryContextSwitchTo(old);
	directory_userid = llm_usage_caller_id();
	SPI_finish();
}

/*
 * session_cache_current
 *		Reads pending invalidations; true when the directory is loaded for
 *		the current role, so that what a module built from it since it was
 *		loaded is still valid (any change resets the module's cache too).
 *		Lets a module answer a hit from its own cache alone.
 */
bool
session_cache_current(void)
{
	AcceptInvalidationMessages();
	return directory != NULL && directory_userid == llm_usage_caller_id();
}

/*
 * session_cache_tenant
 *		A tenant the current role may act on, from the directory (read
 *		first if it was dropped or loaded for another role); NULL when the
 *		role may not use it, it does not exist, or its id is empty or longer
 *		than SESSION_TENANT_MAX bytes.  Reads pending invalidations first.
 *		The result is valid until the next invalidation is read (any SPI
 *		call, any lock taken): copy what is needed at once.  Expects a
 *		transaction; the caller may be connected to SPI or not.
 */
const SessionTenant *
session_cache_tenant(const char *tenant)
{
	char		key[SESSION_TENANT_MAX + 1];

	if (tenant[0] == '\0' || strlen(tenant) > SESSION_TENANT_MAX)
		return NULL;
	AcceptInvalidationMessages();
	(void) session_cache_tenants_relid();
	if (directory == NULL || directory_userid != llm_usage_caller_id())
		load_directory();
	memset(key, 0, sizeof(key));
	strlcpy(key, tenant, sizeof(key));
	return hash_search(directory, key, HASH_FIND, NULL);
}
