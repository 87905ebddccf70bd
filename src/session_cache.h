/*-------------------------------------------------------------------------
 *
 * session_cache.h
 *	  Per-session caches of the extension's configuration (session_cache.c):
 *	  the tenants the calling role may act on with the quotas in force, the
 *	  plans, SPI plans kept for the session, SPI under a pinned search_path,
 *	  and the invalidation of all of it (shared generations per tenant,
 *	  plans and prices, bumped when a change commits).
 *
 * quota.c and track.c build their own caches on top of this one; neither
 * knows about the other.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LLM_USAGE_SESSION_CACHE_H
#define LLM_USAGE_SESSION_CACHE_H

#include "executor/spi.h"

/* longer tenant ids are not cached: their calls take the SQL paths */
#define SESSION_TENANT_MAX	255

/* one quota in force */
typedef struct SessionQuota
{
	const char *quota_type;
	const char *period;
	bool		unlimited;
	Datum		limit;			/* numeric; 0 when unlimited */
} SessionQuota;

/*
 * One tenant the calling role may act on.  Valid until the next call of a
 * session_cache function (which may refresh or drop it): copy what is
 * needed, or keep version and compare it later (session_cache_tenant()
 * returns the same version while nothing changed).
 */
typedef struct SessionTenant
{
	char		tenant[SESSION_TENANT_MAX + 1];	/* hash key */
	const char *timezone;
	int			nquotas;
	const SessionQuota *quotas; /* the plan's, replaced or extended by the tenant's overrides */
	bool		prepaid;		/* on prepaid billing (tenants.prepaid) */
	uint64		version;		/* new whenever anything above may have changed */

	/* private to session_cache.c */
	char	   *data;			/* timezone, plan, overrides: one chunk */
	const char *plan;
	int			noverrides;
	const SessionQuota *overrides;
	SessionQuota *merged;		/* quotas, when built: one chunk */
	uint64		plans_epoch;	/* plans read when it was last checked */
	uint64		plan_version;	/* version of its plan it was merged with */
	int			gen_slot;
	uint64		gen;			/* its generation when read */
} SessionTenant;

/* drops one module's cache; must not throw, allocate or access catalogs */
typedef void (*SessionCacheReset) (void);

extern void session_cache_register(SessionCacheReset reset);
extern Oid	session_cache_tenants_relid(void);
extern const SessionTenant *session_cache_tenant(const char *tenant);
extern uint64 session_cache_prices_gen(void);

/* what an event type counts as (llm_usage.event_type_counters) */
#define SESSION_COUNTS_NONE				0
#define SESSION_COUNTS_CHAT_MESSAGES	1
#define SESSION_COUNTS_EMBEDDINGS		2
extern int	session_cache_event_counter(const char *event_type);
extern SPIPlanPtr session_cache_keep_plan(const char *sql, int nargs, Oid *types);
extern int	session_cache_pin_search_path(void);
extern void session_cache_unpin_search_path(int nest_level);

/* configuration changes (the triggers of quota.c), effective at commit */
extern void session_cache_tenant_changed(const char *tenant);
extern void session_cache_plans_changed(void);
extern void session_cache_prices_changed(void);
extern void session_cache_all_changed(void);

/* shared generations (preloaded only) */
extern Size session_cache_shmem_size(void);
extern void session_cache_shmem_request(void);
extern void session_cache_shmem_startup(void);

#endif							/* LLM_USAGE_SESSION_CACHE_H */
