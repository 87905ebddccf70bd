/*-------------------------------------------------------------------------
 *
 * period.c
 *	  The minute, hour, day or month containing an instant in a time zone,
 *	  for the C quota path.
 *
 * The definitions are those of src/sql/periods.sql (README "Periods"):
 * a day or month runs from the first instant of its local date (01:00
 * where midnight does not exist, the first midnight where it occurs
 * twice) to the first instant of the next one; an hour follows the local
 * wall clock, a repeated hour being two periods; a minute is the UTC
 * minute.  The SQL finds a change of UTC offset by bisection; here it is
 * read from the zone's transitions (pg_next_dst_boundary), an
 * independent computation of the same periods that t_differential.sh
 * compares with the SQL one.
 *
 * Instants are TimestampTz (microseconds since 2000-01-01 UTC), offsets
 * whole seconds east of UTC, transitions whole seconds.  "Local" values
 * are wall-clock readings stored as if they were UTC instants.  Every
 * search window (16 hours around a midnight, the hour around an instant)
 * is assumed to hold at most one change of offset, as in the SQL.
 *
 * _period_bounds_c() makes the same computation callable from SQL, for
 * the tests.  No locks, no catalog access; pg_tzset() caches the zones it
 * loads.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "fmgr.h"
#include "funcapi.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "period.h"

#define USECS_PER_16H	(16 * USECS_PER_HOUR)

/* a zone by name, as AT TIME ZONE accepts it for the names tenants have */
static const pg_tz *
zone(const char *tzname)
{
	pg_tz	   *tz = pg_tzset(tzname);

	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" not recognized", tzname)));
	return tz;
}

/* floor division of microseconds */
static int64
floor_div(int64 a, int64 b)
{
	int64		q = a / b;

	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* the zone's UTC offset at an instant, in microseconds */
static int64
offset_at(TimestampTz t, const pg_tz *tz)
{
	pg_time_t	s = (pg_time_t) (floor_div(t, USECS_PER_SEC) +
								 (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY);

	return (int64) pg_localtime(&s, tz)->tm_gmtoff * USECS_PER_SEC;
}

/*
 * change_in
 *		The first instant in (from, to] at which the zone's offset is no
 *		longer its offset at "from": the next transition that changes it.
 *		The caller knows the offsets at "from" and "to" differ.
 */
static TimestampTz
change_in(TimestampTz from, TimestampTz to, const pg_tz *tz)
{
	int64		base = offset_at(from, tz);
	pg_time_t	cur = (pg_time_t) (floor_div(from, USECS_PER_SEC) +
								   (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY);

	for (;;)
	{
		long int	before_off,
					after_off;
		int			before_dst,
					after_dst;
		pg_time_t	boundary;
		TimestampTz at;

		if (pg_next_dst_boundary(&cur, &before_off, &before_dst, &boundary,
								 &after_off, &after_dst, tz) != 1)
			break;
		if (boundary <= cur)	/* never go backwards */
		{
			cur++;
			continue;
		}
		at = (TimestampTz) (boundary - (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY) * USECS_PER_SEC;
		if (at > to)
			break;
		if ((int64) after_off * USECS_PER_SEC != base)
			return at;
		cur = boundary;
	}
	/* the offsets differ, so a change was there: the caller's window is off */
	elog(ERROR, "no change of UTC offset found where one was expected");
	return to;					/* keep the compiler quiet */
}

/*
 * local_day_start
 *		The first instant of local date "day" (days since 2000-01-01): its
 *		midnight, the first of two, or the change where it has none.
 */
static TimestampTz
local_day_start(int day, const pg_tz *tz)
{
	TimestampTz a = (TimestampTz) day * USECS_PER_DAY;	/* midnight's wall clock */
	int64		o1 = offset_at(a - USECS_PER_16H, tz);
	int64		o2 = offset_at(a + USECS_PER_16H, tz);
	TimestampTz t;

	if (o1 == o2)
		return a - o1;
	t = change_in(a - USECS_PER_16H, a + USECS_PER_16H, tz);
	if (a - o1 < t)
		return a - o1;
	return Max(t, a - o2);
}

/* days since 2000-01-01 of the first of the month containing "day", plus months */
static int
month_first(int day, int plus)
{
	int			y,
				m,
				d;

	j2date(day + POSTGRES_EPOCH_JDATE, &y, &m, &d);
	m += plus;
	y += (m - 1) / 12;
	m = (m - 1) % 12 + 1;
	return date2j(y, m, 1) - POSTGRES_EPOCH_JDATE;
}

/*
 * period_bounds_in_zone
 *		Start and end of the period containing "at" in zone tzname.
 *		Raises an error for an unknown zone.
 */
void
period_bounds_in_zone(PeriodUnit unit, TimestampTz at, const char *tzname,
					  TimestampTz *start, TimestampTz *end)
{
	const pg_tz *tz = zone(tzname);
	int64		o = offset_at(at, tz);
	TimestampTz local = at + o;

	switch (unit)
	{
		case PERIOD_MINUTE:
			*start = at - (local - floor_div(local, USECS_PER_MINUTE) * USECS_PER_MINUTE);
			*end = *start + USECS_PER_MINUTE;
			break;
		case PERIOD_HOUR:
			{
				TimestampTz h = floor_div(local, USECS_PER_HOUR) * USECS_PER_HOUR;	/* the local hour */
				int64		op;
				TimestampTz t;

				/* start: HH:00 at the current offset, unless the clocks changed since */
				op = offset_at(h - o, tz);
				if (op == o)
					*start = h - o;
				else
				{
					t = change_in(h - o, at, tz);
					/* a forward change within the hour continues it; any other starts a period */
					*start = (op < o && h - op < t) ? h - op : t;
				}
				/* end: HH+1:00 at the current offset, unless the clocks change before */
				op = offset_at(h + USECS_PER_HOUR - o, tz);
				if (op == o)
					*end = h + USECS_PER_HOUR - o;
				else
				{
					t = change_in(at, h + USECS_PER_HOUR - o, tz);
					*end = (op > o && t + op < h + USECS_PER_HOUR) ? h + USECS_PER_HOUR - op : t;
				}
				break;
			}
		case PERIOD_DAY:
		case PERIOD_MONTH:
			{
				int			d = (int) floor_div(local, USECS_PER_DAY);
				int			d0 = unit == PERIOD_DAY ? d : month_first(d, 0);
				int			d1 = unit == PERIOD_DAY ? d + 1 : month_first(d, 1);

				*start = local_day_start(d0, tz);
				*end = local_day_start(d1, tz);
				if (at >= *end)
				{
					/* the clocks went back past midnight: the next one began */
					*start = *end;
					*end = local_day_start(unit == PERIOD_DAY ? d + 2 : month_first(d, 2), tz);
				}
				break;
			}
	}
}

PG_FUNCTION_INFO_V1(llm_usage_period_bounds_c);

/*
 * llm_usage._period_bounds_c(period text, at timestamptz, tz text,
 *		OUT period_start timestamptz, OUT period_end timestamptz)
 *		What the C quota path computes, callable from SQL for the tests
 *		that compare it with _period_bounds() and with zoneinfo.
 */
Datum
llm_usage_period_bounds_c(PG_FUNCTION_ARGS)
{
	char	   *period = text_to_cstring(PG_GETARG_TEXT_PP(0));
	TimestampTz at = PG_GETARG_TIMESTAMPTZ(1);
	char	   *tzname = text_to_cstring(PG_GETARG_TEXT_PP(2));
	static const char *const names[] = {"minute", "hour", "day", "month"};
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	TimestampTz start,
				end;
	int			unit = -1;

	for (int i = 0; i < lengthof(names); i++)
		if (strcmp(period, names[i]) == 0)
			unit = i;
	if (unit < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown period \"%s\"", period),
				 errhint("Periods are: minute, hour, day, month.")));
	if (TIMESTAMP_NOT_FINITE(at))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("at must be a finite time")));
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "_period_bounds_c must return a record");
	period_bounds_in_zone((PeriodUnit) unit, at, tzname, &start, &end);
	if (!IS_VALID_TIMESTAMP(start) || !IS_VALID_TIMESTAMP(end))
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("the %s containing %s ends outside the range of timestamp with time zone",
						period, timestamptz_to_str(at))));
	values[0] = TimestampTzGetDatum(start);
	values[1] = TimestampTzGetDatum(end);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
