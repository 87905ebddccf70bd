#!/usr/bin/env python3
"""Reference periods from Python's zoneinfo, for t_periods.sh.

  period_check.py probes YEAR BEFORE_EPOCH OUT.tsv
        instants around every change of UTC offset of YEAR (and around the
        first of April and October) in the zones of the test, before
        BEFORE_EPOCH
  period_check.py expect PROBES.tsv OUT.tsv
        for each probe: hour, day and month period (start, end), UTC epochs
  period_check.py compare EXPECT.tsv DB.tsv
        the database's bounds (columns: zone, probe, unit, source, start,
        end) against the expectation
  period_check.py groups EXPECT.tsv OUT.tsv
        calls per zone, period type and period start, as the roll-ups must
        count one call at each probe

The periods are found by walking the local wall clock minute by minute
(every change of offset in these zones falls on a whole minute), straight
from the definition in README "Periods", not from the product's formulas:

  * an hour period begins at a minute whose local (date, hour) differs
    from the minute before's, or whose local time is earlier than the
    minute before's (the clocks went back: a repeated hour is a second
    period);
  * the day of local date D begins at the first minute whose local date is
    D or later; a day period is [start(D), start(D+1)), and an instant
    belongs to the last day that began at or before it;
  * months likewise, from the first of the month.
"""
import sys
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

ZONES = ["America/Havana", "America/Santiago", "Asia/Beirut", "Africa/Cairo", "Australia/Lord_Howe",
         "Pacific/Chatham", "Asia/Kathmandu", "Europe/Berlin"]
MIN = 60
UNITS = ("hour", "day", "month")


def local(ts, zone):
    """Wall clock at UTC epoch ts, as a naive datetime."""
    return datetime.fromtimestamp(ts, ZoneInfo(zone)).replace(tzinfo=None)


def offset(ts, zone):
    return datetime.fromtimestamp(ts, ZoneInfo(zone)).utcoffset()


def changes(zone, year):
    """Every instant of a year at which the zone's UTC offset changes (to the minute)."""
    out = []
    t = int(datetime(year, 1, 1, tzinfo=timezone.utc).timestamp())
    end = int(datetime(year + 1, 1, 1, tzinfo=timezone.utc).timestamp())
    prev = offset(t, zone)
    while t < end:
        nxt = t + 3600
        if offset(nxt, zone) != prev:
            m = t
            while offset(m, zone) == prev:
                m += MIN
            out.append(m)
            prev = offset(nxt, zone)
        t = nxt
    return out


def first_of(d, zone):
    """UTC epoch of the first instant of local date d or later, by walking minutes."""
    a = int(datetime(d.year, d.month, d.day, tzinfo=timezone.utc).timestamp())
    for m in range(a - 16 * 3600, a + 16 * 3600 + 1, MIN):
        if local(m, zone).date() >= d:
            return m
    raise AssertionError("no start of %s in %s" % (d, zone))


@lru_cache(maxsize=None)
def day_start(d, zone):
    return first_of(d, zone)


def hour_key(ts, zone):
    lt = local(ts, zone)
    return lt.date(), lt.hour


def new_hour(m, zone):
    a, b = local(m - MIN, zone), local(m, zone)
    return (a.date(), a.hour) != (b.date(), b.hour) or b < a


def bounds(ts, unit, zone):
    if unit == "hour":
        m = ts - ts % MIN
        s = m
        while not new_hour(s, zone):
            s -= MIN
        e = m + MIN
        while not new_hour(e, zone):
            e += MIN
        return s, e
    d = local(ts, zone).date()
    if unit == "day":
        cands = [d, d + timedelta(days=1), d + timedelta(days=2)]
    else:
        f = d.replace(day=1)
        cands = [f]
        for _ in range(2):
            f = (f + timedelta(days=32)).replace(day=1)
            cands.append(f)
    starts = [day_start(c, zone) for c in cands]
    i = 0 if starts[1] > ts else 1
    assert starts[i] <= ts < starts[i + 1], (zone, ts, unit, starts)
    return starts[i], starts[i + 1]


def cmd_probes(year, now, out):
    n = 0
    with open(out, "w") as f:
        for zone in ZONES:
            anchors = changes(zone, year)
            for mo in (4, 10):
                anchors.append(day_start(date(year, mo, 1), zone))
            seen = set()
            for a in anchors:
                # every quarter hour (and 7.5 minutes in) within 6 hours of
                # the anchor, every hour within 36 hours, the anchor's edges
                near = [k * 900 + x for k in range(-24, 25) for x in (0, 449)]
                far = [k * 3600 + 1 for k in range(-36, 37)]
                edges = [-1, 1, 1799, 1800, 3599, 3600]
                for d in near + far + edges:
                    if a + d < now - 7200:
                        seen.add(a + d)
            for p in sorted(seen):
                f.write("%s\t%d\n" % (zone, p))
                n += 1
    print("%d probes in %d zones" % (n, len(ZONES)))


def cmd_expect(probes, out):
    with open(probes) as f, open(out, "w") as g:
        for line in f:
            zone, p = line.split()
            p = int(p)
            for unit in UNITS:
                s, e = bounds(p, unit, zone)
                g.write("%s\t%d\t%s\t%d\t%d\n" % (zone, p, unit, s, e))


def load_expect(path):
    exp = {}
    with open(path) as f:
        for line in f:
            zone, p, unit, s, e = line.split()
            exp[(zone, int(p), unit)] = (int(s), int(e))
    return exp


def cmd_compare(expect, db):
    exp = load_expect(expect)
    bad, n, sources = [], 0, set()
    with open(db) as f:
        for line in f:
            zone, p, unit, source, s, e = line.split()
            sources.add(source)
            want = exp[(zone, int(p), unit)]
            got = (int(float(s)), int(float(e)))
            n += 1
            if got != want:
                bad.append((zone, int(p), unit, source, got, want))
    fmt = lambda t: datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
    for zone, p, unit, source, got, want in bad[:20]:
        print("MISMATCH %s %s at %s (%s): %s .. %s, expected %s .. %s"
              % (source, unit, fmt(p), zone, fmt(got[0]), fmt(got[1]), fmt(want[0]), fmt(want[1])))
    print("%d bounds compared (%s), %d differ" % (n, ", ".join(sorted(sources)), len(bad)))
    return 1 if bad else 0


def cmd_groups(expect, out):
    counts = {}
    for (zone, p, unit), (s, e) in load_expect(expect).items():
        key = (zone, {"hour": "hourly", "day": "daily", "month": "monthly"}[unit], s)
        counts[key] = counts.get(key, 0) + 1
    with open(out, "w") as g:
        for (zone, ptype, s), c in sorted(counts.items()):
            g.write("%s\t%s\t%d\t%d\n" % (zone, ptype, s, c))


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "probes":
        cmd_probes(int(a[1]), int(a[2]), a[3])
    elif a[0] == "expect":
        cmd_expect(a[1], a[2])
    elif a[0] == "compare":
        sys.exit(cmd_compare(a[1], a[2]))
    elif a[0] == "groups":
        cmd_groups(a[1], a[2])
