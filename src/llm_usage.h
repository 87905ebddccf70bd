/*-------------------------------------------------------------------------
 *
 * llm_usage.h
 *	  Declarations shared by the llm_usage C files.
 *
 *-------------------------------------------------------------------------
 */
#ifndef LLM_USAGE_H
#define LLM_USAGE_H

#include "compat.h"

#define LLM_USAGE_VERSION "1.0"

/* true when the library was loaded through shared_preload_libraries */
extern bool llm_usage_preloaded;

#endif							/* LLM_USAGE_H */
