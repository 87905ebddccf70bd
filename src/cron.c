/*-------------------------------------------------------------------------
 *
 * cron.c
 *	  Five-field cron expressions (minute hour day-of-month month
 *	  day-of-week) for llm_usage.collect_schedule, and the next time one
 *	  fires after a given instant, read in a given time zone.
 *
 * Fields take "*", numbers, ranges a-b, lists a,b and steps ("every n"
 * over "*" or over a range, e.g. 0-30/5);
 * day-of-week 0 and 7 are Sunday.  As in cron, when both day fields are
 * restricted a day matches if either does.  A local time skipped by a DST
 * change never fires; a repeated one may fire twice.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "pgtime.h"
#include "utils/timestamp.h"

#include "llm_usage.h"

static bool
parse_field(const char *field, int lo, int hi, uint64 *bits, bool *star, char **error)
{
	char	   *copy = pstrdup(field);
	char	   *save = NULL;

	*bits = 0;
	*star = (strcmp(field, "*") == 0);
	for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save))
	{
		int			a = lo;
		int			b = hi;
		int			step = 1;
		char	   *p = item;
		char	   *end;

		if (*p == '*')
			p++;
		else
		{
			a = (int) strtol(p, &end, 10);
			if (end == p)
				goto bad;
			p = end;
			b = a;
			if (*p == '-')
			{
				p++;
				b = (int) strtol(p, &end, 10);
				if (end == p)
					goto bad;
				p = end;
			}
		}
		if (*p == '/')
		{
			p++;
			step = (int) strtol(p, &end, 10);
			if (end == p || step < 1)
				goto bad;
			p = end;
			if (item[0] != '*' && b == a)
				b = hi;
		}
		if (*p != '\0' || a < lo || b > hi || a > b)
			goto bad;
		for (int v = a; v <= b; v += step)
			*bits |= UINT64CONST(1) << v;
	}
	return true;

bad:
	*error = psprintf("\"%s\" is not a valid cron field for values %d to %d", field, lo, hi);
	return false;
}

/*
 * cron_parse
 *		Parse expr into spec; on failure set *error (palloc'd) and return
 *		false.  Never raises an ERROR, so it can run in a GUC check hook.
 */
bool
cron_parse(const char *expr, CronSpec *spec, char **error)
{
	char	   *copy = pstrdup(expr);
	char	   *fields[6];
	int			n = 0;
	char	   *save = NULL;
	uint64		bits;
	bool		scratch;

	for (char *f = strtok_r(copy, " \t", &save); f; f = strtok_r(NULL, " \t", &save))
	{
		if (n == 5)
		{
			n++;
			break;
		}
		fields[n++] = f;
	}
	if (n != 5)
	{
		*error = psprintf("a cron expression has five fields, \"%s\" has %s", expr, n > 5 ? "more" : "fewer");
		return false;
	}
	memset(spec, 0, sizeof(*spec));
	if (!parse_field(fields[0], 0, 59, &bits, &scratch, error))
		return false;
	spec->minutes = bits;
	if (!parse_field(fields[1], 0, 23, &bits, &scratch, error))
		return false;
	spec->hours = (uint32) bits;
	if (!parse_field(fields[3], 1, 12, &bits, &scratch, error))
		return false;
	spec->months = (uint16) bits;
	if (!parse_field(fields[4], 0, 7, &bits, &spec->weekdays_star, error))
		return false;
	if (bits & (UINT64CONST(1) << 7))
		bits |= 1;				/* 7 is Sunday too */
	spec->weekdays = (uint8) (bits & 0x7f);
	if (!parse_field(fields[2], 1, 31, &bits, &spec->days_star, error))
		return false;
	spec->days = (uint32) bits;
	return true;
}

static bool
day_matches(const CronSpec *spec, const struct pg_tm *tm)
{
	bool		dom = (spec->days >> tm->tm_mday) & 1;
	bool		dow = (spec->weekdays >> tm->tm_wday) & 1;

	if (!((spec->months >> (tm->tm_mon + 1)) & 1))
		return false;
	if (spec->days_star || spec->weekdays_star)
		return dom && dow;
	return dom || dow;
}

/*
 * cron_next
 *		The first whole minute strictly after "after" that matches, read in
 *		tz; DT_NOEND if none within 366 days (e.g. "0 0 31 2 *").  Bounded:
 *		at most about 9,000 steps.
 */
TimestampTz
cron_next(const CronSpec *spec, TimestampTz after, const pg_tz *tz)
{
	pg_time_t	t = timestamptz_to_time_t(after);
	pg_time_t	limit;

	t = t - (t % 60) + 60;
	limit = t + (pg_time_t) 366 * 86400;
	while (t <= limit)
	{
		struct pg_tm *tm = pg_localtime(&t, tz);

		if (tm == NULL)
			break;
		if (!day_matches(spec, tm) || !((spec->hours >> tm->tm_hour) & 1))
		{
			t += (60 - tm->tm_min) * 60;	/* next local hour */
			continue;
		}
		if ((spec->minutes >> tm->tm_min) & 1)
			return time_t_to_timestamptz(t);
		t += 60;
	}
	return DT_NOEND;
}
