/*
 * src/sql/periods.sql — calendar periods in a time zone
 *
 * The minute, hour, day or month containing an instant, in a tenant's
 * zone, exactly as README "Periods" defines them; quotas, roll-ups,
 * dashboards and alerts all take their periods from here (and the C quota
 * path from period_bounds() in src/quota.c, which computes the same from
 * the zone's transitions directly; t_differential.sh compares the two).
 *
 *   day, month  from the first instant of the local date (of the month's
 *               first day) to the first instant of the next one: 01:00
 *               where midnight does not exist, the first midnight where it
 *               occurs twice.  A day is 23, 24 or 25 hours long (or 23.5,
 *               24.5 with Lord Howe Island's half-hour change).
 *   hour        the local wall-clock hour: from the instant the clock shows
 *               HH:00 (or, where a change skips into the hour, the change)
 *               to the instant it shows HH+1:00 or the clocks change.  An
 *               hour the clocks repeat is two periods, one per occurrence;
 *               in zones with 30- and 45-minute changes an hour can be 15,
 *               30 or 45 minutes long.
 *   minute      the minute on the local clock (the UTC minute: every offset
 *               since 1972 is whole minutes).
 *
 * Offsets are read from the zone with AT TIME ZONE; a change of offset is
 * found by bisection to the second (the zone database's resolution).  Each
 * search window holds at most one change (changes are months apart).
 */

/* _utc_offset(at, tz): the zone's UTC offset at an instant (east positive) */
CREATE OR REPLACE FUNCTION llm_usage._utc_offset(p_at timestamptz, p_tz text)
RETURNS interval
LANGUAGE sql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT (p_at AT TIME ZONE p_tz) - (p_at AT TIME ZONE 'UTC')
$$;
COMMENT ON FUNCTION llm_usage._utc_offset(timestamptz, text) IS
'Internal: the UTC offset of zone p_tz at instant p_at (east of Greenwich positive).';

/*
 * _tz_change(tz, from, to): the first instant in (from, to] at which the
 * zone's offset is no longer the one it has at "from".  The offsets at
 * "from" and "to" must differ.  Bisection over whole seconds.
 */
CREATE OR REPLACE FUNCTION llm_usage._tz_change(p_tz text, p_from timestamptz, p_to timestamptz)
RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o   interval := llm_usage._utc_offset(p_from, p_tz);
    lo  bigint := floor(extract(epoch FROM p_from))::bigint;
    hi  bigint := ceil(extract(epoch FROM p_to))::bigint;
    mid bigint;
BEGIN
    WHILE hi - lo > 1 LOOP
        mid := lo + (hi - lo) / 2;
        IF llm_usage._utc_offset(to_timestamp(mid), p_tz) = o THEN
            lo := mid;
        ELSE
            hi := mid;
        END IF;
    END LOOP;
    RETURN to_timestamp(hi);
END
$$;
COMMENT ON FUNCTION llm_usage._tz_change(text, timestamptz, timestamptz) IS
'Internal: the instant in (p_from, p_to] at which zone p_tz changes its UTC offset (the offsets at both ends must differ).';

/*
 * _local_day_start(day, tz): the first instant whose local date in tz is
 * "day" (or later, for a date the zone skipped).  Local midnight happens at
 * instants within 16 hours of midnight UTC of that date; the offsets at the
 * two ends of that window tell whether a change lies between.
 */
CREATE OR REPLACE FUNCTION llm_usage._local_day_start(p_day date, p_tz text)
RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    a  timestamptz := p_day::timestamp AT TIME ZONE 'UTC';     -- the local midnight's wall clock, read as UTC
    o1 interval;
    o2 interval;
    t  timestamptz;
BEGIN
    IF NOT isfinite(p_day) THEN
        RETURN a;                       -- -infinity or infinity: the same instant in every zone
    END IF;
    o1 := llm_usage._utc_offset(a - interval '16 hours', p_tz);
    o2 := llm_usage._utc_offset(a + interval '16 hours', p_tz);
    IF o1 = o2 THEN
        RETURN a - o1;
    END IF;
    t := llm_usage._tz_change(p_tz, a - interval '16 hours', a + interval '16 hours');
    IF a - o1 < t THEN
        RETURN a - o1;                  -- midnight before the change (the first of two)
    END IF;
    RETURN greatest(t, a - o2);         -- midnight after it, or the change itself (no midnight)
END
$$;
COMMENT ON FUNCTION llm_usage._local_day_start(date, text) IS
'Internal: the first instant of local date p_day in zone p_tz: its midnight, the first of two, or 01:00 (the change) where it has none.';

/*
 * _period_bounds(period, at, tz): the calendar period containing "at", in
 * zone tz, by the definitions above.
 */
CREATE OR REPLACE FUNCTION llm_usage._period_bounds(p_period text, p_at timestamptz, p_tz text,
                                                    OUT period_start timestamptz, OUT period_end timestamptz)
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o    interval;
    op   interval;
    h    timestamp;
    hu   timestamptz;
    t    timestamptz;
    d    date;
BEGIN
    CASE p_period
    WHEN 'minute' THEN
        -- back to the minute on the local clock (never through a local
        -- time, which a repeated hour makes ambiguous)
        period_start := p_at - ((p_at AT TIME ZONE p_tz) - date_trunc('minute', p_at AT TIME ZONE p_tz));
        period_end := period_start + interval '1 minute';
    WHEN 'hour' THEN
        o := llm_usage._utc_offset(p_at, p_tz);
        h := date_trunc('hour', p_at AT TIME ZONE p_tz);               -- the local hour
        hu := h AT TIME ZONE 'UTC';
        -- start: HH:00 at the current offset, unless the clocks changed since
        op := llm_usage._utc_offset(hu - o, p_tz);
        IF op = o THEN
            period_start := hu - o;
        ELSE
            t := llm_usage._tz_change(p_tz, hu - o, p_at);
            -- a forward change within the hour continues it; any other starts a period
            period_start := CASE WHEN op < o AND hu - op < t THEN hu - op ELSE t END;
        END IF;
        -- end: HH+1:00 at the current offset, unless the clocks change before
        op := llm_usage._utc_offset(hu + interval '1 hour' - o, p_tz);
        IF op = o THEN
            period_end := hu + interval '1 hour' - o;
        ELSE
            t := llm_usage._tz_change(p_tz, p_at, hu + interval '1 hour' - o);
            period_end := CASE WHEN op > o AND t + op < hu + interval '1 hour' THEN hu + interval '1 hour' - op ELSE t END;
        END IF;
    WHEN 'day' THEN
        d := (p_at AT TIME ZONE p_tz)::date;
        period_start := llm_usage._local_day_start(d, p_tz);
        period_end := llm_usage._local_day_start(d + 1, p_tz);
        IF p_at >= period_end THEN       -- the clocks went back past midnight: the next day began
            period_start := period_end;
            period_end := llm_usage._local_day_start(d + 2, p_tz);
        END IF;
    WHEN 'month' THEN
        d := date_trunc('month', p_at AT TIME ZONE p_tz)::date;
        period_start := llm_usage._local_day_start(d, p_tz);
        period_end := llm_usage._local_day_start((d + interval '1 month')::date, p_tz);
        IF p_at >= period_end THEN
            period_start := period_end;
            period_end := llm_usage._local_day_start((d + interval '2 months')::date, p_tz);
        END IF;
    ELSE
        RAISE EXCEPTION 'unknown period "%"', p_period
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Periods are: minute, hour, day, month.';
    END CASE;
END
$$;
COMMENT ON FUNCTION llm_usage._period_bounds(text, timestamptz, text) IS
'Internal: start and end of the minute, hour, day or month containing p_at in zone p_tz (README "Periods": days from the first instant of the local date, hours by the local wall clock).';

CREATE OR REPLACE FUNCTION llm_usage._period_bounds_c(p_period text, p_at timestamptz, p_tz text,
                                                      OUT period_start timestamptz, OUT period_end timestamptz)
LANGUAGE c STABLE STRICT
AS 'MODULE_PATHNAME', 'llm_usage_period_bounds_c';
COMMENT ON FUNCTION llm_usage._period_bounds_c(text, timestamptz, text) IS
'Internal: the period bounds the C quota path computes (src/period.c), for the tests that compare them with _period_bounds() and zoneinfo.';
