/*-------------------------------------------------------------------------
 *
 * session_cache.c
 *	  Per-session caches of the extension's configuration, their
 *	  invalidation, and SPI that the caller cannot redirect.
 *
 * The tenant directory: for the calling role (llm_usage_caller_id(), the
 * current user when the API was entered), the tenants it may act on, each
 * with its time zone, plan and overrides, and the quotas in force merged
 * from them and the plan's.  It is filled with one _quota_configs() query
 * for up to DIRECTORY_BULK_MAX tenants on first use, and a tenant missing
 * from it is looked up alone (a tenant granted since, or beyond the bulk
 * load); a tenant the role may not use, or that does not exist, is not
 * kept: the SQL paths raise the right error for those.  The plans' quotas
 * are cached apart (_plan_quotas()), so a plan change costs one query,
 * not one per tenant.  quota.c builds its limits from the directory,
 * track.c asks it whether the caller may track for a tenant.
 *
 * Invalidation, with the library preloaded: shared generation counters,
 * one per slot of a hash of (database, tenant id), one for all plans, one
 * for prices and one for everything.  The statement and row triggers on
 * the configuration tables (quota.c) note what changed; when the
 * transaction commits the generations are bumped (after the change became
 * visible), and a backend compares, on each use of a tenant, the tenant's
 * generation with the one it read it at: only what changed is read again,
 * with a fresh snapshot taken after the generation was read.  So a change
 * to one tenant, override or grant makes each backend read that tenant
 * alone, a plan change the plans alone, a price change the prices alone.
 * The backend that makes a change drops its own caches at once (it may
 * see its uncommitted change) and again at commit or abort.  A prepared
 * transaction cannot bump at COMMIT PREPARED: it sends a relcache
 * invalidation of llm_usage.tenants instead, which (like DDL on that table,
 * a role membership change, or without the library preloaded any change)
 * drops every cache at once.  A hot standby replays changes without the
 * triggers: there the caches hold for one transaction.
 *
 * Any reset is deferred to the start of the next lookup: invalidations
 * read in the middle of one (by SPI) only mark the caches stale, so that
 * nothing a caller holds is freed under it.
 *
 * SPI: every statement the C code runs goes through session_cache_keep_plan
 * and runs with search_path pinned to pg_catalog, pg_temp
 * (session_cache_pin_search_path), as fmgr_security_definer() pins it for a
 * function with SET search_path; every name in it is schema-qualified.
 *
 * Backend-local state, but for the generations (shared memory, atomics,
 * no lock).  The caches live under CacheMemoryContext and survive
 * transactions; they are filled inside a transaction.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "llm_usage.h"
#include "session_cache.h"

#define MAX_RESETS			8
#define DIRECTORY_BULK_MAX	20000	/* tenants read at once on first use */
#define PLAN_MAX			64		/* plans.plan is at most 63 characters */
#define MIN_GEN_SLOTS		1024
#define MAX_GEN_SLOTS		(1 << 18)

/* shared generations */
typedef struct ConfigGens
{
	pg_atomic_uint64 all;		/* everything */
	pg_atomic_uint64 plans;
	pg_atomic_uint64 prices;
	uint32		nslots;			/* a power of two */
	pg_atomic_uint64 tenant[FLEXIBLE_ARRAY_MEMBER];
} ConfigGens;

typedef struct PlanEntry
{
	char		plan[PLAN_MAX];	/* hash key */
	int			nquotas;
	SessionQuota *quotas;		/* in plans_ctx */
	uint64		content;		/* hash of its quotas as read */
	uint64		version;		/* kept across reads while content is the same */
} PlanEntry;

static ConfigGens *gens = NULL;

static SessionCacheReset resets[MAX_RESETS];
static int	nresets = 0;
static bool callbacks_registered = false;
static Oid	tenants_relid = InvalidOid;
static bool stale = false;		/* drop everything at the next lookup */

/* the tenant directory and the plans */
static HTAB *directory = NULL;
static MemoryContext directory_ctx = NULL;
static Oid	directory_userid = InvalidOid;	/* the role it was loaded for */
static uint64 all_gen = 0;		/* gens->all when the caches were last dropped */
static HTAB *plans = NULL;
static MemoryContext plans_ctx = NULL;
static uint64 plans_gen = 0;	/* gens->plans when the plans were read */
static uint64 plans_epoch = 0;	/* bumped whenever the plans are read */
static uint64 next_plan_version = 0;
static uint64 next_version = 0;
static uint64 local_price_changes = 0;
static LocalTransactionId standby_lxid = InvalidLocalTransactionId;
static SPIPlanPtr directory_plan = NULL;

/* what this backend read, for _session_cache_stats() */
static int64 stat_directory_loads = 0;
static int64 stat_tenant_reads = 0;
static int64 stat_plan_loads = 0;
static int64 stat_resets = 0;
static int64 stat_merges = 0;
static SPIPlanPtr tenant_plan = NULL;
static SPIPlanPtr plans_plan = NULL;
static SPIPlanPtr event_types_plan = NULL;

/* the event types that feed a counter, read with the plans */
#define EVENT_TYPE_KEY	257		/* 64 characters of up to 4 bytes */
typedef struct EventTypeEntry
{
	char		event_type[EVENT_TYPE_KEY];	/* hash key */
	int			counter;		/* SESSION_COUNTS_* */
} EventTypeEntry;

static HTAB *event_map = NULL;	/* in plans_ctx */

/* changes made by this transaction, to announce at commit */
static uint64 *pending_slots = NULL;	/* bitmap of gens->nslots bits */
static int	npending = 0;
static bool pending_plans = false;
static bool pending_prices = false;
static bool pending_all = false;
static bool xact_callback_registered = false;

/*
 * reset_all
 *		Drop the directory, the plans and every registered cache.  Called
 *		at the start of a lookup only (see the file header).
 */
static void
reset_all(void)
{
	directory = NULL;
	plans = NULL;
	event_map = NULL;
	directory_userid = InvalidOid;
	tenants_relid = InvalidOid;
	if (directory_ctx != NULL)
		MemoryContextReset(directory_ctx);
	if (plans_ctx != NULL)
		MemoryContextReset(plans_ctx);
	for (int i = 0; i < nresets; i++)
		resets[i] ();
	stale = false;
	stat_resets++;
}

static void
relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == tenants_relid)
		stale = true;
}

static void
syscache_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	stale = true;
}

/* the invalidation callbacks and contexts, once per backend */
static void
register_callbacks(void)
{
	if (callbacks_registered)
		return;
	directory_ctx = AllocSetContextCreate(CacheMemoryContext, "llm_usage tenant directory",
										  ALLOCSET_DEFAULT_SIZES);
	plans_ctx = AllocSetContextCreate(CacheMemoryContext, "llm_usage plans",
									  ALLOCSET_SMALL_SIZES);
	CacheRegisterRelcacheCallback(relcache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, syscache_callback, (Datum) 0);
	CacheRegisterSyscacheCallback(AUTHOID, syscache_callback, (Datum) 0);
	callbacks_registered = true;
}

/*
 * check_current
 *		Read pending invalidations and shared generations; drop everything
 *		if a reset is due.  The start of every lookup.
 */
static void
check_current(void)
{
	AcceptInvalidationMessages();
	/* a standby replays changes without running the triggers: trust one transaction only */
	if (RecoveryInProgress() && MyProc->lxid != standby_lxid)
	{
		standby_lxid = MyProc->lxid;
		stale = true;
	}
	if (gens != NULL)
	{
		uint64		g = pg_atomic_read_u64(&gens->all);

		if (g != all_gen)
		{
			all_gen = g;
			stale = true;
		}
	}
	if (stale)
		reset_all();
}

/*
 * session_cache_register
 *		Have reset called whenever every cache is dropped (registering the
 *		same function again does nothing).  A module calls it before it
 *		fills its cache.  Expects a transaction: it looks up
 *		llm_usage.tenants, whose invalidation is one of the signals.
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
 * session_cache_pin_search_path / session_cache_unpin_search_path
 *		search_path = pg_catalog, pg_temp until unpinned, saved and restored
 *		as for a function with SET search_path; an error restores it with
 *		the (sub)transaction's abort.  Wrap every SPI of the C code in them.
 */
int
session_cache_pin_search_path(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("search_path", "pg_catalog, pg_temp", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

void
session_cache_unpin_search_path(int nest_level)
{
	AtEOXact_GUC(true, nest_level);
}

/*
 * session_cache_keep_plan
 *		Prepare a statement for SPI once and keep it for the session; the
 *		caller is connected to SPI with search_path pinned (the plan is
 *		prepared, and so is always run, under pg_catalog, pg_temp).
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

/* the generation slot of a tenant of this database */
static int
gen_slot(const char *tenant)
{
	uint32		h = hash_bytes((const unsigned char *) tenant, strlen(tenant));

	return (int) (hash_combine(h, MyDatabaseId) & (gens->nslots - 1));
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

/*
 * pack_quotas
 *		quotas[0..n-1] and the strings and numerics they point to, copied
 *		into one chunk of cxt (freed with one pfree).  extra bytes are
 *		reserved after them; *extra_at points there.
 */
static SessionQuota *
pack_quotas(MemoryContext cxt, int n, const SessionQuota *quotas, Size extra, char **extra_at)
{
	Size		size = MAXALIGN(sizeof(SessionQuota) * Max(n, 1));
	char	   *chunk;
	char	   *p;
	SessionQuota *out;

	for (int i = 0; i < n; i++)
	{
		size += MAXALIGN(strlen(quotas[i].quota_type) + 1) + MAXALIGN(strlen(quotas[i].period) + 1);
		if (!quotas[i].unlimited)
			size += MAXALIGN(VARSIZE_ANY(DatumGetPointer(quotas[i].limit)));
	}
	size += MAXALIGN(extra);
	chunk = MemoryContextAlloc(cxt, size);
	out = (SessionQuota *) chunk;
	p = chunk + MAXALIGN(sizeof(SessionQuota) * Max(n, 1));
	for (int i = 0; i < n; i++)
	{
		Size		len;

		len = strlen(quotas[i].quota_type) + 1;
		memcpy(p, quotas[i].quota_type, len);
		out[i].quota_type = p;
		p += MAXALIGN(len);
		len = strlen(quotas[i].period) + 1;
		memcpy(p, quotas[i].period, len);
		out[i].period = p;
		p += MAXALIGN(len);
		out[i].unlimited = quotas[i].unlimited;
		out[i].limit = (Datum) 0;
		if (!quotas[i].unlimited)
		{
			len = VARSIZE_ANY(DatumGetPointer(quotas[i].limit));
			memcpy(p, DatumGetPointer(quotas[i].limit), len);
			out[i].limit = PointerGetDatum(p);
			p += MAXALIGN(len);
		}
	}
	if (extra_at != NULL)
		*extra_at = p;
	return out;
}

/* quota arrays of a query row (columns first..first+2) as SessionQuotas, palloc'd */
static SessionQuota *
row_quotas(HeapTuple tup, TupleDesc desc, int first, int *n)
{
	bool		isnull;
	char	  **types;
	char	  **periods;
	Datum	   *limits;
	bool	   *nulls;
	int			ntypes,
				nperiods,
				nlimits;
	SessionQuota *q;

	types = text_array(SPI_getbinval(tup, desc, first, &isnull), &ntypes);
	periods = text_array(SPI_getbinval(tup, desc, first + 1, &isnull), &nperiods);
	deconstruct_array(DatumGetArrayTypeP(SPI_getbinval(tup, desc, first + 2, &isnull)), NUMERICOID, -1, false,
					  TYPALIGN_INT, &limits, &nulls, &nlimits);
	*n = Min(ntypes, Min(nperiods, nlimits));
	q = palloc(sizeof(SessionQuota) * Max(*n, 1));
	for (int i = 0; i < *n; i++)
	{
		q[i].quota_type = types[i];
		q[i].period = periods[i];
		q[i].unlimited = nulls[i];
		q[i].limit = nulls[i] ? (Datum) 0 : limits[i];
	}
	return q;
}

/* forget a directory entry's own memory (not the hash entry) */
static void
free_tenant(SessionTenant *t)
{
	if (t->data != NULL)
		pfree(t->data);
	if (t->merged != NULL)
		pfree(t->merged);
	t->data = NULL;
	t->merged = NULL;
}

/*
 * directory_add
 *		One row of _quota_configs() (tenant_id, timezone, plan, override
 *		types, periods, limits, prepaid) into the directory, replacing an entry of
 *		the same tenant; gen is the tenant's generation read before the
 *		query's snapshot was taken.  What is kept goes into directory_ctx,
 *		temporaries into the current (SPI) context.
 */
static SessionTenant *
directory_add(HeapTuple tup, TupleDesc desc, uint64 gen)
{
	char		key[SESSION_TENANT_MAX + 1];
	SessionTenant *t;
	bool		isnull;
	bool		found;
	char	   *tenant = TextDatumGetCString(SPI_getbinval(tup, desc, 1, &isnull));
	char	   *tz = TextDatumGetCString(SPI_getbinval(tup, desc, 2, &isnull));
	char	   *plan = TextDatumGetCString(SPI_getbinval(tup, desc, 3, &isnull));
	SessionQuota *ov;
	int			nov;
	char	   *strings;

	SessionQuota *packed;

	if (strlen(tenant) > SESSION_TENANT_MAX)
		return NULL;			/* counted in the table, through SQL */
	ov = row_quotas(tup, desc, 4, &nov);
	memset(key, 0, sizeof(key));
	strlcpy(key, tenant, sizeof(key));
	/* everything that may fail first: the entry is entered, then filled without allocating */
	packed = pack_quotas(directory_ctx, nov, ov, strlen(tz) + 1 + strlen(plan) + 1, &strings);
	t = hash_search(directory, key, HASH_ENTER, &found);
	if (found)
		free_tenant(t);
	else
	{
		t->data = NULL;
		t->merged = NULL;
	}
	t->overrides = packed;
	t->data = (char *) t->overrides;
	t->noverrides = nov;
	strcpy(strings, tz);
	t->timezone = strings;
	strcpy(strings + strlen(tz) + 1, plan);
	t->plan = strings + strlen(tz) + 1;
	t->nquotas = 0;
	t->quotas = NULL;
	t->plans_epoch = 0;			/* merged on first use */
	t->plan_version = 0;
	t->prepaid = DatumGetBool(SPI_getbinval(tup, desc, 7, &isnull)) && !isnull;
	t->gen_slot = (gens != NULL) ? gen_slot(key) : 0;
	t->gen = gen;
	t->version = ++next_version;
	return t;
}

/* run a kept plan with a snapshot taken now (after the generations were read) */
static void
run_latest(SPIPlanPtr plan, Datum *args, const char *what)
{
	if (SPI_execute_snapshot(plan, args, NULL, GetLatestSnapshot(), InvalidSnapshot, true, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "reading %s failed", what);
}

/*
 * load_directory
 *		Fill the directory for the calling role with one _quota_configs()
 *		query (up to DIRECTORY_BULK_MAX tenants), after dropping it.
 */
static void
load_directory(Oid caller)
{
	HASHCTL		info;
	uint64	   *g = NULL;
	int			level;
	Datum		arg = Int32GetDatum(DIRECTORY_BULK_MAX);

	reset_all();
	(void) session_cache_tenants_relid();
	/* every tenant's generation, read before the snapshot is taken */
	if (gens != NULL)
	{
		g = palloc(sizeof(uint64) * gens->nslots);
		for (uint32 i = 0; i < gens->nslots; i++)
			g[i] = pg_atomic_read_u64(&gens->tenant[i]);
	}
	level = session_cache_pin_search_path();
	SPI_connect();
	if (directory_plan == NULL)
		directory_plan = session_cache_keep_plan("SELECT tenant_id, timezone, plan, quota_types, periods, limits, prepaid "
												 "FROM llm_usage._quota_configs(NULL::pg_catalog.text, $1)",
												 1, (Oid[]) {INT4OID});
	run_latest(directory_plan, &arg, "llm_usage._quota_configs()");
	stat_directory_loads++;
	memset(&info, 0, sizeof(info));
	info.keysize = SESSION_TENANT_MAX + 1;
	info.entrysize = sizeof(SessionTenant);
	info.hcxt = directory_ctx;
	directory = hash_create("llm_usage tenant directory", Max(SPI_processed, 64), &info,
							HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		uint64		gen = 0;

		if (g != NULL)
		{
			bool		isnull;
			char	   *tenant = TextDatumGetCString(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));

			if (strlen(tenant) <= SESSION_TENANT_MAX)
				gen = g[gen_slot(tenant)];
		}
		(void) directory_add(tup, SPI_tuptable->tupdesc, gen);
	}
	directory_userid = caller;
	SPI_finish();
	session_cache_unpin_search_path(level);
	if (g != NULL)
		pfree(g);
}

/*
 * refresh_tenant
 *		Read one tenant again for the directory (it changed, or it is not in
 *		it); NULL when the calling role may not use it or it does not exist.
 */
static SessionTenant *
refresh_tenant(const char *tenant)
{
	char		key[SESSION_TENANT_MAX + 1];
	SessionTenant *t;
	uint64		gen = 0;
	int			level;
	Datum		args[1];

	memset(key, 0, sizeof(key));
	strlcpy(key, tenant, sizeof(key));
	if (gens != NULL)
		gen = pg_atomic_read_u64(&gens->tenant[gen_slot(key)]);
	level = session_cache_pin_search_path();
	SPI_connect();
	if (tenant_plan == NULL)
		tenant_plan = session_cache_keep_plan("SELECT tenant_id, timezone, plan, quota_types, periods, limits, prepaid "
											  "FROM llm_usage._quota_configs($1, 1)", 1, (Oid[]) {TEXTOID});
	args[0] = CStringGetTextDatum(key);
	run_latest(tenant_plan, args, "llm_usage._quota_configs()");
	stat_tenant_reads++;
	t = hash_search(directory, key, HASH_FIND, NULL);
	if (t != NULL)
	{
		free_tenant(t);
		(void) hash_search(directory, key, HASH_REMOVE, NULL);
		t = NULL;
	}
	if (SPI_processed == 1)
		t = directory_add(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, gen);
	SPI_finish();
	session_cache_unpin_search_path(level);
	return t;
}

/*
 * load_plans
 *		Read every plan's quotas (_plan_quotas()).  A plan whose quotas are
 *		what they were keeps its version, so that the tenants on it need
 *		not be merged again (a change to one plan re-merges its tenants
 *		only).
 */
static void
load_plans(void)
{
	HASHCTL		info;
	HTAB	   *new_plans;
	HTAB	   *new_map;
	uint64		g = (gens != NULL) ? pg_atomic_read_u64(&gens->plans) : 0;
	int			level;
	int			nold = 0;
	struct
	{
		char		plan[PLAN_MAX];
		uint64		content;
		uint64		version;
	}		   *old = NULL;

	if (plans != NULL)
	{
		HASH_SEQ_STATUS seq;
		PlanEntry  *p;

		old = palloc(sizeof(*old) * Max(hash_get_num_entries(plans), 1));
		hash_seq_init(&seq, plans);
		while ((p = hash_seq_search(&seq)) != NULL)
		{
			memcpy(old[nold].plan, p->plan, PLAN_MAX);
			old[nold].content = p->content;
			old[nold].version = p->version;
			nold++;
		}
	}
	plans = NULL;
	event_map = NULL;
	MemoryContextReset(plans_ctx);
	level = session_cache_pin_search_path();
	SPI_connect();
	if (plans_plan == NULL)
		plans_plan = session_cache_keep_plan("SELECT plan, quota_types, periods, limits FROM llm_usage._plan_quotas()",
											 0, NULL);
	run_latest(plans_plan, NULL, "llm_usage._plan_quotas()");
	stat_plan_loads++;
	memset(&info, 0, sizeof(info));
	info.keysize = PLAN_MAX;
	info.entrysize = sizeof(PlanEntry);
	info.hcxt = plans_ctx;
	/* filled first, published (plans, event_map set) only once complete */
	new_plans = hash_create("llm_usage plans", Max(SPI_processed, 16), &info,
							HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		char	   *plan = TextDatumGetCString(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		char		key[PLAN_MAX];
		PlanEntry  *p;
		SessionQuota *q;
		int			n;
		uint64		content = 0;
		SessionQuota *packed;

		if (strlen(plan) >= PLAN_MAX)
			continue;
		memset(key, 0, sizeof(key));
		strlcpy(key, plan, sizeof(key));

		q = row_quotas(tup, SPI_tuptable->tupdesc, 2, &n);
		packed = pack_quotas(plans_ctx, n, q, 0, NULL);
		for (int c = 2; c <= 4; c++)
		{
			bool		isnull;
			struct varlena *v = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(SPI_getbinval(tup, SPI_tuptable->tupdesc, c, &isnull)));

			content = hash_combine64(content,
									 hash_bytes_extended((const unsigned char *) VARDATA_ANY(v), VARSIZE_ANY_EXHDR(v), c));
		}
		p = hash_search(new_plans, key, HASH_ENTER, NULL);
		p->nquotas = n;
		p->quotas = packed;
		p->content = content;
		p->version = 0;
		for (int o = 0; o < nold; o++)
			if (strcmp(old[o].plan, key) == 0 && old[o].content == p->content)
				p->version = old[o].version;
		if (p->version == 0)
			p->version = ++next_plan_version;
	}
	/* the event types that feed a counter (read with the plans, invalidated with them) */
	if (event_types_plan == NULL)
		event_types_plan = session_cache_keep_plan("SELECT event_type, counts_as FROM llm_usage.event_type_counters "
												   "WHERE counts_as IS NOT NULL", 0, NULL);
	run_latest(event_types_plan, NULL, "llm_usage.event_type_counters");
	memset(&info, 0, sizeof(info));
	info.keysize = EVENT_TYPE_KEY;
	info.entrysize = sizeof(EventTypeEntry);
	info.hcxt = plans_ctx;
	new_map = hash_create("llm_usage event types", Max(SPI_processed, 16), &info,
						  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		bool		isnull;
		char	   *name = TextDatumGetCString(SPI_getbinval(tup, SPI_tuptable->tupdesc, 1, &isnull));
		char	   *counts_as = TextDatumGetCString(SPI_getbinval(tup, SPI_tuptable->tupdesc, 2, &isnull));
		char		key[EVENT_TYPE_KEY];
		EventTypeEntry *e;

		if (strlen(name) >= EVENT_TYPE_KEY)
			continue;
		memset(key, 0, sizeof(key));
		strlcpy(key, name, sizeof(key));
		e = hash_search(new_map, key, HASH_ENTER, NULL);
		e->counter = strcmp(counts_as, "chat_messages") == 0 ? SESSION_COUNTS_CHAT_MESSAGES :
			strcmp(counts_as, "embeddings") == 0 ? SESSION_COUNTS_EMBEDDINGS : SESSION_COUNTS_NONE;
	}
	SPI_finish();
	session_cache_unpin_search_path(level);
	plans = new_plans;
	event_map = new_map;
	plans_gen = g;
	plans_epoch++;
}

/*
 * session_cache_event_counter
 *		The counter an event type feeds by the mapping in force
 *		(llm_usage.event_type_counters): SESSION_COUNTS_NONE,
 *		_CHAT_MESSAGES or _EMBEDDINGS.  Read with the plans and invalidated
 *		with them (the trigger on llm_usage.event_types announces a plans
 *		change).  Call it after session_cache_tenant(), in a transaction.
 */
int
session_cache_event_counter(const char *event_type)
{
	EventTypeEntry *e;

	if (strlen(event_type) >= EVENT_TYPE_KEY)
		return SESSION_COUNTS_NONE;
	if (plans == NULL || event_map == NULL || (gens != NULL && pg_atomic_read_u64(&gens->plans) != plans_gen))
		load_plans();
	e = hash_search(event_map, event_type, HASH_FIND, NULL);
	return e ? e->counter : SESSION_COUNTS_NONE;
}

/*
 * merge_quotas
 *		The quotas in force for a tenant: its plan's, each replaced by the
 *		tenant's override of the same type and period, and the overrides of
 *		other types and periods (as _effective_quotas() computes them).
 */
static void
merge_quotas(SessionTenant *t)
{
	PlanEntry  *p = hash_search(plans, t->plan, HASH_FIND, NULL);
	int			nplan = p ? p->nquotas : 0;
	SessionQuota *all;
	int			n = 0;

	SessionQuota *merged;

	if (t->merged != NULL && t->plan_version == (p ? p->version : 0))
	{
		t->plans_epoch = plans_epoch;
		return;					/* its plan did not change */
	}
	stat_merges++;
	all = palloc(sizeof(SessionQuota) * Max(nplan + t->noverrides, 1));

	for (int i = 0; i < nplan; i++)
	{
		const SessionQuota *q = &p->quotas[i];
		bool		overridden = false;

		for (int j = 0; j < t->noverrides && !overridden; j++)
			overridden = strcmp(t->overrides[j].quota_type, q->quota_type) == 0 &&
				strcmp(t->overrides[j].period, q->period) == 0;
		if (!overridden)
			all[n++] = *q;
	}
	for (int j = 0; j < t->noverrides; j++)
		all[n++] = t->overrides[j];
	/* marked merged (plans_epoch, plan_version) only once merged: an error before leaves it to merge again */
	merged = pack_quotas(directory_ctx, n, all, 0, NULL);
	if (t->merged != NULL)
		pfree(t->merged);
	t->merged = merged;
	t->quotas = t->merged;
	t->nquotas = n;
	t->plan_version = p ? p->version : 0;
	t->plans_epoch = plans_epoch;
	t->version = ++next_version;
	pfree(all);
}

/*
 * session_cache_tenant
 *		A tenant the calling role may act on, current: the directory is
 *		(re)read for the role, a tenant changed since it was read is read
 *		again, one not in it is looked up; NULL when the role may not use
 *		it, it does not exist, or its id is empty or longer than
 *		SESSION_TENANT_MAX bytes.  The result is valid until the next call
 *		of a session_cache function: copy what is needed, or compare its
 *		version.  Expects a transaction; the caller may be connected to SPI
 *		or not.
 */
const SessionTenant *
session_cache_tenant(const char *tenant)
{
	SessionTenant *t;
	Oid			caller;

	if (tenant[0] == '\0' || strlen(tenant) > SESSION_TENANT_MAX)
		return NULL;
	register_callbacks();
	check_current();
	(void) session_cache_tenants_relid();
	caller = llm_usage_caller_id();
	if (directory == NULL || directory_userid != caller)
		load_directory(caller);
	if (plans == NULL || (gens != NULL && pg_atomic_read_u64(&gens->plans) != plans_gen))
		load_plans();
	/* string keys: no padding needed to look up */
	t = hash_search(directory, tenant, HASH_FIND, NULL);
	if (t == NULL || (gens != NULL && pg_atomic_read_u64(&gens->tenant[t->gen_slot]) != t->gen))
		t = refresh_tenant(tenant);
	if (t != NULL && t->plans_epoch != plans_epoch)
		merge_quotas(t);
	return t;
}

/*
 * session_cache_prices_gen
 *		A number that changes whenever prices may have changed (committed by
 *		anyone, or changed by this backend): track.c reads its price cache
 *		again when it differs from the one it read it at.
 */
uint64
session_cache_prices_gen(void)
{
	AcceptInvalidationMessages();
	return local_price_changes + (gens != NULL ? pg_atomic_read_u64(&gens->prices) : 0);
}

/* announce this transaction's changes (see the file header) */
static void
xact_callback(XactEvent event, void *arg)
{
	bool		any = npending > 0 || pending_plans || pending_prices || pending_all;

	if (!any)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_PREPARE:
			/* COMMIT PREPARED runs no callback here: drop every cache then */
			if (OidIsValid(get_namespace_oid("llm_usage", true)))
			{
				Oid			relid = get_relname_relid("tenants", get_namespace_oid("llm_usage", true));

				if (OidIsValid(relid))
					CacheInvalidateRelcacheByRelid(relid);
			}
			return;
		case XACT_EVENT_COMMIT:
			if (gens != NULL)
			{
				for (uint32 w = 0; npending > 0 && w < gens->nslots / 64; w++)
				{
					uint64		bits = pending_slots[w];

					for (int b = 0; bits != 0; b++, bits >>= 1)
						if (bits & 1)
							pg_atomic_fetch_add_u64(&gens->tenant[w * 64 + b], 1);
				}
				if (pending_plans)
					pg_atomic_fetch_add_u64(&gens->plans, 1);
				if (pending_prices)
					pg_atomic_fetch_add_u64(&gens->prices, 1);
				if (pending_all)
					pg_atomic_fetch_add_u64(&gens->all, 1);
			}
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PREPARE:
			break;
		default:
			return;
	}
	if (pending_slots != NULL && npending > 0)
		memset(pending_slots, 0, sizeof(uint64) * (gens->nslots / 64));
	npending = 0;
	pending_plans = pending_prices = pending_all = false;
	/* this backend may have cached its own uncommitted change */
	stale = true;
	local_price_changes++;
}

/* a change was made: note it for commit, and drop this backend's caches */
static void
note_change(void)
{
	if (!xact_callback_registered)
	{
		RegisterXactCallback(xact_callback, NULL);
		xact_callback_registered = true;
	}
	stale = true;
	local_price_changes++;
	if (gens == NULL)
	{
		/* no shared generations: every backend drops everything at commit */
		Oid			relid = get_relname_relid("tenants", get_namespace_oid("llm_usage", false));

		if (OidIsValid(relid))
			CacheInvalidateRelcacheByRelid(relid);
	}
}

/*
 * session_cache_tenant_changed / _plans_changed / _prices_changed /
 * _all_changed
 *		The configuration of a tenant (its row, overrides, grants), of the
 *		plans, the prices, or of anything changed in this transaction: every
 *		backend reads it again once the transaction commits.  Called by the
 *		triggers of quota.c.
 */
void
session_cache_tenant_changed(const char *tenant)
{
	note_change();
	if (gens == NULL)
		return;
	if (strlen(tenant) > SESSION_TENANT_MAX)
		return;					/* never cached */
	if (pending_slots == NULL)
		pending_slots = MemoryContextAllocZero(TopMemoryContext, sizeof(uint64) * (gens->nslots / 64));
	{
		int			s = gen_slot(tenant);

		pending_slots[s / 64] |= UINT64CONST(1) << (s % 64);
		npending++;
	}
}

void
session_cache_plans_changed(void)
{
	note_change();
	pending_plans = true;
}

void
session_cache_prices_changed(void)
{
	note_change();
	pending_prices = true;
}

void
session_cache_all_changed(void)
{
	note_change();
	pending_all = true;
}

/* the number of generation slots: quota_max_tenants rounded up to a power of two, bounded */
static uint32
gen_slots(void)
{
	uint32		n = MIN_GEN_SLOTS;

	while (n < (uint32) llm_usage_quota_max_tenants && n < MAX_GEN_SLOTS)
		n <<= 1;
	return n;
}

Size
session_cache_shmem_size(void)
{
	return add_size(offsetof(ConfigGens, tenant), mul_size(gen_slots(), sizeof(pg_atomic_uint64)));
}

void
session_cache_shmem_request(void)
{
	RequestAddinShmemSpace(session_cache_shmem_size());
}

/* create or attach the generations (shmem_startup_hook, AddinShmemInitLock not held) */
void
session_cache_shmem_startup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	gens = ShmemInitStruct("llm_usage configuration generations", session_cache_shmem_size(), &found);
	if (!found)
	{
		pg_atomic_init_u64(&gens->all, 0);
		pg_atomic_init_u64(&gens->plans, 0);
		pg_atomic_init_u64(&gens->prices, 0);
		gens->nslots = gen_slots();
		for (uint32 i = 0; i < gens->nslots; i++)
			pg_atomic_init_u64(&gens->tenant[i], 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

PG_FUNCTION_INFO_V1(llm_usage_session_cache_stats);

/*
 * llm_usage._session_cache_stats() RETURNS TABLE (directory_loads bigint,
 *		tenant_reads bigint, plan_loads bigint, resets bigint, tenants bigint,
 *		merges bigint)
 *		What this backend read into its caches since it started: full
 *		directory loads, single tenants read, plan loads, full resets, the
 *		tenants cached now, and the tenants whose quotas were merged from
 *		their plan and overrides.  For tests and diagnosis.
 */
Datum
llm_usage_session_cache_stats(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[6];
	bool		nulls[6] = {false, false, false, false, false, false};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	values[0] = Int64GetDatum(stat_directory_loads);
	values[1] = Int64GetDatum(stat_tenant_reads);
	values[2] = Int64GetDatum(stat_plan_loads);
	values[3] = Int64GetDatum(stat_resets);
	values[4] = Int64GetDatum(directory != NULL ? hash_get_num_entries(directory) : 0);
	values[5] = Int64GetDatum(stat_merges);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
