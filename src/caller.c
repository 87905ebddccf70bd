/*-------------------------------------------------------------------------
 *
 * caller.c
 *	  Who is calling: the role every tenant check is made for, and the entry
 *	  points that establish it.
 *
 * The caller is the current user at the moment the llm_usage API was
 * entered: the role that called, whatever SET ROLE, another role's
 * SECURITY DEFINER function or a maintenance command (ANALYZE, CREATE
 * INDEX, REFRESH MATERIALIZED VIEW run index and view code as the
 * relation's owner) made it.  Not the outer user (GetOuterUserId): inside
 * another role's SECURITY DEFINER function, or when a superuser's ANALYZE
 * evaluates an application's expression index, that is a different,
 * usually more privileged role.
 *
 * A SECURITY DEFINER function cannot see the user it was called by:
 * fmgr_security_definer() has already switched to the owner when the body
 * runs.  So every function of the API that needs the caller is a pair:
 *
 *	  llm_usage.NAME(args)		  C, SECURITY INVOKER, what the roles may
 *								  execute: llm_usage_entry() below
 *	  llm_usage._NAME_impl(args)  the body, SECURITY DEFINER with a pinned
 *								  search_path, executable by nobody but the
 *								  owner (an internal NAME that starts with
 *								  "_" has the body NAME_impl)
 *
 * llm_usage_entry() records the current user on a backend-local stack and
 * calls the body through the function manager (which switches to the
 * owner and pins search_path as for any SECURITY DEFINER function); the
 * stack is popped on every way out, errors included.  While a body runs,
 * the caller is the role its entry recorded.  An entry called from inside
 * a body (one API function using another, a row-level security policy
 * evaluated there) inherits the caller of that body: the current user
 * there is the owner, not the caller.
 *
 * Outside any body -- row-level security policies evaluated for a role
 * reading a table, the C fast paths (SECURITY INVOKER) -- the caller is
 * simply the current user.
 *
 * The body runs with no input collation (InvalidOid), whatever collation
 * the caller's expression carried: a caller could otherwise hand a body
 * its own nondeterministic collation ('Gamma' COLLATE a case-insensitive
 * ICU collation), under which the body's "tenant_id = p_tenant" would
 * match another tenant.  With none, each parameter of a body has the
 * collation of its declared type -- the database's default for text,
 * which PostgreSQL requires to be deterministic -- exactly as for a call
 * with no collatable argument; a body that needed the caller's collation
 * would fail loudly ("could not determine which collation to use") rather
 * than compare under the wrong one.
 *
 * Backend-local state only; no locks.  The stack lives in the backend that
 * entered the API: an entry point or _caller() evaluated in a parallel
 * worker would see an empty stack there, so both are PARALLEL RESTRICTED
 * (or UNSAFE) and so is every wrapper the extension declares.  A wrapper
 * that a user declares PARALLEL SAFE around them is a lie PostgreSQL
 * does not check: it can run an entry point, and so a body, in a worker,
 * where the caller is the worker's current user -- PostgreSQL gives the
 * worker the leader's, so outside a body the same role with the same
 * tenant rights.  (Inside a body the leader's current user is the owner;
 * bodies evaluate no function of a user's, so no such wrapper runs there.)
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "catalog/pg_proc.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

#include "llm_usage.h"

/* deeper nesting of API calls than this is a bug, not a use */
#define MAX_CALLER_DEPTH 64

static Oid	caller_stack[MAX_CALLER_DEPTH];
static int	caller_depth = 0;

typedef struct EntryCache
{
	FmgrInfo	body;			/* the _NAME_impl function */
} EntryCache;

PG_FUNCTION_INFO_V1(llm_usage_caller);
PG_FUNCTION_INFO_V1(llm_usage_entry);

/*
 * llm_usage_caller_id
 *		The role tenant checks are made for (see the file header).  For C
 *		code that decides visibility itself (the quota and tracking fast
 *		paths) as much as for _caller().  Takes no locks.
 */
Oid
llm_usage_caller_id(void)
{
	if (caller_depth > 0)
		return caller_stack[caller_depth - 1];
	return GetUserId();
}

/*
 * llm_usage._caller() RETURNS oid
 *		SQL access to llm_usage_caller_id().
 */
Datum
llm_usage_caller(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(llm_usage_caller_id());
}

/*
 * body_of
 *		The OID of the body of entry point fn_oid: in the same schema, named
 *		"_NAME_impl" ("NAME_impl" when NAME starts with "_"), with the same
 *		argument types, result and owner, and SECURITY DEFINER.  Anything
 *		else is an installation error, raised here rather than calling a
 *		function that would run with the wrong rights.
 */
static Oid
body_of(Oid fn_oid)
{
	HeapTuple	tup;
	Form_pg_proc entry;
	HeapTuple	btup;
	Form_pg_proc body;
	char		name[NAMEDATALEN];
	Oid			body_oid;
	const char *ename;

	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn_oid));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn_oid);
	entry = (Form_pg_proc) GETSTRUCT(tup);
	ename = NameStr(entry->proname);
	if (snprintf(name, sizeof(name), "%s%s_impl", ename[0] == '_' ? "" : "_", ename) >= (int) sizeof(name))
		elog(ERROR, "llm_usage: function name \"%s\" is too long for an entry point", ename);

	btup = SearchSysCache3(PROCNAMEARGSNSP, CStringGetDatum(name),
						   PointerGetDatum(&entry->proargtypes),
						   ObjectIdGetDatum(entry->pronamespace));
	if (!HeapTupleIsValid(btup))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_FUNCTION),
				 errmsg("llm_usage entry point %s has no body %s", ename, name),
				 errhint("The extension's SQL objects are incomplete: reinstall or update the extension.")));
	body = (Form_pg_proc) GETSTRUCT(btup);
	if (!body->prosecdef || body->proowner != entry->proowner ||
		body->prorettype != entry->prorettype || body->proretset != entry->proretset)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_FUNCTION_DEFINITION),
				 errmsg("llm_usage body %s does not match its entry point %s", name, ename),
				 errdetail("A body must be SECURITY DEFINER, owned by the entry point's owner, with the same result.")));
	body_oid = body->oid;
	ReleaseSysCache(btup);
	ReleaseSysCache(tup);
	return body_oid;
}

/*
 * llm_usage_entry
 *		The C entry point of an API function (see the file header): record
 *		the caller, run the body with the arguments and result context of
 *		this call but no input collation, and forget the caller again on
 *		every way out.  The body is looked up once per call site
 *		(fn_extra).  Set-returning bodies work in either mode, as under
 *		fmgr_security_definer.
 */
Datum
llm_usage_entry(PG_FUNCTION_ARGS)
{
	EntryCache *volatile cache = (EntryCache *) fcinfo->flinfo->fn_extra;
	FmgrInfo   *save_flinfo;
	Oid			save_collation;
	Oid			caller;
	Datum		result;

	if (cache == NULL)
	{
		cache = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof(EntryCache));
		fmgr_info_cxt(body_of(fcinfo->flinfo->fn_oid), &cache->body, fcinfo->flinfo->fn_mcxt);
		cache->body.fn_expr = fcinfo->flinfo->fn_expr;
		fcinfo->flinfo->fn_extra = cache;
	}

	/* inside a body the current user is the owner: keep the body's caller */
	caller = llm_usage_caller_id();
	if (caller_depth >= MAX_CALLER_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_STATEMENT_TOO_COMPLEX),
				 errmsg("llm_usage functions are nested more than %d deep", MAX_CALLER_DEPTH)));
	caller_stack[caller_depth++] = caller;

	save_flinfo = fcinfo->flinfo;
	save_collation = fcinfo->fncollation;
	PG_TRY();
	{
		fcinfo->flinfo = &cache->body;
		/* never the caller's collation (see the file header) */
		fcinfo->fncollation = InvalidOid;
		result = FunctionCallInvoke(fcinfo);
	}
	PG_FINALLY();
	{
		fcinfo->flinfo = save_flinfo;
		fcinfo->fncollation = save_collation;
		caller_depth--;
	}
	PG_END_TRY();

	return result;
}

/*
 * llm_usage_function_owner
 *		The owner of a function (for the extension's own functions, the
 *		extension's owner): whose rights a C path that switches user takes.
 *		Looked up in the syscache on every call, so that ALTER FUNCTION ...
 *		OWNER TO and REASSIGN OWNED are seen at once.  Expects a
 *		transaction.
 */
Oid
llm_usage_function_owner(Oid fn)
{
	HeapTuple	tup = SearchSysCache1(PROCOID, ObjectIdGetDatum(fn));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for function %u", fn);
	owner = ((Form_pg_proc) GETSTRUCT(tup))->proowner;
	ReleaseSysCache(tup);
	return owner;
}
