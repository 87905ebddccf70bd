/*-------------------------------------------------------------------------
 *
 * period.h
 *	  Calendar periods in a time zone (period.c), as the SQL function
 *	  llm_usage._period_bounds() defines them (src/sql/periods.sql).
 *
 *-------------------------------------------------------------------------
 */
#ifndef LLM_USAGE_PERIOD_H
#define LLM_USAGE_PERIOD_H

#include "datatype/timestamp.h"

typedef enum PeriodUnit
{
	PERIOD_MINUTE = 0,
	PERIOD_HOUR,
	PERIOD_DAY,
	PERIOD_MONTH
} PeriodUnit;

extern void period_bounds_in_zone(PeriodUnit unit, TimestampTz at, const char *tzname,
								  TimestampTz *start, TimestampTz *end);

#endif							/* LLM_USAGE_PERIOD_H */
