/*-------------------------------------------------------------------------
 *
 * quota.c
 *	  enforce_quota() at memory speed: the backend side of the shared quota
 *	  counters of quota_shmem.c.
 *
 * Each backend caches, for every tenant it has counted for, the limits in
 * force (in millionths) and, once computed, the current period of each.
 * They are built from the tenant directory of session_cache.c (the
 * tenants the role acts as may use, their time zones and quotas); a tenant
 * missing from it is one the role may not use or that does not exist: the
 * SQL path raises the right error.  This cache is dropped with the
 * directory whenever the configuration or role memberships change.
 *
 * enforce_quota() then checks and consumes under the tenant's spinlock,
 * without a table, a lock or SPI.  Everything unusual goes through the
 * SQL implementation instead (_enforce_quota_sql): bad arguments (for its
 * error messages), a denial (for its audit event), a server without the
 * library preloaded, or a tenant beyond llm_usage.quota_max_tenants.
 *
 * Counting is in millionths of a unit: an amount is rounded up and a limit
 * down to that precision, so admission is never looser than exact.  A
 * consumption is not transactional: it counts from the moment it is
 * admitted, even if the calling transaction later rolls back.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include "llm_usage.h"
#include "period.h"
#include "quota.h"
#include "session_cache.h"

StaticAssertDecl(QUOTA_TENANT_MAX == SESSION_TENANT_MAX,
				 "the tenant directory must hold every tenant counted in shared memory");

static const char *const quota_type_names[QUOTA_NTYPES] = {
	"api_calls", "chat_messages", "cost_usd", "embeddings", "tokens"
};
static const char *const period_names[QUOTA_NPERIODS] = {
	"minute", "hour", "day", "month"
};

/* one quota in force for a tenant */
typedef struct CachedLimit
{
	int			slot;
	bool		unlimited;
	int64		limit_u;		/* millionths, rounded down */
	Datum		limit;			/* numeric as configured; 0 when unlimited */
	TimestampTz start;			/* current period, as last computed */
	TimestampTz end;
} CachedLimit;

typedef struct ConfigKey
{
	char		tenant[QUOTA_TENANT_MAX + 1];
} ConfigKey;

typedef struct TenantConfig
{
	ConfigKey	key;
	char	   *timezone;
	int			nlimits;
	CachedLimit limits[QUOTA_SLOTS];	/* ordered by slot */
	QuotaEntry *shared;			/* NULL: not looked up yet, or no room */
	bool		no_room;		/* llm_usage.quota_max_tenants reached */
} TenantConfig;

/* backend-local cache; everything in it lives in cache_ctx */
static HTAB *config_cache = NULL;
static MemoryContext cache_ctx = NULL;
static SPIPlanPtr counters_plan = NULL;
static SPIPlanPtr fallback_plan = NULL;
static TupleDesc enforce_tupdesc = NULL;

PG_FUNCTION_INFO_V1(llm_usage_enforce_quota);
PG_FUNCTION_INFO_V1(llm_usage_shm_consume);
PG_FUNCTION_INFO_V1(llm_usage_shm_usable);
PG_FUNCTION_INFO_V1(llm_usage_shm_counters);
PG_FUNCTION_INFO_V1(llm_usage_shm_set_counter);
PG_FUNCTION_INFO_V1(llm_usage_quota_config_changed);

/* drop the cache (session_cache.c calls it when the configuration changes) */
static void
reset_cache(void)
{
	config_cache = NULL;
	if (cache_ctx != NULL)
		MemoryContextReset(cache_ctx);
}

/* the shared counters can be used in this process */
static bool
shm_active(void)
{
	return llm_usage_preloaded && quota_shmem_ready();
}

/* the cache's context made and its reset registered (expects a transaction) */
static void
ensure_cache(void)
{
	if (cache_ctx == NULL)
		cache_ctx = AllocSetContextCreate(CacheMemoryContext, "llm_usage quota cache",
										  ALLOCSET_SMALL_SIZES);
	session_cache_register(reset_cache);
}

/* position of name in names[0..n-1], or -1 */
static int
name_index(const char *name, const char *const *names, int n)
{
	for (int i = 0; i < n; i++)
		if (strcmp(name, names[i]) == 0)
			return i;
	return -1;
}

#define quota_type_index(name)	name_index((name), quota_type_names, QUOTA_NTYPES)
#define period_index(name)		name_index((name), period_names, QUOTA_NPERIODS)

/* a numeric constant, built once in TopMemoryContext */
static Datum
numeric_constant(Datum *slot, int64 value)
{
	if (*slot == (Datum) 0)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		*slot = NumericGetDatum(int64_to_numeric(value));
		MemoryContextSwitchTo(old);
	}
	return *slot;
}

static Datum micro_unit = (Datum) 0;		/* 10^6: counters are in millionths */
static Datum max_amount_u = (Datum) 0;		/* 10^18: 10^12 units, _check_amount's bound */
static Datum max_limit_u = (Datum) 0;		/* 9 * 10^18: limits beyond never bind */
static Datum zero = (Datum) 0;

#define micro_numeric()	numeric_constant(&micro_unit, QUOTA_UNIT)

/*
 * amount_to_micro
 *		An amount in millionths, rounded up; false unless it is a number in
 *		[0, 10^12] (the range _check_amount accepts).  The sign is checked
 *		before scaling: a negative amount above -0.000001 would round up to
 *		0, and one below -9.2 * 10^12 would not fit an int64.
 */
static bool
amount_to_micro(Numeric n, int64 *out)
{
	Datum		scaled;
	int64		v;

	if (numeric_is_nan(n) || numeric_is_inf(n) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n), numeric_constant(&zero, 0))) < 0)
		return false;
	scaled = DirectFunctionCall1(numeric_ceil,
								 DirectFunctionCall2(numeric_mul, NumericGetDatum(n), micro_numeric()));
	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, scaled,
										  numeric_constant(&max_amount_u, INT64CONST(1000000000000000000)))) > 0)
		return false;
	v = DatumGetInt64(DirectFunctionCall1(numeric_int8, scaled));
	if (v < 0)
		return false;
	*out = v;
	return true;
}

/* a limit in millionths, rounded down; beyond 9 * 10^12 units it never binds */
static int64
limit_to_micro(Datum limit)
{
	Datum		scaled = DirectFunctionCall1(numeric_floor,
											 DirectFunctionCall2(numeric_mul, limit, micro_numeric()));

	if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, scaled,
										  numeric_constant(&max_limit_u, INT64CONST(9000000000000000000)))) >= 0)
		return PG_INT64_MAX;
	return DatumGetInt64(DirectFunctionCall1(numeric_int8, scaled));
}

static Datum
micro_to_numeric(int64 v)
{
	return DirectFunctionCall1(numeric_trim_scale, NumericGetDatum(int64_div_fast_to_numeric(v, 6)));
}

/*
 * period_bounds
 *		Start and end of the period containing now in zone tz, as
 *		_period_bounds() computes them (period.c).
 */
static void
period_bounds(int period, TimestampTz now, const char *tz, TimestampTz *start, TimestampTz *end)
{
	StaticAssertStmt(QUOTA_NPERIODS == 4 && PERIOD_MONTH == 3, "quota periods are minute, hour, day, month");
	period_bounds_in_zone((PeriodUnit) period, now, tz, start, end);
}

static void
make_key(QuotaKey *key, const char *tenant)
{
	memset(key, 0, sizeof(*key));
	key->dbid = MyDatabaseId;
	key->tenants_relid = session_cache_tenants_relid();
	strlcpy(key->tenant, tenant, sizeof(key->tenant));
}

/*
 * import_table_counters
 *		A shared entry this backend just created: add what the table holds
 *		for the tenant (counted before the shared counters were in use, or
 *		restored by pg_dump).  Consumption by others since the entry was
 *		created is kept: the table's figures are added to it.
 */
static void
import_table_counters(QuotaEntry *e, const char *tenant)
{
	Datum		arg = CStringGetTextDatum(tenant);
	bool		isnull[4];
	Datum		arr[4];
	Datum	   *types,
			   *periods,
			   *starts,
			   *used;
	int			n;

	if (counters_plan == NULL)
		counters_plan = session_cache_keep_plan("SELECT counter_types, counter_periods, counter_starts, counter_used "
												"FROM llm_usage._quota_table_counters($1)", 1, (Oid[]) {TEXTOID});
	if (SPI_execute_plan(counters_plan, &arg, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
		return;
	for (int i = 0; i < 4; i++)
		arr[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1 + i, &isnull[i]);
	if (isnull[0])
		return;
	deconstruct_array(DatumGetArrayTypeP(arr[0]), TEXTOID, -1, false, TYPALIGN_INT, &types, NULL, &n);
	deconstruct_array(DatumGetArrayTypeP(arr[1]), TEXTOID, -1, false, TYPALIGN_INT, &periods, NULL, &n);
	deconstruct_array(DatumGetArrayTypeP(arr[2]), TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE, &starts, NULL, &n);
	deconstruct_array(DatumGetArrayTypeP(arr[3]), NUMERICOID, -1, false, TYPALIGN_INT, &used, NULL, &n);
	for (int i = 0; i < n; i++)
	{
		int			t = quota_type_index(TextDatumGetCString(types[i]));
		int			p = period_index(TextDatumGetCString(periods[i]));
		int64		u;
		QuotaSlot  *s;

		if (t < 0 || p < 0 || !amount_to_micro(DatumGetNumeric(used[i]), &u))
			continue;
		s = &e->slots[t * QUOTA_NPERIODS + p];
		SpinLockAcquire(&e->mutex);
		if (s->period_start == 0 || s->period_start == DatumGetTimestampTz(starts[i]))
		{
			s->period_start = DatumGetTimestampTz(starts[i]);
			s->used = (s->used > PG_INT64_MAX - u) ? PG_INT64_MAX : s->used + u;
		}
		SpinLockRelease(&e->mutex);
	}
	quota_changed();
}

/*
 * build_config
 *		A tenant's entry in the cache, from its directory entry: the quotas
 *		in force in slot order, limits in millionths.  Runs in cache_ctx;
 *		reads no catalog (the directory entry stays valid meanwhile).
 */
static void
build_config(TenantConfig *cfg, const SessionTenant *st)
{
	cfg->timezone = pstrdup(st->timezone);
	cfg->nlimits = 0;
	cfg->shared = NULL;
	cfg->no_room = false;
	for (int i = 0; i < st->nquotas; i++)
	{
		int			t = quota_type_index(st->quota_types[i]);
		int			p = period_index(st->periods[i]);
		CachedLimit *l;

		if (t < 0 || p < 0 || cfg->nlimits >= QUOTA_SLOTS)
			continue;
		l = &cfg->limits[cfg->nlimits++];
		l->slot = t * QUOTA_NPERIODS + p;
		l->unlimited = st->limit_nulls[i];
		l->limit = st->limit_nulls[i] ? (Datum) 0 : datumCopy(st->limits[i], false, -1);
		l->limit_u = st->limit_nulls[i] ? PG_INT64_MAX : limit_to_micro(st->limits[i]);
		l->start = l->end = 0;
	}
	/* in slot order: quota type, then minute < hour < day < month */
	for (int i = 1; i < cfg->nlimits; i++)
		for (int j = i; j > 0 && cfg->limits[j - 1].slot > cfg->limits[j].slot; j--)
		{
			CachedLimit tmp = cfg->limits[j];

			cfg->limits[j] = cfg->limits[j - 1];
			cfg->limits[j - 1] = tmp;
		}
}

/*
 * cached_config
 *		The cached configuration of a tenant for the current role (built
 *		from the tenant directory on first use); NULL when the role may not
 *		use the tenant or it does not exist.  Reads pending invalidations;
 *		expects a transaction.
 */
static TenantConfig *
cached_config(const char *tenant)
{
	const SessionTenant *st;
	ConfigKey	key;
	TenantConfig *cfg;

	if (tenant[0] == '\0' || strlen(tenant) > QUOTA_TENANT_MAX)
		return NULL;			/* not a key of this cache: counted in the table */
	ensure_cache();
	memset(&key, 0, sizeof(key));
	strlcpy(key.tenant, tenant, sizeof(key.tenant));
	/* a hit needs no directory lookup: a change of the directory resets this cache */
	if (session_cache_current() && config_cache != NULL)
	{
		cfg = hash_search(config_cache, &key, HASH_FIND, NULL);
		if (cfg != NULL)
			return cfg;
	}
	/* may reset this cache: nothing of it is kept across */
	st = session_cache_tenant(tenant);
	if (st == NULL)
		return NULL;
	if (config_cache == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(ConfigKey);
		info.entrysize = sizeof(TenantConfig);
		info.hcxt = cache_ctx;
		config_cache = hash_create("llm_usage tenant quota config", 64, &info,
								   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	cfg = hash_search(config_cache, &key, HASH_FIND, NULL);
	if (cfg == NULL)
	{
		TenantConfig built;
		MemoryContext old = MemoryContextSwitchTo(cache_ctx);

		/* built first, so that an error leaves no half-made entry */
		build_config(&built, st);
		MemoryContextSwitchTo(old);
		built.key = key;
		cfg = hash_search(config_cache, &key, HASH_ENTER, NULL);
		*cfg = built;
	}
	return cfg;
}

/*
 * tenant_config
 *		The cached configuration of a tenant for the current role, with its
 *		shared entry looked up (created on first use); NULL when the role
 *		may not use the tenant or it does not exist.
 */
static TenantConfig *
tenant_config(const char *tenant)
{
	TenantConfig *cfg = cached_config(tenant);

	if (cfg == NULL)
		return NULL;
	if (cfg->shared == NULL && !cfg->no_room && shm_active())
	{
		QuotaKey	qkey;
		bool		created;

		make_key(&qkey, tenant);
		cfg->shared = quota_entry(&qkey, &created);
		if (cfg->shared == NULL)
		{
			cfg->no_room = true;
			quota_warn_full();
		}
		else if (created)
		{
			SPI_connect();
			import_table_counters(cfg->shared, tenant);
			SPI_finish();
			/* invalidations read during SPI may have reset the cache */
			return tenant_config(tenant);
		}
	}
	return cfg;
}

/* refresh a limit's current period if now is outside it */
static void
current_period(TenantConfig *cfg, CachedLimit *l, TimestampTz now)
{
	if (now >= l->start && now < l->end)
		return;
	period_bounds(l->slot % QUOTA_NPERIODS, now, cfg->timezone, &l->start, &l->end);
}

/* one quota of one consume call */
typedef struct Check
{
	CachedLimit *limit;
	int64		requested;
	int64		used;			/* after consumption if all fit, else before */
	TimestampTz counted;		/* start of the period the slot counted */
	bool		fits;
} Check;

/*
 * consume
 *		Atomic all-or-nothing check-and-consume of checks[0..n-1] of one
 *		tenant, under its spinlock.  A slot counting an older period counts
 *		as empty; one counting a newer period (another backend's clock moved
 *		on first) is consumed in that period, and the check's limit then
 *		moves to that period, so that what the caller reports (used,
 *		resets_at) is the period the consumption counted in.
 */
static bool
consume(TenantConfig *cfg, Check *checks, int n, TimestampTz now)
{
	QuotaEntry *e = cfg->shared;
	bool		all_fit = true;

	SpinLockAcquire(&e->mutex);
	for (int i = 0; i < n; i++)
	{
		QuotaSlot  *s = &e->slots[checks[i].limit->slot];
		int64		used = (s->period_start < checks[i].limit->start) ? 0 : s->used;

		checks[i].counted = Max(s->period_start, checks[i].limit->start);
		checks[i].used = used;
		checks[i].fits = checks[i].limit->unlimited ||
			(used <= checks[i].limit->limit_u - checks[i].requested);
		all_fit &= checks[i].fits;
	}
	if (all_fit)
	{
		for (int i = 0; i < n; i++)
		{
			QuotaSlot  *s = &e->slots[checks[i].limit->slot];

			checks[i].used = (checks[i].used > PG_INT64_MAX - checks[i].requested) ?
				PG_INT64_MAX : checks[i].used + checks[i].requested;
			s->used = checks[i].used;
			s->period_start = checks[i].counted;
			s->updated_at = now;
		}
	}
	SpinLockRelease(&e->mutex);
	for (int i = 0; i < n; i++)
		if (checks[i].counted > checks[i].limit->start)
		{
			current_period(cfg, checks[i].limit, checks[i].counted);

			/*
			 * The period starts where the slot's does, as _consume_table
			 * reports it: date_trunc() of a period start is not always that
			 * start (a half-hour DST change, as in Australia/Lord_Howe).
			 */
			checks[i].limit->start = checks[i].counted;
		}
	if (all_fit)
		quota_changed();
	return all_fit;
}

/* the checks for one quota type; returns how many */
static int
checks_for_type(TenantConfig *cfg, int type, int64 amount, TimestampTz now, Check *checks)
{
	int			n = 0;

	for (int i = 0; i < cfg->nlimits; i++)
	{
		CachedLimit *l = &cfg->limits[i];

		if (l->slot / QUOTA_NPERIODS != type)
			continue;
		current_period(cfg, l, now);
		checks[n].limit = l;
		checks[n].requested = amount;
		n++;
	}
	return n;
}

static TupleDesc
enforce_result_desc(FunctionCallInfo fcinfo)
{
	if (enforce_tupdesc == NULL)
	{
		TupleDesc	desc;
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
			elog(ERROR, "return type must be a row type");
		old = MemoryContextSwitchTo(TopMemoryContext);
		enforce_tupdesc = BlessTupleDesc(CreateTupleDescCopy(desc));
		MemoryContextSwitchTo(old);
	}
	return enforce_tupdesc;
}

/*
 * enforce_fast
 *		The admitted case of enforce_quota without SQL; NULL when the call
 *		must take the SQL path (see the file header).
 */
static HeapTuple
enforce_fast(FunctionCallInfo fcinfo, TupleDesc desc)
{
	char	   *tenant;
	char	   *type_name;
	int			type;
	int64		amount;
	TenantConfig *cfg;
	Check		checks[QUOTA_NPERIODS];
	int			n;
	int			b;
	TimestampTz now;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	if (!shm_active() || PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		return NULL;
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (tenant[0] == '\0' || strlen(tenant) > QUOTA_TENANT_MAX)
		return NULL;
	type_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	type = quota_type_index(type_name);
	if (type < 0 || !amount_to_micro(PG_GETARG_NUMERIC(2), &amount))
		return NULL;

	cfg = tenant_config(tenant);
	if (cfg == NULL || cfg->shared == NULL)
		return NULL;
	now = GetCurrentTimestamp();
	n = checks_for_type(cfg, type, amount, now, checks);
	if (n == 0)
	{
		/* no quota of this type in force: allowed, nothing counted */
		values[0] = BoolGetDatum(true);
		nulls[1] = nulls[2] = nulls[3] = nulls[4] = true;
		return heap_form_tuple(desc, values, nulls);
	}
	if (!consume(cfg, checks, n, now))
		return NULL;

	/* the binding quota: least left, unlimited last, shorter period first */
	b = -1;
	for (int i = 0; i < n; i++)
	{
		if (checks[i].limit->unlimited)
			continue;
		if (b < 0 || checks[i].limit->limit_u - checks[i].used < checks[b].limit->limit_u - checks[b].used)
			b = i;
	}
	if (b < 0)
		b = 0;
	values[0] = BoolGetDatum(true);
	values[2] = micro_to_numeric(checks[b].used);
	if (checks[b].limit->unlimited)
		nulls[1] = nulls[3] = true;
	else
	{
		Datum		rem;

		values[1] = checks[b].limit->limit;
		rem = DirectFunctionCall2(numeric_sub, values[1], values[2]);
		if (DatumGetInt32(DirectFunctionCall2(numeric_cmp, rem, numeric_constant(&zero, 0))) < 0)
			rem = numeric_constant(&zero, 0);
		values[3] = rem;
	}
	values[4] = TimestampTzGetDatum(checks[b].limit->end);
	return heap_form_tuple(desc, values, nulls);
}

/* enforce_quota through the SQL implementation (errors, denials, no shared memory) */
static HeapTuple
enforce_sql(FunctionCallInfo fcinfo, TupleDesc desc)
{
	Datum		args[3];
	char		argnulls[3];
	Oid			argtypes[3] = {TEXTOID, TEXTOID, NUMERICOID};
	HeapTuple	result;
	MemoryContext caller = CurrentMemoryContext;

	for (int i = 0; i < 3; i++)
	{
		argnulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
		args[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	SPI_connect();
	if (fallback_plan == NULL)
		fallback_plan = session_cache_keep_plan("SELECT allowed, quota_limit, used, remaining, resets_at "
												"FROM llm_usage._enforce_quota_sql($1, $2, $3)", 3, argtypes);
	if (SPI_execute_plan(fallback_plan, args, argnulls, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "llm_usage._enforce_quota_sql returned no row");
	{
		Datum		values[5];
		bool		nulls[5];
		MemoryContext spi = MemoryContextSwitchTo(caller);

		heap_deform_tuple(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, values, nulls);
		for (int i = 0; i < 5; i++)
			if (!nulls[i])
				values[i] = datumCopy(values[i], TupleDescAttr(desc, i)->attbyval,
									  TupleDescAttr(desc, i)->attlen);
		result = heap_form_tuple(desc, values, nulls);
		MemoryContextSwitchTo(spi);
	}
	SPI_finish();
	return result;
}

/*
 * llm_usage.enforce_quota(tenant_id text, quota_type text, amount numeric)
 *		RETURNS TABLE (allowed, quota_limit, used, remaining, resets_at)
 */
Datum
llm_usage_enforce_quota(PG_FUNCTION_ARGS)
{
	FuncCallContext *funcctx;

	if (SRF_IS_FIRSTCALL())
	{
		MemoryContext old;
		TupleDesc	desc;
		HeapTuple	tup;

		funcctx = SRF_FIRSTCALL_INIT();
		old = MemoryContextSwitchTo(funcctx->multi_call_memory_ctx);
		desc = enforce_result_desc(fcinfo);
		tup = enforce_fast(fcinfo, desc);
		if (tup == NULL)
			tup = enforce_sql(fcinfo, desc);
		funcctx->user_fctx = tup;
		MemoryContextSwitchTo(old);
	}
	funcctx = SRF_PERCALL_SETUP();
	if (funcctx->call_cntr == 0)
		SRF_RETURN_NEXT(funcctx, HeapTupleGetDatum((HeapTuple) funcctx->user_fctx));
	SRF_RETURN_DONE(funcctx);
}

/*
 * llm_usage._shm_usable(tenant_id text) RETURNS boolean
 *		Whether the tenant is counted in shared memory (checks access).
 */
Datum
llm_usage_shm_usable(PG_FUNCTION_ARGS)
{
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));

	if (!shm_active() || tenant[0] == '\0' || strlen(tenant) > QUOTA_TENANT_MAX)
		PG_RETURN_BOOL(false);
	{
		TenantConfig *cfg = tenant_config(tenant);

		PG_RETURN_BOOL(cfg != NULL && cfg->shared != NULL);
	}
}

/*
 * llm_usage._shm_consume(tenant_id text, quota_types text[], amounts numeric[])
 *		RETURNS SETOF llm_usage._quota_check
 *		All-or-nothing check-and-consume over several types in shared
 *		memory; the caller (_consume) has checked the arguments and that
 *		_shm_usable() is true.
 */
Datum
llm_usage_shm_consume(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Datum	   *types,
			   *amounts;
	int			ntypes,
				namounts;
	TenantConfig *cfg;
	Check		checks[QUOTA_SLOTS];
	int			n = 0;
	TimestampTz now = GetCurrentTimestamp();
	bool		all_fit;

	InitMaterializedSRF(fcinfo, 0);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &types, NULL, &ntypes);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), NUMERICOID, -1, false, TYPALIGN_INT, &amounts, NULL, &namounts);
	if (ntypes != namounts)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quota_types and amounts differ in length")));
	cfg = tenant_config(tenant);
	if (cfg == NULL || cfg->shared == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("tenant \"%s\" is not counted in shared memory", tenant)));
	/* in slot order, as _consume_table lists them */
	for (int t = 0; t < QUOTA_NTYPES; t++)
		for (int i = 0; i < ntypes; i++)
		{
			int64		amount;

			if (quota_type_index(TextDatumGetCString(types[i])) != t)
				continue;
			if (!amount_to_micro(DatumGetNumeric(amounts[i]), &amount))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("amount for \"%s\" is out of range", quota_type_names[t])));
			n += checks_for_type(cfg, t, amount, now, checks + n);
		}
	if (n == 0)
		return (Datum) 0;
	all_fit = consume(cfg, checks, n, now);
	for (int i = 0; i < n; i++)
	{
		Datum		values[8];
		bool		nulls[8] = {false, false, false, false, false, false, false, false};
		CachedLimit *l = checks[i].limit;

		values[0] = CStringGetTextDatum(quota_type_names[l->slot / QUOTA_NPERIODS]);
		values[1] = CStringGetTextDatum(period_names[l->slot % QUOTA_NPERIODS]);
		values[2] = l->limit;
		nulls[2] = l->unlimited;
		values[3] = micro_to_numeric(checks[i].requested);
		values[4] = TimestampTzGetDatum(l->start);
		values[5] = TimestampTzGetDatum(l->end);
		values[6] = micro_to_numeric(checks[i].used);
		values[7] = BoolGetDatum(all_fit || checks[i].fits);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* emit the used slots of one entry as quota_counters rows */
static void
emit_entry(void *arg, QuotaEntry *e)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;
	QuotaSlot	slots[QUOTA_SLOTS];
	char		tenant[QUOTA_TENANT_MAX + 1];

	memcpy(tenant, e->key.tenant, sizeof(tenant));
	SpinLockAcquire(&e->mutex);
	memcpy(slots, e->slots, sizeof(slots));
	SpinLockRelease(&e->mutex);
	for (int s = 0; s < QUOTA_SLOTS; s++)
	{
		Datum		values[6];
		bool		nulls[6] = {false, false, false, false, false, false};

		if (slots[s].period_start == 0)
			continue;
		values[0] = CStringGetTextDatum(tenant);
		values[1] = CStringGetTextDatum(quota_type_names[s / QUOTA_NPERIODS]);
		values[2] = CStringGetTextDatum(period_names[s % QUOTA_NPERIODS]);
		values[3] = TimestampTzGetDatum(slots[s].period_start);
		values[4] = micro_to_numeric(slots[s].used);
		values[5] = TimestampTzGetDatum(slots[s].updated_at);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
}

/*
 * llm_usage._shm_counters(tenant_id text DEFAULT NULL)
 *		RETURNS TABLE (tenant_id, quota_type, period, period_start, used, updated_at)
 *		The shared counters of this database (of one tenant, if given).
 *		Revoked from PUBLIC: _quota_counters() filters by access.
 */
Datum
llm_usage_shm_counters(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Oid			tenants_relid;

	InitMaterializedSRF(fcinfo, 0);
	if (!shm_active())
		return (Datum) 0;
	AcceptInvalidationMessages();
	tenants_relid = session_cache_tenants_relid();
	if (!PG_ARGISNULL(0))
	{
		char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
		QuotaKey	key;
		QuotaEntry *e;

		if (strlen(tenant) > QUOTA_TENANT_MAX)
			return (Datum) 0;
		make_key(&key, tenant);
		e = quota_lookup(&key);
		if (e != NULL)
			emit_entry(rsinfo, e);
	}
	else
		quota_foreach(MyDatabaseId, tenants_relid, emit_entry, rsinfo);
	return (Datum) 0;
}

/*
 * llm_usage._shm_set_counter(tenant_id text, quota_type text, period text,
 *							  period_start timestamptz, used numeric) RETURNS void
 *		Set one shared counter (an admin's correction through the
 *		quota_counters view).
 */
Datum
llm_usage_shm_set_counter(PG_FUNCTION_ARGS)
{
	char	   *tenant;
	int			t,
				p;
	int64		used;
	QuotaKey	key;
	QuotaEntry *e;
	bool		created;

	if (!shm_active())
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("llm_usage is not loaded through shared_preload_libraries")));
	for (int i = 0; i < 5; i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("quota counter fields must not be NULL")));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	t = quota_type_index(text_to_cstring(PG_GETARG_TEXT_PP(1)));
	p = period_index(text_to_cstring(PG_GETARG_TEXT_PP(2)));
	if (t < 0 || p < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown quota type or period")));
	if (!amount_to_micro(PG_GETARG_NUMERIC(4), &used))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("used must be zero or more and at most 1000000000000")));
	if (strlen(tenant) > QUOTA_TENANT_MAX)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("tenant_id is too long for the shared quota counters")));
	AcceptInvalidationMessages();
	make_key(&key, tenant);
	e = quota_entry(&key, &created);
	if (e == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("shared quota counters are full"),
				 errhint("Raise llm_usage.quota_max_tenants and restart the server.")));
	SpinLockAcquire(&e->mutex);
	e->slots[t * QUOTA_NPERIODS + p].period_start = PG_GETARG_TIMESTAMPTZ(3);
	e->slots[t * QUOTA_NPERIODS + p].used = used;
	e->slots[t * QUOTA_NPERIODS + p].updated_at = GetCurrentTimestamp();
	SpinLockRelease(&e->mutex);
	quota_changed();
	PG_RETURN_VOID();
}

/*
 * llm_usage._quota_config_changed() RETURNS trigger
 *		Statement trigger on every table quota limits and access come from:
 *		every backend drops its quota cache when this transaction commits.
 */
Datum
llm_usage_quota_config_changed(PG_FUNCTION_ARGS)
{
	Oid			relid;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_quota_config_changed() must be called as a trigger")));
	relid = get_relname_relid("tenants", get_namespace_oid("llm_usage", false));
	if (OidIsValid(relid))
		CacheInvalidateRelcacheByRelid(relid);
	return PointerGetDatum(NULL);
}
