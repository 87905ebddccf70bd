/*-------------------------------------------------------------------------
 *
 * caller.c
 *	  Who is calling: the role the tenant checks are made for.
 *
 * Every llm_usage function that touches tenant data is SECURITY DEFINER,
 * so inside it current_user is the extension owner.  The tenant checks
 * need the role that called the function instead.  session_user is the
 * wrong answer too: it ignores SET ROLE, so a pooler that logs in once
 * and switches roles per client would be checked as its login role.
 *
 * GetOuterUserId() is the role set by login or SET ROLE, unaffected by
 * SECURITY DEFINER switches: exactly current_user as the client sees it.
 * A client cannot change it without SET ROLE, which is itself checked by
 * PostgreSQL against role membership, and which is refused inside a
 * SECURITY DEFINER function.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"

#include "llm_usage.h"

PG_FUNCTION_INFO_V1(llm_usage_caller);

/*
 * llm_usage._caller() RETURNS oid
 *		The calling role, as described in the file header.  Takes no locks.
 */
Datum
llm_usage_caller(PG_FUNCTION_ARGS)
{
	PG_RETURN_OID(GetOuterUserId());
}
