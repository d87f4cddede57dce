"""Cron schedules as KEDA's cron scaler reads them, and the windows it opens.

KEDA v2.20.2 (pkg/scalers/cron_scaler.go) parses `start` and `end` with robfig/cron v3.0.1's
`NewParser(Minute | Hour | Dom | Month | Dow)`: five fields, no seconds field, no `@daily`-style descriptors. This
module accepts exactly what that parser accepts (parser.go `Parse`/`getRange`, spec.go bounds), minus a
`CRON_TZ=`/`TZ=` prefix (the window's zone is its own key), and answers the questions the config and
`burstctl estimate` ask: when does a schedule fire (spec.go `Next`: every instant whose wall-clock time in the zone
matches, so a time that daylight saving skips never fires and one it repeats fires twice), and is the trigger active
at a given instant (the scaler's rule: active unless the next `start` comes strictly before the next `end`).
The derivation of that rule, and what it does with windows that do not alternate, is in docs/workload.md.
"""

import difflib
import functools
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterator, Optional
from zoneinfo import ZoneInfo, available_timezones

UTC = timezone.utc

_GO_SPACE = re.compile("[\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+")
"""What Go's strings.Fields splits on (unicode.IsSpace); Python's str.split would also split on \\x1c-\\x1f."""
_GO_INT = re.compile(r"[+-]?[0-9]+", re.ASCII)
"""strconv.Atoi's syntax: an optional sign and ASCII digits (no underscores, no spaces)."""
_INT64_MAX = 2**63 - 1

MONTHS = {n: i for i, n in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov",
                                      "dec"), start=1)}
WEEKDAYS = {n: i for i, n in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
DAY_NAMES = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")


@dataclass(frozen=True)
class Bounds:
    name: str
    lo: int
    hi: int
    names: Optional[dict] = None

    def allowed(self) -> str:
        named = " or " + ("JAN-DEC" if self.names is MONTHS else "SUN-SAT") if self.names else ""
        return f"{self.name} {self.lo}-{self.hi}{named}"


FIELDS = (Bounds("minute", 0, 59), Bounds("hour", 0, 23), Bounds("day-of-month", 1, 31),
          Bounds("month", 1, 12, MONTHS), Bounds("day-of-week", 0, 6, WEEKDAYS))
FORMAT = "five fields `minute hour day-of-month month day-of-week`"
EXAMPLE = "0 8 * * 1-5"
DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
               "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
"""robfig/cron's descriptors and the five fields they stand for (its parseDescriptor); KEDA's parser has no
Descriptor option, so it refuses them."""

SCAN_FROM = date(2026, 1, 1)
SCAN_YEARS = 28
"""Window checks walk 28 years of calendar from SCAN_FROM: every month/day/weekday combination (29 February on each
weekday included) occurs within 28 years while no century year interrupts the leap cycle (until 2100)."""
HORIZON_YEARS = 5
"""robfig/cron's Next gives up (returns the zero time) when nothing matches within five years."""


class CronError(ValueError):
    """A schedule KEDA's cron scaler would refuse; the message says what is wrong and what is allowed."""


@dataclass(frozen=True)
class Schedule:
    """A parsed five-field schedule: the values each field matches, and whether day-of-month/day-of-week were
    written as `*`/`?` (robfig's star bit: with one of them starred, a day must match both; otherwise either)."""

    spec: str
    minutes: frozenset
    hours: frozenset
    days: frozenset
    months: frozenset
    weekdays: frozenset
    dom_star: bool
    dow_star: bool

    def day_matches(self, d: date) -> bool:
        """spec.go dayMatches plus the month check (Go's Weekday: Sunday = 0)."""
        if d.month not in self.months:
            return False
        dom = d.day in self.days
        dow = (d.isoweekday() % 7) in self.weekdays
        return (dom and dow) if (self.dom_star or self.dow_star) else (dom or dow)

    @functools.cached_property
    def times(self) -> tuple:
        """(hour, minute) of every firing on a matching day, in order."""
        return tuple((h, m) for h in sorted(self.hours) for m in sorted(self.minutes))

    def fires(self) -> bool:
        """Whether it ever fires: some day of some selected month matches (29 February counts; within the five
        years robfig/cron looks ahead every month/day combination occurs and every month has every weekday)."""
        if not self.times:
            return False
        dim = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
        for month in self.months:
            if self.dom_star or self.dow_star:
                if self.weekdays and any(d <= dim[month] for d in self.days):
                    return True
            elif self.weekdays or any(d <= dim[month] for d in self.days):
                return True
        return False


def _int(text: str, b: Bounds, spec: str, names: bool) -> int:
    if names and b.names and text.lower() in b.names:
        return b.names[text.lower()]
    if not _GO_INT.fullmatch(text) or int(text) > _INT64_MAX:
        raise CronError(f"'{spec}': '{text}' is not a number in the {b.name} field; allowed: {b.allowed()}")
    n = int(text)
    if n < 0:
        raise CronError(f"'{spec}': {b.name} {n} is negative; allowed: {b.allowed()}")
    return n


def parse_range(expr: str, b: Bounds, spec: str) -> tuple[set, bool]:
    """getRange: `*`, `?`, `N`, `N-M`, each with an optional `/step` (`N/step` means N-max/step). Returns the values
    and whether the star bit is set (a `*`/`?` with a step of at most 1)."""
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    star = False
    if low_high[0] in ("*", "?"):
        # robfig reads nothing after `*-`: `*-5` is `*`
        start, end, star = b.lo, b.hi, True
    else:
        start = _int(low_high[0], b, spec, names=True)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int(low_high[1], b, spec, names=True)
        else:
            raise CronError(f"'{spec}': '{expr}' has too many '-' in the {b.name} field; allowed: a range a-b")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _int(range_and_step[1], b, spec, names=False)
        if len(low_high) == 1:
            end = b.hi
        if step > 1:
            star = False
    else:
        raise CronError(f"'{spec}': '{expr}' has too many '/' in the {b.name} field; allowed: one step, e.g. */15")
    if start < b.lo:
        raise CronError(f"'{spec}': {b.name} {start} is below {b.lo}; allowed: {b.allowed()}")
    if end > b.hi:
        raise CronError(f"'{spec}': {b.name} {end} is above {b.hi}; allowed: {b.allowed()}")
    if start > end:
        raise CronError(f"'{spec}': the {b.name} range '{expr}' starts after it ends; allowed: a-b with a <= b "
                        "(a range does not wrap around)")
    if step == 0:
        raise CronError(f"'{spec}': the step in '{expr}' is 0; allowed: a positive step, e.g. */15")
    return set(range(start, end + 1, step)), star


@functools.lru_cache(maxsize=256)
def parse(spec: str) -> Schedule:
    """The schedule KEDA's cron scaler would build from `spec`, or CronError with what its parser would refuse."""
    if not spec:
        raise CronError(f"is empty; allowed: {FORMAT}, e.g. {EXAMPLE}")
    if spec.startswith(("TZ=", "CRON_TZ=")):
        raise CronError(f"'{spec}' sets its own time zone; allowed: the five fields only, the zone in `timezone` "
                        "(one zone for start and end)")
    if spec.startswith("@"):
        same = DESCRIPTORS.get(spec)
        raise CronError(f"'{spec}' is a descriptor, which KEDA's cron scaler does not accept; allowed: {FORMAT}"
                        + (f", e.g. {same} for {spec}" if same else f", e.g. {EXAMPLE}"))
    fields = [f for f in _GO_SPACE.split(spec) if f]
    if len(fields) != 5:
        extra = " (KEDA's cron scaler has no seconds field)" if len(fields) == 6 else ""
        raise CronError(f"'{spec}' has {len(fields)} fields{extra}; allowed: exactly {FORMAT}, e.g. {EXAMPLE}")
    values, stars = [], []
    for text, b in zip(fields, FIELDS):
        found, star = set(), False
        for expr in (e for e in text.split(",") if e):  # strings.FieldsFunc drops empty items
            v, s = parse_range(expr, b, spec)
            found |= v
            star = star or s
        values.append(frozenset(found))
        stars.append(star)
    return Schedule(spec, *values, dom_star=stars[2], dow_star=stars[4])


# -- time zones ---------------------------------------------------------------------------------------------------
LEGACY_AREAS = ("US", "Canada", "Mexico", "Brazil", "Chile")


@functools.cache
def _known_zones() -> frozenset:
    return frozenset(available_timezones())


@functools.cache
def _lower_to_zone() -> dict:
    return {z.lower(): z for z in _known_zones()}


def zone_problem(name: str) -> str:
    """Why `name` is not a zone to give KEDA ("" when it is fine). Python reads the zone from the machine's tz database
    (or the tzdata package), KEDA with Go's time.LoadLocation from its image's; both are the IANA database, but Go
    also takes "Local" (the operator pod's zone) and legacy aliases may be missing from a slim image."""
    example = "allowed: an IANA Area/Location name such as Europe/Berlin or America/New_York, or UTC"
    if name in ("Local", "localtime"):
        return f"'{name}' means the keda-operator pod's own zone; {example}"
    if name not in _known_zones() or name == "Factory":
        close = difflib.get_close_matches(name.lower(), list(_lower_to_zone()), n=1, cutoff=0.8)
        hint = f" (did you mean {_lower_to_zone()[close[0]]}?)" if close else " (names are case-sensitive)"
        return f"'{name}' is not a time zone of the IANA database{hint}; {example}"
    area = name.split("/", 1)[0]
    if name != "UTC" and ("/" not in name or area in LEGACY_AREAS):
        return (f"'{name}' is a legacy alias, which slim images (the keda-operator's) may not ship; {example}")
    return ""


# -- when schedules fire -------------------------------------------------------------------------------------------
def _wall_instants(d: date, hour: int, minute: int, zone: ZoneInfo) -> list[datetime]:
    """The UTC instants at which the wall clock in `zone` reads d hour:minute: none in a skipped hour, two in a
    repeated one."""
    out = []
    for fold in (0, 1):
        local = datetime(d.year, d.month, d.day, hour, minute, tzinfo=zone, fold=fold)
        utc = local.astimezone(UTC)
        back = utc.astimezone(zone)
        if (back.year, back.month, back.day, back.hour, back.minute) == (d.year, d.month, d.day, hour, minute) \
                and utc not in out:
            out.append(utc)
    return sorted(out)


def fire_instants(s: Schedule, zone: ZoneInfo, after: datetime, until: datetime) -> Iterator[datetime]:
    """Every instant in (after, until] (UTC) at which `s` fires in `zone`, in order."""
    day = after.astimezone(zone).date() - timedelta(days=1)
    last = until.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        if s.day_matches(day):
            for h, m in s.times:
                for t in _wall_instants(day, h, m, zone):
                    if after < t <= until:
                        yield t
        day += timedelta(days=1)


def next_fire(s: Schedule, zone: ZoneInfo, after: datetime) -> Optional[datetime]:
    """spec.go Next: the first firing after `after`, None where robfig returns the zero time (none in five years)."""
    step = timedelta(days=31)
    end = after + timedelta(days=366 * HORIZON_YEARS)
    lo = after
    while lo < end:
        hi = min(lo + step, end)
        for t in fire_instants(s, zone, lo, hi):
            return t
        lo = hi
    return None


def scaler_active(now: datetime, next_start: Optional[datetime], next_end: Optional[datetime]) -> bool:
    """cron_scaler.go GetMetricsAndActivity, line for line: `next_start`/`next_end` are the schedules' Next(now),
    None for Go's zero time (no firing within five years), which is before every instant."""
    zero = datetime.min.replace(tzinfo=UTC)
    ns, ne = next_start or zero, next_end or zero
    if ns < ne:
        return now > ns and now < ne
    return now > ns or now < ne


def active_minutes(start: Schedule, end: Schedule, zone: ZoneInfo, begin: datetime, minutes: int) -> list[bool]:
    """For each minute from `begin` (UTC, on a minute boundary): is the cron trigger active during it? KEDA polls
    every few seconds; a poll inside minute t sees as "next" the first firings strictly after t."""
    until = begin + timedelta(minutes=minutes)
    starts = list(fire_instants(start, zone, begin, until))
    ends = list(fire_instants(end, zone, begin, until))
    ns, ne = next_fire(start, zone, until), next_fire(end, zone, until)
    out = [False] * minutes
    i_s, i_e = len(starts) - 1, len(ends) - 1
    for k in range(minutes - 1, -1, -1):
        t = begin + timedelta(minutes=k)
        while i_s >= 0 and starts[i_s] > t:
            ns, i_s = starts[i_s], i_s - 1
        while i_e >= 0 and ends[i_e] > t:
            ne, i_e = ends[i_e], i_e - 1
        out[k] = scaler_active(t + timedelta(seconds=30), ns, ne)
    return out


# -- what a window can express -------------------------------------------------------------------------------------
def _when(d: date, hm: tuple) -> str:
    return f"{DAY_NAMES[d.isoweekday() % 7]} {d.isoformat()} {hm[0]:02d}:{hm[1]:02d}"


def _weekly(s: Schedule) -> bool:
    """Whether the days `s` fires on depend on the weekday alone (every month, day-of-month `*`)."""
    return s.dom_star and len(s.months) == 12


def _scan_days(weekly: bool = False) -> Iterator[date]:
    """The days the window checks walk: SCAN_YEARS of calendar, or two weeks when both schedules are weekly (every
    pair of consecutive days of the week, the wrap from Saturday to Sunday included)."""
    d = SCAN_FROM
    stop = d + timedelta(days=14) if weekly else date(d.year + SCAN_YEARS, d.month, d.day)
    while d < stop:
        yield d
        d += timedelta(days=1)


ALTERNATE = "allowed: a start and an end that alternate (one end after each start, before the next start), e.g. " \
            "start 0 8 * * 1-5 with end 0 19 * * 1-5, or start 0 20 * * * with end 0 6 * * * across midnight"


def _events(start: Schedule, end: Schedule) -> Iterator[tuple[str, date, tuple]]:
    """(kind, day, (hour, minute)) of every firing of `start` and `end` in the scanned days, in wall-clock order
    (an end before a start at the same minute)."""
    on_day = {
        (True, False): [(hm, "start") for hm in start.times],
        (False, True): [(hm, "end") for hm in end.times],
        (True, True): sorted([(hm, "start") for hm in start.times] + [(hm, "end") for hm in end.times]),
    }
    for d in _scan_days(_weekly(start) and _weekly(end)):
        key = (start.day_matches(d), end.day_matches(d))
        if key != (False, False):
            for hm, kind in on_day[key]:
                yield kind, d, hm


def order_problems(start: Schedule, end: Schedule) -> list[tuple[str, str]]:
    """Where the firings of `start` and `end` (wall-clock time, every day of SCAN_YEARS) do not alternate.

    The scaler is active unless the next start comes strictly before the next end. So after an end it stays active
    while the next firing is another end (ends in a row keep the window open until the last of them), before a
    start it is inactive (starts in a row open the window at the last of them), and at a minute both fire it cannot
    tell them apart. A window across midnight or a weekend alternates and is fine."""
    events = _events(start, end)
    prev = None
    for kind, d, hm in events:
        if prev is not None and prev[1:] == (d, hm):
            return [("end", f"'{end.spec}' fires at the same minute as start '{start.spec}' ({_when(d, hm)}), "
                            "which KEDA's cron scaler cannot order; allowed: end times that differ from every "
                            "start time")]
        if prev is not None and prev[0] == kind:
            first, last = _when(prev[1], prev[2]), _when(d, hm)
            for k, d2, hm2 in events:  # the run of same-kind firings goes on until the other kind fires
                if k != kind:
                    break
                last = _when(d2, hm2)
            if kind == "end":
                return [("end", f"'{end.spec}' fires again with no start in between ({first}, then up to {last}): "
                                f"KEDA's cron scaler keeps the window open until {last}; {ALTERNATE}")]
            return [("start", f"'{start.spec}' fires again with no end in between ({first}, then up to {last}): "
                              f"KEDA's cron scaler opens the window only at {last}; {ALTERNATE}")]
        prev = (kind, d, hm)
    return []


@functools.cache
def _transitions(zone_name: str) -> tuple:
    """(first instant of the new offset, old offset, new offset) of every change of the zone's UTC offset in the
    scanned years."""
    return tuple(_find_transitions(ZoneInfo(zone_name)))


def _find_transitions(zone: ZoneInfo) -> Iterator[tuple[datetime, timedelta, timedelta]]:
    def offset(t: datetime) -> timedelta:
        return t.astimezone(zone).utcoffset()

    t = datetime(SCAN_FROM.year, SCAN_FROM.month, SCAN_FROM.day, tzinfo=UTC)
    stop = datetime(SCAN_FROM.year + SCAN_YEARS, SCAN_FROM.month, SCAN_FROM.day, tzinfo=UTC)
    before = offset(t)
    while t < stop:
        nxt = t + timedelta(days=1)
        after = offset(nxt)
        if after != before:
            lo, hi = t, nxt  # offset(lo) == before, offset(hi) == after: bisect to the minute
            while hi - lo > timedelta(minutes=1):
                mid = lo + (hi - lo) / 2
                mid = mid.replace(second=0, microsecond=0)
                if mid <= lo:
                    mid = lo + timedelta(minutes=1)
                lo, hi = (mid, hi) if offset(mid) == before else (lo, mid)
            yield hi, before, after
            before = after
        t = nxt


def dst_problems(start: Schedule, end: Schedule, zone_name: str) -> list[tuple[str, str]]:
    """Firings at a wall-clock time the zone skips or repeats. robfig/cron steps absolute time and matches the wall
    clock, so such a start or end is missed or doubled, and the scaler's next-start/next-end rule turns that into a
    window that stays open a day longer, never opens, or opens or closes an hour late."""
    out: dict[str, str] = {}
    hm_sets = {"start": frozenset(start.times), "end": frozenset(end.times)}
    for at, old, new in _transitions(zone_name):
        naive = at.replace(tzinfo=None)
        lo, hi = (naive + old, naive + new) if new > old else (naive + new, naive + old)
        skipped = new > old
        w = lo
        while w < hi:
            for key, s in (("start", start), ("end", end)):
                if key not in out and s.day_matches(w.date()) and (w.hour, w.minute) in hm_sets[key]:
                    if skipped:
                        effect = ("the window stays open from the previous end until the next end" if key == "start"
                                  else "the window before it does not open at all")
                    else:
                        effect = "the window opens an hour late" if key == "start" else "the window closes an hour late"
                    out[key] = (f"'{s.spec}' fires at {_when(w.date(), (w.hour, w.minute))}, a time {zone_name} "
                                f"{'skips' if skipped else 'repeats'} when its clocks change, so KEDA's cron scaler "
                                f"{'misses' if skipped else 'fires'} it{'' if skipped else ' twice'} and {effect}; "
                                f"allowed: times outside {zone_name}'s clock changes ({lo:%H:%M}-{hi:%H:%M} local "
                                "on those days), or a zone without daylight saving time such as UTC")
            w += timedelta(minutes=1)
    return [(k, out[k]) for k in ("start", "end") if k in out]
