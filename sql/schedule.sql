--
-- llm_usage.next_collection(): the collection schedule as Vixie cron and
-- pg_cron read it (random expressions are checked against croniter by
-- test/t_schedule_cron.sh); its refusals and their SQLSTATEs
--
SET timezone = 'UTC';
CREATE FUNCTION pg_temp.nc(expr text, after timestamptz, zone text DEFAULT 'UTC') RETURNS text
LANGUAGE sql AS $$ SELECT to_char(llm_usage.next_collection(expr, after, zone) AT TIME ZONE zone, 'YYYY-MM-DD HH24:MI Dy')
                         || ' ' || zone $$;

-- fields, names, lists, ranges, steps
SELECT pg_temp.nc('*/15 * * * *', '2026-05-05 10:07:30');
SELECT pg_temp.nc('5/20 9-17 * * *', '2026-05-05 17:46');
SELECT pg_temp.nc('0 9 * * mon-fri', '2026-05-08 09:00');          -- Friday 09:00 exactly: strictly after
SELECT pg_temp.nc('0 0 1 jan,Jul *', '2026-05-05 00:00');
SELECT pg_temp.nc('30 4 * * 7', '2026-05-05 00:00');                -- 7 is Sunday
SELECT pg_temp.nc('30 4 * * SUN', '2026-05-05 00:00');
SELECT pg_temp.nc('0 12 1-7/3,20 * *', '2026-05-08 13:00');
-- macros
SELECT pg_temp.nc(m, '2026-05-05 10:07') FROM unnest(ARRAY['@hourly', '@daily', '@midnight', '@weekly', '@monthly', '@yearly', '@annually', '  @DAILY  ']) m;
-- day of month and day of week: OR-ed when neither starts with *, else AND-ed
SELECT pg_temp.nc('0 0 13 * 5', '2026-02-01');                      -- the 13th or a Friday
SELECT pg_temp.nc('0 0 */2 * 1', '2026-02-01');                     -- odd-numbered days that are Mondays
SELECT pg_temp.nc('0 0 */2 * 1', '2026-02-09');
SELECT pg_temp.nc('0 0 * * 1', '2026-02-01');
SELECT pg_temp.nc('0 0 13 * *', '2026-02-01');
-- rare schedules are found, however far
SELECT pg_temp.nc('0 0 29 2 *', '2026-03-01');
SELECT pg_temp.nc('0 0 29 2 *', '2097-03-01');                      -- 2100 is no leap year
SELECT pg_temp.nc('0 0 */29 2 1', '2026-03-01');                     -- Feb 1 or 29 that is a Monday
SELECT pg_temp.nc('59 23 31 12 *', '2026-12-31 23:59');
-- daylight saving: a skipped wall time never fires, a repeated one fires once
SELECT pg_temp.nc('30 2 * * *', '2026-03-08 00:00', 'America/New_York');   -- 02:30 skipped on March 8
SELECT pg_temp.nc('30 1 * * *', '2026-11-01 00:00', 'America/New_York');   -- 01:30 EDT
SELECT llm_usage.next_collection('30 1 * * *', '2026-11-01 05:30+00', 'America/New_York') AS after_first_0130; -- not again at 01:30 EST
SELECT llm_usage.next_collection('0 * * * *', '2026-11-01 05:00+00', 'America/New_York') AS after_0100_edt;
SELECT llm_usage.next_collection('0 0 * * *', '2026-09-05 12:00+00', 'America/Santiago') AS midnight_skipped;
SELECT llm_usage.next_collection('0 2 * * *', '2026-10-03 12:00+00', 'Australia/Lord_Howe') AS half_hour_shift;
-- defaults: llm_usage.collect_schedule (0 0 * * *) in llm_usage.timezone (UTC), after now()
SELECT llm_usage.next_collection() = date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '1 day' AS default_schedule;
SELECT llm_usage.next_collection('0 0 * * *', '2026-05-05 12:00', NULL) AS default_zone;

-- refused, with SQLSTATE 22023 and the reason
CREATE FUNCTION pg_temp.why(q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE s text; m text; d text;
BEGIN
    EXECUTE q;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS s = RETURNED_SQLSTATE, m = MESSAGE_TEXT, d = PG_EXCEPTION_DETAIL;
    RETURN s || ': ' || m || ': ' || d;
END $$;
\set VERBOSITY verbose
SELECT e AS schedule, pg_temp.why(format('SELECT llm_usage.next_collection(%L, now())', e)) AS refused
  FROM unnest(ARRAY['61 * * * *', '4294967296 * * * *', '0 24 * * *', '0 0 0 * *', '0 0 32 * *', '0 0 * 13 *',
                    '0 0 * * 8', '5-1 * * * *', '*/0 * * * *', '*/61 * * * *', '1,,2 * * * *', '1, * * * *',
                    '0 0 * foo *', '0 0 * * monday', '0 0 * jan-feb-mar *', '-1 * * * *', '0 0 * * *x',
                    '0 0 31 2 *', '0 0 30 2 *', '0 0 31 4,6,9,11 *', '0 0 * * * *', '0 0 * *', '', '@reboot',
                    '@daily 5', '@fortnightly']) e;
SELECT try($$SELECT llm_usage.next_collection('0 0 * * *', now(), 'Mars/Olympus_Mons')$$);
SELECT try($$SELECT llm_usage.next_collection('0 0 * * *', NULL)$$);
SELECT try($$SELECT llm_usage.next_collection('0 0 * * *', 'infinity')$$);
-- no time after the last one timestamptz can hold: never
SELECT llm_usage.next_collection('0 0 * * *', '294276-12-31 12:00+00', 'UTC') AS after_the_end_of_time;
-- the C period bounds (the quota path's, callable for tests) refuse what
-- they cannot bound
SELECT try($$SELECT llm_usage._period_bounds_c('day', 'infinity', 'UTC')$$);
SELECT try($$SELECT llm_usage._period_bounds_c('month', '-infinity', 'Asia/Tokyo')$$);
SELECT try($$SELECT llm_usage._period_bounds_c('hour', '294276-12-31 23:59:59+00', 'UTC')$$);
\set VERBOSITY default
-- admin only
SELECT has_function_privilege('llm_usage_admin', 'llm_usage.next_collection(text, timestamptz, text)', 'EXECUTE') AS admin,
       has_function_privilege('llm_usage_app', 'llm_usage.next_collection(text, timestamptz, text)', 'EXECUTE') AS app,
       has_function_privilege('llm_usage_reader', 'llm_usage.next_collection(text, timestamptz, text)', 'EXECUTE') AS reader,
       has_function_privilege('public', 'llm_usage.next_collection(text, timestamptz, text)', 'EXECUTE') AS public;
