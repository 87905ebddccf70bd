/*-------------------------------------------------------------------------
 *
 * session_cache.h
 *	  Per-session caches of the extension's configuration (session_cache.c):
 *	  the tenants the current role may act on, SPI plans kept for the
 *	  session, and the invalidation that drops every registered cache when
 *	  the configuration changes.
 *
 * quota.c and track.c build their own caches on top of this one and
 * register a reset function for them; neither knows about the other.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LLM_USAGE_SESSION_CACHE_H
#define LLM_USAGE_SESSION_CACHE_H

#include "executor/spi.h"

/* longer tenant ids are not cached: their calls take the SQL paths */
#define SESSION_TENANT_MAX	255

/* one tenant the current role may act on, as _quota_configs() lists it */
typedef struct SessionTenant
{
	char		tenant[SESSION_TENANT_MAX + 1];	/* hash key, zero-padded */
	char	   *timezone;
	int			nquotas;		/* quotas in force */
	char	  **quota_types;	/* [nquotas] */
	char	  **periods;		/* [nquotas] */
	Datum	   *limits;			/* [nquotas] numeric; unset where limit_nulls */
	bool	   *limit_nulls;	/* [nquotas] true: unlimited */
} SessionTenant;

/* drops one module's cache; must not throw, allocate or access catalogs */
typedef void (*SessionCacheReset) (void);

extern void session_cache_register(SessionCacheReset reset);
extern Oid	session_cache_tenants_relid(void);
extern bool session_cache_current(void);
extern const SessionTenant *session_cache_tenant(const char *tenant);
extern SPIPlanPtr session_cache_keep_plan(const char *sql, int nargs, Oid *types);

#endif							/* LLM_USAGE_SESSION_CACHE_H */
