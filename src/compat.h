/*-------------------------------------------------------------------------
 *
 * compat.h
 *	  Every PostgreSQL version difference llm_usage cares about, in one place.
 *
 * llm_usage targets PostgreSQL 15 and later; shared memory is requested in
 * shmem_request_hook, which exists from 15 on.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LLM_USAGE_COMPAT_H
#define LLM_USAGE_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "llm_usage requires PostgreSQL 15 or later"
#endif

#endif							/* LLM_USAGE_COMPAT_H */
