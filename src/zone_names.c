/*-------------------------------------------------------------------------
 *
 * zone_names.c
 *	  Whether a name is a time zone name PostgreSQL lists, answered from a
 *	  per-session set of the names.
 *
 * A tenant's time zone must be a name of pg_timezone_names (README
 * "Periods"): no abbreviation, no POSIX specification such as 'UTC+3'.
 * Asking pg_timezone_names itself reads every zone file of the system
 * (about 600) and took 40 ms a question, twice for each create_tenant()
 * (the function and the tenants trigger), so loading 10,000 tenants took
 * minutes.  Here the names are read once per session, through the same
 * view (its filters included, by construction), into a hash; later
 * questions are one lookup.  A session therefore sees the zone files as
 * they were at its first question: a tzdata update is seen by sessions
 * started after it (as PostgreSQL's own zone cache, pg_tzset(), behaves).
 *
 * The set is built completely before it is published, so an error or a
 * cancel while reading leaves no half-filled set behind; the next
 * question reads the names again.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "executor/spi.h"
#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"

/* hash entry: the zone name is the key */
typedef struct ZoneName
{
	char		name[TZ_STRLEN_MAX + 1];
} ZoneName;

/* the session's set of zone names; NULL until the first question */
static HTAB *zone_names = NULL;

/*
 * load_zone_names
 *		Read pg_timezone_names into a new hash in its own memory context
 *		(child of TopMemoryContext) and return it.  On an error the context
 *		is deleted and the error re-thrown.  Runs a query through SPI in
 *		the caller's transaction; the query names only pg_catalog objects.
 */
static HTAB *
load_zone_names(void)
{
	MemoryContext cxt = AllocSetContextCreate(TopMemoryContext,
											  "llm_usage zone names",
											  ALLOCSET_DEFAULT_SIZES);
	HTAB	   *names;

	PG_TRY();
	{
		HASHCTL		ctl;

		ctl.keysize = TZ_STRLEN_MAX + 1;
		ctl.entrysize = sizeof(ZoneName);
		ctl.hcxt = cxt;
		names = hash_create("llm_usage zone names", 1024, &ctl,
							HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);

		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		if (SPI_execute("SELECT name FROM pg_catalog.pg_timezone_names", true, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read pg_catalog.pg_timezone_names");
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			char	   *name = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);

			/* a longer name cannot be a zone pg_tzset() loads */
			if (name != NULL && strlen(name) <= TZ_STRLEN_MAX)
				(void) hash_search(names, name, HASH_ENTER, NULL);
		}
		SPI_finish();
	}
	PG_CATCH();
	{
		MemoryContextDelete(cxt);
		PG_RE_THROW();
	}
	PG_END_TRY();
	return names;
}

PG_FUNCTION_INFO_V1(llm_usage_zone_known);

/*
 * llm_usage._zone_known(name text) RETURNS boolean
 *		Whether name is exactly (case and all) a name pg_timezone_names
 *		lists.  Strict: NULL gives NULL.
 */
Datum
llm_usage_zone_known(PG_FUNCTION_ARGS)
{
	text	   *arg = PG_GETARG_TEXT_PP(0);
	int			len = VARSIZE_ANY_EXHDR(arg);
	char		key[TZ_STRLEN_MAX + 1];

	if (len == 0 || len > TZ_STRLEN_MAX)
		PG_RETURN_BOOL(false);
	memcpy(key, VARDATA_ANY(arg), len);
	key[len] = '\0';
	/* a name with a NUL byte inside cannot come from text, but be sure */
	if (strlen(key) != (size_t) len)
		PG_RETURN_BOOL(false);

	if (zone_names == NULL)
		zone_names = load_zone_names();
	PG_RETURN_BOOL(hash_search(zone_names, key, HASH_FIND, NULL) != NULL);
}
