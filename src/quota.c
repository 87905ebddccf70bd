/*-------------------------------------------------------------------------
 *
 * quota.c
 *	  enforce_quota() at memory speed, admitted or denied: the backend side
 *	  of the shared quota counters of quota_shmem.c, the aggregated audit of
 *	  denials, and the trigger that tells every session what changed.
 *
 * Each backend caches, for every tenant it has counted for, the limits in
 * force (in millionths) and, once computed, the current period of each.
 * They are built from the tenant directory of session_cache.c (the tenants
 * the calling role may use, their time zones and quotas) and rebuilt when
 * the directory's entry changes (its version); a tenant missing from the
 * directory is one the role may not use or that does not exist: the SQL
 * path raises the right error.
 *
 * enforce_quota() then checks and consumes under the tenant's spinlock,
 * without a table, a lock or SPI, and answers an admission and a denial
 * alike.  Everything unusual goes through the SQL implementation instead
 * (_enforce_quota_sql): bad arguments (for its error messages), a server
 * without the library preloaded, or a tenant beyond
 * llm_usage.quota_max_tenants.
 *
 * Denials are audited, aggregated: each is added to the tenant's pending
 * window in shared memory (denied calls, first and last time, per quota the
 * denials and the last figures), and a window becomes one quota_exceeded
 * audit event when a denial comes in a later minute (written then, by that
 * call, through _write_quota_denials() in a subtransaction of its own) or
 * when _write_quota_denials() runs (check_alerts(), the worker's
 * maintenance, flush_quota_denials()).  A window taken by a flush whose
 * (sub)transaction aborts is given back to shared memory, so every denial
 * is written once.  So a flood of N denials writes one event a minute.
 *
 * Counting is in millionths of a unit: an amount is rounded up and a limit
 * down to that precision, so admission is never looser than exact.  A
 * consumption is not transactional: it counts from the moment it is
 * admitted, even if the calling transaction later rolls back.
 *
 * SPI: every statement runs with search_path pinned to pg_catalog, pg_temp
 * and names every object with its schema (session_cache.h); the audit flush
 * runs as the extension's owner.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "common/int.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/syscache.h"
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
	Datum		limit;			/* numeric as configured (in the config's chunk); 0 when unlimited */
	TimestampTz start;			/* current period, as last computed */
	TimestampTz end;
} CachedLimit;

typedef struct TenantConfig
{
	char		tenant[QUOTA_TENANT_MAX + 1];	/* hash key */
	uint64		version;		/* of the directory entry it was built from */
	const char *timezone;		/* in chunk */
	int			nlimits;
	CachedLimit *limits;		/* [nlimits] in chunk, ordered by slot */
	char	   *chunk;			/* limits, their numerics, the time zone: one allocation */
	bool		has_shared;		/* shared is an entry looked up or taken */
	QuotaRef	shared;
	bool		no_room;		/* llm_usage.quota_max_tenants reached when last tried */
} TenantConfig;

/* backend-local cache; everything in it lives in cache_ctx */
static HTAB *config_cache = NULL;
static MemoryContext cache_ctx = NULL;
static SPIPlanPtr counters_plan = NULL;
static SPIPlanPtr fallback_plan = NULL;
static SPIPlanPtr flush_plan = NULL;
static SPIPlanPtr existing_plan = NULL;
static TupleDesc enforce_tupdesc = NULL;
static Oid	enforce_tupdesc_fn = InvalidOid;	/* the function it is the result of */

/* the last amount converted (pgbench and applications repeat theirs) */
static char last_amount[32];
static Size last_amount_len = 0;
static int64 last_amount_u = 0;

bool		llm_usage_audit_quota_denials = true;

PG_FUNCTION_INFO_V1(llm_usage_enforce_quota);
PG_FUNCTION_INFO_V1(llm_usage_shm_consume);
PG_FUNCTION_INFO_V1(llm_usage_shm_usable);
PG_FUNCTION_INFO_V1(llm_usage_shm_counters);
PG_FUNCTION_INFO_V1(llm_usage_shm_set_counter);
PG_FUNCTION_INFO_V1(llm_usage_shm_take_denials);
PG_FUNCTION_INFO_V1(llm_usage_shm_reclaim);
PG_FUNCTION_INFO_V1(llm_usage_shm_status);
PG_FUNCTION_INFO_V1(llm_usage_quota_config_changed);

/* drop the cache (session_cache.c calls it when every cache is dropped) */
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
										  ALLOCSET_DEFAULT_SIZES);
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
static Datum max_amount = (Datum) 0;		/* 10^12: _check_amount's bound */
static Datum max_amount_u = (Datum) 0;		/* 10^18: 10^12 units, in millionths */
static Datum max_limit_u = (Datum) 0;		/* 9 * 10^18: limits beyond never bind */
static Datum zero = (Datum) 0;

#define micro_numeric()	numeric_constant(&micro_unit, QUOTA_UNIT)

/*
 * amount_to_micro
 *		An amount in millionths, rounded up; false unless it is a number in
 *		[0, 10^12] (the range _check_amount accepts).  The sign and the
 *		bound are checked before scaling: a negative amount above -0.000001
 *		would round up to 0, one below -9.2 * 10^12 would not fit an int64,
 *		and scaling one near numeric's largest would overflow (22003, where
 *		_check_amount raises 22023).
 */
static bool
amount_to_micro(Numeric n, int64 *out)
{
	Datum		scaled;
	int64		v;

	if (numeric_is_nan(n) || numeric_is_inf(n) ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n), numeric_constant(&zero, 0))) < 0 ||
		DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericGetDatum(n),
										  numeric_constant(&max_amount, INT64CONST(1000000000000)))) > 0)
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

/* amount_to_micro of an argument, remembering the last one converted */
static bool
arg_amount_to_micro(Datum d, int64 *out)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(d);
	Size		len;

	if (!VARATT_IS_EXTENDED(raw) || VARATT_IS_SHORT(raw))
	{
		len = VARSIZE_ANY(raw);
		if (len == last_amount_len && memcmp(raw, last_amount, len) == 0)
		{
			*out = last_amount_u;
			return true;
		}
		if (len <= sizeof(last_amount) && amount_to_micro(DatumGetNumeric(d), out))
		{
			memcpy(last_amount, raw, len);
			last_amount_len = len;
			last_amount_u = *out;
			return true;
		}
	}
	return amount_to_micro(DatumGetNumeric(d), out);
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

/*
 * limit_to_micro, remembered: the same few limits (a plan's) are converted
 * for every tenant on the plan each time the plans are read again, so the
 * last conversion of each is kept in a small direct-mapped table keyed by
 * the numeric's bytes.
 */
#define LIMIT_MEMO_SIZE		64
#define LIMIT_MEMO_BYTES	32

typedef struct LimitMemo
{
	Size		len;			/* 0: empty */
	char		bytes[LIMIT_MEMO_BYTES];
	int64		limit_u;
} LimitMemo;

static LimitMemo limit_memo[LIMIT_MEMO_SIZE];

static int64
limit_to_micro_memo(Datum limit)
{
	struct varlena *raw = (struct varlena *) DatumGetPointer(limit);
	Size		len;
	LimitMemo  *m;

	if (VARATT_IS_EXTENDED(raw) && !VARATT_IS_SHORT(raw))
		return limit_to_micro(limit);
	len = VARSIZE_ANY(raw);
	if (len > LIMIT_MEMO_BYTES)
		return limit_to_micro(limit);
	m = &limit_memo[hash_bytes((const unsigned char *) raw, (int) len) % LIMIT_MEMO_SIZE];
	if (m->len == len && memcmp(m->bytes, raw, len) == 0)
		return m->limit_u;
	m->limit_u = limit_to_micro(limit);
	memcpy(m->bytes, raw, len);
	m->len = len;
	return m->limit_u;
}

static Datum
micro_to_numeric(int64 v)
{
	if (v % QUOTA_UNIT == 0)
		return NumericGetDatum(int64_to_numeric(v / QUOTA_UNIT));
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

/* the shared-memory key of a tenant of this database's extension */
void
quota_make_key(QuotaKey *key, const char *tenant)
{
	memset(key, 0, sizeof(*key));
	key->dbid = MyDatabaseId;
	key->tenants_relid = session_cache_tenants_relid();
	strlcpy(key->tenant, tenant, sizeof(key->tenant));
}

/*
 * read_table_counters
 *		What the table holds for a tenant about to get a shared entry
 *		(counted before the shared counters were in use, restored by
 *		pg_dump, or counted in the table while shared memory was full), as
 *		the entry's initial slots (all empty if none; updated_at: now).
 *		_quota_table_counters() locks the tenant's table rows (until the
 *		transaction ends), so that a consumption in the table still in
 *		progress is committed (and read) first, and one that starts later
 *		finds the entry (_consume_table looks again once it holds the rows).
 *		Read before the entry is taken, so that an error or a cancel here
 *		leaves no entry without the table's counters.  The caller is
 *		connected to SPI with search_path pinned.
 */
static void
read_table_counters(const char *tenant, QuotaSlot *slots)
{
	Datum		arg = CStringGetTextDatum(tenant);
	bool		isnull[4];
	Datum		arr[4];
	Datum	   *types,
			   *periods,
			   *starts,
			   *used;
	int			n;
	TimestampTz now = GetCurrentTimestamp();

	memset(slots, 0, sizeof(QuotaSlot) * QUOTA_SLOTS);
	if (counters_plan == NULL)
		counters_plan = session_cache_keep_plan("SELECT counter_types, counter_periods, counter_starts, counter_used "
												"FROM llm_usage._quota_table_counters($1)", 1, (Oid[]) {TEXTOID});
	if (SPI_execute_plan(counters_plan, &arg, NULL, false, 1) != SPI_OK_SELECT || SPI_processed != 1)
		return;
	for (int i = 0; i < 4; i++)
		arr[i] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1 + i, &isnull[i]);
	if (isnull[0] || isnull[1] || isnull[2] || isnull[3])
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
		s = &slots[t * QUOTA_NPERIODS + p];
		s->period_start = DatumGetTimestampTz(starts[i]);
		s->used = u;
		s->updated_at = now;
	}
}

/*
 * build_config
 *		A tenant's limits from its directory entry: the quotas in force in
 *		slot order, limits in millionths.  The limits' numerics are copied
 *		into one chunk of cache_ctx (the previous chunk is freed); the
 *		current periods already computed are kept if the time zone is the
 *		same.  Reads no catalog.
 */
static void
build_config(TenantConfig *cfg, const SessionTenant *st)
{
	Size		size;
	char	   *chunk;
	char	   *p;
	bool		same_zone = cfg->chunk != NULL && strcmp(cfg->timezone, st->timezone) == 0;
	TimestampTz starts[QUOTA_SLOTS];
	TimestampTz ends[QUOTA_SLOTS];

	/* the periods computed so far stay right if the zone did not change */
	memset(starts, 0, sizeof(starts));
	memset(ends, 0, sizeof(ends));
	if (same_zone)
		for (int i = 0; i < cfg->nlimits; i++)
		{
			starts[cfg->limits[i].slot] = cfg->limits[i].start;
			ends[cfg->limits[i].slot] = cfg->limits[i].end;
		}
	size = MAXALIGN(sizeof(CachedLimit) * Min(Max(st->nquotas, 1), QUOTA_SLOTS)) +
		MAXALIGN(strlen(st->timezone) + 1);
	for (int i = 0; i < st->nquotas; i++)
		if (!st->quotas[i].unlimited)
			size += MAXALIGN(VARSIZE_ANY(DatumGetPointer(st->quotas[i].limit)));
	chunk = MemoryContextAlloc(cache_ctx, size);
	if (cfg->chunk != NULL)
		pfree(cfg->chunk);
	cfg->chunk = chunk;
	cfg->limits = (CachedLimit *) chunk;
	p = chunk + MAXALIGN(sizeof(CachedLimit) * Min(Max(st->nquotas, 1), QUOTA_SLOTS));
	strcpy(p, st->timezone);
	cfg->timezone = p;
	p += MAXALIGN(strlen(st->timezone) + 1);
	cfg->nlimits = 0;
	for (int i = 0; i < st->nquotas; i++)
	{
		const SessionQuota *q = &st->quotas[i];
		int			t = quota_type_index(q->quota_type);
		int			per = period_index(q->period);
		CachedLimit *l;

		if (t < 0 || per < 0 || cfg->nlimits >= Min(st->nquotas, QUOTA_SLOTS))
			continue;
		l = &cfg->limits[cfg->nlimits++];
		l->slot = t * QUOTA_NPERIODS + per;
		l->unlimited = q->unlimited;
		l->limit = (Datum) 0;
		l->limit_u = PG_INT64_MAX;
		if (!q->unlimited)
		{
			Size		len = VARSIZE_ANY(DatumGetPointer(q->limit));

			memcpy(p, DatumGetPointer(q->limit), len);
			l->limit = PointerGetDatum(p);
			p += MAXALIGN(len);
			l->limit_u = limit_to_micro_memo(l->limit);
		}
		l->start = starts[l->slot];
		l->end = ends[l->slot];
	}
	/* in slot order: quota type, then minute < hour < day < month */
	for (int i = 1; i < cfg->nlimits; i++)
		for (int j = i; j > 0 && cfg->limits[j - 1].slot > cfg->limits[j].slot; j--)
		{
			CachedLimit tmp = cfg->limits[j];

			cfg->limits[j] = cfg->limits[j - 1];
			cfg->limits[j - 1] = tmp;
		}
	cfg->version = st->version;
}

/*
 * cached_config
 *		The cached configuration of a tenant for the calling role, (re)built
 *		from the tenant directory when its entry changed; NULL when the role
 *		may not use the tenant or it does not exist.  Expects a transaction.
 */
static TenantConfig *
cached_config(const char *tenant)
{
	const SessionTenant *st;
	TenantConfig *cfg;
	bool		found;

	if (tenant[0] == '\0' || strlen(tenant) > QUOTA_TENANT_MAX)
		return NULL;			/* not a key of this cache: counted in the table */
	ensure_cache();
	/* may drop this cache: nothing of it is held across */
	st = session_cache_tenant(tenant);
	if (st == NULL)
		return NULL;
	if (config_cache == NULL)
	{
		HASHCTL		info;

		memset(&info, 0, sizeof(info));
		info.keysize = QUOTA_TENANT_MAX + 1;
		info.entrysize = sizeof(TenantConfig);
		info.hcxt = cache_ctx;
		config_cache = hash_create("llm_usage tenant quota config", 256, &info,
								   HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	}
	cfg = hash_search(config_cache, tenant, HASH_ENTER, &found);	/* string keys */
	if (!found)
	{
		cfg->chunk = NULL;
		cfg->has_shared = false;
		cfg->no_room = false;
		cfg->version = 0;
	}
	if (!found || cfg->version != st->version)
		build_config(cfg, st);
	return cfg;
}

/*
 * tenant_config
 *		The cached configuration of a tenant for the calling role, with its
 *		shared entry looked up (taken on first use, filled with the table's
 *		counters read before it is taken: an error or a cancel while they
 *		are read takes no entry); NULL when the role may not use the tenant or it does not
 *		exist.  has_shared is false when shared memory is full (tried again
 *		once entries were taken or given back since).
 */
static TenantConfig *
tenant_config(const char *tenant)
{
	TenantConfig *cfg = cached_config(tenant);
	QuotaKey	qkey;
	QuotaRef	ref;
	bool		created;

	if (cfg == NULL || cfg->has_shared || !shm_active())
		return cfg;
	if (cfg->no_room && quota_entry_count() >= llm_usage_quota_max_tenants)
		return cfg;				/* still full */
	quota_make_key(&qkey, tenant);
	if (!quota_lookup(&qkey, &ref))
	{
		/* a new entry starts with the table's counters, read first */
		QuotaSlot	initial[QUOTA_SLOTS];
		int			level = session_cache_pin_search_path();

		SPI_connect();
		read_table_counters(tenant, initial);
		SPI_finish();
		session_cache_unpin_search_path(level);
		/* the lookups of SPI may have changed the directory: look again */
		cfg = cached_config(tenant);
		if (cfg == NULL || cfg->has_shared)
			return cfg;
		if (!quota_entry_init(&qkey, &ref, &created, initial))
		{
			cfg->no_room = true;
			quota_warn_full();
			return cfg;
		}
	}
	cfg->shared = ref;
	cfg->no_room = false;
	cfg->has_shared = true;
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

#define CONSUME_STALE	(-1)	/* the shared entry was reclaimed meanwhile */

/*
 * consume
 *		Atomic all-or-nothing check-and-consume of checks[0..n-1] of one
 *		tenant, under its spinlock; 1 when all fit (consumed), 0 when not
 *		(nothing consumed), CONSUME_STALE when the entry is no longer the
 *		tenant's.  A slot counting an older period counts as empty; one
 *		counting a newer period (another backend's clock moved on first) is
 *		consumed in that period, and the check's limit then moves to that
 *		period, so that what the caller reports (used, resets_at) is the
 *		period the consumption counted in.
 */
static int
consume(TenantConfig *cfg, Check *checks, int n, TimestampTz now)
{
	QuotaEntry *e = cfg->shared.entry;
	bool		all_fit = true;

	if (!quota_lock(&cfg->shared))
		return CONSUME_STALE;
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
		e->dirty = true;
	}
	quota_unlock(&cfg->shared);
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
	return all_fit ? 1 : 0;
}

#define CONSUME_FULL	(-2)	/* llm_usage.max_reservations reservations are open */
#define CONSUME_TENANT_FULL	(-3)	/* the tenant has max_reservations_per_tenant open */

/*
 * consume_reserving
 *		consume(), and when all fit, what was counted noted as (added to)
 *		the reservation of request_id (rid, rid_len bytes), which expires
 *		llm_usage.reservation_ttl from now; nothing is noted when not all
 *		fit.  Holds the reservation's partition lock around the entry's
 *		mutex.  CONSUME_FULL (nothing consumed) when no reservation can be
 *		made, even after expired ones were swept; CONSUME_TENANT_FULL when
 *		the tenant holds llm_usage.max_reservations_per_tenant open ones
 *		(expired ones are swept first, by one backend at most once a second).
 */
static int
consume_reserving(TenantConfig *cfg, Check *checks, int n, TimestampTz now, const char *rid, int rid_len)
{
	static TimestampTz last_tenant_sweep = 0;
	ReservationKey key;
	uint32		hash;
	LWLock	   *lock;
	Reservation *r;
	bool		found;
	bool		tenant_full = false;
	int			rc;

	reservation_key(&key, cfg->shared.incarnation, rid, rid_len);
	lock = reservation_lock(&key, &hash);
	for (int attempt = 0;; attempt++)
	{
		LWLockAcquire(lock, LW_EXCLUSIVE);
		r = reservation_find(&key, hash, true, &found);
		tenant_full = false;
		if (r != NULL && !found && !reservation_claim(r, &cfg->shared))
		{
			reservation_remove(&key, hash);
			r = NULL;
			tenant_full = true;
		}
		if (r != NULL || attempt > 0)
			break;
		LWLockRelease(lock);
		if (tenant_full)
		{
			/* a sweep locks every partition: one tenant at its bound may not make them constant */
			if (now - last_tenant_sweep < USECS_PER_SEC)
				return CONSUME_TENANT_FULL;
			last_tenant_sweep = now;
		}
		(void) reservation_sweep(now);
	}
	if (r == NULL)
	{
		LWLockRelease(lock);
		return tenant_full ? CONSUME_TENANT_FULL : CONSUME_FULL;
	}
	if (found && r->expires_at <= now)
	{
		/* expired: what it counted stays counted; a new reservation starts */
		memset(r->amount, 0, sizeof(r->amount));
		memset(r->period_start, 0, sizeof(r->period_start));
	}
	rc = consume(cfg, checks, n, now);
	if (rc == 1)
	{
		for (int i = 0; i < n; i++)
		{
			int			s = checks[i].limit->slot;

			if (r->period_start[s] != checks[i].counted)
			{
				r->period_start[s] = checks[i].counted;
				r->amount[s] = 0;
			}
			r->amount[s] = (r->amount[s] > PG_INT64_MAX - checks[i].requested) ?
				PG_INT64_MAX : r->amount[s] + checks[i].requested;
		}
		r->expires_at = now + (int64) llm_usage_reservation_ttl * USECS_PER_SEC;
	}
	else if (!found)
		reservation_remove(&key, hash);
	LWLockRelease(lock);
	return rc;
}

/* a request id the shared path takes: 1 to 255 bytes, not only spaces (else SQL, for its check) */
static bool
plain_request_id(const char *rid)
{
	size_t		len = strlen(rid);

	return len > 0 && len <= 255 && strspn(rid, " ") != len;
}

static void
full_error(int rc, const char *tenant)
{
	if (rc == CONSUME_TENANT_FULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("too many open quota reservations for tenant \"%s\"", tenant),
				 errdetail("The tenant holds llm_usage.max_reservations_per_tenant (%d) reservations: enforce_quota() was called with request_ids that track_usage() has not settled yet.",
						   llm_usage_max_reservations_per_tenant),
				 errhint("Settle reservations with track_usage(), or raise llm_usage.max_reservations_per_tenant.")));
	ereport(ERROR,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("too many open quota reservations"),
			 errdetail("llm_usage.max_reservations (%d) reservations are open: enforce_quota() was called with a request_id that track_usage() has not settled yet.",
					   llm_usage_max_reservations),
			 errhint("Raise llm_usage.max_reservations and restart the server, or lower llm_usage.reservation_ttl.")));
}

/* the checks for one quota type; returns how many (at most QUOTA_NPERIODS) */
static int
checks_for_type(TenantConfig *cfg, int type, int64 amount, TimestampTz now, Check *checks)
{
	int			n = 0;

	for (int i = 0; i < cfg->nlimits; i++)
	{
		CachedLimit *l = &cfg->limits[i];

		if (l->slot / QUOTA_NPERIODS != type)
			continue;
		Assert(n < QUOTA_NPERIODS);
		current_period(cfg, l, now);
		checks[n].limit = l;
		checks[n].requested = amount;
		n++;
	}
	return n;
}

/* the start of the minute of t */
static TimestampTz
minute_of(TimestampTz t)
{
	TimestampTz r = t % USECS_PER_MINUTE;

	return t - (r < 0 ? r + USECS_PER_MINUTE : r);
}

/*
 * flush_denials_now
 *		Write the tenant's closed denial window (one of an earlier minute) as
 *		its audit event: _write_quota_denials(tenant, true) as the extension's
 *		owner (fn's owner), search_path pinned, in a subtransaction of its
 *		own.  If that fails the window goes back to shared memory (the
 *		subtransaction's abort gives it back) and the failure is logged; a
 *		cancel is raised.
 */
static void
flush_denials_now(const char *tenant, Oid fn)
{
	MemoryContext oldcontext = CurrentMemoryContext;
	ResourceOwner oldowner = CurrentResourceOwner;
	Oid			owner = llm_usage_function_owner(fn);
	Datum		arg = CStringGetTextDatum(tenant);

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(oldcontext);
	PG_TRY();
	{
		Oid			save_userid;
		int			save_sec;
		int			level;

		/* all undone by the subtransaction's abort if anything fails */
		GetUserIdAndSecContext(&save_userid, &save_sec);
		SetUserIdAndSecContext(owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
		level = session_cache_pin_search_path();
		SPI_connect();
		if (flush_plan == NULL)
			flush_plan = session_cache_keep_plan("SELECT llm_usage._write_quota_denials($1, true)", 1, (Oid[]) {TEXTOID});
		if (SPI_execute_plan(flush_plan, &arg, NULL, false, 1) != SPI_OK_SELECT)
			elog(ERROR, "llm_usage._write_quota_denials() failed");
		SPI_finish();
		session_cache_unpin_search_path(level);
		SetUserIdAndSecContext(save_userid, save_sec);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(oldcontext);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(oldcontext);
		CurrentResourceOwner = oldowner;
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->elevel > ERROR)
			ReThrowError(edata);
		ereport(LOG,
				(errcode(edata->sqlerrcode),
				 errmsg("llm_usage: could not write the quota denials of tenant \"%s\" to the audit log: %s",
						tenant, edata->message),
				 errdetail("They are kept in shared memory and written with the next flush.")));
		FreeErrorData(edata);
	}
	PG_END_TRY();
}

/*
 * record_denial
 *		Add a denied call (checks[0..n-1], as consume() left them) to the
 *		tenant's pending denial window.  A window of an earlier minute is
 *		written first (flush_denials_now), unless this transaction cannot
 *		write (read-only, recovery): then the window grows.  fn is the
 *		C function called, whose owner writes the audit event.
 */
static void
record_denial(TenantConfig *cfg, const char *tenant, Check *checks, int n, TimestampTz now, Oid fn)
{
	bool		may_flush = !XactReadOnly && !RecoveryInProgress();
	Oid			role = llm_usage_caller_id();

	if (!llm_usage_audit_quota_denials || !cfg->has_shared)
		return;
	for (int attempt = 0; attempt < 2; attempt++)
	{
		QuotaRef	ref = cfg->shared;
		QuotaDenials *d = &ref.entry->denials;
		int			r;

		if (!quota_lock(&ref))
			return;				/* reclaimed: its tenant is gone */
		if (may_flush && attempt == 0 && d->calls > 0 && minute_of(d->first_at) < minute_of(now))
		{
			quota_unlock(&ref);
			flush_denials_now(tenant, fn);
			continue;
		}
		if (d->calls == 0)
			d->first_at = now;
		d->last_at = Max(d->last_at, now);
		d->calls++;
		for (r = 0; r < QUOTA_DENIAL_ROLES && OidIsValid(d->roles[r]) && d->roles[r] != role; r++)
			;
		if (r == QUOTA_DENIAL_ROLES)
			d->more_roles = true;
		else
			d->roles[r] = role;
		for (int i = 0; i < n; i++)
		{
			QuotaDenialSlot *ds;

			if (checks[i].fits)
				continue;
			ds = &d->slots[checks[i].limit->slot];
			ds->denials++;
			ds->used = checks[i].used;
			ds->requested = checks[i].requested;
			ds->limit_u = checks[i].limit->limit_u;
			ds->period_start = checks[i].counted;
		}
		ref.entry->dirty = true;
		quota_unlock(&ref);
		return;
	}
}

/*
 * Denial windows taken by _shm_take_denials() in this transaction, with the
 * subtransaction that took them: given back to shared memory if it aborts.
 */
typedef struct TakenWindow
{
	QuotaKey	key;
	SubTransactionId subid;
	QuotaDenials window;
} TakenWindow;

static List *taken_windows = NIL;	/* in TopMemoryContext */
static bool taken_callbacks = false;

/* add a window given back to an entry's pending one (caller holds the mutex) */
static void
merge_window(QuotaDenials *into, const QuotaDenials *w)
{
	bool		newer = w->last_at > into->last_at;

	if (into->calls == 0)
	{
		*into = *w;
		return;
	}
	into->calls += w->calls;
	into->first_at = Min(into->first_at, w->first_at);
	into->last_at = Max(into->last_at, w->last_at);
	for (int i = 0; i < QUOTA_DENIAL_ROLES && OidIsValid(w->roles[i]); i++)
	{
		int			r;

		for (r = 0; r < QUOTA_DENIAL_ROLES && OidIsValid(into->roles[r]) && into->roles[r] != w->roles[i]; r++)
			;
		if (r == QUOTA_DENIAL_ROLES)
			into->more_roles = true;
		else
			into->roles[r] = w->roles[i];
	}
	into->more_roles |= w->more_roles;
	for (int s = 0; s < QUOTA_SLOTS; s++)
	{
		const QuotaDenialSlot *ws = &w->slots[s];
		QuotaDenialSlot *is = &into->slots[s];

		if (ws->denials == 0)
			continue;
		if (is->denials == 0 || newer)
		{
			int64		sum = is->denials + ws->denials;

			*is = *ws;
			is->denials = sum;
		}
		else
			is->denials += ws->denials;
	}
}

/* give taken windows back (of subtransaction subid, or all) */
static void
give_back_windows(SubTransactionId subid, bool all)
{
	ListCell   *lc;

	foreach(lc, taken_windows)
	{
		TakenWindow *tw = lfirst(lc);
		QuotaRef	ref;

		if (!all && tw->subid != subid)
			continue;
		if (tw->window.calls > 0 && quota_shmem_ready() && quota_lookup(&tw->key, &ref) && quota_lock(&ref))
		{
			merge_window(&ref.entry->denials, &tw->window);
			ref.entry->dirty = true;
			quota_unlock(&ref);
		}
		taken_windows = foreach_delete_current(taken_windows, lc);
		pfree(tw);
	}
}

static void
taken_xact_callback(XactEvent event, void *arg)
{
	if (taken_windows == NIL)
		return;
	if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT)
		give_back_windows(InvalidSubTransactionId, true);
	else if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PREPARE || event == XACT_EVENT_PARALLEL_COMMIT)
	{
		list_free_deep(taken_windows);
		taken_windows = NIL;
	}
}

static void
taken_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	ListCell   *lc;

	if (event == SUBXACT_EVENT_ABORT_SUB)
		give_back_windows(mySubid, false);
	else if (event == SUBXACT_EVENT_COMMIT_SUB)
		foreach(lc, taken_windows)
		{
			TakenWindow *tw = lfirst(lc);

			if (tw->subid == mySubid)
				tw->subid = parentSubid;
		}
}

/* the binding check: one that denied, else least left (unlimited last), then shorter period */
static int
binding_check(const Check *checks, int n)
{
	int			b = 0;

	for (int i = 1; i < n; i++)
	{
		const Check *c = &checks[i];
		const Check *x = &checks[b];

		if (c->fits != x->fits)
		{
			if (!c->fits)
				b = i;
			continue;
		}
		if (c->limit->unlimited)
			continue;
		if (x->limit->unlimited || c->limit->limit_u - c->used < x->limit->limit_u - x->used)
			b = i;
	}
	return b;
}

/*
 * enforce_result_desc
 *		The result row of the enforce_quota function called, kept for the
 *		session with the function's OID: a function whose result type
 *		changes (an extension update) is dropped and created again, so a
 *		new OID is a new row type.
 */
static TupleDesc
enforce_result_desc(FunctionCallInfo fcinfo)
{
	if (enforce_tupdesc == NULL || enforce_tupdesc_fn != fcinfo->flinfo->fn_oid)
	{
		TupleDesc	desc;
		MemoryContext old;

		if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE || desc->natts != 5)
			elog(ERROR, "return type must be a row type of 5 columns");
		old = MemoryContextSwitchTo(TopMemoryContext);
		desc = BlessTupleDesc(CreateTupleDescCopy(desc));
		MemoryContextSwitchTo(old);
		if (enforce_tupdesc != NULL)
			FreeTupleDesc(enforce_tupdesc);
		enforce_tupdesc = desc;
		enforce_tupdesc_fn = fcinfo->flinfo->fn_oid;
	}
	return enforce_tupdesc;
}

/*
 * enforce_fast
 *		enforce_quota without SQL, admitted or denied; NULL when the call
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
	int			r;
	TimestampTz now;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	char	   *rid = NULL;

	if (!shm_active() || PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		return NULL;
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		rid = text_to_cstring(PG_GETARG_TEXT_PP(3));
		if (!plain_request_id(rid))
			return NULL;
	}
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (tenant[0] == '\0' || strlen(tenant) > QUOTA_TENANT_MAX)
		return NULL;
	type_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	type = quota_type_index(type_name);
	if (type < 0 || !arg_amount_to_micro(PG_GETARG_DATUM(2), &amount))
		return NULL;

	cfg = tenant_config(tenant);
	if (cfg == NULL || !cfg->has_shared)
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
	r = rid ? consume_reserving(cfg, checks, n, now, rid, strlen(rid)) : consume(cfg, checks, n, now);
	if (r == CONSUME_FULL || r == CONSUME_TENANT_FULL)
		full_error(r, tenant);
	if (r == CONSUME_STALE)
	{
		/* the entry was reclaimed (its tenant deleted?): the SQL path looks again */
		cfg->has_shared = false;
		return NULL;
	}
	if (r == 0)
		record_denial(cfg, tenant, checks, n, now, fcinfo->flinfo->fn_oid);

	b = binding_check(checks, n);
	values[0] = BoolGetDatum(r == 1);
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

/* enforce_quota through the SQL implementation (errors, no shared memory) */
static HeapTuple
enforce_sql(FunctionCallInfo fcinfo, TupleDesc desc)
{
	Datum		args[4];
	char		argnulls[4];
	Oid			argtypes[4] = {TEXTOID, TEXTOID, NUMERICOID, TEXTOID};
	HeapTuple	result;
	MemoryContext caller = CurrentMemoryContext;
	int			level;

	for (int i = 0; i < 4; i++)
	{
		bool		isnull = i >= PG_NARGS() || PG_ARGISNULL(i);

		argnulls[i] = isnull ? 'n' : ' ';
		args[i] = isnull ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	level = session_cache_pin_search_path();
	SPI_connect();
	if (fallback_plan == NULL)
		fallback_plan = session_cache_keep_plan("SELECT allowed, quota_limit, used, remaining, resets_at "
												"FROM llm_usage._enforce_quota_sql($1, $2, $3, $4)", 4, argtypes);
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
	session_cache_unpin_search_path(level);
	return result;
}

/*
 * llm_usage.enforce_quota(tenant_id text, quota_type text, amount numeric)
 *		RETURNS TABLE (allowed, quota_limit, used, remaining, resets_at)
 *		Always one row: returned in value-per-call mode as the single
 *		result (isDone left at ExprSingleResult), which ends the set
 *		without a second call or a multi-call context.
 */
Datum
llm_usage_enforce_quota(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	desc;
	HeapTuple	tup;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo) || (rsinfo->allowedModes & SFRM_ValuePerCall) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	/* it counts, so it writes (as nextval() does): not in a read-only transaction */
	PreventCommandIfReadOnly("enforce_quota()");
	desc = enforce_result_desc(fcinfo);
	tup = credits_enforce_fast(fcinfo, desc);	/* credits.c: prepaid credits */
	if (tup == NULL)
		tup = enforce_fast(fcinfo, desc);
	if (tup == NULL)
		tup = enforce_sql(fcinfo, desc);
	rsinfo->returnMode = SFRM_ValuePerCall;
	rsinfo->isDone = ExprSingleResult;
	PG_RETURN_DATUM(HeapTupleGetDatum(tup));
}

/*
 * llm_usage._shm_usable(tenant_id text) RETURNS boolean
 *		Whether the tenant is counted in shared memory (checks access; takes
 *		the tenant's entry if it has none and there is room).
 */
Datum
llm_usage_shm_usable(PG_FUNCTION_ARGS)
{
	char	   *tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TenantConfig *cfg;

	if (!shm_active() || tenant[0] == '\0' || strlen(tenant) > QUOTA_TENANT_MAX)
		PG_RETURN_BOOL(false);
	cfg = tenant_config(tenant);
	PG_RETURN_BOOL(cfg != NULL && cfg->has_shared);
}

/*
 * llm_usage._shm_consume(tenant_id text, quota_types text[], amounts numeric[])
 *		RETURNS SETOF llm_usage._quota_check
 *		All-or-nothing check-and-consume over several types in shared
 *		memory; a denial is recorded for the audit like enforce_quota's.
 *		The caller (_consume) has checked the amounts and that _shm_usable()
 *		is true; this checks again what it relies on: as many amounts as
 *		types, each type known and given once (so at most QUOTA_SLOTS
 *		checks), each amount in range.
 */
Datum
llm_usage_shm_consume(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	char	   *tenant;
	Datum	   *types,
			   *amounts;
	bool	   *type_nulls,
			   *amount_nulls;
	int			ntypes,
				namounts;
	int			type_of[QUOTA_NTYPES];	/* the argument giving each type, or -1 */
	TenantConfig *cfg;
	Check		checks[QUOTA_SLOTS];
	int			n = 0;
	int			r;
	TimestampTz now = GetCurrentTimestamp();
	char	   *rid = NULL;

	PreventCommandIfReadOnly("enforce_quotas()");
	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id, quota_types and amounts must not be NULL")));
	if (PG_NARGS() > 3 && !PG_ARGISNULL(3))
	{
		rid = text_to_cstring(PG_GETARG_TEXT_PP(3));
		if (rid[0] == '\0')
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("request_id must not be empty")));
	}
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(1), TEXTOID, -1, false, TYPALIGN_INT, &types, &type_nulls, &ntypes);
	deconstruct_array(PG_GETARG_ARRAYTYPE_P(2), NUMERICOID, -1, false, TYPALIGN_INT, &amounts, &amount_nulls, &namounts);
	if (ntypes != namounts)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("quota_types and amounts differ in length")));
	for (int t = 0; t < QUOTA_NTYPES; t++)
		type_of[t] = -1;
	for (int i = 0; i < ntypes; i++)
	{
		int			t;

		if (type_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("quota_type must not be NULL")));
		t = quota_type_index(TextDatumGetCString(types[i]));
		if (t < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("unknown quota type \"%s\"", TextDatumGetCString(types[i]))));
		if (type_of[t] >= 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("quota type \"%s\" is given more than once", quota_type_names[t]),
					 errhint("Give each quota type once, with the sum of its amounts.")));
		if (amount_nulls[i])
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("amount for \"%s\" must not be NULL", quota_type_names[t])));
		type_of[t] = i;
	}
	/* twice at most: once more if the shared entry was reclaimed meanwhile */
	for (int attempt = 0;; attempt++)
	{
		cfg = tenant_config(tenant);
		if (cfg == NULL || !cfg->has_shared)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("tenant \"%s\" is not counted in shared memory", tenant)));
		/* in slot order, as _consume_table lists them; each type once: n <= QUOTA_SLOTS */
		n = 0;
		for (int t = 0; t < QUOTA_NTYPES; t++)
		{
			int64		amount;

			if (type_of[t] < 0)
				continue;
			if (!amount_to_micro(DatumGetNumeric(amounts[type_of[t]]), &amount))
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("amount for \"%s\" is out of range", quota_type_names[t])));
			if (n + QUOTA_NPERIODS > QUOTA_SLOTS)
				elog(ERROR, "too many quota checks");	/* cannot happen: types are distinct */
			n += checks_for_type(cfg, t, amount, now, checks + n);
		}
		if (n == 0)
			return (Datum) 0;
		r = rid ? consume_reserving(cfg, checks, n, now, rid, strlen(rid)) : consume(cfg, checks, n, now);
		if (r == CONSUME_FULL || r == CONSUME_TENANT_FULL)
			full_error(r, tenant);
		if (r != CONSUME_STALE)
			break;
		cfg->has_shared = false;
		if (attempt > 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("tenant \"%s\" is not counted in shared memory", tenant)));
	}
	if (r == 0)
		record_denial(cfg, tenant, checks, n, now, fcinfo->flinfo->fn_oid);
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
		values[7] = BoolGetDatum(r == 1 || checks[i].fits);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
}

/* emit the used slots of one entry as quota_counters rows */
static void
emit_entry(void *arg, QuotaEntry *e, uint64 incarnation)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) arg;
	QuotaSlot	slots[QUOTA_SLOTS];
	char		tenant[QUOTA_TENANT_MAX + 1];
	QuotaRef	ref = {e, incarnation};

	if (!quota_lock(&ref))
		return;
	memcpy(tenant, e->key.tenant, sizeof(tenant));
	memcpy(slots, e->slots, sizeof(slots));
	quota_unlock(&ref);
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
		QuotaRef	ref;

		if (strlen(tenant) > QUOTA_TENANT_MAX)
			return (Datum) 0;
		quota_make_key(&key, tenant);
		if (quota_lookup(&key, &ref))
			emit_entry(rsinfo, ref.entry, ref.incarnation);
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
	QuotaRef	ref;
	bool		created;
	TimestampTz now;

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
	quota_make_key(&key, tenant);
	now = GetCurrentTimestamp();	/* not under the spinlock: a system call */
	for (int attempt = 0;; attempt++)
	{
		if (!quota_entry(&key, &ref, &created))
			ereport(ERROR,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("shared quota counters are full"),
					 errhint("Raise llm_usage.quota_max_tenants and restart the server.")));
		if (quota_lock(&ref))
			break;
		if (attempt > 0)
			elog(ERROR, "shared quota entry of tenant \"%s\" keeps being reclaimed", tenant);
	}
	ref.entry->slots[t * QUOTA_NPERIODS + p].period_start = PG_GETARG_TIMESTAMPTZ(3);
	ref.entry->slots[t * QUOTA_NPERIODS + p].used = used;
	ref.entry->slots[t * QUOTA_NPERIODS + p].updated_at = now;
	ref.entry->dirty = true;
	quota_unlock(&ref);
	PG_RETURN_VOID();
}

/* arguments of take_entry_denials */
typedef struct TakeArgs
{
	ReturnSetInfo *rsinfo;
	const char *tenant;			/* NULL: every tenant */
	bool		closed_only;
	TimestampTz now;
} TakeArgs;

/* take one entry's pending window, if it qualifies, and emit its rows */
static void
take_entry_denials(void *arg, QuotaEntry *e, uint64 incarnation)
{
	TakeArgs   *a = (TakeArgs *) arg;
	QuotaRef	ref = {e, incarnation};
	QuotaDenials w;
	QuotaKey	key;
	TakenWindow *tw;
	Datum		roles[QUOTA_DENIAL_ROLES + 1];
	int			nroles = 0;
	MemoryContext old;

	/*
	 * The note that gives a taken window back if this (sub)transaction
	 * aborts is made before the window is taken (an empty window, given
	 * back as nothing), so that no allocation can fail between taking it
	 * from shared memory and noting it.
	 */
	old = MemoryContextSwitchTo(TopMemoryContext);
	tw = palloc0(sizeof(TakenWindow));
	tw->subid = GetCurrentSubTransactionId();
	taken_windows = lappend(taken_windows, tw);
	MemoryContextSwitchTo(old);

	if (!quota_lock(&ref))
	{
		taken_windows = list_delete_last(taken_windows);
		pfree(tw);
		return;
	}
	if (e->denials.calls == 0 || (a->tenant != NULL && strcmp(e->key.tenant, a->tenant) != 0) ||
		(a->closed_only && minute_of(e->denials.first_at) >= minute_of(a->now)))
	{
		quota_unlock(&ref);
		taken_windows = list_delete_last(taken_windows);
		pfree(tw);
		return;
	}
	tw->key = e->key;
	tw->window = e->denials;
	memset(&e->denials, 0, sizeof(e->denials));
	e->dirty = true;
	quota_unlock(&ref);
	w = tw->window;
	key = tw->key;

	for (int r = 0; r < QUOTA_DENIAL_ROLES && OidIsValid(w.roles[r]); r++)
	{
		char	   *name = GetUserNameFromId(w.roles[r], true);

		roles[nroles++] = CStringGetTextDatum(name ? name : psprintf("%u", w.roles[r]));
	}
	if (w.more_roles)
		roles[nroles++] = CStringGetTextDatum("...");
	for (int s = 0; s < QUOTA_SLOTS; s++)
	{
		QuotaDenialSlot *ds = &w.slots[s];
		Datum		values[12];
		bool		nulls[12] = {false, false, false, false, false, false, false, false, false, false, false, false};

		if (ds->denials == 0)
			continue;
		values[0] = CStringGetTextDatum(key.tenant);
		values[1] = TimestampTzGetDatum(w.first_at);
		values[2] = TimestampTzGetDatum(w.last_at);
		values[3] = Int64GetDatum(w.calls);
		values[4] = PointerGetDatum(construct_array(roles, nroles, TEXTOID, -1, false, TYPALIGN_INT));
		values[5] = CStringGetTextDatum(quota_type_names[s / QUOTA_NPERIODS]);
		values[6] = CStringGetTextDatum(period_names[s % QUOTA_NPERIODS]);
		values[7] = micro_to_numeric(ds->limit_u);
		values[8] = micro_to_numeric(ds->used);
		values[9] = micro_to_numeric(ds->requested);
		values[10] = TimestampTzGetDatum(ds->period_start);
		values[11] = Int64GetDatum(ds->denials);
		tuplestore_putvalues(a->rsinfo->setResult, a->rsinfo->setDesc, values, nulls);
	}
}

/*
 * llm_usage._shm_take_denials(tenant_id text, closed_only boolean)
 *		RETURNS TABLE (tenant_id, first_at, last_at, calls, roles,
 *					   quota_type, period, quota_limit, used, requested,
 *					   period_start, denials)
 *		Take the pending denial windows of this database's tenants (of one
 *		tenant if given; only those begun in an earlier minute if
 *		closed_only): one row per quota denied.  A window taken is given
 *		back to shared memory if the (sub)transaction aborts.  For
 *		_write_quota_denials() only.
 */
Datum
llm_usage_shm_take_denials(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TakeArgs	a;
	char	   *tenant = NULL;

	InitMaterializedSRF(fcinfo, 0);
	if (!shm_active())
		return (Datum) 0;
	if (!taken_callbacks)
	{
		RegisterXactCallback(taken_xact_callback, NULL);
		RegisterSubXactCallback(taken_subxact_callback, NULL);
		taken_callbacks = true;
	}
	if (!PG_ARGISNULL(0))
	{
		tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
		if (strlen(tenant) > QUOTA_TENANT_MAX)
			return (Datum) 0;
	}
	a.rsinfo = rsinfo;
	a.tenant = tenant;
	a.closed_only = !PG_ARGISNULL(1) && PG_GETARG_BOOL(1);
	a.now = GetCurrentTimestamp();
	AcceptInvalidationMessages();
	quota_foreach(MyDatabaseId, session_cache_tenants_relid(), take_entry_denials, &a);
	return (Datum) 0;
}

/* keys found to reclaim by _shm_reclaim */
typedef struct ReclaimSet
{
	int			ndbs;
	Oid		   *dead_dbs;
	Oid			relid;			/* this database's tenants table */
	int			ntenants;
	char	  **gone;			/* sorted: tenants of this database that no longer exist */
} ReclaimSet;

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *) a, *(char *const *) b);
}

static bool
reclaim_doomed(void *arg, const QuotaKey *key)
{
	ReclaimSet *rs = (ReclaimSet *) arg;
	const char *k = key->tenant;

	for (int i = 0; i < rs->ndbs; i++)
		if (rs->dead_dbs[i] == key->dbid)
			return true;
	if (key->dbid != MyDatabaseId)
		return false;
	if (key->tenants_relid != rs->relid)
		return true;
	return rs->ntenants > 0 && bsearch(&k, rs->gone, rs->ntenants, sizeof(char *), cmp_str) != NULL;
}

/* gather the databases and this database's tenants of every entry */
typedef struct ReclaimScan
{
	Oid		   *dbs;
	int			ndbs;
	char	  **tenants;
	int			ntenants;
	Oid			relid;
	TimestampTz idle_before;
} ReclaimScan;

static void
scan_entry(void *arg, QuotaEntry *e, uint64 incarnation)
{
	ReclaimScan *s = (ReclaimScan *) arg;
	QuotaRef	ref = {e, incarnation};
	QuotaKey	key;
	TimestampTz last = 0;

	if (!quota_lock(&ref))
		return;
	key = e->key;
	for (int i = 0; i < QUOTA_SLOTS; i++)
		last = Max(last, e->slots[i].updated_at);
	last = Max(last, e->denials.last_at);
	quota_unlock(&ref);
	s->dbs[s->ndbs++] = key.dbid;
	/* an entry used lately may be a tenant created by a transaction still open */
	if (key.dbid == MyDatabaseId && key.tenants_relid == s->relid && last < s->idle_before)
		s->tenants[s->ntenants++] = pstrdup(key.tenant);
}

/*
 * llm_usage._shm_reclaim(idle interval DEFAULT '10 minutes') RETURNS integer
 *		Give back the shared entries nobody can use any more: of databases
 *		that no longer exist, of this database's dropped (or re-created)
 *		extensions, and of this database's tenants that no longer exist
 *		(unused for idle, so that a tenant created by a transaction still
 *		open is not taken for gone).  Returns how many.  Commit-time
 *		reclaiming catches these as they happen; this is the sweep behind
 *		it (the worker's maintenance).  The extension's owner and superusers
 *		only.
 */
Datum
llm_usage_shm_reclaim(PG_FUNCTION_ARGS)
{
	ReclaimScan s;
	ReclaimSet	rs;
	int			level;

	if (!shm_active())
		PG_RETURN_INT32(0);
	AcceptInvalidationMessages();
	memset(&s, 0, sizeof(s));
	s.dbs = palloc(sizeof(Oid) * Max(llm_usage_quota_max_tenants, 1));
	s.tenants = palloc(sizeof(char *) * Max(llm_usage_quota_max_tenants, 1));
	s.relid = session_cache_tenants_relid();
	if (PG_NARGS() > 0 && !PG_ARGISNULL(0))
	{
		Interval   *idle = PG_GETARG_INTERVAL_P(0);
		int64		span;

		if (idle->month != 0 || idle->day < 0 || idle->time < 0)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("idle must be a non-negative interval of days, hours, minutes or seconds")));
		/* an idle interval longer than the clock goes back: nothing is idle */
		if (pg_mul_s64_overflow((int64) idle->day, USECS_PER_DAY, &span) ||
			pg_add_s64_overflow(span, idle->time, &span) ||
			pg_sub_s64_overflow(GetCurrentTimestamp(), span, &s.idle_before))
			s.idle_before = DT_NOBEGIN;
	}
	else
		s.idle_before = GetCurrentTimestamp() - 10 * USECS_PER_MINUTE;
	quota_foreach(InvalidOid, InvalidOid, scan_entry, &s);

	memset(&rs, 0, sizeof(rs));
	rs.relid = s.relid;
	rs.dead_dbs = palloc(sizeof(Oid) * Max(s.ndbs, 1));
	for (int i = 0; i < s.ndbs; i++)
	{
		bool		seen = false;

		for (int j = 0; j < rs.ndbs && !seen; j++)
			seen = rs.dead_dbs[j] == s.dbs[i];
		if (!seen && !SearchSysCacheExists1(DATABASEOID, ObjectIdGetDatum(s.dbs[i])))
			rs.dead_dbs[rs.ndbs++] = s.dbs[i];
	}
	if (s.ntenants > 0)
	{
		Datum	   *elems = palloc(sizeof(Datum) * s.ntenants);
		Datum		arg;

		for (int i = 0; i < s.ntenants; i++)
			elems[i] = CStringGetTextDatum(s.tenants[i]);
		arg = PointerGetDatum(construct_array(elems, s.ntenants, TEXTOID, -1, false, TYPALIGN_INT));
		level = session_cache_pin_search_path();
		SPI_connect();
		if (existing_plan == NULL)
			existing_plan = session_cache_keep_plan("SELECT x FROM pg_catalog.unnest($1) x "
													"WHERE NOT EXISTS (SELECT 1 FROM llm_usage.tenants t "
													"WHERE t.tenant_id OPERATOR(pg_catalog.=) x)",
													1, (Oid[]) {TEXTARRAYOID});
		if (SPI_execute_plan(existing_plan, &arg, NULL, true, 0) != SPI_OK_SELECT)
			elog(ERROR, "reading llm_usage.tenants failed");
		rs.gone = palloc(sizeof(char *) * Max(SPI_processed, 1));
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;

			rs.gone[rs.ntenants++] = MemoryContextStrdup(TopTransactionContext,
														 TextDatumGetCString(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)));
		}
		SPI_finish();
		session_cache_unpin_search_path(level);
		qsort(rs.gone, rs.ntenants, sizeof(char *), cmp_str);
	}
	/* and the reservations that expired (they stay counted) */
	(void) reservation_sweep(GetCurrentTimestamp());
	PG_RETURN_INT32(quota_reclaim(reclaim_doomed, &rs));
}

static void
count_entry(void *arg, QuotaEntry *e, uint64 incarnation)
{
	(*(int *) arg)++;
}

/*
 * llm_usage._shm_status() RETURNS TABLE (entries integer, max_entries integer,
 *										   this_database integer)
 *		How many shared entries are in use, of how many, and by this
 *		database's tenants.
 */
Datum
llm_usage_shm_status(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};
	int			mine = 0;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (!shm_active())
	{
		values[0] = values[1] = values[2] = Int32GetDatum(0);
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
	}
	quota_foreach(MyDatabaseId, InvalidOid, count_entry, &mine);
	values[0] = Int32GetDatum(quota_entry_count());
	values[1] = Int32GetDatum(llm_usage_quota_max_tenants);
	values[2] = Int32GetDatum(mine);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}

/* the tenant_id of a row of a configuration table, or NULL */
static char *
row_tenant(Relation rel, HeapTuple tup)
{
	int			attnum = SPI_fnumber(RelationGetDescr(rel), "tenant_id");
	bool		isnull;
	Datum		d;

	if (attnum <= 0 || tup == NULL)
		return NULL;
	d = heap_getattr(tup, attnum, RelationGetDescr(rel), &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

/* a tenant's configuration changed; deleted: its shared entry goes at commit */
static void
tenant_changed(Relation rel, const char *tenant, bool gone)
{
	if (tenant == NULL)
		return;
	session_cache_tenant_changed(tenant);
	if (gone && shm_active() && strlen(tenant) <= QUOTA_TENANT_MAX)
	{
		QuotaKey	key;

		memset(&key, 0, sizeof(key));
		key.dbid = MyDatabaseId;
		key.tenants_relid = RelationGetRelid(rel);
		strlcpy(key.tenant, tenant, sizeof(key.tenant));
		quota_reclaim_tenant_at_commit(&key);
	}
}

/*
 * llm_usage._quota_config_changed() RETURNS trigger
 *		On every table the configuration comes from: the change reaches
 *		every session's caches when this transaction commits
 *		(session_cache.c), and no more of it than changed.  Row triggers on
 *		tenants, tenant_quota_overrides and tenant_access name the tenant
 *		(a deleted tenant's shared entry is reclaimed at commit); statement
 *		triggers on plans and plan_quotas announce the plans, on
 *		model_price_versions the prices; TRUNCATE of a tenant table
 *		announces everything.
 */
Datum
llm_usage_quota_config_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	const char *table;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_AFTER(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("_quota_config_changed() must be called as an AFTER trigger")));
	table = RelationGetRelationName(td->tg_relation);
	if (strcmp(table, "model_price_versions") == 0)
		session_cache_prices_changed();
	else if (strcmp(table, "plans") == 0 || strcmp(table, "plan_quotas") == 0 || strcmp(table, "event_types") == 0)
		session_cache_plans_changed();	/* the event types are read with the plans */
	else if (TRIGGER_FIRED_FOR_ROW(td->tg_event))
	{
		bool		is_tenants = strcmp(table, "tenants") == 0;
		char	   *old_tenant = NULL;
		char	   *new_tenant = NULL;

		if (TRIGGER_FIRED_BY_INSERT(td->tg_event))
			new_tenant = row_tenant(td->tg_relation, td->tg_trigtuple);
		else if (TRIGGER_FIRED_BY_DELETE(td->tg_event))
			old_tenant = row_tenant(td->tg_relation, td->tg_trigtuple);
		else
		{
			old_tenant = row_tenant(td->tg_relation, td->tg_trigtuple);
			new_tenant = row_tenant(td->tg_relation, td->tg_newtuple);
		}
		tenant_changed(td->tg_relation, old_tenant,
					   is_tenants && (new_tenant == NULL || old_tenant == NULL || strcmp(old_tenant, new_tenant) != 0));
		if (new_tenant != NULL && (old_tenant == NULL || strcmp(old_tenant, new_tenant) != 0))
			tenant_changed(td->tg_relation, new_tenant, false);
	}
	else
	{
		/* a statement on a tenant table (TRUNCATE): everything, and for tenants every entry */
		session_cache_all_changed();
		if (strcmp(table, "tenants") == 0 && shm_active())
		{
			QuotaKey	key;

			memset(&key, 0, sizeof(key));
			key.dbid = MyDatabaseId;
			key.tenants_relid = RelationGetRelid(td->tg_relation);
			quota_reclaim_tenant_at_commit(&key);	/* empty tenant: all of the table */
		}
	}
	return PointerGetDatum(NULL);
}

/*
 * Settlement.  track_usage() settles what it recorded: the reservation of
 * its request (enforce_quota(..., request_id)) is taken out of the
 * counters, and what the call used -- 1 api call, its tokens, its cost,
 * 1 chat message or 1 embedding by its event type's mapping -- is counted
 * in the period of each quota in force that occurred_at falls in (nothing
 * when that period is over: the counter has moved on).  No limit is
 * checked: a settlement may take a period over its limit.
 *
 * It takes effect when the tracking transaction commits (or is prepared):
 * the backend keeps what to settle in TopMemoryContext, forgets what a
 * rolled-back (sub)transaction tracked, and applies the rest in the commit
 * callback, where nothing may fail (partition locks, spinlocks, no
 * allocation).  So a rolled-back track_usage settles nothing and its
 * reservation stays open until it is tracked again or expires.  A
 * reservation that has expired is not taken out: what it counted stays.
 */
typedef struct PendingRelease
{
	SubTransactionId subid;
	QuotaRef	ref;
	ReservationKey key;
} PendingRelease;

typedef struct PendingAmount
{
	SubTransactionId subid;
	QuotaRef	ref;
	int			slot;
	TimestampTz start;			/* the period the amount counts in */
	int64		amount;			/* millionths */
} PendingAmount;

static List *pending_releases = NIL;	/* in TopMemoryContext */
static List *pending_amounts = NIL;
static bool settle_callbacks = false;

/* apply everything pending (commit or prepare); must not fail */
static void
apply_settlements(void)
{
	TimestampTz now = GetCurrentTimestamp();
	ListCell   *lc;

	foreach(lc, pending_releases)
	{
		PendingRelease *p = lfirst(lc);
		uint32		hash;
		LWLock	   *lock = reservation_lock(&p->key, &hash);
		Reservation *r;
		Reservation copy;
		bool		found;

		LWLockAcquire(lock, LW_EXCLUSIVE);
		r = reservation_find(&p->key, hash, false, &found);
		if (r != NULL)
		{
			copy = *r;
			reservation_remove(&p->key, hash);
		}
		LWLockRelease(lock);
		if (r != NULL && copy.credits_u > 0)
			credits_release(&p->ref, &copy);	/* whether expired or not */
		if (r == NULL || copy.expires_at <= now || !quota_lock(&p->ref))
			continue;
		for (int s = 0; s < QUOTA_SLOTS; s++)
		{
			QuotaSlot  *slot = &p->ref.entry->slots[s];

			if (copy.amount[s] > 0 && slot->period_start == copy.period_start[s])
				slot->used -= Min(slot->used, copy.amount[s]);
		}
		p->ref.entry->dirty = true;
		quota_unlock(&p->ref);
	}
	foreach(lc, pending_amounts)
	{
		PendingAmount *p = lfirst(lc);
		QuotaSlot  *slot;

		if (!quota_lock(&p->ref))
			continue;
		slot = &p->ref.entry->slots[p->slot];
		if (slot->period_start == p->start)
			slot->used = (slot->used > PG_INT64_MAX - p->amount) ? PG_INT64_MAX : slot->used + p->amount;
		else if (slot->period_start < p->start)
		{
			slot->period_start = p->start;
			slot->used = p->amount;
		}
		/* else: the period is over, the counter counts a later one */
		slot->updated_at = now;
		p->ref.entry->dirty = true;
		quota_unlock(&p->ref);
	}
}

static void
forget_settlements(void)
{
	list_free_deep(pending_releases);
	list_free_deep(pending_amounts);
	pending_releases = pending_amounts = NIL;
}

static void
settle_xact_callback(XactEvent event, void *arg)
{
	if (pending_releases == NIL && pending_amounts == NIL)
		return;
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_PREPARE:
			if (quota_shmem_ready())
				apply_settlements();
			forget_settlements();
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			forget_settlements();
			break;
		default:
			break;
	}
}

/* forget what an aborted subtransaction tracked; a committed one's passes to its parent */
static List *
subxact_list(List *list, SubXactEvent event, SubTransactionId mySubid, SubTransactionId parentSubid)
{
	ListCell   *lc;

	foreach(lc, list)
	{
		SubTransactionId *subid = (SubTransactionId *) lfirst(lc);	/* first member of both structs */

		if (*subid != mySubid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			*subid = parentSubid;
		else if (event == SUBXACT_EVENT_ABORT_SUB)
		{
			list = foreach_delete_current(list, lc);
			pfree(subid);
		}
	}
	return list;
}

static void
settle_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
						SubTransactionId parentSubid, void *arg)
{
	pending_releases = subxact_list(pending_releases, event, mySubid, parentSubid);
	pending_amounts = subxact_list(pending_amounts, event, mySubid, parentSubid);
}

/* note amount for a slot, merged with what this subtransaction noted for the same slot and period */
static void
note_amount(const QuotaRef *ref, int slot, TimestampTz start, int64 amount)
{
	SubTransactionId subid = GetCurrentSubTransactionId();
	PendingAmount *p;
	int			seen = 0;

	/* the last few entries: one track_usage adds at most QUOTA_SLOTS */
	for (int i = list_length(pending_amounts) - 1; i >= 0 && seen < 2 * QUOTA_SLOTS; i--, seen++)
	{
		p = list_nth(pending_amounts, i);
		if (p->subid == subid && p->ref.incarnation == ref->incarnation && p->slot == slot && p->start == start)
		{
			p->amount = (p->amount > PG_INT64_MAX - amount) ? PG_INT64_MAX : p->amount + amount;
			return;
		}
	}
	p = MemoryContextAlloc(TopMemoryContext, sizeof(PendingAmount));
	p->subid = subid;
	p->ref = *ref;
	p->slot = slot;
	p->start = start;
	p->amount = amount;
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		pending_amounts = lappend(pending_amounts, p);
		MemoryContextSwitchTo(old);
	}
}

/*
 * quota_settle_ready
 *		Whether a tracked call of the tenant is settled in shared memory
 *		(else the SQL path settles it in the table).  Expects a transaction.
 */
bool
quota_settle_ready(const char *tenant)
{
	TenantConfig *cfg;

	if (!shm_active() || tenant[0] == '\0' || strlen(tenant) > QUOTA_TENANT_MAX)
		return false;
	cfg = tenant_config(tenant);
	return cfg != NULL && cfg->has_shared;
}

/*
 * quota_shared_ref
 *		The shared entry of a tenant the calling role may use (taken on first
 *		use, as enforce_quota takes it); false when the tenant is not
 *		counted in shared memory.  Expects a transaction.
 */
bool
quota_shared_ref(const char *tenant, QuotaRef *ref)
{
	TenantConfig *cfg;

	if (!quota_settle_ready(tenant))
		return false;
	cfg = tenant_config(tenant);
	*ref = cfg->shared;
	return true;
}

/*
 * quota_settle
 *		Settle a tracked call of a tenant counted in shared memory (see
 *		above): noted now, applied at commit.  request_id NULL: no
 *		reservation to release.  Expects quota_settle_ready(tenant).
 */
void
quota_settle(const char *tenant, const char *request_id, const SettleAmounts *a, TimestampTz occurred_at)
{
	TenantConfig *cfg = tenant_config(tenant);
	MemoryContext old;
	int64		per_type[QUOTA_NTYPES];
	int64		cost_u = 0;

	if (cfg == NULL || !cfg->has_shared)
		elog(ERROR, "tenant \"%s\" is not counted in shared memory", tenant);
	if (!settle_callbacks)
	{
		RegisterXactCallback(settle_xact_callback, NULL);
		RegisterSubXactCallback(settle_subxact_callback, NULL);
		settle_callbacks = true;
	}
	if (a->cost_usd != (Datum) 0 && !amount_to_micro(DatumGetNumeric(a->cost_usd), &cost_u))
		cost_u = PG_INT64_MAX;
	/* in the order of quota_type_names */
	per_type[0] = QUOTA_UNIT;	/* api_calls */
	per_type[1] = (a->counter == 1) ? QUOTA_UNIT : 0;	/* chat_messages */
	per_type[2] = cost_u;		/* cost_usd */
	per_type[3] = (a->counter == 2) ? QUOTA_UNIT : 0;	/* embeddings */
	per_type[4] = (a->tokens > PG_INT64_MAX / QUOTA_UNIT) ? PG_INT64_MAX : a->tokens * QUOTA_UNIT;	/* tokens */

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (request_id != NULL)
	{
		PendingRelease *p = palloc(sizeof(PendingRelease));

		p->subid = GetCurrentSubTransactionId();
		p->ref = cfg->shared;
		reservation_key(&p->key, cfg->shared.incarnation, request_id, strlen(request_id));
		pending_releases = lappend(pending_releases, p);
	}
	MemoryContextSwitchTo(old);
	for (int i = 0; i < cfg->nlimits; i++)
	{
		CachedLimit *l = &cfg->limits[i];
		int64		amount = per_type[l->slot / QUOTA_NPERIODS];
		TimestampTz start,
					end;

		if (amount == 0)
			continue;
		if (occurred_at >= l->start && occurred_at < l->end)
			start = l->start;
		else
			period_bounds(l->slot % QUOTA_NPERIODS, occurred_at, cfg->timezone, &start, &end);
		note_amount(&cfg->shared, l->slot, start, amount);
	}
}

PG_FUNCTION_INFO_V1(llm_usage_shm_settle);

/*
 * llm_usage._shm_settle(tenant_id text, request_id text, tokens bigint,
 *						 cost_usd numeric, counts_as text, occurred_at timestamptz)
 *		RETURNS boolean
 *		quota_settle() for the SQL track_usage: false (nothing done) when
 *		the tenant is not counted in shared memory, for the caller to
 *		settle in the table.
 */
Datum
llm_usage_shm_settle(PG_FUNCTION_ARGS)
{
	char	   *tenant;
	SettleAmounts a;
	char	   *counts_as;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(2) || PG_ARGISNULL(5))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("tenant_id, tokens and occurred_at must not be NULL")));
	tenant = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (!quota_settle_ready(tenant))
		PG_RETURN_BOOL(false);
	a.tokens = Max(PG_GETARG_INT64(2), 0);
	a.cost_usd = PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3);
	counts_as = PG_ARGISNULL(4) ? "" : text_to_cstring(PG_GETARG_TEXT_PP(4));
	a.counter = strcmp(counts_as, "chat_messages") == 0 ? 1 : strcmp(counts_as, "embeddings") == 0 ? 2 : 0;
	quota_settle(tenant, PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1)), &a,
				 PG_GETARG_TIMESTAMPTZ(5));
	PG_RETURN_BOOL(true);
}
