/*-------------------------------------------------------------------------
 *
 * cron.c
 *	  Cron expressions for llm_usage.collect_schedule, as Vixie cron and
 *	  pg_cron read them, and the next time one fires after a given instant
 *	  in a given time zone; llm_usage.next_collection() shows it in SQL.
 *
 * Syntax: five fields, minute (0-59), hour (0-23), day of month (1-31),
 * month (1-12 or jan-dec), day of week (0-7 or sun-sat; 0 and 7 are
 * Sunday), separated by blanks; or one of @yearly (@annually), @monthly,
 * @weekly, @daily (@midnight), @hourly.  A field is a comma-separated list
 * of "*", a value, or a range a-b, each optionally followed by /step (every
 * step-th value of the range; "a/step" means a to the end of the field).
 * Names are case-insensitive.  Refused: values out of range or too long
 * ("4294967296"), backward ranges, a step of 0 or beyond the field,
 * anything else after a value, and schedules that can never fire
 * ("0 0 31 2 *", "0 0 30 2 *").
 *
 * Days: as in Vixie cron, when the day-of-month or the day-of-week field
 * starts with "*" (also "*" followed by /step) a day must match both; when
 * neither does, a day matches if either matches ("0 0 13 * 5" is every 13th
 * and every Friday; a day-of-month of "*" with a step of 2 and a
 * day-of-week of 1 is the odd-numbered days that are Mondays).
 *
 * Time zone: the fields are read as local wall-clock time.  A wall-clock
 * time that a daylight-saving change skips does not exist and never fires;
 * one that a change repeats fires once, at its first occurrence.  So the
 * next fire time after an instant is the first instant of the earliest
 * matching wall-clock minute whose first instant is later than it.
 *
 * Rare schedules are found however far ahead they are ("0 0 29 2 *" on the
 * next leap day, "0 0 29 2 1" on the next one that is a Monday): the search
 * covers 400 years, the Gregorian calendar's whole cycle, stepping over
 * days with calendar arithmetic and asking the time zone only about
 * candidate minutes.
 *
 * The parser never raises an ERROR (it runs in a GUC check hook).  No
 * locks, no transaction state.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "pgtime.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/timestamp.h"

#include "llm_usage.h"

#define SEARCH_DAYS (400 * 366)

PG_FUNCTION_INFO_V1(llm_usage_next_collection);

static const char *const month_names[] = {
	"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec", NULL
};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

typedef struct FieldDef
{
	const char *what;
	int			lo;
	int			hi;
	const char *const *names;	/* names[i] is value lo + i */
} FieldDef;

static const FieldDef fields[5] = {
	{"minute", 0, 59, NULL},
	{"hour", 0, 23, NULL},
	{"day of month", 1, 31, NULL},
	{"month", 1, 12, month_names},
	{"day of week", 0, 7, day_names},
};

/*
 * one value (a number or, where the field has them, a name) at *p; -1 and
 * *error set on failure; *p is moved past it
 */
static int
parse_value(const char **p, const FieldDef *f, const char *field, char **error)
{
	const char *s = *p;

	if (isdigit((unsigned char) *s))
	{
		int			v = 0;
		int			n = 0;

		for (; isdigit((unsigned char) *s); s++, n++)
		{
			if (n >= 3)
			{
				*error = psprintf("\"%s\" in the %s field is out of range (%d to %d)", field, f->what, f->lo, f->hi);
				return -1;
			}
			v = v * 10 + (*s - '0');
		}
		if (v < f->lo || v > f->hi)
		{
			*error = psprintf("%d in the %s field is out of range (%d to %d)", v, f->what, f->lo, f->hi);
			return -1;
		}
		*p = s;
		return v;
	}
	if (f->names != NULL && isalpha((unsigned char) *s))
	{
		for (int i = 0; f->names[i]; i++)
		{
			if (pg_strncasecmp(s, f->names[i], 3) == 0 && !isalpha((unsigned char) s[3]))
			{
				*p = s + 3;
				return f->lo + i;
			}
		}
	}
	*error = psprintf("\"%s\" is not a valid %s field", field, f->what);
	return -1;
}

/* one field into *bits; *star when it starts with '*' */
static bool
parse_field(const char *field, const FieldDef *f, uint64 *bits, bool *star, char **error)
{
	const char *p = field;

	*bits = 0;
	*star = (field[0] == '*');
	for (;;)
	{
		int			a;
		int			b;
		int			step = 1;
		bool		single = false;

		if (*p == '*')
		{
			a = f->lo;
			b = f->hi;
			p++;
		}
		else
		{
			if ((a = parse_value(&p, f, field, error)) < 0)
				return false;
			b = a;
			single = true;
			if (*p == '-')
			{
				p++;
				if ((b = parse_value(&p, f, field, error)) < 0)
					return false;
				single = false;
				if (b < a)
				{
					*error = psprintf("the range %d-%d in the %s field goes backwards", a, b, f->what);
					return false;
				}
			}
		}
		if (*p == '/')
		{
			int			n = 0;

			p++;
			step = 0;
			for (; isdigit((unsigned char) *p); p++, n++)
			{
				if (n >= 3)
					break;
				step = step * 10 + (*p - '0');
			}
			if (n == 0 || n >= 3 || step < 1 || step > f->hi - f->lo + 1)
			{
				*error = psprintf("\"%s\" has a step that is not 1 to %d", field, f->hi - f->lo + 1);
				return false;
			}
			if (single)
				b = f->hi;
		}
		for (int v = a; v <= b; v += step)
			*bits |= UINT64CONST(1) << v;
		if (*p == ',')
		{
			p++;
			continue;
		}
		if (*p != '\0')
		{
			*error = psprintf("\"%s\" is not a valid %s field", field, f->what);
			return false;
		}
		return true;
	}
}

static int
days_in_month(int month)
{
	static const int days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return days[month - 1];		/* February: 29, in leap years */
}

/*
 * cron_parse
 *		Parse expr into spec; on failure set *error (palloc'd) and return
 *		false.  Never raises an ERROR, so it can run in a GUC check hook.
 */
bool
cron_parse(const char *expr, CronSpec *spec, char **error)
{
	static const struct
	{
		const char *name;
		const char *expansion;
	}			macros[] = {
		{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
		{"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"}, {"@midnight", "0 0 * * *"},
		{"@hourly", "0 * * * *"},
	};
	char	   *copy;
	char	   *fieldv[6];
	int			n = 0;
	char	   *save = NULL;
	uint64		bits[5];
	bool		star[5];
	bool		can_fire = false;

	while (*expr == ' ' || *expr == '\t')
		expr++;
	if (expr[0] == '@')
	{
		size_t		len = strcspn(expr, " \t");
		const char *rest = expr + len;

		while (*rest == ' ' || *rest == '\t')
			rest++;
		for (int i = 0; i < lengthof(macros); i++)
		{
			if (strlen(macros[i].name) == len && pg_strncasecmp(expr, macros[i].name, len) == 0 && *rest == '\0')
				return cron_parse(macros[i].expansion, spec, error);
		}
		*error = psprintf("\"%s\" is not a supported schedule (@yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly)", expr);
		return false;
	}

	copy = pstrdup(expr);
	for (char *f = strtok_r(copy, " \t", &save); f; f = strtok_r(NULL, " \t", &save))
	{
		if (n == 5)
		{
			n++;
			break;
		}
		fieldv[n++] = f;
	}
	if (n != 5)
	{
		*error = psprintf("a cron expression has five fields, \"%s\" has %s", expr, n > 5 ? "more" : "fewer");
		return false;
	}
	for (int i = 0; i < 5; i++)
	{
		if (!parse_field(fieldv[i], &fields[i], &bits[i], &star[i], error))
			return false;
	}
	memset(spec, 0, sizeof(*spec));
	spec->minutes = bits[0];
	spec->hours = (uint32) bits[1];
	spec->days = (uint32) bits[2];
	spec->months = (uint16) bits[3];
	if (bits[4] & (UINT64CONST(1) << 7))
		bits[4] |= 1;			/* 7 is Sunday too */
	spec->weekdays = (uint8) (bits[4] & 0x7f);
	spec->days_star = star[2];
	spec->weekdays_star = star[4];

	/*
	 * Can it ever fire?  When the days are OR-ed, the weekday alone matches
	 * some day of any month.  When they are AND-ed, some selected month must
	 * have a selected day; every such date falls on every weekday within
	 * the 400-year cycle (February 29 included).
	 */
	if (!spec->days_star && !spec->weekdays_star)
		can_fire = true;
	for (int m = 1; m <= 12 && !can_fire; m++)
		for (int d = 1; d <= days_in_month(m) && !can_fire; d++)
			can_fire = ((spec->months >> m) & 1) && ((spec->days >> d) & 1);
	if (!can_fire)
	{
		*error = psprintf("\"%s\" can never fire: no selected month has a selected day", expr);
		return false;
	}
	return true;
}

static bool
day_matches(const CronSpec *spec, int month, int mday, int wday)
{
	bool		dom = (spec->days >> mday) & 1;
	bool		dow = (spec->weekdays >> wday) & 1;

	if (!((spec->months >> month) & 1))
		return false;
	if (spec->days_star || spec->weekdays_star)
		return dom && dow;
	return dom || dow;
}

static long
gmtoff_at(pg_time_t t, const pg_tz *tz)
{
	struct pg_tm *tm = pg_localtime(&t, tz);

	return tm ? tm->tm_gmtoff : 0;
}

/*
 * first_instant: the first instant (Unix seconds) at which the local wall
 * clock in tz shows wall (seconds since 1970-01-01 00:00 of the wall
 * clock); false when the wall time is skipped.  Assumes at most one offset
 * change within 16 hours either side, as in every zone's rules.
 */
static bool
first_instant(pg_time_t wall, const pg_tz *tz, pg_time_t *out)
{
	long		offs[3];
	bool		found = false;

	offs[0] = gmtoff_at(wall - 16 * 3600, tz);
	offs[1] = gmtoff_at(wall, tz);
	offs[2] = gmtoff_at(wall + 16 * 3600, tz);
	for (int i = 0; i < 3; i++)
	{
		pg_time_t	t = wall - offs[i];

		if (gmtoff_at(t, tz) == offs[i] && (!found || t < *out))
		{
			*out = t;
			found = true;
		}
	}
	return found;
}

/*
 * cron_next
 *		The first instant strictly after "after" at which spec fires in tz
 *		(see the file header); DT_NOEND if none within 400 years (only
 *		possible when every matching wall time is skipped by DST changes).
 */
TimestampTz
cron_next(const CronSpec *spec, TimestampTz after, const pg_tz *tz)
{
	pg_time_t	a;
	struct pg_tm *lt;
	int			j0;
	int			h0;
	int			m0;

	if (TIMESTAMP_NOT_FINITE(after))
		return DT_NOEND;
	a = timestamptz_to_time_t(after);
	lt = pg_localtime(&a, tz);
	if (lt == NULL)
		return DT_NOEND;
	j0 = date2j(lt->tm_year + 1900, lt->tm_mon + 1, lt->tm_mday);
	h0 = lt->tm_hour;
	m0 = lt->tm_min;

	for (int j = j0; j < j0 + SEARCH_DAYS; j++)
	{
		int			y;
		int			mon;
		int			d;

		j2date(j, &y, &mon, &d);
		if (!((spec->months >> mon) & 1))
		{
			/* on to the last day of this month */
			j = (mon == 12 ? date2j(y + 1, 1, 1) : date2j(y, mon + 1, 1)) - 1;
			continue;
		}
		if (!day_matches(spec, mon, d, j2day(j)))
			continue;
		for (int h = (j == j0 ? h0 : 0); h < 24; h++)
		{
			if (!((spec->hours >> h) & 1))
				continue;
			for (int mi = (j == j0 && h == h0 ? m0 : 0); mi < 60; mi++)
			{
				pg_time_t	wall;
				pg_time_t	t = 0;

				if (!((spec->minutes >> mi) & 1))
					continue;
				wall = (pg_time_t) (j - UNIX_EPOCH_JDATE) * SECS_PER_DAY + h * 3600 + mi * 60;
				if (first_instant(wall, tz, &t) && time_t_to_timestamptz(t) > after)
					return time_t_to_timestamptz(t);
			}
		}
	}
	return DT_NOEND;
}

/*
 * llm_usage.next_collection(schedule text DEFAULT NULL,
 *		after timestamptz DEFAULT now(), timezone text DEFAULT NULL)
 *		RETURNS timestamptz
 *		When a schedule (default: llm_usage.collect_schedule) fires next
 *		after "after", read in timezone (default: llm_usage.timezone).
 *		22023 for a bad schedule, zone or instant.
 */
Datum
llm_usage_next_collection(PG_FUNCTION_ARGS)
{
	char	   *schedule = PG_ARGISNULL(0) ? llm_usage_collect_schedule : text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *zone = PG_ARGISNULL(2) ? llm_usage_timezone : text_to_cstring(PG_GETARG_TEXT_PP(2));
	TimestampTz after;
	pg_tz	   *tz;
	CronSpec	spec;
	char	   *error = NULL;
	TimestampTz next;

	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("after must not be NULL")));
	after = PG_GETARG_TIMESTAMPTZ(1);
	if (TIMESTAMP_NOT_FINITE(after))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("after must be a finite time")));
	if (!cron_parse(schedule, &spec, &error))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid schedule"),
				 errdetail("%c%s.", pg_toupper((unsigned char) error[0]), error + 1),
				 errhint("Use five cron fields (minute hour day-of-month month day-of-week), e.g. \"0 9 * * *\", or @daily, @hourly, @weekly, @monthly, @yearly.")));
	tz = pg_tzset(zone);
	if (tz == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("time zone \"%s\" is not recognized", zone),
				 errhint("Use a name from pg_timezone_names, e.g. \"Europe/Berlin\".")));
	next = cron_next(&spec, after, tz);
	if (next == DT_NOEND || !IS_VALID_TIMESTAMP(next))
		PG_RETURN_NULL();		/* never, or not before the end of time */
	PG_RETURN_TIMESTAMPTZ(next);
}
