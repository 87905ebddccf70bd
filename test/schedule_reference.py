#!/usr/bin/env python3
"""Reference next fire times for test/t_schedule_cron.sh, from an independent
cron implementation (Debian's python3-croniter) and Python's zoneinfo.

  schedule_reference.py gen N SEED     N random (expression, instant, zone) cases, TSV
  schedule_reference.py ref CASES      the reference answers of each case, TSV:
                                       croniter's, and a plain evaluation

croniter computes in local wall-clock time (naive datetimes: its own time
zone handling around DST changes is unreliable in 1.3.5), and zoneinfo maps
wall-clock times to instants by the rule llm_usage documents: a wall-clock
time skipped by a DST change never fires, a repeated one fires once, at its
first occurrence.  Days follow Vixie cron: day-of-month and day-of-week are
OR-ed only when neither field starts with "*" (croniter's day_or).  An
expression croniter finds no time for within 400 years is "never".  One
difference between croniter and Vixie cron is bridged: croniter takes a day
field listing every day for "*", which changes how the two day fields
combine (see ref()).

croniter 1.3.5's get_next() has a bug: coming from February with a
day-of-month list that holds a day February lacks (30, 31), it skips
matching days of March ("6 * 31,1-12 * *" after 2021-02-21 gives March 3,
not March 1).  So each case also gets a plain evaluation (plain()):
croniter's parse of the fields (its "expanded" sets), the Vixie day rule,
every day in turn; the test accepts a disagreement with croniter only when
croniter's answer is later than the plain one and the plain one is a
genuine match.
"""
import datetime as dt
import random
import sys
from zoneinfo import ZoneInfo

from croniter import croniter, CroniterBadDateError

UTC = dt.timezone.utc
ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Europe/London", "Australia/Lord_Howe",
         "Pacific/Chatham", "America/Santiago", "Asia/Kolkata", "America/Sao_Paulo"]
MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
FIELDS = [(0, 59, None), (0, 23, None), (1, 31, None), (1, 12, MONTHS), (0, 7, DAYS)]


def value(rng, lo, hi, names, first):
    """a value in [lo, hi], sometimes by name (names[i] is value first + i)"""
    v = rng.randint(lo, hi)
    if names and rng.random() < 0.3 and v - first < len(names):
        return names[v - first], v
    return str(v), v


def item(rng, lo, hi, names):
    r = rng.random()
    if r < 0.35:
        return value(rng, lo, hi, names, lo)[0]
    a, av = value(rng, lo, hi, names, lo)
    b, bv = value(rng, av, hi, names, lo)
    if r < 0.6:
        return "%s-%s" % (a, b)
    step = rng.randint(1, max(1, (hi - lo + 1) // 2))
    if r < 0.8:
        return "%s-%s/%d" % (a, b, step)
    return "%s/%d" % (str(av), step)


def field(rng, i):
    lo, hi, names = FIELDS[i]
    r = rng.random()
    star = [0.25, 0.45, 0.6, 0.75, 0.6][i]
    if r < star:
        return "*"
    if r < star + 0.12:
        return "*/%d" % rng.randint(1, hi - lo + 1 if i != 4 else 7)
    return ",".join(item(rng, lo, hi, names) for _ in range(rng.randint(1, 3)))


def gen(n, seed):
    rng = random.Random(seed)
    macros = ["@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually", "@midnight"]
    for i in range(n):
        r = rng.random()
        if r < 0.03:
            expr = rng.choice(macros)
        elif r < 0.06:
            # never (refused by us, no time in croniter) and rare schedules
            expr = rng.choice(["0 0 31 2 *", "0 0 30 2 *", "0 0 30,31 feb *", "15 3 31 4,6,9,11 *",
                               "0 0 29 2 *", "0 12 29 feb *", "0 0 */29 2 1", "30 6 29 2 mon-fri",
                               "0 0 31 * *", "0 0 13 * 5", "59 23 31 12 *"])
        else:
            expr = " ".join(field(rng, k) for k in range(5))
        zone = rng.choice(ZONES)
        tz = ZoneInfo(zone)
        if rng.random() < 0.5:
            # near a daylight-saving change of the zone: within two days of one
            year = rng.randint(1996, 2045)
            changes = transitions(tz, year)
            if changes:
                t = rng.choice(changes) + dt.timedelta(seconds=rng.randint(-2 * 86400, 2 * 86400))
            else:
                t = dt.datetime(year, rng.randint(1, 12), 1, tzinfo=UTC) + dt.timedelta(seconds=rng.randint(0, 27 * 86400))
        else:
            t = dt.datetime(1995, 1, 1, tzinfo=UTC) + dt.timedelta(seconds=rng.randint(0, 65 * 365 * 86400))
        t = t + dt.timedelta(microseconds=rng.choice([0, 0, 0, rng.randint(0, 999999)]))
        print("%d\t%s\t%s\t%s" % (i, expr, t.isoformat(), zone))


def transitions(tz, year):
    """Instants (UTC) in year at which tz changes its offset, to the hour."""
    out = []
    t = dt.datetime(year, 1, 1, tzinfo=UTC)
    prev = t.astimezone(tz).utcoffset()
    while t.year == year:
        t2 = t + dt.timedelta(hours=1)
        off = t2.astimezone(tz).utcoffset()
        if off != prev:
            out.append(t2)
            prev = off
        t = t2
    return out


def first_instant(wall, tz):
    """The first instant the wall clock in tz shows wall, or None when it is skipped."""
    found = []
    for fold in (0, 1):
        c = wall.replace(tzinfo=tz, fold=fold)
        u = c.astimezone(UTC)
        if u.astimezone(tz).replace(tzinfo=None) == wall:
            found.append(u)
    return min(found) if found else None


def ref(expr, after, zone):
    tz = ZoneInfo(zone)
    fields = expr.split()
    day_or = len(fields) == 5 and not (fields[2].startswith("*") or fields[4].startswith("*"))
    if day_or:
        # croniter takes a day field that lists every day for "*" (and then
        # AND-s the days); in Vixie cron it stays a restriction, OR-ed, so
        # every day matches: say so to croniter
        e = croniter(expr).expanded
        if e[2] == ["*"] or e[4] == ["*"]:
            fields[2] = fields[4] = "*"
            expr = " ".join(fields)
    local = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    it = croniter(expr, local - dt.timedelta(minutes=1), day_or=day_or, max_years_between_matches=400)
    for _ in range(2000):
        try:
            wall = it.get_next(dt.datetime)
        except CroniterBadDateError:
            return "never"
        if wall.year > after.year + 400:
            return "never"
        u = first_instant(wall, tz)
        if u is not None and u > after:
            return u.strftime("%Y-%m-%d %H:%M:%S")
    return "never"


def plain(expr, after, zone):
    """Next fire time by plain evaluation of croniter's parsed fields."""
    tz = ZoneInfo(zone)
    f = expr.split()
    e = croniter(expr).expanded
    full = [range(0, 60), range(0, 24), range(1, 32), range(1, 13), range(0, 7)]
    sets = [set(full[i]) if e[i] == ["*"] else {int(x) for x in e[i]} for i in range(5)]
    if 7 in sets[4]:
        sets[4].add(0)
    days_and = len(f) != 5 or f[2].startswith("*") or f[4].startswith("*")
    local = after.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
    day = local.date()
    for _ in range(400 * 366):
        if day.month in sets[3]:
            dom = day.day in sets[2]
            dow = (day.isoweekday() % 7) in sets[4]
            if (dom and dow) if days_and else (dom or dow):
                for h in sorted(sets[1]):
                    for m in sorted(sets[0]):
                        wall = dt.datetime(day.year, day.month, day.day, h, m)
                        if wall < local:
                            continue
                        u = first_instant(wall, tz)
                        if u is not None and u > after:
                            return u.strftime("%Y-%m-%d %H:%M:%S")
        day += dt.timedelta(days=1)
    return "never"


def main():
    if sys.argv[1] == "gen":
        gen(int(sys.argv[2]), int(sys.argv[3]))
        return
    for line in open(sys.argv[2]):
        i, expr, after, zone = line.rstrip("\n").split("\t")
        try:
            r = ref(expr, dt.datetime.fromisoformat(after), zone)
            p = plain(expr, dt.datetime.fromisoformat(after), zone)
        except Exception as e:          # croniter refuses the expression
            r = p = "refused:" + type(e).__name__
        print("%s\t%s\t%s" % (i, r, p))


if __name__ == "__main__":
    main()
